#!/usr/bin/env python3
"""Dynamic vs static vs dense at matched executed MACs: one table from the runs' TEST stages.

Every run folder holds ``test/per_utterance.csv`` (written by ``train.py``'s TEST stage on
the best checkpoint); runs given under the same label are seeds of one configuration and
are averaged (the spread is the half range over seeds). Figures per input SNR (the real
test split has -5, 0, 5, 10, 20 dB and clean items, dry and reverberant), the mean over the
noisy items, and the executed MACs per frame (gates included, as counted by
``speechbrain_dyncp.efficiency.macs_per_frame``).

Usage::

    python recipes/DynCP/compare_runs.py \\
        "gated=results/DynCP/real/base_ft,results/DynCP/real/base_s2" \\
        "dense 128/69=results/DynCP/real/static_dense69_s1234,results/DynCP/real/static_dense69_s2" \\
        --out benchmarks/results/dynamic_vs_static_real.json --md table.md

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import csv
import json
import math
import statistics
from pathlib import Path

NOISY_SNRS = (-5.0, 0.0, 5.0, 10.0, 20.0)


def run_figures(folder):
    """Means of one run's test rows: SI-SDR per SNR, over noisy SNRs, PESQ, STOI, MACs."""
    path = Path(folder) / "test" / "per_utterance.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no TEST stage report (run train.py to the end on this folder)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    by_snr = {}
    for row in rows:
        by_snr.setdefault(float(row["snr"]), []).append(row)

    def mean(key, subset):
        values = [float(r[key]) for r in subset if r.get(key) not in (None, "") and math.isfinite(float(r[key]))]
        return statistics.fmean(values) if values else math.nan

    noisy = [r for r in rows if math.isfinite(float(r["snr"]))]
    # per-SNR columns where the test set has fixed SNRs (the real split); the embedded corpus' are continuous
    fixed = set(by_snr) <= set(NOISY_SNRS) | {math.inf}
    figures = {f"si_sdr@{_snr_name(s)}": mean("si_sdr_enhanced", by_snr[s]) for s in sorted(by_snr)} if fixed else {}
    figures.update(si_sdr_noisy_mean=mean("si_sdr_enhanced", noisy), pesq_noisy_mean=mean("pesq_enhanced", noisy),
                   stoi_noisy_mean=mean("stoi_enhanced", noisy), macs_per_frame=mean("macs_per_frame", rows),
                   macs_dense=mean("macs_dense", rows), ratio=mean("ratio", rows), n_items=len(rows))
    return figures


def _snr_name(snr):
    return "clean" if math.isinf(snr) else f"{snr:g}dB"


def combine(runs):
    """Mean over seeds and half range of every figure."""
    out = {}
    for key in runs[0]:
        values = [r[key] for r in runs]
        out[key] = statistics.fmean(values)
        out[f"{key}_spread"] = (max(values) - min(values)) / 2
    out["n_seeds"] = len(runs)
    return out


def markdown(table):
    """One row per configuration: MACs, SI-SDR per SNR (mean over seeds, +- half range), PESQ."""
    snrs = [k for k in next(iter(table.values())) if k.startswith("si_sdr@") and not k.endswith("_spread")]
    head = ["configuration", "seeds", "executed MACs/frame", *(s.split("@")[1] for s in snrs),
            "SI-SDR, noisy items", "PESQ, noisy items"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, f in table.items():
        cells = [label, str(f["n_seeds"]), f"{f['macs_per_frame'] / 1e3:.1f}k"]
        cells += [f"{f[s]:.2f} ± {f[s + '_spread']:.2f}" for s in snrs]
        cells += [f"{f['si_sdr_noisy_mean']:.2f} ± {f['si_sdr_noisy_mean_spread']:.2f}",
                  f"{f['pesq_noisy_mean']:.2f} ± {f['pesq_noisy_mean_spread']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("configs", nargs="+", help='"label=folder[,folder...]" (folders = seeds)')
    parser.add_argument("--out", help="JSON output")
    parser.add_argument("--md", help="markdown table output")
    args = parser.parse_args(argv)
    table = {}
    for spec in args.configs:
        label, _, folders = spec.partition("=")
        if not folders:
            parser.error(f"{spec!r}: expected label=folder[,folder...]")
        seeds = [run_figures(f) for f in folders.split(",")]
        table[label] = combine(seeds) | {"runs": folders.split(",")}
    text = markdown(table)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(table, indent=2))
    if args.md:
        Path(args.md).write_text(text + "\n")


if __name__ == "__main__":
    main()
