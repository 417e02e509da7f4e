"""Checkpointing pieces that make a killed run resume exactly.

SpeechBrain's :class:`~speechbrain.utils.checkpoints.Checkpointer` writes
``CKPT.yaml`` *before* the parameter files, so a run killed while saving
leaves a checkpoint folder that looks valid but misses (or holds a truncated)
``model.ckpt``; the next start then fails to load it. It also does not save the
random number generators, so augmentation / dropout draws after a mid-epoch
resume differ from an uninterrupted run. This module adds both:

* :class:`AtomicCheckpointer`: writes a ``COMPLETE`` marker after every file of
  a checkpoint is on disk and skips (with a warning naming the folder) any
  checkpoint of its own that lacks it. Checkpoints written by a plain
  ``Checkpointer`` (no marker in their meta) are accepted as before. A
  checkpoint that is complete but cannot be read (a disk error, a file damaged
  later) is skipped on recovery with a warning naming the file, and the
  previous one is loaded instead.
* :class:`RNGState`: a recoverable holding the torch / numpy / python RNG
  states, one file per DDP rank.

Authors
 * speechbrain-dyncp contributors
"""

import logging
import pickle
import random
from pathlib import Path

import numpy as np
import torch
import yaml
from speechbrain.utils.checkpoints import (
    Checkpointer,
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.distributed import ddp_barrier, get_rank, if_main_process

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "COMPLETE"
ATOMIC_META_KEY = "dyncp_atomic"


class AtomicCheckpointer(Checkpointer):
    """A ``Checkpointer`` whose checkpoints count only once fully written.

    Arguments are those of :class:`speechbrain.utils.checkpoints.Checkpointer`.

    Example
    -------
    >>> model = torch.nn.Linear(2, 2)
    >>> ckpt = AtomicCheckpointer(getfixture("tmp_path"), {"model": model})
    >>> saved = ckpt.save_checkpoint()
    >>> (saved.path / COMPLETE_MARKER).exists()
    True
    >>> (saved.path / COMPLETE_MARKER).unlink()  # as if killed while saving
    >>> ckpt.find_checkpoint() is None
    True
    """

    def save_checkpoint(self, meta={}, end_of_epoch=True, name=None, verbosity=logging.INFO):
        """Save as ``Checkpointer.save_checkpoint`` does, then mark it complete."""
        meta = {**meta, ATOMIC_META_KEY: True}
        ckpt = super().save_checkpoint(meta=meta, end_of_epoch=end_of_epoch, name=name, verbosity=verbosity)
        ddp_barrier()  # every rank's files (e.g. per-rank RNG) are written
        if if_main_process():
            (ckpt.path / COMPLETE_MARKER).write_text("ok\n", encoding="utf-8")
        ddp_barrier()
        return ckpt

    def _list_checkpoint_dirs(self):
        return [d for d in super()._list_checkpoint_dirs() if _is_complete(d)]

    def recover_if_possible(self, importance_key=None, max_key=None, min_key=None, ckpt_predicate=None):
        """Load the best checkpoint that loads; a damaged one is skipped with a warning naming its file.

        Arguments and return value are those of ``Checkpointer.recover_if_possible``;
        if every checkpoint is damaged, the newest error is raised.
        """
        candidates = self.find_checkpoints(importance_key, max_key, min_key, ckpt_predicate,
                                           max_num_checkpoints=None)
        if not candidates:
            logger.info("Would load a checkpoint here, but none found yet.")
            return None
        first_error = None
        for ckpt in candidates:
            try:
                self.load_checkpoint(ckpt)
                return ckpt
            except DAMAGED_CHECKPOINT as exc:  # every recoverable is reloaded from the next one
                first_error = first_error or exc
                logger.warning("Skipping checkpoint %s: cannot load %s (%s: %s); falling back to the previous one",
                               ckpt.path, _damaged_file(ckpt), type(exc).__name__, " ".join(str(exc).split()))
        raise RuntimeError(f"no checkpoint under {self.checkpoints_dir} can be loaded; the newest: "
                           f"{_damaged_file(candidates[0])}: {first_error}") from first_error


DAMAGED_CHECKPOINT = (pickle.UnpicklingError, EOFError, RuntimeError, OSError)


def _damaged_file(ckpt) -> Path:
    """The first parameter file of ``ckpt`` that torch cannot read (the folder if none)."""
    for path in sorted(ckpt.paramfiles.values()):
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except DAMAGED_CHECKPOINT:
            return Path(path)
        except Exception:  # readable, but not a weights-only file: not the damaged one
            continue
    return Path(ckpt.path)


def _is_complete(ckpt_dir: Path) -> bool:
    """False for a checkpoint killed mid-save (unreadable meta or no marker)."""
    try:
        meta = yaml.safe_load((ckpt_dir / "CKPT.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        logger.warning("Skipping checkpoint %s: unreadable CKPT.yaml (%s)", ckpt_dir, exc)
        return False
    if not isinstance(meta, dict):
        logger.warning("Skipping checkpoint %s: CKPT.yaml is empty or truncated", ckpt_dir)
        return False
    if meta.get(ATOMIC_META_KEY) and not (ckpt_dir / COMPLETE_MARKER).exists():
        logger.warning(
            "Skipping incomplete checkpoint %s (the run stopped while saving it); "
            "resuming from the previous one",
            ckpt_dir,
        )
        return False
    return True


class RNGState:
    """Recoverable for the global torch (CPU and CUDA), numpy and python RNGs.

    Each DDP rank saves its own file (``<name>.ckpt`` for rank 0,
    ``<name>.rank<r>`` otherwise) and loads its own, falling back to rank 0's
    when the world size changed.

    Example
    -------
    >>> rng, path = RNGState(), getfixture("tmp_path") / "rng.ckpt"
    >>> _ = torch.manual_seed(0); rng.save(path)
    >>> a = torch.rand(3)
    >>> rng.load(path, end_of_epoch=False)
    >>> torch.equal(torch.rand(3), a)
    True
    """

    @mark_as_saver
    def save(self, path):
        """Write the current generator states to ``path`` (this rank's file)."""
        np_state = np.random.get_state()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": {
                "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                "pos": int(np_state[2]),
                "has_gauss": int(np_state[3]),
                "cached_gaussian": float(np_state[4]),
            },
            "python": list(random.getstate()[1]),
            "python_gauss": random.getstate()[2],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(state, _rank_path(path, get_rank() or 0))

    @mark_as_loader
    def load(self, path, end_of_epoch):
        """Restore the generator states saved by this rank (or rank 0)."""
        del end_of_epoch  # the state is the state, wherever it was saved
        own = _rank_path(path, get_rank() or 0)
        state = torch.load(own if own.exists() else path, weights_only=True)
        torch.set_rng_state(state["torch"])
        npd = state["numpy"]
        np.random.set_state(
            ("MT19937", npd["keys"].numpy().astype(np.uint32), npd["pos"], npd["has_gauss"], npd["cached_gaussian"])
        )
        random.setstate((3, tuple(state["python"]), state["python_gauss"]))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


# A recoverable's save hook normally runs on rank 0 only; RNG state is per rank.
register_checkpoint_hooks(RNGState, save_on_main_only=False)


def load_with_arrays(path):
    """``torch.load(path, weights_only=True)`` that also accepts NumPy arrays (e.g. cached gate masks).

    Only the NumPy globals an array needs (its rebuild function, ndarray, the dtype
    classes) are allowed, so loading a planted file raises ``pickle.UnpicklingError``
    instead of running its code.

    Example
    -------
    >>> path = getfixture("tmp_path") / "masks.pt"
    >>> torch.save({"gates": np.zeros((2, 3), np.uint8), "id": "a"}, path)
    >>> load_with_arrays(path)["gates"].shape
    (2, 3)
    """
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    with torch.serialization.safe_globals([_reconstruct, np.ndarray, np.dtype, *dtypes]):
        return torch.load(path, map_location="cpu", weights_only=True)


def _rank_path(path, rank: int) -> Path:
    path = Path(path)
    return path if rank == 0 else path.with_name(f"{path.stem}.rank{rank}")
