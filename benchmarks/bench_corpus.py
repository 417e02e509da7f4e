"""Build time and size of the embedded corpus presets, plus label accuracy checks.

For each preset: wall-clock and process-CPU seconds of ``build_corpus`` into a
fresh temporary folder, files, minutes of audio and bytes on disk, the EER of
scoring its trial list by median F0 alone (speaker identity is not just F0); for the
tiny preset also the agreement of the exact labels with the independent
estimators of :mod:`speechbrain_dyncp.data.labels` (YIN F0, energy VAD).
CPU seconds are the figure to compare: wall time depends on machine load.

Usage::

    python benchmarks/bench_corpus.py --presets tiny demo small --out benchmarks/results/corpus.json

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def _git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        return "unknown"


def _label_agreement(corpus) -> dict:
    from speechbrain_dyncp.data.labels import autocorr_f0, energy_vad, load_frame_labels

    errors, voicing, vad = [], [], []
    for path in sorted(corpus.voicebank.glob("clean_*_wav/*.wav")):
        wav, sr = sf.read(path)
        lab = load_frame_labels(corpus.voicebank / "labels" / f"{path.stem}.npz")
        est = autocorr_f0(wav, sr)
        both = (lab["f0"] > 0) & (est > 0)
        errors.append(np.abs(est[both] - lab["f0"][both]) / lab["f0"][both])
        voicing.append(np.mean((lab["f0"] > 0) == (est > 0)))
        vad.append(np.mean(energy_vad(wav) == lab["vad"]))
    err = np.concatenate(errors)
    return {"f0_median_rel_error": float(np.median(err)), "f0_within_5pct": float(np.mean(err < 0.05)),
            "voicing_agreement": float(np.mean(voicing)), "vad_agreement": float(np.mean(vad))}


def _f0_only_eer(corpus) -> float:
    """EER of scoring the trial list by median-F0 distance alone (how much F0 gives away)."""
    from speechbrain_dyncp.data.labels import autocorr_f0

    trials = [line.split() for line in (corpus.voxceleb / "meta" / "veri_test2.txt").read_text().splitlines()]
    logf0 = {}
    for rel in {p for t in trials for p in t[1:]}:
        wav, sr = sf.read(corpus.voxceleb / "wav" / rel)
        est = autocorr_f0(wav, sr)
        logf0[rel] = np.log(np.median(est[est > 0]))
    target = np.array([t[0] == "1" for t in trials])
    score = -np.array([abs(logf0[a] - logf0[b]) for _, a, b in trials])
    order = np.argsort(-score)
    tp = np.cumsum(target[order]) / target.sum()
    fp = np.cumsum(~target[order]) / (~target).sum()
    return float(np.min(np.maximum(1 - tp, fp)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "demo", "small"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/corpus.json")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from speechbrain_dyncp.data.synth import build_corpus

    results = {"threads": args.threads, "cpu_count": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
               "python": platform.python_version(), "git": _git_rev(), "presets": {}}
    for preset in args.presets:
        with tempfile.TemporaryDirectory() as tmp:
            t0, c0 = time.perf_counter(), time.process_time()
            corpus = build_corpus(Path(tmp) / preset, preset=preset, seed=args.seed)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            files = [p for p in corpus.root.rglob("*") if p.is_file()]
            stats = json.loads((corpus.root / "corpus.json").read_text())["stats"]
            entry = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "files": len(files),
                     "mbytes": round(sum(p.stat().st_size for p in files) / 2**20, 1), **stats}
            entry["f0_only_trial_eer"] = round(_f0_only_eer(corpus), 3)
            if preset == "tiny":
                entry["labels"] = _label_agreement(corpus)
            results["presets"][preset] = entry
            print(preset, json.dumps(entry))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
