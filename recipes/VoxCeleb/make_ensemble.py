#!/usr/bin/env python3
"""Join trained speaker model folders into one folder whose embedding is their (weighted) fusion.

Usage::

    python recipes/VoxCeleb/make_ensemble.py --members <model_a> <model_b> --out <folder> \\
        [--ge2e_weight 0.3 [--ge2e_file resemblyzer/pretrained.pt]]

Each member is a folder exported by ``train_speaker.py`` (``hyperparams.yaml``,
``embedding_model.ckpt``, ``mean_var_norm.ckpt``). The members must share their feature
front-end (``sample_rate``, ``compute_features`` and ``mean_var_norm`` define the same objects), since the joint model
computes the features once. The output's ``embedding_model`` is a
:class:`speechbrain_dyncp.lobes.embedding_ensemble.EmbeddingEnsemble` of the members; it has no
classifier (the members' speaker sets need not agree), so it is a verification / embedding
model, not a Grad-W speaker network E. ``--ge2e_weight W`` adds Resemblyzer's published GE2E
encoder (:class:`speechbrain_dyncp.lobes.ge2e.GE2EEncoder`, its own 40-band features) as a
:class:`~speechbrain_dyncp.lobes.embedding_ensemble.WaveformMembers` member: the joint cosine is
``(1 - W) x`` the members' mean cosine ``+ W x`` GE2E's. Then give it a cohort and a threshold on dev trials
with ``verify.py --model_dir=<folder> --store_backend=as-norm`` as for any speaker folder.

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

import torch

from speechbrain_dyncp.export import load_weights, module_definition, read_resolved, yaml_block
from speechbrain_dyncp.verification.embedding import load_speaker_embedder

MODULE_BLOCKS = ("compute_features", "mean_var_norm")  # shared by every member: the joint model computes them once
ENSEMBLE = "speechbrain_dyncp.lobes.embedding_ensemble.EmbeddingEnsemble"
WAVEFORM_MEMBERS = "speechbrain_dyncp.lobes.embedding_ensemble.WaveformMembers"
GE2E = "speechbrain_dyncp.lobes.ge2e.GE2EEncoder"


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


def make_ensemble(members, out, ge2e_weight: float = 0.0, ge2e_file=None) -> Path:
    """Write the joint model folder ``out`` from member folders (plus, with ``ge2e_weight`` > 0, Resemblyzer's
    GE2E encoder from ``ge2e_file``, default the bundled published weights); returns its path."""
    if not 0.0 <= ge2e_weight < 1.0:
        raise ValueError(f"ge2e_weight {ge2e_weight} must be in [0, 1)")
    out, members = Path(out), [Path(m) for m in members]
    if len(members) == 1:  # one folder (itself perhaps a fusion): its model as it is, without its backend
        return copy_model(members[0], out, ge2e_weight, ge2e_file)
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
    return finish_folder(out, ge2e_weight, ge2e_file)


def copy_model(folder: Path, out: Path, ge2e_weight: float = 0.0, ge2e_file=None) -> Path:
    """``folder``'s model (hyperparams up to its verification backend, weights) in ``out``, plus GE2E if asked."""
    text = (folder / "hyperparams.yaml").read_text().split("\n# --- verification backend")[0].rstrip("\n") + "\n"
    text = re.sub(r"(?m)^ +cohort: !ref <cohort>\n", "", text)  # the backend's module and loadable
    if "waveform_members" in text:
        raise ValueError(f"{folder} already has waveform_members; give its own members instead")
    out.mkdir(parents=True, exist_ok=True)
    (out / "hyperparams.yaml").write_text(text)
    for name in ("embedding_model.ckpt", "mean_var_norm.ckpt"):
        if (folder / name).is_file():
            shutil.copy(folder / name, out / name)
    return finish_folder(out, ge2e_weight, ge2e_file)


def finish_folder(out: Path, ge2e_weight: float, ge2e_file=None) -> Path:
    """Add GE2E to the folder just written (or drop a stale GE2E file of an earlier run), then load it
    strictly: every weight has its place."""
    (out / "waveform_members.ckpt").unlink(missing_ok=True)
    if ge2e_weight:
        add_ge2e(out, ge2e_weight, ge2e_file)
    load_speaker_embedder(out)
    return out


def add_ge2e(folder: Path, weight: float, ge2e_file=None):
    """Give the speaker folder written above Resemblyzer's GE2E encoder as a waveform member with ``weight``."""
    from speechbrain_dyncp.inference.speaker_folders import published_ge2e

    hp = folder / "hyperparams.yaml"
    text = hp.read_text()
    if "\nmodules:\n" not in text or "\n    loadables:\n" not in text:
        raise ValueError(f"{hp}: no modules / pretrainer loadables to extend")
    block = (f"# Resemblyzer's GE2E encoder (Apache-2.0; lobes/ge2e.py), {weight!r} of the joint cosine\n"
             f"waveform_members: !new:{WAVEFORM_MEMBERS}\n    members:\n        - !new:{GE2E}\n"
             f"    weights: [{1 - weight!r}, {weight!r}]\n")
    text = text.replace("\nmodules:\n", f"\n{block}modules:\n    waveform_members: !ref <waveform_members>\n", 1)
    text = text.replace("\n    loadables:\n", "\n    loadables:\n        waveform_members: !ref <waveform_members>\n", 1)
    hp.write_text(text)
    ge2e = published_ge2e(ge2e_file)
    torch.save({f"members.0.{k}": v for k, v in ge2e.state_dict().items()}, folder / "waveform_members.ckpt")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", nargs="+", required=True, help="speaker model folders (train_speaker.py exports)")
    ap.add_argument("--out", required=True, help="the joint model folder to write")
    ap.add_argument("--ge2e_weight", type=float, default=0.0,
                    help="add Resemblyzer's GE2E encoder with this weight of the joint cosine (0: none)")
    ap.add_argument("--ge2e_file", default=None, help="a Resemblyzer pretrained.pt (default: the published "
                    "weights in the bundled speaker_real_fusion)")
    args = ap.parse_args(argv)
    print(make_ensemble(args.members, args.out, args.ge2e_weight, args.ge2e_file))


if __name__ == "__main__":
    main(sys.argv[1:])
