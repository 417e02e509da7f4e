#!/usr/bin/env python3
"""Settings of the pause floor's low-SNR part on the real valid (or test) mixtures, the network run once.

For a model folder with a pause floor, every item is enhanced once; each setting
(window, minimum speech frames, threshold) is then applied to the same logits with
:meth:`PauseFloor.frame_floors` (the code the model runs), and SI-SDR per SNR, PESQ-WB on the
clean / 20 / 10 dB items and the share of frames given the deeper floor are written as JSON.
About 3 min on the valid split for a few settings (one thread). Choose on ``--split valid``::

    python benchmarks/low_snr_floor_sweep.py --model speechbrain_dyncp/pretrained/dyncp_real_base \
        --settings 100,50,2 100,25,0 200,100,4 --out results/low_snr_sweep_valid.json

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import copy
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from speechbrain_dyncp.data.audio import read_audio
from speechbrain_dyncp.inference.loading import load_enhancer
from speechbrain_dyncp.lobes.stft_masking import masked_istft
from speechbrain_dyncp.metrics.enhancement import pesq_wb, si_sdr

REPO = Path(__file__).resolve().parents[1]


def sweep(enhancer, rows, settings):
    """Mean SI-SDR / PESQ / share of frames given a deeper floor than the pause floor alone, per setting
    name and SNR (``"pause_only"``: no low-SNR part)."""
    pause_only = copy.deepcopy(enhancer.pause_floor)
    pause_only.low_snr_db = None
    floors_of = {"pause_only": pause_only}
    for window, min_frames, db in settings:
        pf = copy.deepcopy(enhancer.pause_floor)
        pf.low_snr_db, pf.low_snr_window, pf.low_snr_min_frames = float(db), int(window), int(min_frames)
        floors_of[f"w{window}_m{min_frames}_t{db:g}"] = pf
    res = defaultdict(list)
    for row in rows:
        noisy = read_audio(row["noisy_wav"], 16000).float()[None]
        clean = read_audio(row["clean_wav"], 16000).double()[None]
        snr = row["condition"].split("_", 1)[1]
        with torch.no_grad():
            spec = enhancer.spectrum(noisy)
            feats = enhancer.features(spec)
            frame_mask = torch.ones(1, spec.shape[-1], dtype=torch.bool)
            logits, gates = enhancer.mask_logits(feats, frame_mask)
            energies = pause_only.frame_energies(logits, feats, enhancer.power_exponent)
            base = pause_only.frame_floors(gates, enhancer.mask_floor)
            for name, pf in floors_of.items():
                floors = base if pf is pause_only else pf.frame_floors(gates, enhancer.mask_floor, energies)
                mask = enhancer.mask_from_logits(logits, floors)
                est = masked_istft(spec * mask.transpose(1, 2), frame_mask, enhancer.window, enhancer.hop_length,
                                   noisy.shape[1])
                res[f"{name}|{snr}|si_sdr"].append(float(si_sdr(est.double(), clean)[0]))
                res[f"{name}|{snr}|deeper"].append(float((floors < base).double().mean()))
                if snr in ("clean", "20.0", "10.0"):
                    res[f"{name}|{snr}|pesq"].append(pesq_wb(est[0], clean[0].float()))
    return {k: float(np.mean(v)) for k, v in sorted(res.items())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a model folder whose enhancer has a pause floor")
    ap.add_argument("--split", choices=("valid", "test"), default="valid")
    ap.add_argument("--corpus", default=str(REPO / "results/DynCP/real_speech_seed0"))
    ap.add_argument("--settings", nargs="+", required=True, help="WINDOW,MIN_FRAMES,THRESHOLD_DB ...")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    enhancer = load_enhancer(args.model).mods.enhancer.eval()
    if enhancer.pause_floor is None:
        raise SystemExit(f"low_snr_floor_sweep: {args.model} has no pause floor (recipes/DynCP/set_pause_floor.py)")
    settings = [(int(w), int(m), float(t)) for w, m, t in (s.split(",") for s in args.settings)]
    with open(Path(args.corpus) / f"{args.split}.csv") as fh:
        rows = list(csv.DictReader(fh))
    scores = sweep(enhancer, rows, settings)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"model": args.model, "split": args.split, "scores": scores}, indent=1))
    snrs = ("clean", "20.0", "10.0", "5.0", "0.0", "-5.0")
    for name in dict.fromkeys(k.split("|")[0] for k in scores):
        print(f"{name:16s} SI-SDR", " ".join(f"{scores[f'{name}|{s}|si_sdr']:.2f}" for s in snrs),
              "| PESQ clean / 20 / 10", " ".join(f"{scores[f'{name}|{s}|pesq']:.3f}" for s in snrs[:3]),
              "| deeper 20 / 0 / -5", " ".join(f"{scores[f'{name}|{s}|deeper']:.2f}" for s in ("20.0", "0.0", "-5.0")))


if __name__ == "__main__":
    main()
