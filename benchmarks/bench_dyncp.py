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
    "torch_per_frame": "streaming/engine.py, group_frames=1: index_select of active rows/cols per frame; "
                       "~25 torch ops per block, dispatch cost dominates, skipping is slower than dense",
    "torch_frame_groups": "group_frames=4/16: fewer dispatches, but a group computes the union of its "
                          "frames' gates, so executed MACs approach dense and gathers cost extra",
    "numpy_per_frame": "streaming/fast.py backend=numpy: cheaper dispatch than torch, still op-bound",
    "c_per_frame": "streaming/fast.py backend=c: one ctypes call per frame into streaming/dyncp_frame.c "
                   "(gcc -O3 -march=native + reassociation, not -ffast-math); a pruned channel costs one score compare",
    "offline_union": "streaming.union_skipping: offline batch computing per block only the channels on somewhere "
                     "in the batch (channels-last GEMMs): parity with dense for planted gates (every channel on "
                     "somewhere), faster for near-static trained gates",
    "offline_c_layer_major": "tried and dropped: gates in PyTorch, then each block over all frames in C skipping per "
                             "frame (weights hot in cache): 3.3 GMAC/s, TCN RTF 0.0033 vs 0.0028 for PyTorch's dense "
                             "GEMMs at 25% (full size, gate width 16): 4x fewer MACs did not beat MKL's dense GEMM",
    "not_tried": "TorchScript / torch.compile: the number of active channels changes every frame "
                 "(dynamic shapes) and TorchScript keeps per-op dispatch; the C kernel removes per-op cost",
}


def fast_paths(args, gated, dense, wav, ref, ref_dense, seconds, hop):
    """NumPy and C per-frame streamers: RTF, per-call latency, kernel time, error vs offline.

    Dense and pruned streamers alternate run by run (each run streams the whole
    signal, one hop per call); medians over runs and per-frame minima over runs
    are the figures robust to other processes' load. CPU time = this thread's.
    """
    import numpy as np

    from speechbrain_dyncp.streaming import FastStreamer, c_available

    backends = [b for b in ("numpy", "c") if b in args.paths.split(",") and (b != "c" or c_available())]
    x = wav[0].numpy()
    chunks = np.split(x, range(hop, len(x), hop))
    want = {"dense": ref_dense[0].numpy(), "pruned": ref[0].numpy()}
    res = {}
    for backend in backends:
        lat = {"dense": [], "pruned": []}
        lat_cpu = {"dense": [], "pruned": []}
        kern = {"dense": [], "pruned": []}
        runs = {"dense": [], "pruned": []}
        errs = {"dense": [], "pruned": []}
        active = {}
        for _ in range(args.fast_repeats):
            fss = {"dense": FastStreamer(dense, backend=backend), "pruned": FastStreamer(gated, backend=backend)}
            if backend == "c":  # time the one foreign call per frame (with c_fft: FFTs included)
                for name, fs in fss.items():
                    attr = "_call_full" if fs._call_full is not None else "_call_spec"

                    def timed_call(*a, call=getattr(fs, attr), out=kern[name]):
                        t0 = time.perf_counter()
                        call(*a)
                        out.append(time.perf_counter() - t0)

                    setattr(fs, attr, timed_call)
            for name, fs in fss.items():  # each streams the whole signal: weights stay cache-warm
                outs, t_wall, t_cpu = [], time.perf_counter(), time.thread_time()
                for c in chunks:
                    t0, c0 = time.perf_counter(), time.thread_time()
                    outs.append(fs.process(c))
                    lat[name].append(time.perf_counter() - t0)
                    lat_cpu[name].append(time.thread_time() - c0)
                runs[name].append(((time.perf_counter() - t_wall) / seconds, (time.thread_time() - t_cpu) / seconds))
                y = np.concatenate(outs + [fs.finish()])[fs.latency:]
                errs[name].append(np.abs(y - want[name]))
                active[name] = fs.channel_frames / fs.frames_done
        entry = {}
        for name in ("dense", "pruned"):
            ls, err = sorted(lat[name]), np.concatenate(errs[name])
            entry[name] = {
                "rtf": statistics.median(r[0] for r in runs[name]),
                "cpu_rtf": statistics.median(r[1] for r in runs[name]),
                # per frame, the fastest of the repeats: an estimate of the uncontended cost
                "rtf_min_per_call": float(np.asarray(lat[name]).reshape(args.fast_repeats, -1).min(0).sum()) / seconds,
                "per_call_latency_s": {"median": statistics.median(ls), "p95": ls[int(0.95 * (len(ls) - 1))]},
                "max_abs_err_vs_offline": float(err.max()),
                "fraction_samples_err_gt_1e-4": float((err > 1e-4).mean()),
                "active_channels_per_frame": active[name],
            }
            if kern[name]:
                ks = sorted(kern[name])
                kmin = np.asarray(kern[name]).reshape(args.fast_repeats, -1).min(0)
                entry[name]["kernel_s_per_frame"] = {"median": statistics.median(ks), "p95": ks[int(0.95 * (len(ks) - 1))],
                                                     "mean_of_min_over_repeats": float(kmin.mean())}
        entry["speedup_pruned_over_dense_rtf"] = entry["dense"]["rtf"] / entry["pruned"]["rtf"]
        entry["speedup_pruned_over_dense_cpu_rtf"] = entry["dense"]["cpu_rtf"] / entry["pruned"]["cpu_rtf"]
        entry["speedup_pruned_over_dense_median_call"] = (entry["dense"]["per_call_latency_s"]["median"]
                                                          / entry["pruned"]["per_call_latency_s"]["median"])
        entry["speedup_pruned_over_dense_rtf_min_per_call"] = (entry["dense"]["rtf_min_per_call"]
                                                               / entry["pruned"]["rtf_min_per_call"])
        if backend == "c":
            kd, kp = entry["dense"]["kernel_s_per_frame"], entry["pruned"]["kernel_s_per_frame"]
            entry["kernel_speedup_pruned_over_dense_median"] = kd["median"] / kp["median"]
            entry["kernel_speedup_pruned_over_dense_min"] = kd["mean_of_min_over_repeats"] / kp["mean_of_min_over_repeats"]
        res[backend] = entry
    return res


