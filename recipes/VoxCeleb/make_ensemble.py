#!/usr/bin/env python3
"""Join trained speaker model folders into one folder whose embedding is their equal-weight fusion.

Usage::

    python recipes/VoxCeleb/make_ensemble.py --members <model_a> <model_b> --out <folder>

Each member is a folder exported by ``train_speaker.py`` (``hyperparams.yaml``,
``embedding_model.ckpt``, ``mean_var_norm.ckpt``). The members must share their feature
front-end (``compute_features`` and ``mean_var_norm`` blocks identical), since the joint model
computes the features once. The output's ``embedding_model`` is a
:class:`speechbrain_dyncp.lobes.embedding_ensemble.EmbeddingEnsemble` of the members; it has no
classifier (the members' speaker sets need not agree), so it is a verification / embedding
model, not a Grad-W speaker network E. Then give it a cohort and a threshold on dev trials
with ``verify.py --model_dir=<folder> --store_backend=as-norm`` as for any speaker folder.

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import re
import shutil
import sys
from pathlib import Path

import torch

from speechbrain_dyncp.export import load_weights
from speechbrain_dyncp.verification.embedding import load_speaker_embedder

SHARED_BLOCKS = ("sample_rate", "compute_features", "mean_var_norm")
ENSEMBLE = "speechbrain_dyncp.lobes.embedding_ensemble.EmbeddingEnsemble"


def top_level_blocks(text: str) -> dict:
    """``{key: block text}`` of a hyperparams file's top-level entries (a key line plus its indented lines)."""
    blocks, key = {}, None
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z_][\w]*):", line)
        if match:
            key = match.group(1)
            blocks[key] = [line]
        elif key is not None and (line.startswith(" ") or not line.strip()):
            blocks[key].append(line)
        else:
            key = None  # a comment line ends the block
    return {k: "\n".join(v).rstrip() for k, v in blocks.items()}


def member_entry(block: str) -> str:
    """A member's ``embedding_model: !new:...`` block as an item of the ensemble's ``members`` list."""
    head, *body = block.splitlines()
    tag = head.split(":", 1)[1].strip()
    return "\n".join([f"        - {tag}"] + [f"      {line}" for line in body])


def make_ensemble(members, out) -> Path:
    """Write the joint model folder ``out`` from member folders; returns its path."""
    out, members = Path(out), [Path(m) for m in members]
    blocks = []
    for m in members:
        missing = [f for f in ("hyperparams.yaml", "embedding_model.ckpt") if not (m / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{m}: not a speaker model folder (lacks {', '.join(missing)})")
        blocks.append(top_level_blocks((m / "hyperparams.yaml").read_text()))
        if "embedding_model" not in blocks[-1] or "!ref" in blocks[-1]["embedding_model"]:
            # the block is copied alone, so it must be self-contained (train_speaker.py exports are)
            raise ValueError(f"{m}: its hyperparams.yaml needs a self-contained embedding_model block "
                             "(literal values, no !ref), as train_speaker.py exports")
    for m, b in zip(members[1:], blocks[1:]):
        for key in SHARED_BLOCKS:
            if b.get(key) != blocks[0].get(key):
                raise ValueError(f"{m}: its {key} differs from {members[0]}'s; members must share the features")
    out.mkdir(parents=True, exist_ok=True)
    entries = "\n".join(member_entry(b["embedding_model"]) for b in blocks)
    norm = (members[0] / "mean_var_norm.ckpt").is_file()
    text = "\n".join([
        f"# equal-weight embedding fusion of {len(members)} speaker models (recipes/VoxCeleb/make_ensemble.py)",
        *(f"#   member {i}: {m}" for i, m in enumerate(members)),
        *(blocks[0][k] for k in SHARED_BLOCKS if k in blocks[0]),
        f"embedding_model: !new:{ENSEMBLE}\n    members:\n{entries}",
        "modules:\n    compute_features: !ref <compute_features>\n    mean_var_norm: !ref <mean_var_norm>\n"
        "    embedding_model: !ref <embedding_model>",
        "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer\n    loadables:\n"
        "        embedding_model: !ref <embedding_model>" + ("\n        mean_var_norm: !ref <mean_var_norm>" if norm else ""),
    ]) + "\n"
    (out / "hyperparams.yaml").write_text(text)
    state = {}
    for i, m in enumerate(members):
        member_state = load_weights(m / "embedding_model.ckpt")  # a damaged file: one line naming it
        state.update({f"members.{i}.{k}": v for k, v in member_state.items()})
    torch.save(state, out / "embedding_model.ckpt")
    if norm:
        shutil.copy(members[0] / "mean_var_norm.ckpt", out / "mean_var_norm.ckpt")
    load_speaker_embedder(out)  # strict load: every member weight has its place
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", nargs="+", required=True, help="speaker model folders (train_speaker.py exports)")
    ap.add_argument("--out", required=True, help="the joint model folder to write")
    args = ap.parse_args(argv)
    print(make_ensemble(args.members, args.out))


if __name__ == "__main__":
    main(sys.argv[1:])
