#!/usr/bin/env python3
"""Choose the T-F mask register settings on the real VALID split, then score them once on the test split.

``speechbrain_dyncp/probes/mask_register.py`` explains the read-out. This script runs a model
folder over the fixed valid and test mixtures of the real corpus, evaluates a small grid of
settings (spectrum exponent, octave guard, voicing threshold) on valid only, picks the one with
the most utterances within 10 % of the reference register, and reports that choice on test with
the gate probe's register and the mask track's frame raw pitch accuracy (50 cents) beside it.
The package defaults (``MaskRegisterSettings()``) are the choice this script made; it says so
when a model chooses otherwise.

Usage::

    python recipes/DynCP/choose_mask_register.py --model speechbrain_dyncp/pretrained/dyncp_real_base \\
        --out benchmarks/results/mask_register.json

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import csv
import itertools
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
GRID = {"exponent": (2.0, 1.5, 1.0), "octave_tolerance": (1.0, 0.95, 0.85), "voicing_threshold": (0.15, 0.2, 0.3, 0.45)}


def frame_tracks(model, rows):
    """Per item: reference register, masked spectrum pieces, VAD decisions and the gate probe's register."""
    from speechbrain_dyncp.data.audio import read_audio
    from speechbrain_dyncp.data.labels import load_frame_labels
    from speechbrain_dyncp.probes.heads import register_label
    from speechbrain_dyncp.probes.mask_register import constant_floor_mask

    items = []
    for row in rows:
        wav = read_audio(row["noisy_wav"], model.hparams.sample_rate)[None]
        with torch.no_grad():
            res = model.analyze_batch(wav)
            out = model.enhancer(wav)
        n = int(out.frame_mask[0].sum())
        f0_ref = np.asarray(load_frame_labels(row["labels"])["f0"][:n], float)
        ref = register_label(f0_ref)
        items.append({"snr": row["snr"], "ref": None if np.isnan(ref) else ref, "f0_ref": f0_ref,
                      "spec": model.enhancer.spectrum(wav)[..., :n],
                      "mask": constant_floor_mask(model.enhancer, out)[:, :n],
                      "speech": (res.vad_prob[:, :n] > 0.5), "gate_probe": res.gate_register_hz(0)})
    return items


def within10(pairs):
    """Share of (ref, estimate) pairs with the estimate within 10 % (a missing estimate is a miss)."""
    ok = [est is not None and abs(est - ref) <= 0.1 * ref for ref, est in pairs if ref is not None]
    return float(np.mean(ok)) if ok else None


def score(model, items, settings):
    """(within-10 % share, per-item estimates, frame raw pitch accuracy) of one setting."""
    from speechbrain_dyncp.probes.mask_register import masked_autocorrelation_f0, register_from_track

    est, hits, voiced_total = [], 0, 0
    for it in items:
        f0, per = masked_autocorrelation_f0(it["spec"], it["mask"], model.enhancer.window,
                                            model.hparams.sample_rate, settings)
        est.append(register_from_track(f0, per, it["speech"], settings)[0])
        v = it["f0_ref"] > 0
        hits += int((np.abs(1200 * np.log2(f0[0].numpy()[v] / it["f0_ref"][v])) < 50).sum())
        voiced_total += int(v.sum())
    return within10([(it["ref"], e) for it, e in zip(items, est)]), est, hits / max(voiced_total, 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="enhancer model folder with a VAD probe")
    ap.add_argument("--corpus", default=str(REPO / "results/DynCP/real_speech_seed0"),
                    help="prepare_real_speech output folder (prepared from --shared_data if absent)")
    ap.add_argument("--shared_data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--out", default=None, help="JSON report")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from speechbrain_dyncp.data.real_speech import prepare_real_speech
    from speechbrain_dyncp.inference.loading import load_enhancer
    from speechbrain_dyncp.probes.mask_register import MaskRegisterSettings

    outputs = prepare_real_speech(args.shared_data, args.corpus)
    model = load_enhancer(args.model)
    if model.probes is None or "vad" not in model.probes.heads:
        raise SystemExit(f"{args.model}: the register read-out needs a model with a VAD probe")
    split = {s: frame_tracks(model, list(csv.DictReader(open(outputs[s])))) for s in ("valid", "test")}
    grid = [MaskRegisterSettings(**dict(zip(GRID, v))) for v in itertools.product(*GRID.values())]
    on_valid = [(score(model, split["valid"], s)[0], s) for s in grid]
    best_valid, chosen = max(on_valid, key=lambda t: t[0])
    test_w10, test_est, test_rpa = score(model, split["test"], chosen)
    by_snr = {}
    for it, e in zip(split["test"], test_est):
        by_snr.setdefault(it["snr"], []).append((it["ref"], e))
    report = {
        "model": str(args.model), "chosen_on": "valid", "chosen": asdict(chosen),
        "chosen_is_package_default": chosen == MaskRegisterSettings(),
        "valid_within10": best_valid, "test_within10": test_w10, "test_frame_rpa50": test_rpa,
        "test_within10_by_snr": {k: within10(v) for k, v in sorted(by_snr.items(), key=lambda t: float(t[0]))},
        "gate_probe_within10": {s: within10([(it["ref"], it["gate_probe"]) for it in split[s]]) for s in split},
        "test_utterances": sum(it["ref"] is not None for it in split["test"]),
        "valid_grid": [{**asdict(s), "within10": w} for w, s in on_valid],
    }
    print(json.dumps({k: v for k, v in report.items() if k != "valid_grid"}, indent=1))
    if not report["chosen_is_package_default"]:
        print("note: this model's valid choice differs from MaskRegisterSettings()'s defaults")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
