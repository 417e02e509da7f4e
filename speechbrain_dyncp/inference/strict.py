"""Strict loading of model folders: a checkpoint that does not fit its model is an error.

SpeechBrain's ``Pretrainer`` transfers parameters with ``load_state_dict(strict=False)``
and only logs one warning per missing key, so a folder whose ``enhancer.ckpt`` is
``{}``, holds ``module.``-prefixed keys (saved from a DDP wrapper) or belongs to
another model runs with random weights behind thousands of log lines.
:class:`StrictPretrained` loads as ``from_hparams`` does, then reads every
parameter file again and compares its keys with the module's.

Authors
 * speechbrain-dyncp contributors
"""

import contextlib
import logging
from pathlib import Path

import torch


from speechbrain_dyncp.inference.bundled import bundled_source  # noqa: E402
from speechbrain_dyncp.inference.errors import ModelFolderError  # noqa: E402,F401 (raised and re-exported here)


@contextlib.contextmanager
def _quiet_parameter_transfer():
    """Silence the per-key warnings of the non-strict transfer (our check reports them once)."""
    log = logging.getLogger("speechbrain.utils.checkpoints")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _key_list(keys, n: int = 3) -> str:
    keys = sorted(keys)
    more = f" ... ({len(keys)} in all)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def check_loaded_weights(model, source) -> None:
    """Raise :class:`ModelFolderError` unless every torch loadable's file has exactly its keys.

    Arguments
    ---------
    model : speechbrain.inference.interfaces.Pretrained
        A model loaded with ``from_hparams`` (its ``hparams.pretrainer`` is read).
    source : str or path-like
        The model folder, named in the message.
    """
    from speechbrain.utils.checkpoints import (
        DEFAULT_TRANSFER_HOOKS,
        get_default_hook,
        hook_on_loading_state_dict_checkpoint,
        torch_parameter_transfer,
    )

    pretrainer = getattr(model.hparams, "pretrainer", None)
    if pretrainer is None:
        return
    for name, obj in pretrainer.loadables.items():
        # objects with their own load hook (e.g. InputNormalization statistics) store no state dict
        if name in pretrainer.custom_hooks or not isinstance(obj, torch.nn.Module) \
                or get_default_hook(obj, DEFAULT_TRANSFER_HOOKS) is not torch_parameter_transfer:
            continue
        path = Path(pretrainer.paths.get(name, Path(str(source)) / f"{name}.ckpt"))
        state = hook_on_loading_state_dict_checkpoint(torch.load(path, map_location="cpu", weights_only=True))
        if not isinstance(state, dict):
            raise ModelFolderError(f"{path}: not a state dict ({type(state).__name__}); export or copy it again")
        expected = set(obj.state_dict())
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            found = [f"missing keys {_key_list(missing)}"] * bool(missing) + \
                    [f"unexpected keys {_key_list(unexpected)}"] * bool(unexpected)
            raise ModelFolderError(f"{path}: checkpoint does not match the {name!r} model of this folder "
                                   f"({'; '.join(found)}); export or copy it again")


class StrictPretrained:
    """Mixin for ``Pretrained`` subclasses: ``from_hparams`` refuses mismatched checkpoints.

    Example
    -------
    >>> from speechbrain.inference.interfaces import Pretrained
    >>> class Model(StrictPretrained, Pretrained):
    ...     pass
    >>> Model.from_hparams.__func__ is StrictPretrained.from_hparams.__func__
    True
    """

    @classmethod
    def from_hparams(cls, source, *args, **kwargs):
        """``Pretrained.from_hparams``, then :func:`check_loaded_weights`. ``source`` may also be the name of a
        bundled model (``"dyncp_real_base"``, ``"speaker_real_fusion"``): without a slash and with no folder
        of that name here, it is read as ``speechbrain_dyncp/pretrained/<name>``, not as a hub id to fetch."""
        source = bundled_source(source)
        with _quiet_parameter_transfer():
            model = super().from_hparams(source, *args, **kwargs)
        if model is not None:  # None with download_only=True
            check_loaded_weights(model, source)
        return model


def _is_torch_file(path: Path) -> bool:
    """True for what ``torch.save`` writes: a zip archive, or a bare pickle (older format)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def load_model_folder(cls, folder, savedir=None, what: str = "model", trust_code: bool = False, overrides=None):
    """``cls.from_hparams`` on a local folder, strictly offline, with errors that name the file.

    Arguments
    ---------
    cls : type
        A ``Pretrained`` subclass (with :class:`StrictPretrained` for the key check).
    folder : path-like
        The model folder (``hyperparams.yaml`` + ``<loadable>.ckpt``).
    savedir : path-like, optional
        Copy the files there (default: load them in place).
    what : str
        Named in errors (``"model"``, ``"speaker model"``).
    trust_code : bool
        Skip the safe-mode scan of ``hyperparams.yaml``
        (:func:`~speechbrain_dyncp.inference.safe_yaml.check_hparams_file`): loading runs it.
    overrides : dict, optional
        ``hyperparams.yaml`` overrides (e.g. ``pretrained_path`` of a hub-layout folder).

    Returns
    -------
    Pretrained
    """
    import pickle

    from ruamel.yaml.error import YAMLError
    from speechbrain.utils.fetching import FetchConfig, LocalStrategy

    from speechbrain_dyncp.inference.safe_yaml import check_hparams_file

    source = Path(folder)
    if not (source / "hyperparams.yaml").is_file():  # SpeechBrain would treat the string as a hub id
        raise FileNotFoundError(f"{what} folder not found or has no hyperparams.yaml: {source}")
    if not trust_code:
        check_hparams_file(source / "hyperparams.yaml")
    try:
        for ckpt in sorted(source.glob("*.ckpt")):  # weights only, whatever torch's default or environment
            if _is_torch_file(ckpt):  # not e.g. a label encoder's text file
                torch.load(ckpt, map_location="cpu", weights_only=True)
        return cls.from_hparams(
            source=str(source.resolve()), savedir=str(savedir) if savedir else None,
            local_strategy=LocalStrategy.NO_LINK if savedir is None else LocalStrategy.COPY,
            fetch_config=FetchConfig(allow_network=False), run_opts={"device": "cpu"}, overrides=overrides or {},
        )
    except (FileNotFoundError, ModelFolderError):  # they name the file already
        raise
    except (YAMLError, ImportError, AttributeError) as exc:  # hyperparams.yaml malformed or naming unknown code
        raise ModelFolderError(f"{source / 'hyperparams.yaml'}: cannot build the model: "
                               f"{type(exc).__name__}: {' '.join(str(exc).split())}") from exc
    except (pickle.UnpicklingError, EOFError, RuntimeError, OSError) as exc:  # torch.load of a damaged file
        ckpts = ", ".join(sorted(p.name for p in source.glob("*.ckpt"))) or "none"
        why = " ".join(str(exc).split())  # torch's whole message (its reason comes last), on one line
        damage = "it holds Python objects besides weights, which loading could run as code" \
            if "Weights only load failed" in why else "corrupted, truncated or from another model"
        raise ModelFolderError(f"{what} folder {source}: cannot load its checkpoint ({ckpts}): {damage}; "
                               f"export or copy it again ({type(exc).__name__}: {why})") from exc
