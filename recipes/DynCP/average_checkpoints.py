#!/usr/bin/env python3
"""Average the weights of DynCP training checkpoints into a new run folder ``dyncp export`` can read.

Usage::

    python recipes/DynCP/average_checkpoints.py --ckpts <run>/save/CKPT+A <other run>/save/CKPT+B \
        --out results/DynCP/real/soup

Uniform weight averaging of checkpoints of one run (the last epochs) or of several fine-tunes
from the same initial weights (a "model soup", Wortsman et al., ICML 2022): the averaged model
often sits between or beyond the members' trade-offs. Fine-tunes from *different* initial
weights do not average meaningfully. Every checkpoint must hold the same modules with the same
shapes (else a one-line error names the folder). The averaging itself is SpeechBrain's
``average_state_dicts`` (as in its ``average_checkpoints``); the output is ``<out>/hyperparams.yaml``
(the first checkpoint's run) and ``<out>/save/CKPT+averaged/`` with the averaged trainable modules
and the first checkpoint's other files, so ``dyncp export <out> -o <model folder>`` works as on
any run.

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import shutil
import sys
from pathlib import Path

import torch
from speechbrain.utils.checkpoints import average_state_dicts

from speechbrain_dyncp.export import load_weights

AVERAGED = ("enhancer.ckpt", "gate_probes.ckpt")  # trainable modules; the rest is training state


def average_run_checkpoints(ckpts, out) -> Path:
    """Write the averaged run folder ``out`` from checkpoint folders ``ckpts``; returns the new CKPT folder."""
    ckpts, out = [Path(c) for c in ckpts], Path(out)
    if len(ckpts) < 2:
        raise ValueError("average_checkpoints needs at least two checkpoints")
    for c in ckpts:
        if not (c / "enhancer.ckpt").is_file():
            raise FileNotFoundError(f"{c}: not a DynCP training checkpoint (no enhancer.ckpt)")
    run_yaml = ckpts[0].parent.parent / "hyperparams.yaml"
    if not run_yaml.is_file():
        raise FileNotFoundError(f"{run_yaml}: the first checkpoint's run has no hyperparams.yaml")
    target = out / "save" / "CKPT+averaged"
    target.mkdir(parents=True, exist_ok=True)
    for name in AVERAGED:
        if not (ckpts[0] / name).is_file():
            continue
        states = [load_weights(c / name) for c in ckpts]  # a damaged file: one line naming it
        ref = {k: v.shape for k, v in states[0].items()}
        for c, s in zip(ckpts[1:], states[1:]):
            if {k: v.shape for k, v in s.items()} != ref:
                raise ValueError(f"{c}: its {name} has other weights or shapes than {ckpts[0]}'s")
        # floating tensors (weights, BatchNorm running statistics) are averaged; integer buffers are
        # counters (BatchNorm's num_batches_tracked), kept from the first checkpoint, not divided
        avg = average_state_dicts({k: v for k, v in s.items() if v.is_floating_point()} for s in states)
        torch.save({k: avg[k] if v.is_floating_point() else v for k, v in states[0].items()}, target / name)
    for f in ckpts[0].iterdir():
        if f.name not in AVERAGED:
            shutil.copy(f, target / f.name)
    shutil.copy(run_yaml, out / "hyperparams.yaml")
    return target


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpts", nargs="+", required=True, help="checkpoint folders (<run>/save/CKPT+...)")
    ap.add_argument("--out", required=True, help="the new run folder")
    args = ap.parse_args(argv)
    print(average_run_checkpoints(args.ckpts, args.out))


if __name__ == "__main__":
    main(sys.argv[1:])
