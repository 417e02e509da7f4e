"""Loading enhancer model folders: the bundled ones by name, any other by path (offline, strict).

Four enhancers ship inside the package (``speechbrain_dyncp/pretrained/<name>``):

* ``dyncp_real_base`` (:data:`DEFAULT_ENHANCER`): trained on real speech and real
  noises (``data/real_speech.py``); the default of the CLI, the demo and the README;
* ``dyncp_real_small`` (:data:`REAL_SMALL_ENHANCER`): the same recipe at a third of the
  executed MACs, slightly lower quality; its probes feed the bundled speaker model's
  SNR-aware calibration;
* ``dyncp_sv_frontend`` (:data:`SV_FRONT_END`): ``dyncp_real_base`` fine-tuned with
  Grad-W through the frozen bundled speaker model: the front-end of ``dyncp verify
  --front-end`` (:mod:`speechbrain_dyncp.inference.front_end`), not a general enhancer;
* ``dyncp_synthetic_small`` (:data:`SYNTHETIC_ENHANCER`): trained on the embedded
  synthetic corpus; kept for CI, where exact labels make the probes checkable.

All load from any working directory (the path comes from the installed package).

Authors
 * speechbrain-dyncp contributors
"""

from pathlib import Path
from typing import Optional

# names and folders of the bundled models: bundled.py, which imports nothing of ours (strict.py uses it too)
from speechbrain_dyncp.inference.bundled import (  # noqa: F401
    BUNDLED_ENHANCERS,
    DEFAULT_ENHANCER,
    REAL_SMALL_ENHANCER,
    SV_FRONT_END,
    SYNTHETIC_ENHANCER,
    bundled_model_dir,
)


def bundled_enhancer_name(model: Optional[str] = None) -> Optional[str]:
    """The bundled model a ``model`` argument names (the default for none), or None for a folder path.

    A name is read as a bundled model only when no folder of that name exists here.

    Example
    -------
    >>> bundled_enhancer_name(), bundled_enhancer_name(SYNTHETIC_ENHANCER), bundled_enhancer_name("/some/folder")
    ('dyncp_real_base', 'dyncp_synthetic_small', None)
    """
    if not model:
        return DEFAULT_ENHANCER
    return model if model in BUNDLED_ENHANCERS and not Path(model).exists() else None


def enhancer_folder(model: Optional[str] = None) -> Path:
    """The folder a ``model`` argument means: a bundled model's (by name, or the default for none) or the path.

    Example
    -------
    >>> enhancer_folder().name, str(enhancer_folder("/some/folder"))
    ('dyncp_real_base', '/some/folder')
    """
    bundled = bundled_enhancer_name(model)
    return bundled_model_dir(bundled) if bundled else Path(model)


def load_enhancer(model: Optional[str] = None, savedir: Optional[Path] = None, trust_code: bool = False):
    """``DynCPEnhancement`` from a model folder (default: the bundled real-speech model), offline and strict.

    ``model`` is a folder path or the name of a bundled model. Its
    ``hyperparams.yaml`` is scanned in safe mode first unless ``trust_code``
    (see :mod:`speechbrain_dyncp.inference.safe_yaml`).
    """
    from speechbrain_dyncp.inference.enhancement import DynCPEnhancement
    from speechbrain_dyncp.inference.strict import load_model_folder

    source = enhancer_folder(model)
    if not source.is_dir():
        raise FileNotFoundError(f"model folder not found: {source}")
    return load_model_folder(DynCPEnhancement, source, savedir, trust_code=trust_code)
