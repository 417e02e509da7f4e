"""Errors of the inference layer, in a module of their own so that every loader can raise them
without importing another (``strict`` and ``safe_yaml`` both do).

Authors
 * speechbrain-dyncp contributors
"""


class ModelFolderError(RuntimeError):
    """A model folder that cannot be used; the message names the file and why."""
