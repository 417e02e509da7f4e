#!/usr/bin/env python3
"""Join trained speaker model folders into one folder whose embedding is their equal-weight fusion.

Usage::

    python recipes/VoxCeleb/make_ensemble.py --members <model_a> <model_b> --out <folder>

Each member is a folder exported by ``train_speaker.py`` (``hyperparams.yaml``,
``embedding_model.ckpt``, ``mean_var_norm.ckpt``). The members must share their feature
front-end (``sample_rate``, ``compute_features`` and ``mean_var_norm`` define the same objects), since the joint model
computes the features once. The output's ``embedding_model`` is a
:class:`speechbrain_dyncp.lobes.embedding_ensemble.EmbeddingEnsemble` of the members; it has no
classifier (the members' speaker sets need not agree), so it is a verification / embedding
model, not a Grad-W speaker network E. Then give it a cohort and a threshold on dev trials
with ``verify.py --model_dir=<folder> --store_backend=as-norm`` as for any speaker folder.

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from speechbrain_dyncp.export import load_weights, module_definition, read_resolved, yaml_block
from speechbrain_dyncp.verification.embedding import load_speaker_embedder

MODULE_BLOCKS = ("compute_features", "mean_var_norm")  # shared by every member: the joint model computes them once
ENSEMBLE = "speechbrain_dyncp.lobes.embedding_ensemble.EmbeddingEnsemble"


def member_definitions(folder: Path) -> dict:
    """A member's ``sample_rate`` and its ``(tag, kwargs)`` per module key (None where absent), read with
    references resolved (``export.read_resolved``): the YAML's meaning, not its text, so a member written with
    ``!ref`` or another layout joins as long as it defines the same modules."""
    hparams = folder / "hyperparams.yaml"
    data = read_resolved(hparams)
    if "embedding_model" not in data:
        raise ValueError(f"{hparams}: no embedding_model; not a speaker model folder")
    defs = {"sample_rate": data.get("sample_rate")}
    for key in ("embedding_model", *MODULE_BLOCKS):  # a key that is not a !new: object: ValueError naming the file
        defs[key] = module_definition(data, key, hparams) if key in data else None
    return defs


def member_entry(tag: str, kwargs: dict) -> str:
    """A member's ``!new:`` object as an item of the ensemble's ``members`` list (values as JSON, valid YAML)."""
    return "\n".join([f"        - {tag}"] + [f"          {k}: {json.dumps(v)}" for k, v in kwargs.items()])


def make_ensemble(members, out) -> Path:
    """Write the joint model folder ``out`` from member folders; returns its path."""
    out, members = Path(out), [Path(m) for m in members]
    defs = []
    for m in members:
        missing = [f for f in ("hyperparams.yaml", "embedding_model.ckpt") if not (m / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{m}: not a speaker model folder (lacks {', '.join(missing)})")
        defs.append(member_definitions(m))
    for m, d in zip(members[1:], defs[1:]):
        for key in ("sample_rate", *MODULE_BLOCKS):
            if d[key] != defs[0][key]:
                raise ValueError(f"{m}: its {key} differs from {members[0]}'s; members must share the features")
    first = defs[0]
    if first["compute_features"] is None:
        raise ValueError(f"{members[0]}: its hyperparams.yaml has no compute_features: !new:... object")
    out.mkdir(parents=True, exist_ok=True)
    entries = "\n".join(member_entry(*d["embedding_model"]) for d in defs)
    norm = (members[0] / "mean_var_norm.ckpt").is_file() and first["mean_var_norm"] is not None
    text = "\n".join([
        f"# equal-weight embedding fusion of {len(members)} speaker models (recipes/VoxCeleb/make_ensemble.py)",
        *(f"#   member {i}: {m}" for i, m in enumerate(members)),
        *([f"sample_rate: {first['sample_rate']}"] if first["sample_rate"] is not None else []),
        *(yaml_block(k, *first[k]).rstrip("\n") for k in MODULE_BLOCKS if first[k] is not None),
        f"embedding_model: !new:{ENSEMBLE}\n    members:\n{entries}",
        "modules:\n    compute_features: !ref <compute_features>\n"
        + ("    mean_var_norm: !ref <mean_var_norm>\n" if first["mean_var_norm"] is not None else "")
        + "    embedding_model: !ref <embedding_model>",
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
