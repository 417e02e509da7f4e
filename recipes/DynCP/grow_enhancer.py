#!/usr/bin/env python3
"""Deepen a trained DynCP enhancer by whole TCN stacks without changing what it computes.

Usage::

    python recipes/DynCP/grow_enhancer.py --model speechbrain_dyncp/pretrained/dyncp_real_base \
        --add_stacks 1 --out results/DynCP/real/grown3
    python recipes/DynCP/train.py hparams/DynCP/train.yaml ... --n_stacks=3 \
        --init_enhancer_from=results/DynCP/real/grown3

A function-preserving deepening (Net2Net, Chen et al., ICLR 2016; the zero-initialised residual
branch of ReZero / Fixup): the new blocks are appended after the old ones with the usual
dilations, and each new block's output projection (``out_conv``, the only way a block writes into
the residual stream) is set to zero, so the grown model's mask, output and old gates are exactly
the trained model's. Fine-tuning then starts from the trained function with more capacity,
instead of from scratch (a from-scratch run of the real default takes about 25 epochs). The new
blocks' gates are freshly initialised and learn their share of the channel budget in training.
The output is a model folder (``hyperparams.yaml`` + ``enhancer.ckpt``, no probes and no pause floor:
both read every block's gates, so they must be refitted after fine-tuning) that
``--init_enhancer_from`` and ``dyncp enhance`` read.

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import sys
from pathlib import Path

import torch

from speechbrain_dyncp.export import load_weights, read_module_definition, write_model_folder
from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer


def grow_enhancer(model_dir, out, add_stacks: int = 1, seed: int = 0) -> Path:
    """Write to ``out`` the model of ``model_dir`` with ``add_stacks`` more TCN stacks, same function."""
    model_dir = Path(model_dir)
    if add_stacks < 1:
        raise ValueError(f"add_stacks must be >= 1, got {add_stacks}")
    _, kwargs = read_module_definition(model_dir / "hyperparams.yaml", "enhancer")
    state = load_weights(model_dir / "enhancer.ckpt")  # a damaged file: one line naming it
    trained = DynCPEnhancer(**kwargs)
    trained.load_state_dict(state)  # the folder's weights fit its own definition
    old_blocks = len(trained.tcn.blocks)
    # a pause floor's VAD head reads every block's gates: it cannot survive new blocks (refit the probes,
    # then recipes/DynCP/set_pause_floor.py), so the grown model has none
    kwargs = {k: v for k, v in kwargs.items() if not k.startswith("pause_")}
    state = {k: v for k, v in state.items() if not k.startswith("pause_floor.")}
    per_stack = kwargs.get("n_blocks", 3)  # DynCPEnhancer's default when the folder leaves it out
    grown_kwargs = dict(kwargs, n_stacks=old_blocks // per_stack + add_stacks)
    torch.manual_seed(seed)  # the new blocks' and gates' initialisation
    grown = DynCPEnhancer(**grown_kwargs)
    new_state = grown.state_dict()
    for key, value in state.items():  # the old blocks keep their index (new ones are appended)
        new_state[key] = value
    for i in range(old_blocks, len(grown.tcn.blocks)):
        new_state[f"tcn.blocks.{i}.out_conv.weight"] = torch.zeros_like(new_state[f"tcn.blocks.{i}.out_conv.weight"])
    grown.load_state_dict(new_state)
    note = (f"\n# grown from {model_dir} by recipes/DynCP/grow_enhancer.py: {add_stacks} stack(s) appended with\n"
            f"# zero output projections (same function as the source model until fine-tuned)\n")
    return write_model_folder(out, grown_kwargs, grown.state_dict(), extra_yaml=note)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a DynCP model folder (hyperparams.yaml + enhancer.ckpt)")
    p.add_argument("--add_stacks", type=int, default=1, help="TCN stacks to append (default 1)")
    p.add_argument("--out", required=True, help="new model folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the new blocks' initialisation")
    args = p.parse_args(argv)
    try:
        out = grow_enhancer(args.model, args.out, args.add_stacks, args.seed)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as err:
        sys.exit(f"grow_enhancer: {err}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
