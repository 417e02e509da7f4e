"""Benchmark the DynCP enhancer on CPU: RTF, per-frame latency, MACs, dense vs pruned.

Measured in one run (ratios only between figures of the same run):

* offline RTF of the dense model and the gated model (offline never skips:
  training-style multiply, so the gated model pays for its gates);
* streaming RTF for several frame groupings, dense vs pruned (gathered active
  channels) vs dense-masked; per-call latency with one hop per call; MACs
  actually executed; the wall-clock speed-up of pruned over dense streaming;
* the same for the NumPy and C per-frame paths when available;
* analytic dense / effective MACs per frame and per second, realised ratio.

Gates: a trained model is loaded with ``--checkpoint`` (a state dict of a
gated ``DynCPEnhancer`` of the chosen ``--config``); otherwise the gate biases
are *planted* so that each channel is on for ``--ratio`` of the frames (the
JSON says ``"gates": "planted"``). The dense model shares all non-gate weights.

Usage::

    python benchmarks/bench_dyncp.py --seconds 8 --ratio 0.25 --out benchmarks/results/dyncp.json

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (or platform)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_rev() -> str:
    """Short git revision of the repo (+ '-dirty' when files differ)."""
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "speechbrain_dyncp", "benchmarks"],
                               cwd=root, capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


TRIED = {
    "torch_per_frame": "streaming.py, group_frames=1: index_select of active rows/cols per frame; "
                       "~25 torch ops per block, dispatch cost dominates, skipping is slower than dense",
    "torch_frame_groups": "group_frames=4/16: fewer dispatches, but a group computes the union of its "
                          "frames' gates, so executed MACs approach dense and gathers cost extra",
    "numpy_per_frame": "fastpath.py backend=numpy: cheaper dispatch than torch, still op-bound",
    "c_per_frame": "fastpath.py backend=c: one ctypes call per frame into dyncp_frame.c "
                   "(gcc -O3 -march=native -ffast-math); a pruned channel costs one score compare",
    "not_tried": "TorchScript / torch.compile: the number of active channels changes every frame "
                 "(dynamic shapes) and TorchScript keeps per-op dispatch; the C kernel removes per-op cost",
}


def fast_paths(args, gated, dense, wav, ref, ref_dense, seconds, hop):
    """NumPy and C per-frame streamers: RTF, per-call latency, kernel time, error vs offline."""
    import numpy as np

    from speechbrain_dyncp.fastpath import FastStreamer, c_available

    backends = [b for b in ("numpy", "c") if b in args.paths.split(",") and (b != "c" or c_available())]
    x = wav[0].numpy()
    chunks = np.split(x, range(hop, len(x), hop))
    res = {}
    for backend in backends:
        runs = {"dense": [], "pruned": []}
        for _ in range(args.repeats):
            for name, model, want in (("dense", dense, ref_dense), ("pruned", gated, ref)):
                fs = FastStreamer(model, backend=backend)
                kern = []
                if backend == "c":
                    call = fs._call

                    def timed_call(feats, call=call, kern=kern):
                        t0 = time.perf_counter()
                        call(feats)
                        kern.append(time.perf_counter() - t0)

                    fs._call = timed_call
                lat, outs = [], []
                for c in chunks:
                    t0 = time.perf_counter()
                    outs.append(fs.process(c))
                    lat.append(time.perf_counter() - t0)
                y = np.concatenate(outs + [fs.finish()])[fs.latency:]
                err = np.abs(y - want[0].numpy())
                runs[name].append(dict(rtf=sum(lat) / seconds, lat=lat, kernel=kern,
                                       err=float(err.max()), frac_err=float((err > 1e-4).mean()),
                                       active=fs.channel_frames / fs.frames_done))
        entry = {}
        for name, rs in runs.items():
            lat = sorted(v for r in rs for v in r["lat"])
            entry[name] = {
                "rtf": statistics.median(r["rtf"] for r in rs),
                "per_call_latency_s": {"median": statistics.median(lat), "p95": lat[int(0.95 * (len(lat) - 1))]},
                "max_abs_err_vs_offline": max(r["err"] for r in rs),
                "fraction_samples_err_gt_1e-4": max(r["frac_err"] for r in rs),
                "active_channels_per_frame": rs[0]["active"],
            }
            if backend == "c":
                kern = sorted(v for r in rs for v in r["kernel"])
                entry[name]["kernel_s_per_frame"] = {"median": statistics.median(kern),
                                                     "p95": kern[int(0.95 * (len(kern) - 1))]}
        entry["speedup_pruned_over_dense"] = entry["dense"]["rtf"] / entry["pruned"]["rtf"]
        if backend == "c":
            entry["kernel_speedup_pruned_over_dense_median"] = (
                entry["dense"]["kernel_s_per_frame"]["median"] / entry["pruned"]["kernel_s_per_frame"]["median"])
        res[backend] = entry
    return res


def parse_args(argv=None):
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", choices=["base", "small"], default="base")
    p.add_argument("--checkpoint", default=None, help="state dict of a trained gated model")
    p.add_argument("--wav", default=None, help="audio file to enhance (default: seeded noise)")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--ratio", type=float, default=0.25, help="planted gate ratio")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--groups", default="1,4,16", help="frame groupings for streaming")
    p.add_argument("--paths", default="torch,numpy,c", help="streaming implementations to try")
    p.add_argument("--out", default="benchmarks/results/dyncp.json")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Run the benchmark and write the JSON."""
    args = parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ["MKL_NUM_THREADS"] = str(args.threads)
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import torch

    from speechbrain_dyncp.efficiency import dense_macs, frames_per_second, macs_per_frame, parameter_count
    from speechbrain_dyncp.efficiency import plant_gate_ratio
    from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer, dyncp_small

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    build = DynCPEnhancer if args.config == "base" else dyncp_small
    gated = build().eval()
    dense = build(gated=False).eval()
    hop = gated.hop_length
    if args.wav:
        from speechbrain_dyncp.data.audio import read_audio

        wav = read_audio(args.wav, gated.sample_rate)[None, : int(args.seconds * gated.sample_rate)]
    else:
        wav = 0.1 * torch.randn(1, int(args.seconds * gated.sample_rate))
    seconds = wav.shape[1] / gated.sample_rate
    if args.checkpoint:
        gated.load_state_dict(torch.load(args.checkpoint, map_location="cpu"))
        gates_src = f"checkpoint {args.checkpoint}"
    else:
        gates_src = "planted"
    dense.load_state_dict(gated.state_dict(), strict=False)
    with torch.inference_mode():
        if not args.checkpoint:
            plant_gate_ratio(gated, wav, args.ratio)
        ref = gated(wav)
        ref_dense = dense(wav)
    counted = macs_per_frame(gated, ref.gates, ref.frame_mask)
    fps = frames_per_second(gated)

    def timed(fn):
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    def stream(model, group, skip=True, chunk=None, lat=None):
        ctx = model.make_streaming_context(1, group_frames=group, skip_pruned=skip)
        chunk = chunk or hop * group
        outs = []
        for c in wav.split(chunk, 1):
            t0 = time.perf_counter()
            outs.append(model.forward_streaming(c, ctx))
            if lat is not None:
                lat.append(time.perf_counter() - t0)
        outs.append(model.finish_streaming(ctx))
        return torch.cat(outs, 1)[:, ctx.latency:], ctx

    groups = [int(g) for g in args.groups.split(",")]
    runs = {"offline_dense": [], "offline_gated": []}
    macs_exec, errors = {}, {}
    with torch.inference_mode():
        for _ in range(args.repeats):  # interleaved, so machine load hits all paths alike
            runs["offline_dense"].append(timed(lambda: dense(wav)) / seconds)
            runs["offline_gated"].append(timed(lambda: gated(wav)) / seconds)
            for g in groups:
                for name, model, skip in (("dense", dense, True), ("pruned", gated, True),
                                          ("masked", gated, False)):
                    key = f"torch_stream_g{g}_{name}"
                    holder = {}
                    rtf = timed(lambda: holder.update(out=stream(model, g, skip))) / seconds
                    runs.setdefault(key, []).append(rtf)
                    y, ctx = holder["out"]
                    macs_exec[key] = ctx.macs / ctx.frames_done
                    errors[key] = (y - (ref_dense if model is dense else ref).wav).abs().max().item()
        lat = {"dense": [], "pruned": []}
        for name, model in (("dense", dense), ("pruned", gated)):
            stream(model, 1, chunk=hop, lat=lat[name])

    def q(xs, p):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]

    res = {k: statistics.median(v) for k, v in runs.items()}
    streaming = {}
    for g in groups:
        d, p = res[f"torch_stream_g{g}_dense"], res[f"torch_stream_g{g}_pruned"]
        streaming[f"torch_g{g}"] = {
            "rtf_dense": d, "rtf_pruned": p, "rtf_masked": res[f"torch_stream_g{g}_masked"],
            "speedup_pruned_over_dense": d / p,
            "macs_per_frame_executed_pruned": macs_exec[f"torch_stream_g{g}_pruned"],
            "macs_per_frame_executed_dense": macs_exec[f"torch_stream_g{g}_dense"],
            "max_abs_err_vs_offline_pruned": errors[f"torch_stream_g{g}_pruned"],
        }
    out = {
        "what": "DynCP enhancer CPU benchmark (bench_dyncp.py)",
        "config": args.config, "gates": gates_src, "planted_ratio": None if args.checkpoint else args.ratio,
        "params_gated": parameter_count(gated), "params_dense": parameter_count(dense),
        "macs_per_frame": counted, "dense_parts": dense_macs(gated),
        "macs_per_second": {"dense": counted["dense"] * fps, "effective": counted["effective"] * fps},
        "realised_ratio": counted["realised_ratio"],
        "offline": {"rtf_dense": res["offline_dense"], "rtf_gated": res["offline_gated"],
                    "note": "offline multiplies gates (training graph), it never skips"},
        "streaming": streaming,
        "per_frame_latency_s": {
            k: {"median": statistics.median(v), "p95": q(v, 0.95), "calls": len(v)} for k, v in lat.items()
        },
        "latency_algorithmic_samples": gated.n_fft - 1,
        "audio_s": seconds, "threads": args.threads, "repeats": args.repeats,
        "cpu": cpu_model(), "torch": torch.__version__, "python": sys.version.split()[0], "git": git_rev(),
        "load_average": os.getloadavg(),
    }
    out["fast_paths"] = fast_paths(args, gated, dense, wav, ref.wav, ref_dense.wav, seconds, hop)
    out["tried"] = TRIED
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
