#!/usr/bin/env python3
"""RNNoise every wav of a folder tree into a mirrored tree: RNNoise as a front-end baseline.

The speaker-verification comparisons (docs/speaker_real.md) score trial lists whose ids
are paths under a ``wav/`` folder; mirroring that folder through RNNoise lets
``recipes/VoxCeleb/calibrate_quality.py --data <mirror>`` score the same trials with
RNNoise in front of the speaker model. RNNoise is ``bench_real.rnnoise`` (``pyrnnoise``,
delay removed), so it is the same baseline as the enhancement benchmark. Inputs are never
written; an existing output is kept (reruns resume).

    python benchmarks/rnnoise_folder.py results/speaker_real/seed0/test/wav results/speaker_real/rnnoise/test/wav

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import sys
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real import SR, rnnoise  # noqa: E402

from speechbrain_dyncp.data.audio import read_audio  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", help="folder tree of wavs")
    ap.add_argument("dst", help="mirrored output tree (must not be src)")
    args = ap.parse_args(argv)
    src, dst = Path(args.src).resolve(), Path(args.dst).resolve()
    if dst == src or src in dst.parents:
        raise SystemExit(f"{dst}: the output tree must lie outside {src}")
    files = sorted(src.rglob("*.wav"))
    for path in files:
        out = dst / path.relative_to(src)
        if out.exists():
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, rnnoise(read_audio(path, sample_rate=SR).numpy().astype("float64")).astype("float32"), SR)
    print(f"{len(files)} files -> {dst}")


if __name__ == "__main__":
    main()
