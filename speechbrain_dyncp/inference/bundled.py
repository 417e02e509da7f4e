"""Where the models that ship inside the package live: their names and ``speechbrain_dyncp/pretrained/<name>``.

No imports from the package, so that loading (``strict.py``, ``loading.py``) and the interfaces can all use it.

Authors
 * speechbrain-dyncp contributors
"""

from importlib import resources
from pathlib import Path

DEFAULT_ENHANCER = "dyncp_real_base"
REAL_SMALL_ENHANCER = "dyncp_real_small"
SYNTHETIC_ENHANCER = "dyncp_synthetic_small"
SV_FRONT_END = "dyncp_sv_frontend"
BUNDLED_ENHANCERS = (DEFAULT_ENHANCER, REAL_SMALL_ENHANCER, SYNTHETIC_ENHANCER, SV_FRONT_END)


def bundled_model_dir(name: str = DEFAULT_ENHANCER) -> Path:
    """Folder of a model that ships inside the package (``speechbrain_dyncp/pretrained/<name>``).

    Example
    -------
    >>> (bundled_model_dir(SYNTHETIC_ENHANCER) / "hyperparams.yaml").is_file()
    True
    """
    path = Path(str(resources.files("speechbrain_dyncp") / "pretrained" / name))
    if not (path / "hyperparams.yaml").is_file():
        raise FileNotFoundError(f"bundled model {name!r} not found at {path}")
    return path


def bundled_source(source):
    """``source`` itself, or the bundled model folder its name means (see ``StrictPretrained.from_hparams``).

    Example
    -------
    >>> bundled_source("dyncp_real_base").endswith("pretrained/dyncp_real_base"), bundled_source("org/model")
    (True, 'org/model')
    """
    if isinstance(source, str) and "/" not in source and not Path(source).exists():
        try:
            return str(bundled_model_dir(source))
        except FileNotFoundError:  # not one of ours: SpeechBrain's own reading of it
            pass
    return source
