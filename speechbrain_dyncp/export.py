"""Recipe checkpoint -> self-contained model folder for ``from_hparams``.

A model folder holds ``hyperparams.yaml`` (the model definition only: no data,
optimiser or checkpointer; no ``paths:`` so nothing points at a hub) and one
``<key>.ckpt`` state dict per loadable. The enhancer's constructor arguments
are taken from the experiment's own ``hyperparams.yaml`` (with every ``!ref``
resolved), so training and inference definitions cannot drift apart.
After writing, the folder is loaded back offline and every tensor is compared
with the source: SpeechBrain's Pretrainer only *warns* on missing keys.

Authors
 * speechbrain-dyncp contributors
"""

import io
import pickle
from pathlib import Path
from typing import Dict, Optional

import torch
from hyperpyyaml import resolve_references
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from speechbrain_dyncp.inference.strict import ModelFolderError

ENHANCER_TAG = "!new:speechbrain_dyncp.lobes.enhancer.DynCPEnhancer"
PROBES_TAG = "!new:speechbrain_dyncp.lobes.probes.MaskProbes"


def _plain(value):
    """ruamel containers -> plain Python (tags dropped: constructor args are plain values)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def read_resolved(hparams_file, overrides: Optional[dict] = None):
    """A recipe or model YAML as a mapping with its references resolved; nothing is built (ruamel nodes keep
    their ``!new:`` tags)."""
    try:
        with open(hparams_file) as fh:
            resolved = resolve_references(fh, overrides or {})
        return YAML().load(resolved.getvalue() if isinstance(resolved, io.StringIO) else resolved)
    except (ValueError, YAMLError) as exc:  # a dangling !ref, broken YAML: one line naming the file
        raise ValueError(f"{hparams_file}: {' '.join(str(exc).split())}") from exc


def read_module_definition(hparams_file, key: str = "enhancer", overrides: Optional[dict] = None):
    """``(tag, kwargs)`` of the ``!new:`` object at ``key`` of a recipe YAML, references resolved.

    Arguments
    ---------
    hparams_file : str or path-like
        A recipe YAML (e.g. an experiment's saved ``hyperparams.yaml``).
    key : str
        Top-level key of the module.
    overrides : dict, optional
        Overrides applied before resolving.

    Returns
    -------
    tuple
        (``"!new:dotted.Class"``, dict of constructor arguments)
    """
    return module_definition(read_resolved(hparams_file, overrides), key, hparams_file)


def module_definition(data, key: str, source):
    """:func:`read_module_definition` on a mapping already read by :func:`read_resolved` (``source``: its
    file, for the errors), so several modules of one file are read with one parse."""
    if key not in data:
        raise KeyError(f"{source} has no top-level {key!r}")
    node = data[key]
    tag = getattr(getattr(node, "tag", None), "value", None)
    if not tag or not tag.startswith("!new:"):
        raise ValueError(f"{source}: {key!r} is not a !new: object")
    return tag, _plain(dict(node))


SELECT_KEY = "select"  # the meta recipes/DynCP/train.py maximises to mark its best checkpoint


def find_checkpoint(experiment_dir, min_key: Optional[str] = None, max_key: Optional[str] = None) -> Path:
    """The CKPT folder of a recipe run: best by ``min_key``/``max_key`` meta; by default the
    one the DynCP recipe selected (largest ``select`` meta) where present, else the latest."""
    from speechbrain.utils.checkpoints import Checkpointer

    save = Path(experiment_dir) / "save"
    if not save.is_dir():
        raise FileNotFoundError(f"no checkpoints folder {save} (is {experiment_dir} a recipe output folder?)")
    checkpointer = Checkpointer(save)
    if min_key is None and max_key is None and any(SELECT_KEY in c.meta for c in checkpointer.list_checkpoints()):
        max_key = SELECT_KEY
    ckpt = checkpointer.find_checkpoint(min_key=min_key, max_key=max_key)
    if ckpt is None:
        raise FileNotFoundError(f"no CKPT+* checkpoint under {save}")
    return Path(ckpt.path)


def yaml_block(key: str, tag: str, kwargs: Dict) -> str:
    """``key: !new:Class`` with its constructor arguments below it, as model folders write them."""
    buf = io.StringIO()
    YAML().dump({key: kwargs}, buf)
    first, *rest = buf.getvalue().splitlines()
    return "\n".join([f"{first} {tag}", *rest]) + "\n"


def write_model_folder(
    out_dir,
    enhancer_kwargs: Dict,
    enhancer_state: Dict[str, torch.Tensor],
    probes_state: Optional[Dict] = None,
    sample_rate: int = 16000,
    extra_yaml: str = "",
) -> Path:
    """Write ``hyperparams.yaml`` + ``enhancer.ckpt`` (+ ``probes.ckpt``) and check they load back.

    Arguments
    ---------
    out_dir : str or path-like
        Folder to create (must not already hold a model).
    enhancer_kwargs : dict
        ``DynCPEnhancer`` constructor arguments.
    enhancer_state : dict
        Its state dict.
    probes_state : dict, optional
        A ``MaskProbes`` state dict (its config travels inside it).
    sample_rate : int
        Audio rate of the model.
    extra_yaml : str
        Appended to the YAML (e.g. a provenance comment block).

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    out = Path(out_dir)
    if (out / "hyperparams.yaml").exists():
        raise FileExistsError(f"{out} already holds a model; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    loadables = ["enhancer"]
    text = f"# DynCP enhancer model folder (speechbrain-dyncp); load with\n" \
           f"#   DynCPEnhancement.from_hparams(source=<this folder>)\nsample_rate: {sample_rate}\n\n"
    text += yaml_block("enhancer", ENHANCER_TAG, enhancer_kwargs)
    torch.save(enhancer_state, out / "enhancer.ckpt")
    if probes_state is not None:
        extra = probes_state["_extra_state"]
        text += yaml_block("probes", PROBES_TAG, {"n_blocks": extra["n_blocks"], "n_channels": extra["n_channels"]})
        torch.save(probes_state, out / "probes.ckpt")
        loadables.append("probes")
    text += "\nmodules:\n" + "".join(f"    {k}: !ref <{k}>\n" for k in loadables)
    text += "\npretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer\n    loadables:\n"
    text += "".join(f"        {k}: !ref <{k}>\n" for k in loadables)
    (out / "hyperparams.yaml").write_text(text + extra_yaml)
    check_model_folder(out, {"enhancer": enhancer_state, **({"probes": probes_state} if probes_state else {})})
    return out


def check_model_folder(folder, expected: Dict[str, Dict]) -> None:
    """Load ``folder`` offline with ``from_hparams`` and assert every tensor equals ``expected``."""
    from speechbrain_dyncp.inference.loading import load_enhancer

    model = load_enhancer(str(folder))
    for key, state in expected.items():
        got = model.mods[key].state_dict()
        missing = sorted(set(state) ^ set(got))
        if missing:
            raise RuntimeError(f"{folder}: {key} keys differ after loading: {missing[:5]}")
        for name, value in state.items():
            if isinstance(value, torch.Tensor) and not torch.equal(got[name].cpu(), value.cpu()):
                raise RuntimeError(f"{folder}: {key}.{name} differs after loading")


def load_weights(path: Path) -> Dict:
    """``torch.load(path, weights_only=True)``; a damaged or unsafe file is a one-line error naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, OSError) as exc:
        raise ModelFolderError(f"{path}: cannot load it (corrupted, truncated, or objects besides weights): "
                               f"{type(exc).__name__}: {' '.join(str(exc).split())}") from exc


def export_experiment(experiment_dir, out_dir, probes_ckpt=None, min_key=None, max_key=None,
                      attenuation_limit_db=None) -> Path:
    """Turn a ``recipes/DynCP/train.py`` output folder into a model folder.

    Arguments
    ---------
    experiment_dir : str or path-like
        Recipe output folder (``hyperparams.yaml`` + ``save/CKPT+*``).
    out_dir : str or path-like
        Model folder to write.
    probes_ckpt : str or path-like, optional
        ``probes.ckpt`` from ``recipes/DynCP/fit_probes.py``.
    min_key, max_key : str, optional
        Checkpoint meta key to select the best checkpoint (default: latest).
    attenuation_limit_db : float, optional
        Stored as the enhancer's ``attenuation_limit_db`` (an inference setting,
        chosen on the validation split: recipes/DynCP/tune_attenuation_limit.py).

    Returns
    -------
    pathlib.Path
    """
    exp = Path(experiment_dir)
    try:
        tag, kwargs = read_module_definition(exp / "hyperparams.yaml", "enhancer")
    except (YAMLError, KeyError, ValueError) as exc:  # a user's file: one line naming it
        raise ModelFolderError(f"{exp / 'hyperparams.yaml'}: cannot read the enhancer definition: "
                               f"{' '.join(str(exc).split())}") from exc
    if tag != ENHANCER_TAG:
        raise ModelFolderError(f"{exp / 'hyperparams.yaml'}: 'enhancer' is {tag}, expected {ENHANCER_TAG}")
    if attenuation_limit_db is not None:
        kwargs["attenuation_limit_db"] = float(attenuation_limit_db)
    ckpt = find_checkpoint(exp, min_key=min_key, max_key=max_key)
    state = load_weights(ckpt / "enhancer.ckpt")
    probes = load_weights(Path(probes_ckpt)) if probes_ckpt else None
    provenance = f"\n# exported from {exp.name}/save/{ckpt.name}\n"
    return write_model_folder(out_dir, kwargs, state, probes, extra_yaml=provenance)


def export_from_cli(args) -> int:
    """``dyncp export`` entry point."""
    if (Path(args.output) / "hyperparams.yaml").exists():  # before any work, not after reading the run
        raise FileExistsError(f"{args.output} already holds a model; choose a new folder")
    out = export_experiment(args.experiment, args.output, probes_ckpt=args.probes,
                            attenuation_limit_db=getattr(args, "attenuation_limit_db", None))
    print(f"model folder written to {out}")
    if args.onnx:
        from speechbrain_dyncp.onnx_export import export_onnx

        for path in export_onnx(out):
            print(f"onnx graph written to {path}")
    return 0
