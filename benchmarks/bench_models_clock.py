"""Wall clock of several model folders' C streams on one thread, measured in one run.

Which model to use when (issue 15) needs the shipped gated model's pruned stream timed
against other models at the same executed MACs, e.g. a dense narrowed model; figures
from separate runs are not comparable on a shared machine. Here the models' C streamers
(``speechbrain_dyncp.streaming.FastStreamer``, one hop per call) alternate run by run on
the same audio; the figures are medians over runs, the per-frame minima over runs (an
estimate of the uncontended cost) and this thread's CPU time. Ratios are against the first
model.

Usage::

    python benchmarks/bench_models_clock.py speechbrain_dyncp/pretrained/dyncp_real_base \\
        results/DynCP/real_export/dense69_s2 --wav results/bench_noisy16.wav \\
        --out benchmarks/results/models_clock.json

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def time_streams(streamer_factories, audio, hop, repeats):
    """``{name: {"rtf", "cpu_rtf", "rtf_min_per_call", "active_channels_per_frame"}}``."""
    seconds = len(audio) / 16000
    chunks = np.split(audio, range(hop, len(audio), hop))
    runs = {name: [] for name in streamer_factories}
    calls = {name: [] for name in streamer_factories}
    active = {}
    for _ in range(repeats):
        for name, make in streamer_factories.items():  # alternate: load changes hit every model alike
            fs = make()
            t_wall, t_cpu, lat = time.perf_counter(), time.thread_time(), []
            for c in chunks:
                t0 = time.perf_counter()
                fs.process(c)
                lat.append(time.perf_counter() - t0)
            fs.finish()
            runs[name].append(((time.perf_counter() - t_wall) / seconds, (time.thread_time() - t_cpu) / seconds))
            calls[name].append(lat)
            active[name] = fs.channel_frames / max(fs.frames_done, 1)
    return {name: {"rtf": statistics.median(r[0] for r in runs[name]),
                   "cpu_rtf": statistics.median(r[1] for r in runs[name]),
                   "rtf_min_per_call": float(np.asarray(calls[name]).min(0).sum()) / seconds,
                   "active_channels_per_frame": active[name]} for name in streamer_factories}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="model folders (the first is the reference of the ratios)")
    ap.add_argument("--wav", required=True, help="audio to stream (16 kHz)")
    ap.add_argument("--seconds", type=float, default=16.0)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default="benchmarks/results/models_clock.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from speechbrain_dyncp.data.audio import read_audio
    from speechbrain_dyncp.efficiency import dense_macs
    from speechbrain_dyncp.inference.loading import load_enhancer
    from speechbrain_dyncp.streaming import FastStreamer, c_available

    if not c_available():
        raise SystemExit("the C kernel is not built (pip install -e . builds it); nothing to time")
    audio = read_audio(args.wav, 16000)[: int(args.seconds * 16000)].numpy().astype(np.float32)
    models = {str(m): load_enhancer(m).enhancer.eval() for m in args.models}
    hop = next(iter(models.values())).hop_length
    res = time_streams({n: (lambda m=m: FastStreamer(m, backend="c")) for n, m in models.items()}, audio, hop,
                       args.repeats)
    ref = res[str(args.models[0])]
    for name, model in models.items():
        parts = dense_macs(model)
        res[name]["dense_macs_per_frame"] = parts["total"] + parts["gates"]
        for key in ("rtf", "cpu_rtf", "rtf_min_per_call"):
            res[name][f"{key}_ratio_vs_first"] = res[name][key] / ref[key]
    out = {"wav": args.wav, "seconds": len(audio) / 16000, "threads": 1, "repeats": args.repeats, "models": res}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    for name, r in res.items():
        print(f"{name}: RTF {r['rtf']:.4f} (x{r['rtf_ratio_vs_first']:.2f}), CPU {r['cpu_rtf']:.4f} "
              f"(x{r['cpu_rtf_ratio_vs_first']:.2f}), min/call {r['rtf_min_per_call']:.4f} "
              f"(x{r['rtf_min_per_call_ratio_vs_first']:.2f})")
    return out


if __name__ == "__main__":
    main()
