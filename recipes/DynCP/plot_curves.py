#!/usr/bin/env python3
"""Training curves of ``recipes/DynCP/train.py`` runs, from their ``train_log.txt``.

One figure, one column per run: the training and validation spectral loss
``L_SE``, the validation SI-SDR, and the realised channel ratios (on speech and
pause frames where the run used a speech/pause budget).

    python recipes/DynCP/plot_curves.py results/DynCP/real/small results/DynCP/real/base \\
        -o recipes/DynCP/real_training_curves.png

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import re
import sys
from pathlib import Path

STAT = re.compile(r"(train|valid) ([a-z_0-9]+): ([-+0-9.e]+)")


def read_log(path: Path):
    """``[{"epoch": int, "train_se": float, "valid_si_sdr": float, ...}]`` of one ``train_log.txt``."""
    rows = []
    for line in Path(path).read_text().splitlines():
        epoch = re.match(r"epoch: (\d+)", line)
        if epoch:
            row = {"epoch": int(epoch.group(1))}
            row.update({f"{stage}_{key}": float(value) for stage, key, value in STAT.findall(line)})
            rows.append(row)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="train.py output folders")
    ap.add_argument("-o", "--out", required=True)
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(args.runs), figsize=(4.5 * len(args.runs), 8), squeeze=False, sharex="col")
    for col, run in enumerate(args.runs):
        rows = read_log(Path(run) / "train_log.txt")
        ep = [r["epoch"] for r in rows]
        series = lambda key: [r.get(key, float("nan")) for r in rows]  # noqa: E731
        ax = axes[0, col]
        ax.plot(ep, series("train_se"), label="train")
        ax.plot(ep, series("valid_se"), label="valid")
        ax.set_title(Path(run).name)
        ax.set_ylabel("L_SE (compressed spectral)")
        ax.legend()
        axes[1, col].plot(ep, series("valid_si_sdr"), color="C2")
        axes[1, col].set_ylabel("valid SI-SDR (dB, all items)")
        ax = axes[2, col]
        for key, style in (("valid_ratio", "-"), ("valid_ratio_speech", "--"), ("valid_ratio_pause", ":")):
            if any(key in r for r in rows):
                ax.plot(ep, series(key), style, label=key.removeprefix("valid_"))
        ax.set_ylabel("channels computed (valid)")
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
