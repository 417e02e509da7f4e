#!/usr/bin/env python3
"""How high can DNSMOS go on the real mixtures? The ceiling of a model trained to reproduce the references.

The DNSMOS target of issue 14 compares the enhancer with RNNoise on DNSMOS P.835 OVRL at 10 dB and below.
The enhancer is trained to give back the clean reference; DNSMOS scores the output on its own, with no
reference, so a reference that carries its own background (phone microphones, children in classrooms,
one-second words) caps what a faithful model can score. This script measures that cap on one split, per
input SNR, with the same metric code, RNNoise wrapper and mixtures as ``bench_real.py``:

* ``clean_ref``: the clean reference itself (what a perfect reproduction scores);
* ``rnnoise_on_clean``: RNNoise on the clean reference (how much of the reference's own background it removes);
* ``ideal_mask`` / ``ideal_mask_20db``: the ideal magnitude mask ``clip(|S| / |Y|, floor, 1)`` on the
  enhancer's STFT (512 / 256, Hann, zero padding, noisy phase), without a floor and with the shipped models' 20 dB
  attenuation limit: the best any real-valued mask of the noisy STFT can do toward the reference;
* ``rnnoise``: RNNoise on the noisy mixture (the target's comparison).

Each with SI-SDR against the reference, over all rooms per SNR (``name|10.0|dnsmos``) and per condition as
``bench_real.py`` names them (``name|dry_10.0|dnsmos``, ``rev_...``). About 12 (valid) / 25 (test) min on one thread.
    python benchmarks/dnsmos_ceiling.py --split test --out benchmarks/results/dnsmos_ceiling_test.json

Authors
 * speechbrain-dyncp contributors
"""
import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from bench_real import dnsmos_parts, rnnoise  # benchmarks/ is on sys.path when this script runs
from speechbrain_dyncp.data.audio import read_audio
from speechbrain_dyncp.data.manifest import manifest_digest
from speechbrain_dyncp.metrics.enhancement import si_sdr

REPO = Path(__file__).resolve().parents[1]
SR, N_FFT, HOP = 16000, 512, 256
NOISY_SNRS = ("10.0", "5.0", "0.0", "-5.0")  # the DNSMOS target's input SNRs


def enhancer_stft(x: np.ndarray) -> torch.Tensor:
    """``DynCPEnhancer.spectrum``'s STFT (Hann 512 / 256, centred, zero padding) in float64."""
    window = torch.hann_window(N_FFT, dtype=torch.float64)
    return torch.stft(torch.from_numpy(x), N_FFT, HOP, window=window, center=True, pad_mode="constant",
                      return_complex=True)


def ideal_mask(noisy: np.ndarray, clean: np.ndarray, floor: float) -> np.ndarray:
    """The reference's ideal magnitude mask, clipped to ``[floor, 1]``, applied to the noisy STFT."""
    y, s = enhancer_stft(noisy), enhancer_stft(clean)
    mask = (s.abs() / y.abs().clamp(min=1e-9)).clamp(floor, 1.0)
    window = torch.hann_window(N_FFT, dtype=torch.float64)
    return torch.istft(mask * y, N_FFT, HOP, window=window, length=len(noisy)).numpy()


def outputs(noisy: np.ndarray, clean: np.ndarray, snr: str) -> dict:
    """The systems scored for one mixture (the reference-only ones on the clean items)."""
    if snr == "clean":
        return {"clean_ref": clean, "rnnoise_on_clean": rnnoise(clean)}
    return {"ideal_mask": ideal_mask(noisy, clean, 0.0), "ideal_mask_20db": ideal_mask(noisy, clean, 0.1),
            "rnnoise": rnnoise(noisy)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=("valid", "test"), default="valid")
    ap.add_argument("--corpus", default=str(REPO / "results/DynCP/real_speech_seed0"))
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    manifest = Path(args.corpus) / f"{args.split}.csv"
    with open(manifest) as fh:
        rows = [r for r in csv.DictReader(fh) if r["condition"].split("_", 1)[1] in ("clean",) + NOISY_SNRS]
    res = defaultdict(list)
    for row in rows:
        snr = row["condition"].split("_", 1)[1]
        noisy = read_audio(row["noisy_wav"], SR).double().numpy()
        clean = read_audio(row["clean_wav"], SR).double().numpy()
        for name, wav in outputs(noisy, clean, snr).items():
            values = dict(dnsmos_parts(wav))
            values["si_sdr"] = float(si_sdr(torch.from_numpy(wav)[None], torch.from_numpy(clean)[None])[0])
            for key, value in values.items():  # all rooms by SNR, and by condition (dry_10.0, rev_10.0, ...)
                res[f"{name}|{snr}|{key}"].append(value)
                res[f"{name}|{row['condition']}|{key}"].append(value)
    scores = {k: float(np.mean(v)) for k, v in sorted(res.items())}
    summary = {"split": args.split, "digest": manifest_digest(manifest), "n_items": len(rows), "scores": scores}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1))
    print(f"{args.split} mixtures {summary['digest']}; DNSMOS OVRL (SIG / BAK), SI-SDR dB")
    for name, snrs in (("clean_ref", ("clean",)), ("rnnoise_on_clean", ("clean",)), ("ideal_mask", NOISY_SNRS),
                       ("ideal_mask_20db", NOISY_SNRS), ("rnnoise", NOISY_SNRS)):
        print(name.ljust(17), " | ".join(
            f"{s}: {scores[f'{name}|{s}|dnsmos']:.2f} ({scores[f'{name}|{s}|dnsmos_sig']:.2f} / "
            f"{scores[f'{name}|{s}|dnsmos_bak']:.2f}), {scores[f'{name}|{s}|si_sdr']:.1f}" for s in snrs))


if __name__ == "__main__":
    main()
