"""Does an enhancer's compute follow the input? ``efficiency.dynamism`` over a manifest of noisy files.

Reads a CSV with ``noisy_wav``, ``labels`` (frame-label ``.npz`` with ``vad`` on the
enhancer's frame grid) and ``snr`` (dB, or ``inf`` for clean) columns, e.g. the real-speech
test split (``results/DynCP/real_speech_seed0/test.csv``), enhances every file with the
model, and reports the dynamism measures pooled over all files and per SNR condition, with
speech frames from the reference labels and, when the model has probes, from its VAD probe;
plus compute against input SNR over the noisy files. See docs/dynamic_compute.md.

Usage::

    python benchmarks/bench_dynamism.py --manifest results/DynCP/real_speech_seed0/test.csv \\
        --out benchmarks/results/dynamism_bundled_real_test.json

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path


def parse_args(argv=None):
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--manifest", required=True, help="CSV with noisy_wav, labels, snr columns")
    p.add_argument("--model", default=None, help="model folder (default: the bundled dyncp_small)")
    p.add_argument("--limit", type=int, default=0, help="first N rows only (0 = all)")
    p.add_argument("--out", default="benchmarks/results/dynamism.json")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Enhance every file, pool the dynamism figures, write the JSON."""
    args = parse_args(argv)
    import numpy as np
    import torch

    from speechbrain_dyncp.inference.loading import load_enhancer
    from speechbrain_dyncp.efficiency import compute_vs_snr, dynamism, pool_dynamism

    torch.set_num_threads(1)
    rows = list(csv.DictReader(open(args.manifest)))
    rows = rows[: args.limit] if args.limit else rows
    model = load_enhancer(args.model)
    by_label, by_probe, snrs = [], [], []
    t0 = time.time()
    for row in rows:
        result = model.analyze_batch(model.load_checked_audio(row["noisy_wav"]).unsqueeze(0))
        n = int(result.frame_mask[0].sum())
        vad = np.load(row["labels"])["vad"][:n]
        speech = torch.zeros_like(result.frame_mask)
        speech[0, : len(vad)] = torch.as_tensor(vad > 0)
        d = {k: v for k, v in dynamism(result.gates, result.frame_mask, speech)[0].items() if k != "active_ratio"}
        by_label.append(d)
        if result.vad_prob is not None:
            by_probe.append(result.dynamism[0])
        snrs.append(float(row["snr"]))
    out = {"what": "efficiency.dynamism over a manifest (bench_dynamism.py)", "manifest": args.manifest,
           "model": args.model or "bundled dyncp_small", "files": len(rows),
           "speech_from_labels": pool_dynamism(by_label),
           "speech_from_vad_probe": pool_dynamism(by_probe) if by_probe else None,
           "by_snr_db": {}}
    for snr in sorted(set(snrs)):
        items = [d for d, s in zip(by_label, snrs) if s == snr]
        out["by_snr_db"]["clean" if math.isinf(snr) else f"{snr:g}"] = pool_dynamism(items)
    noisy = [(d["active_ratio_mean"], s) for d, s in zip(by_label, snrs) if math.isfinite(s)]
    if len(noisy) > 1:
        out["compute_vs_input_snr"] = compute_vs_snr(*zip(*noisy))
    out.update(wall_s=time.time() - t0, load_average=os.getloadavg())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    lab = out["speech_from_labels"]
    print(f"{len(rows)} files: active ratio {lab['active_ratio_mean']:.3f} (std within files "
          f"{lab['active_ratio_std']:.3f}), speech {lab['active_ratio_speech']:.3f} / non-speech "
          f"{lab['active_ratio_nonspeech']:.3f} = {lab['nonspeech_over_speech']:.3f}, switching channels "
          f"{100 * lab['switching_channels']:.0f}%, flips {100 * lab['flip_rate']:.2f}%")
    for snr, d in out["by_snr_db"].items():
        print(f"  SNR {snr:>5}: active {d['active_ratio_mean']:.3f}, non-speech/speech {d['nonspeech_over_speech']}")
    if "compute_vs_input_snr" in out:
        print(f"  compute vs input SNR: {out['compute_vs_input_snr']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
