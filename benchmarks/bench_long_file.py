#!/usr/bin/env python3
"""Peak memory of chunked enhancement on a one-hour file (and a short one).

For each duration a fresh child process loads a ``DynCPEnhancer`` (default
configuration, random weights: memory does not depend on the weights), notes
its peak RSS once loaded (the baseline), enhances a generated file of that
length with :func:`speechbrain_dyncp.inference.chunking.enhance_file_chunked`
and reports its peak RSS. Memory is bounded if the peak does not grow with the
duration. For scale, one more child enhances ``--offline-seconds`` of audio in
a single ``model(wav)`` call (what reading the whole file would cost).

``--cli-minutes`` also measures what a user of ``dyncp enhance`` gets, under GNU
``/usr/bin/time -v`` (its "Maximum resident set size": the whole process, imports
of SpeechBrain and the model folder's loading included): the bundled model on a
10 s file (the model-loading peak) and on files of those lengths through the
chunked path (``--chunk-over 60``).

    python benchmarks/bench_long_file.py --minutes 60 5 --out benchmarks/results/bench_long_file.json
    python benchmarks/bench_long_file.py --only-cli --cli-minutes 5 --out benchmarks/results/bench_long_file_cli.json

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def make_file(path: Path, seconds: float, seed: int = 0) -> None:
    """Speech-like test signal (AM harmonic tones + noise), written block by block."""
    rng = np.random.default_rng(seed)
    with sf.SoundFile(str(path), "w", samplerate=SR, channels=1, subtype="PCM_16") as f:
        done, total = 0, int(seconds * SR)
        while done < total:
            n = min(10 * SR, total - done)
            t = (done + np.arange(n)) / SR
            f0 = 120 + 40 * np.sin(2 * np.pi * 0.3 * t)
            voiced = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
            env = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
            f.write((0.2 * env * voiced + 0.05 * rng.standard_normal(n)).astype(np.float32))
            done += n


def child(args) -> None:
    """Runs in a fresh process; prints one JSON line."""
    import torch

    from speechbrain_dyncp.inference.chunking import enhance_file_chunked, peak_rss_mb
    from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = DynCPEnhancer().eval()
    baseline = peak_rss_mb()
    t0 = time.perf_counter()
    if args.mode == "chunked":
        info = enhance_file_chunked(model, args.input, args.output, block_seconds=args.block_seconds,
                                    group_frames=args.group_frames)
        seconds = info["samples"] / SR
    else:
        from speechbrain_dyncp.data.audio import read_audio

        with torch.inference_mode():
            wav = read_audio(args.input)
            model(wav[None])
        seconds = wav.numel() / SR
    wall = time.perf_counter() - t0
    print(json.dumps({"mode": args.mode, "audio_s": seconds, "baseline_rss_mb": baseline,
                      "peak_rss_mb": peak_rss_mb(), "wall_s": wall, "rtf": wall / seconds}))


def run_child(mode: str, wav: Path, out: Path, args) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--input", str(wav), "--output", str(out),
           "--threads", str(args.threads), "--block-seconds", str(args.block_seconds),
           "--group-frames", str(args.group_frames)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def time_v_peak_mb(cmd, env) -> dict:
    """Peak RSS (MiB) and wall time of ``cmd`` measured by GNU ``/usr/bin/time -v``."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    kb = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return {"peak_rss_mb": int(kb.group(1)) / 1024, "wall_s": wall}


def run_cli(tmp: Path, args) -> list:
    """``dyncp enhance`` (bundled model) under ``/usr/bin/time -v``: a 10 s file, then ``--cli-minutes`` files."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
    runs = []
    for seconds in [10.0] + [m * 60 for m in args.cli_minutes]:
        wav = tmp / f"cli_{seconds:g}s.wav"
        make_file(wav, seconds)
        cmd = [sys.executable, "-m", "speechbrain_dyncp.cli", "enhance", str(wav), "-o", str(tmp / "cli_out"),
               "-q", "--overwrite", "--chunk-over", "60"]
        runs.append({"what": "dyncp enhance, bundled model", "audio_s": seconds,
                     "path": "chunked" if seconds > 60 else "one call", **time_v_peak_mb(cmd, env)})
        wav.unlink()
        print(json.dumps(runs[-1]), flush=True)
    return runs


def git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=False).stdout.strip()
    except OSError:
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[60.0, 5.0], help="file durations")
    parser.add_argument("--offline-seconds", type=float, default=60.0, help="one-shot forward for scale (0: skip)")
    parser.add_argument("--block-seconds", type=float, default=10.0)
    parser.add_argument("--group-frames", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cli-minutes", type=float, nargs="*", default=[],
                        help="also run dyncp enhance under /usr/bin/time -v on files this long (+ a 10 s one)")
    parser.add_argument("--only-cli", action="store_true", help="only the /usr/bin/time -v CLI runs")
    parser.add_argument("--out", default="benchmarks/results/bench_long_file.json")
    parser.add_argument("--child", choices=["chunked", "offline"], help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(argparse.Namespace(**{**vars(args), "mode": args.child}))
        return 0

    runs, offline, cli = [], None, []
    with tempfile.TemporaryDirectory() as tmp:
        if args.only_cli or args.cli_minutes:
            cli = run_cli(Path(tmp), args)
        for minutes in [] if args.only_cli else args.minutes:
            wav = Path(tmp) / f"long_{minutes:g}min.wav"
            make_file(wav, minutes * 60)
            runs.append({"minutes": minutes, "input_mb": wav.stat().st_size / 2**20,
                         **run_child("chunked", wav, Path(tmp) / f"enh_{minutes:g}.wav", args)})
            wav.unlink()
            print(json.dumps(runs[-1]), flush=True)
        if args.offline_seconds > 0 and not args.only_cli:
            wav = Path(tmp) / "offline.wav"
            make_file(wav, args.offline_seconds)
            offline = run_child("offline", wav, Path(tmp) / "unused.wav", args)
            print(json.dumps(offline), flush=True)
    stats = {
        "what": "peak RSS of enhance_file_chunked (DynCPEnhancer default config, causal streaming path)",
        "runs": runs,
        "offline_one_call": offline,
        "cli_time_v": cli,
        "block_seconds": args.block_seconds, "group_frames": args.group_frames, "threads": args.threads,
        "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
        "torch": __import__("torch").__version__, "git": git_rev(),
    }
    if runs:
        longest = max(runs, key=lambda r: r["minutes"])
        stats["peak_rss_mb_longest"] = longest["peak_rss_mb"]
        stats["chunking_increment_mb_longest"] = longest["peak_rss_mb"] - longest["baseline_rss_mb"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(stats, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