def stream_inputs(wav, n: int):
    """``n`` different signals of ``wav``'s length: circular shifts by 1/n of the length each."""
    import torch

    t = wav.shape[-1]
    return [torch.roll(wav[0], -i * t // n).numpy() for i in range(n)]


def multistream(args, gated, dense, wav, seconds, hop):
    """``--streams`` concurrent streams served round-robin, one hop each per turn, on one thread.

    The C path (``FastStreamer``; forks share one copy of the weights, as a server would;
    ``separate_weights`` gives each stream its own copy). Per configuration: total wall
    time, RTF per stream (wall / one stream's audio: < 1 keeps all streams real time),
    aggregate RTF (wall / all audio) and the time of one turn (every stream one hop),
    which must stay under the hop duration. Dense and pruned alternate repeat by repeat.
    """
    import numpy as np

    from speechbrain_dyncp.streaming import FastStreamer, c_available

    if not c_available():
        return {"skipped": "C kernel unavailable"}
    xs = stream_inputs(wav, args.streams)
    bounds = range(0, len(xs[0]), hop)
    runs = {}
    for _ in range(args.fast_repeats):
        for name, model in (("dense", dense), ("pruned", gated)):
            for sharing in ("shared_weights", "separate_weights"):
                first = FastStreamer(model, backend="c")
                streams = [first] + [first.fork() if sharing == "shared_weights" else FastStreamer(model, backend="c")
                                     for _ in xs[1:]]
                turns, t0, c0 = [], time.perf_counter(), time.thread_time()
                for start in bounds:
                    t1 = time.perf_counter()
                    for fs, x in zip(streams, xs):
                        fs.process(x[start: start + hop])
                    turns.append(time.perf_counter() - t1)
                wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
                runs.setdefault((name, sharing), []).append((wall, turns, cpu))
    out = {"streams": args.streams, "audio_s_per_stream": seconds, "hop_s": hop / gated.sample_rate}
    for sharing in ("shared_weights", "separate_weights"):
        entry = {}
        for name in ("dense", "pruned"):
            walls = [w for w, _, _ in runs[(name, sharing)]]
            turns = np.concatenate([t for _, t, _ in runs[(name, sharing)]])
            wall = statistics.median(walls)
            cpu = statistics.median(c for _, _, c in runs[(name, sharing)])
            entry[name] = {"wall_s": wall, "cpu_s": cpu, "rtf_per_stream": wall / seconds,
                           "rtf_aggregate": wall / (seconds * args.streams),
                           "turn_s": {"median": float(np.median(turns)), "p95": float(np.quantile(turns, 0.95)),
                                      "max": float(turns.max())}}
        entry["speedup_pruned_over_dense"] = entry["dense"]["wall_s"] / entry["pruned"]["wall_s"]
        # thread CPU time: blind to preemption by other processes on a shared machine
        entry["cpu_speedup_pruned_over_dense"] = entry["dense"]["cpu_s"] / entry["pruned"]["cpu_s"]
        out[sharing] = entry
    return out


def offline_batch(args, gated, dense, wav, seconds):
    """Offline inference of ``--batch`` files at once: dense vs gated vs gated with skipping.

    Inputs: ``--batch`` circular shifts of the benchmark signal (different frames, the
    same recording).

    * ``torch_dense``: the dense twin, training graph;
    * ``torch_gated``: the gated model, training graph (computes every channel, then
      multiplies by the gates: pays for its gates, saves nothing);
    * ``torch_union``: :func:`speechbrain_dyncp.streaming.union_skipping`, the gated model
      computing per block only the channels on somewhere in the batch (exact);
    * ``*_batch1``: the same one file at a time;
    * ``c_dense`` / ``c_pruned``: the C per-frame path over each whole file (skips per frame);
    * ``tcn_*``: the TCN alone (what gating changes; STFT, front/back-end and iSTFT excluded).

    Ratios are dense time / path time (> 1: faster than dense).
    """
    import torch

    from speechbrain_dyncp.streaming import FastStreamer, c_available, union_skipping

    xs = torch.stack([torch.from_numpy(x) for x in stream_inputs(wav, args.batch)])
    union = union_skipping(gated)
    paths = {"torch_dense": lambda: dense(xs), "torch_gated": lambda: gated(xs), "torch_union": lambda: union(xs),
             "torch_dense_batch1": lambda: [dense(x[None]) for x in xs],
             "torch_union_batch1": lambda: [union(x[None]) for x in xs]}
    # the part gating touches: the TCN alone, on the same front-end output
    spec = torch.stft(xs, gated.n_fft, gated.hop_length, window=gated.window, return_complex=True)
    feats = torch.relu(gated.front(gated.features(spec)))
    paths.update(tcn_dense=lambda: dense.tcn(feats), tcn_gated=lambda: gated.tcn(feats),
                 tcn_union=lambda: union.tcn(feats))
    if c_available():
        def c_path(model):
            for x in xs:
                fs = FastStreamer(model, backend="c")
                fs.process(x.numpy())
                fs.finish()

        paths.update(c_dense=lambda: c_path(dense), c_pruned=lambda: c_path(gated))
    times = {k: [] for k in paths}
    cpu = {k: [] for k in paths}
    with torch.inference_mode():
        for _ in range(args.repeats):  # interleaved, so machine load hits all paths alike
            for k, fn in paths.items():
                t0, c0 = time.perf_counter(), time.thread_time()
                fn()
                times[k].append(time.perf_counter() - t0)
                cpu[k].append(time.thread_time() - c0)
        ref, got = gated(xs), union(xs)
        union(xs[:1])  # the channel count of one file alone
        one_file = union.tcn._union_channels
        union(xs)
    total = gated.tcn.n_gated * gated.tcn.hidden
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    audio = seconds * args.batch
    return {
        "cpu_speedup_over_torch_dense": {k: med_cpu["torch_dense"] / v for k, v in med_cpu.items()
                                         if k.startswith("torch") and not k.endswith("batch1")},
        "cpu_speedup_c_pruned_over_c_dense": med_cpu["c_dense"] / med_cpu["c_pruned"] if "c_dense" in med_cpu else None,
        "files": args.batch, "audio_s_per_file": seconds,
        "rtf": {k: v / audio for k, v in med.items()},
        "speedup_over_torch_dense": {k: med["torch_dense"] / v for k, v in med.items() if k.startswith("torch")},
        "tcn_speedup_over_dense": {k: med["tcn_dense"] / v for k, v in med.items() if k.startswith("tcn")},
        "speedup_over_torch_dense_batch1": {k: med["torch_dense_batch1"] / v for k, v in med.items()
                                            if k.endswith("batch1")},
        "speedup_c_pruned_over_c_dense": med["c_dense"] / med["c_pruned"] if "c_dense" in med else None,
        "union_channel_share": {"batch": union.tcn._union_channels / total, "one_file": one_file / total},
        "union_max_abs_diff_vs_gated": float((got.wav - ref.wav).abs().max()),
        "union_gate_mismatch_fraction": float((got.gates != ref.gates).float().mean()),
    }


MAC_TABLE_SIZES = {"small 64/128/2x3": dict(channels=64, hidden=128, n_stacks=2, n_blocks=3),
                   "full 128/256/3x3": dict(channels=128, hidden=256, n_stacks=3, n_blocks=3)}


def mac_table(gate_hiddens=(8, 16, 32, 64), ratio=0.25):
    """Gate overhead and MACs saved at ``ratio`` active channels, by model size and gate width.

    Analytic (the exact counter :func:`speechbrain_dyncp.efficiency.dense_macs`): saved =
    ``1 - (front + back + gates + ratio * blocks) / dense``; gate_layers 2, window 4.
    """
    from speechbrain_dyncp.efficiency import dense_macs
    from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer

    rows = []
    for name, kw in MAC_TABLE_SIZES.items():
        for gh in gate_hiddens:
            p = dense_macs(DynCPEnhancer(**kw, gate_hidden=gh))
            effective = p["front"] + p["back"] + p["gates"] + ratio * p["blocks"]
            rows.append({"model": name, "gate_hidden": gh, "dense_macs": p["total"], "gate_macs": p["gates"],
                         "gate_overhead_pct": 100 * p["gates"] / p["total"],
                         "macs_saved_pct": 100 * (1 - effective / p["total"]),
                         "mac_ratio": p["total"] / effective})
    return {"active_ratio": ratio, "rows": rows}


def parse_args(argv=None):
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", choices=["base", "small"], default="base")
    p.add_argument("--checkpoint", default=None, help="state dict of a trained gated model")
    p.add_argument("--model", default=None, help="a model folder (e.g. speechbrain_dyncp/pretrained/dyncp_real_small)")
    p.add_argument("--gate-hidden", type=int, default=None, help="override the gate PW width r")
    p.add_argument("--wav", default=None, help="audio file to enhance (default: seeded noise)")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--ratio", type=float, default=0.25, help="planted gate ratio")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fast-repeats", type=int, default=7, help="repeats of the NumPy / C paths")
    p.add_argument("--groups", default="1,4,16", help="frame groupings for streaming")
    p.add_argument("--paths", default="torch,numpy,c", help="streaming implementations to try")
    p.add_argument("--streams", type=int, default=8, help="concurrent streams of the multi-stream section")
    p.add_argument("--batch", type=int, default=8, help="files of the offline batch section")
    p.add_argument("--sections", default="streaming,fast,multistream,offline",
                   help="what to measure: streaming (PyTorch), fast (NumPy / C per frame), multistream, offline")
    p.add_argument("--mac-table", action="store_true",
                   help="only print / write the gate-overhead table (analytic; --ratio active channels)")
    p.add_argument("--out", default="benchmarks/results/dyncp.json")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Run the benchmark and write the JSON."""
    args = parse_args(argv)
    if args.mac_table:
        table = mac_table(ratio=args.ratio)
        print("| model | gate_hidden | dense MACs/frame | gate MACs/frame | gate overhead | MACs saved | MAC ratio |")
        print("|---|---|---|---|---|---|---|")
        for r in table["rows"]:
            print(f"| {r['model']} | {r['gate_hidden']} | {r['dense_macs']:,} | {r['gate_macs']:,} | "
                  f"{r['gate_overhead_pct']:.1f}% | {r['macs_saved_pct']:.1f}% | {r['mac_ratio']:.2f}x |")
        Path(args.out).write_text(json.dumps(table, indent=2))
        return 0
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
    if args.model:  # a model folder: its own architecture (incl. input feature) and weights
        from speechbrain_dyncp.export import read_module_definition

        _, model_kwargs = read_module_definition(Path(args.model) / "hyperparams.yaml", "enhancer")
        build = lambda **kw: DynCPEnhancer(**{**model_kwargs, **kw})  # noqa: E731
        args.checkpoint = str(Path(args.model) / "enhancer.ckpt")
    kw = {} if args.gate_hidden is None else {"gate_hidden": args.gate_hidden}
    gated = build(**kw).eval()
    # the twin: same net, no gates, one floor (no pause floor nor its low-SNR part: they read the gates)
    dense = build(gated=False, pause_attenuation_limit_db=None, pause_low_snr_db=None).eval()
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
        """(wall, cpu) seconds of fn(); cpu = this thread's CPU time, blind to preemption."""
        w0, c0 = time.perf_counter(), time.thread_time()
        fn()
        return time.perf_counter() - w0, time.thread_time() - c0

    def stream(model, group, skip=True, chunk=None, lat=None):
        ctx = model.make_streaming_context(1, group_frames=group, skip_pruned=skip, keep_gates=True)
        outs = []
        for c in wav.split(chunk or hop * group, 1):
            t0 = time.perf_counter()
            outs.append(model.forward_streaming(c, ctx))
            if lat is not None:
                lat.append(time.perf_counter() - t0)
        outs.append(model.finish_streaming(ctx))
        return torch.cat(outs, 1)[:, ctx.latency:], ctx

    sections = set(args.sections.split(","))
    groups = [int(g) for g in args.groups.split(",") if g] if "streaming" in sections else []
    paths = [("dense", dense, True), ("pruned", gated, True), ("masked", gated, False)]
    wall, cpu, info = {}, {}, {}
    with torch.inference_mode():
        for _ in range(args.repeats):  # interleaved, so machine load hits all paths alike
            for key, model in (("offline_dense", dense), ("offline_gated", gated)):
                w, c = timed(lambda: model(wav))
                wall.setdefault(key, []).append(w / seconds)
                cpu.setdefault(key, []).append(c / seconds)
            for g in groups:
                for name, model, skip in paths:
                    key, holder = f"g{g}_{name}", {}
                    w, c = timed(lambda: holder.update(out=stream(model, g, skip)))
                    wall.setdefault(key, []).append(w / seconds)
                    cpu.setdefault(key, []).append(c / seconds)
                    y, ctx = holder["out"]
                    want = ref_dense if model is dense else ref
                    info[key] = {
                        "macs_per_frame_executed": ctx.macs / ctx.frames_done,
                        "max_abs_err_vs_offline": (y - want.wav).abs().max().item(),
                        "gate_mismatch_fraction": (torch.cat(ctx.gates, 2) != want.gates).float().mean().item()
                        if ctx.gates else 0.0,
                    }
        lat = {"dense": [], "pruned": []}
        for name, model in (("dense", dense), ("pruned", gated)):
            if groups:
                stream(model, 1, chunk=hop, lat=lat[name])

    def q(xs, p):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]

    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    streaming = {}
    for g in groups:
        d, p = f"g{g}_dense", f"g{g}_pruned"
        streaming[f"torch_g{g}"] = {
            "rtf_dense": med[d], "rtf_pruned": med[p], "rtf_masked": med[f"g{g}_masked"],
            "cpu_rtf_dense": med_cpu[d], "cpu_rtf_pruned": med_cpu[p],
            "speedup_pruned_over_dense": med[d] / med[p], "cpu_speedup_pruned_over_dense": med_cpu[d] / med_cpu[p],
            "dense": info[d], "pruned": info[p], "masked": info[f"g{g}_masked"],
        }
    out = {
        "what": "DynCP enhancer CPU benchmark (bench_dyncp.py)",
        "config": args.config, "gate_hidden": gated.tcn.gates[0].hidden, "gates": gates_src,
        "planted_ratio": None if args.checkpoint else args.ratio,
        "params_gated": parameter_count(gated), "params_dense": parameter_count(dense),
        "macs_per_frame": counted, "dense_parts": dense_macs(gated),
        "macs_per_second": {"dense": counted["dense"] * fps, "effective": counted["effective"] * fps},
        "realised_ratio": counted["realised_ratio"],
        "offline": {"rtf_dense": med["offline_dense"], "rtf_gated": med["offline_gated"],
                    "cpu_rtf_dense": med_cpu["offline_dense"], "cpu_rtf_gated": med_cpu["offline_gated"],
                    "note": "offline multiplies gates (training graph), it never skips"},
        "streaming": streaming,
        "torch_per_frame_latency_s": {
            k: {"median": statistics.median(v), "p95": q(v, 0.95), "calls": len(v)} for k, v in lat.items() if v
        },
        "latency_algorithmic_samples": gated.n_fft - 1,
        "audio_s": seconds, "threads": args.threads, "repeats": args.repeats, "fast_repeats": args.fast_repeats,
        "cpu": cpu_model(), "torch": torch.__version__, "python": sys.version.split()[0], "git": git_rev(),
        "load_average": os.getloadavg(), "cores": os.cpu_count(),
    }
    out["sections"] = sorted(sections)
    if "fast" in sections:
        out["fast_paths"] = fast_paths(args, gated, dense, wav, ref.wav, ref_dense.wav, seconds, hop)
    if "multistream" in sections:
        out["multistream"] = multistream(args, gated, dense, wav, seconds, hop)
    if "offline" in sections:
        out["offline_batch"] = offline_batch(args, gated, dense, wav, seconds)
    out["load_average_end"] = os.getloadavg()
    out["tried"] = TRIED
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
