"""Safe mode for model folders: a ``hyperparams.yaml`` is code, so check it before loading.

Loading a model folder with ``from_hparams`` *runs* its ``hyperparams.yaml``:
``!new:`` / ``!apply:`` tags call any importable Python (``!apply:os.system``),
and YAML's own ``!!python/object/apply:`` tags too. The ``dyncp`` commands
therefore scan the file first (YAML composition only: nothing is built or
called) and refuse any tag that is not

* a plain YAML value, ``!ref``, ``!copy``, ``!tuple`` or ``!PLACEHOLDER``;
* ``!new:`` / ``!name:`` / ``!apply:`` / ``!applyref:`` / ``!module:`` whose
  target lives in ``speechbrain``, ``speechbrain_dyncp`` or ``torch`` (checked
  on the resolved object's ``__module__``, so ``torch.os.system`` is refused),
  and is not one of the entry points there that download, unpickle or run
  commands (:data:`UNSAFE_TARGETS`).

This is an allow-list, not a sandbox: code of those packages still runs with
the folder's arguments. ``--trust-model-code`` turns the check off for folders
you trust (e.g. models with custom classes).

Authors
 * speechbrain-dyncp contributors
"""

import pydoc
from pathlib import Path

from speechbrain_dyncp.inference.errors import ModelFolderError

SAFE_NAMESPACES = ("speechbrain", "speechbrain_dyncp", "torch")
# entry points inside the allowed packages that fetch, unpickle or execute
UNSAFE_TARGETS = (
    "speechbrain.utils.superpowers", "speechbrain.utils.fetching", "speechbrain.utils.data_utils",
    "speechbrain.inference", "torch.hub", "torch.load", "torch.jit", "torch.package", "torch.serialization",
    "torch.utils.cpp_extension", "torch.ops", "torch.library", "torch._C",
)
OBJECT_TAGS = ("!new:", "!name:", "!apply:", "!applyref:", "!module:")
PLAIN_TAGS = ("!ref", "!copy", "!tuple", "!PLACEHOLDER")
YAML_CORE = "tag:yaml.org,2002:"
YAML_VALUES = ("str", "int", "float", "bool", "null", "map", "seq", "binary", "timestamp", "omap", "set", "merge")


class UnsafeModelError(ModelFolderError):
    """A model folder whose ``hyperparams.yaml`` would run code outside the allowed packages."""


def _in(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _target_problem(target: str):
    """Why the object at dotted path ``target`` may not be built (None when it may)."""
    if not _in(target, SAFE_NAMESPACES):
        return f"outside {', '.join(SAFE_NAMESPACES)}"
    if _in(target, UNSAFE_TARGETS) or any(part.startswith("__") for part in target.split(".")):
        return "can download, unpickle or run commands"
    obj = pydoc.locate(target)  # imports only modules of the allowed packages (checked above)
    if obj is None:
        return "not found"
    home = obj.__name__ if type(obj).__name__ == "module" else getattr(obj, "__module__", None)
    if home is not None and not _in(home, SAFE_NAMESPACES):  # re-exports such as torch.os.system
        return f"is {home}.{getattr(obj, '__name__', '?')}, outside {', '.join(SAFE_NAMESPACES)}"
    if home is not None and _in(home, UNSAFE_TARGETS):
        return "can download, unpickle or run commands"
    return None


def _tag_problem(tag: str):
    if tag.startswith(YAML_CORE):
        return None if tag[len(YAML_CORE):] in YAML_VALUES else "runs Python while the YAML is read"
    if tag in PLAIN_TAGS:
        return None
    for prefix in OBJECT_TAGS:
        if tag.startswith(prefix):
            return _target_problem(tag[len(prefix):])
    return "is not allowed in safe mode"


def _nodes(node):
    yield node
    if isinstance(node.value, list):
        for child in node.value:
            for sub in child if isinstance(child, tuple) else (child,):
                yield from _nodes(sub)


def check_hparams_file(path) -> None:
    """Raise :class:`UnsafeModelError` naming ``path`` and the first tag safe mode refuses
    (:class:`~speechbrain_dyncp.inference.strict.ModelFolderError` if it is not YAML).

    Arguments
    ---------
    path : str or path-like
        A ``hyperparams.yaml``; it is parsed, never constructed.

    Example
    -------
    >>> p = getfixture("tmp_path") / "hyperparams.yaml"
    >>> _ = p.write_text("lin: !new:torch.nn.Linear\\n    in_features: 2\\n    out_features: 3\\n")
    >>> check_hparams_file(p)
    >>> _ = p.write_text("x: !apply:os.system [echo pwned]\\n")
    >>> check_hparams_file(p)
    Traceback (most recent call last):
    ...
    speechbrain_dyncp.inference.safe_yaml.UnsafeModelError: ...hyperparams.yaml: tag '!apply:os.system' ...
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    path = Path(path)
    try:
        root = YAML().compose(path.read_text(encoding="utf-8"))
    except (YAMLError, UnicodeDecodeError) as exc:
        raise ModelFolderError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from exc
    for node in _nodes(root) if root is not None else ():
        problem = _tag_problem(str(node.tag))
        if problem:
            line = node.start_mark.line + 1
            raise UnsafeModelError(
                f"{path}: tag {node.tag!r} (line {line}) {problem}; a model folder's hyperparams.yaml is code: "
                "load it only if you trust it, with --trust-model-code")
