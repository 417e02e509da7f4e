#!/usr/bin/env python3
"""Training cost of LAP + ASTP vs the SUPERB weighted sum + ECAPA-TDNN backend.

Both backends train on the same frozen hidden states (random, WavLM Base+
shapes: L = 13, D = 768, 2 s crops = 99 frames), with the same sub-centre
AAM head, Adam and batch. Measured in one run: time per training step
(forward + backward + optimizer step), peak memory of the step, parameter
counts (backend without the head, and the head). Step times come from one
child process that alternates the two systems' steps (machine load hits both
alike); peak memory from one child process per system (CPU: max RSS over
two steps minus the RSS after imports; CUDA: ``max_memory_allocated``).

    python benchmarks/bench_lap.py --out benchmarks/results/lap.json

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import json
import multiprocessing as mp
import platform
import resource
import subprocess
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def build(name, args):
    """(pooling, backend) of a named system at the paper's sizes."""
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    from speechbrain_dyncp.lobes.layer_pooling import LayerAttentivePooling, WeightedSumLayerPooling
    from speechbrain_dyncp.lobes.temporal_pooling import AttentiveStatisticsTemporalPooling

    if name == "lap_astp":
        pool = LayerAttentivePooling(args.layers, args.dim, out_channels=512, n_heads=16, dropout=0.1)
        return pool, AttentiveStatisticsTemporalPooling(512, lin_neurons=192)
    pool = WeightedSumLayerPooling(args.layers, args.dim)
    backend = ECAPA_TDNN(args.dim, lin_neurons=192, channels=[512, 512, 512, 512, 1536], attention_channels=128)
    return pool, backend


def n_params(module):
    """Trainable parameter count."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def make_step(name, args, dev):
    """A closure running one training step of a system, and the system's parts."""
    from speechbrain_dyncp.losses.aam import SubCenterAAMLoss, SubCenterClassifier

    torch.manual_seed(0)
    pool, backend = build(name, args)
    head = SubCenterClassifier(192, args.n_classes, n_subcenters=3)
    model = torch.nn.ModuleList([pool, backend, head]).to(dev).train()
    loss_fn = SubCenterAAMLoss(margin=0.2, scale=30.0, topk=5, topk_margin=0.06)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    hs = torch.randn(args.batch, args.layers, args.frames, args.dim, device=dev)  # frozen SSL output
    lens = torch.ones(args.batch, device=dev)
    labels = torch.randint(0, args.n_classes, (args.batch, 1), device=dev)

    def step():
        loss = loss_fn(head(backend(pool(hs, lens), lens)), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    return step, (pool, backend, head)


def measure_memory(name, args, queue):
    """Child process: peak memory of one training step and parameter counts of one system."""
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux: interpreter + torch
    step, (pool, backend, head) = make_step(name, args, dev)
    for _ in range(2):  # the second step has the Adam state allocated
        step()
    if dev.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated() / 2**20, "cuda max_memory_allocated over 2 steps"
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
        kind = ("process max RSS over 2 steps minus RSS after imports: inputs (same for both), "
                "parameters, Adam state, activations")
    queue.put({"peak_mem_mb": peak, "peak_mem_kind": kind,
               "process_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "params_pooling": n_params(pool), "params_backend": n_params(backend),
               "params_pooling_plus_backend": n_params(pool) + n_params(backend), "params_head": n_params(head)})


def measure_time(args, queue):
    """Child process: both systems' steps interleaved (A, B, A, B, ...) so machine load hits both alike."""
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    steps = {name: make_step(name, args, dev)[0] for name in SYSTEMS}
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times = {name: [] for name in SYSTEMS}
    for _ in range(args.steps):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    queue.put(times)


SYSTEMS = ("lap_astp", "weighted_sum_ecapa")


def _in_child(target, *args):
    """Run ``target(*args, queue)`` in a spawned process and return what it puts."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def git_rev():
    """Short commit of the repository, or None."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "lap.json"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--frames", type=int, default=99, help="99 = 2 s at WavLM's 20 ms hop")
    p.add_argument("--layers", type=int, default=13)
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--n_classes", type=int, default=17982, help="5,994 Vox2 speakers x 3 speeds")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    results = {name: _in_child(measure_memory, name, args) for name in SYSTEMS}
    for name, times in _in_child(measure_time, args).items():
        results[name].update(step_s_median=sorted(times)[len(times) // 2], step_s_min=min(times), step_s_all=times)
    lap, ws = results["lap_astp"], results["weighted_sum_ecapa"]
    stats = {
        "systems": results,
        "ratio_step_time_lap_over_ws_ecapa": lap["step_s_median"] / ws["step_s_median"],
        "ratio_params_lap_over_ws_ecapa": lap["params_pooling_plus_backend"] / ws["params_pooling_plus_backend"],
        "ratio_peak_mem_lap_over_ws_ecapa": (lap["peak_mem_mb"] / ws["peak_mem_mb"]) if ws["peak_mem_mb"] else None,
        "setup": {k: v for k, v in vars(args).items() if k != "out"},
        "what": "train step = pooling + backend + sub-centre AAM head (K=3), Adam; hidden states random "
                "(frozen front-end, not timed); LAP h=16 -> 512 + ASTP -> 192; ECAPA C=512 -> 192",
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "git": git_rev(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(stats, indent=2))
    print(json.dumps({k: v for k, v in stats.items() if k.startswith("ratio")}, indent=2))
    for name, r in results.items():
        print(f"{name}: step {r['step_s_median']:.3f} s, peak +{r['peak_mem_mb']:.0f} MB, "
              f"backend params {r['params_pooling_plus_backend'] / 1e6:.2f} M")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
