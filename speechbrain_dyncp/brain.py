"""``DynCPBrain``: the ``sb.Brain`` every recipe of this package inherits.

It keeps SpeechBrain's own machinery (``run_on_main``, ``Checkpointer``,
``ckpt_interval_minutes/steps``, ``DistributedSampler``) and changes only what
stops it from running or resuming reliably:

* **DDP on CPU (gloo).** ``Brain._wrap_distributed`` always converts BatchNorm
  to ``SyncBatchNorm``, which raises "SyncBatchNorm layers only work with GPU
  modules" on CPU. Here the conversion happens only for CUDA devices, and
  only for plain ``BatchNorm1d/2d/3d`` (:func:`convert_plain_batchnorm`). On CPU
  each rank normalises with its *own* batch statistics (a per-rank batch of B
  instead of the global N*B), so losses differ slightly from a single-process
  run with batch N*B; the running statistics used at evaluation are rank 0's,
  since DDP broadcasts buffers from rank 0 at every forward. On CUDA (nccl) the
  statistics are synchronised across ranks, as in SpeechBrain.
* **Metrics across ranks.** Every per-batch loss is averaged over ranks
  (:func:`ddp_mean`) before it enters the running average, so ``stage_loss`` in
  ``on_stage_end``, the progress bar and ``train_log.txt`` show the global loss.
  Recipes reduce their own metric sums the same way.
* **Exact resume.** The checkpointer becomes an
  :class:`~speechbrain_dyncp.checkpoints.AtomicCheckpointer` (a run killed
  while saving resumes from the previous checkpoint) and the RNG states are a
  recoverable; the train DataLoader gets its own ``torch.Generator`` so
  creating its iterator does not draw from the global RNG (a resumed epoch
  would otherwise be shifted by one draw).
* **Clean exit.** A gloo rank that leaves while its peer is still connected can
  abort in the group's thread destructors ("terminate called without an active
  exception", SIGABRT) after the run succeeded, and torchrun then reports the
  whole run as failed. Recipes end with :func:`finish_ddp_group` (barrier, then
  ``destroy_process_group`` on every rank); :func:`start_ddp_group` is
  ``ddp_init_group`` plus a barrier-free ``destroy_process_group`` at
  interpreter exit for runs that end otherwise.

Authors
 * speechbrain-dyncp contributors
"""

import atexit
import os
from typing import Union

import speechbrain as sb
import torch
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.distributed import ddp_all_reduce, ddp_init_group, is_distributed_initialized
from torch.nn import SyncBatchNorm
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import IterableDataset

from speechbrain_dyncp.checkpoints import AtomicCheckpointer, RNGState


def start_ddp_group(run_opts: dict) -> None:
    """SpeechBrain's ``ddp_init_group``, and the group destroyed when the process exits.

    Arguments
    ---------
    run_opts : dict
        As returned by ``speechbrain.parse_arguments`` (nothing happens
        outside a ``torchrun`` launch).

    Example
    -------
    >>> start_ddp_group({"distributed_backend": "gloo"})  # not under torchrun: no group
    >>> is_distributed_initialized()
    False
    """
    ddp_init_group(run_opts)
    if is_distributed_initialized():
        atexit.register(_destroy_ddp_group)


def finish_ddp_group() -> None:
    """End of a successful run: every rank waits for the others, then all leave the group together.

    Without it the rank that finishes first (rank 1: rank 0 still writes the test
    report) tears its gloo group down while its peer is still connected, which
    intermittently aborts it on exit (seen on CI). Safe to call without DDP.

    Example
    -------
    >>> finish_ddp_group()  # not under torchrun: nothing to do
    """
    if is_distributed_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def _destroy_ddp_group() -> None:
    """No barrier: a rank that failed must not leave the others waiting at exit."""
    if is_distributed_initialized():
        torch.distributed.destroy_process_group()


def ddp_mean(value: Union[float, torch.Tensor], weight: float = 1.0):
    """Weighted mean of ``value`` over DDP ranks (identity without DDP).

    Arguments
    ---------
    value : float or torch.Tensor
        This rank's value (a scalar or any tensor).
    weight : float
        This rank's weight, e.g. its number of items (for a mean of means).

    Returns
    -------
    float or torch.Tensor
        ``sum_r(w_r * v_r) / sum_r(w_r)``, the same type as ``value``.
        Every rank must call it the same number of times (it is a collective).

    Example
    -------
    >>> ddp_mean(2.5)
    2.5
    >>> ddp_mean(torch.tensor([1.0, 3.0]), weight=4)
    tensor([1., 3.])
    """
    if not is_distributed_initialized():
        return value
    device = torch.device("cuda", torch.cuda.current_device()) if torch.distributed.get_backend() == "nccl" else "cpu"
    as_tensor = torch.as_tensor(value, dtype=torch.float64).to(device)
    packed = torch.cat([as_tensor.flatten() * weight, torch.tensor([float(weight)], dtype=torch.float64, device=device)])
    # gloo has no ReduceOp.AVG: sum, then divide.
    packed = ddp_all_reduce(packed, torch.distributed.ReduceOp.SUM)
    mean = (packed[:-1] / packed[-1]).reshape(as_tensor.shape)
    if isinstance(value, torch.Tensor):
        return mean.to(device=value.device, dtype=value.dtype if value.is_floating_point() else torch.float32)
    return float(mean)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP / DataParallel wrapper (itself otherwise).

    Example
    -------
    >>> lin = torch.nn.Linear(1, 1)
    >>> unwrap(torch.nn.DataParallel(lin)) is lin, unwrap(lin) is lin
    (True, True)
    """
    return module.module if isinstance(module, (DDP, torch.nn.DataParallel)) else module


def convert_plain_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """``SyncBatchNorm`` for plain ``BatchNorm1d/2d/3d`` only; subclasses are kept.

    ``SyncBatchNorm.convert_sync_batchnorm`` turns *every* ``_BatchNorm``,
    subclasses included, into a plain ``SyncBatchNorm``: a masked BatchNorm
    (``forward(x, mask)``, e.g. the enhancer's ``MaskedBatchNorm1d``) would lose
    its behaviour and its signature. Subclasses keep per-rank statistics.

    Example
    -------
    >>> class Masked(torch.nn.BatchNorm1d):
    ...     pass
    >>> net = convert_plain_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm1d(2), Masked(2)))
    >>> [type(m).__name__ for m in net]
    ['SyncBatchNorm', 'Masked']
    """
    plain = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
    if type(module) in plain:
        return SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        module.add_module(name, convert_plain_batchnorm(child))
    return module


class DynCPBrain(sb.Brain):
    """``sb.Brain`` that runs DDP on CPU, reduces losses across ranks and resumes exactly.

    Same arguments as :class:`speechbrain.Brain`.

    Example
    -------
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    >>> brain = DynCPBrain(modules={"model": model}, run_opts={"device": "cpu"},
    ...                    checkpointer=Checkpointer(getfixture("tmp_path")))
    >>> type(brain.checkpointer).__name__, "rng_state" in brain.checkpointer.recoverables
    ('AtomicCheckpointer', True)
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.checkpointer is not None:
            # Same state, same methods plus the completeness marker: upgrading
            # in place keeps recipes' YAML on the stock Checkpointer.
            if type(self.checkpointer) is Checkpointer:
                self.checkpointer.__class__ = AtomicCheckpointer
            self.checkpointer.add_recoverable("rng_state", RNGState(), optional_load=True)

    def _wrap_distributed(self):
        """DDP-wrap trainable modules; SyncBatchNorm only on CUDA (see module doc)."""
        if not self.distributed_launch:
            return super()._wrap_distributed()  # nothing, or DataParallel
        on_cuda = str(self.device).startswith("cuda")
        for name, module in self.modules.items():
            if not any(p.requires_grad for p in module.parameters()):
                continue
            if on_cuda:
                module = convert_plain_batchnorm(module)
            device_ids = [self.device] if on_cuda and self.distributed_backend != "gloo" else None
            self.modules[name] = DDP(module, device_ids=device_ids, find_unused_parameters=self.find_unused_parameters)

    def update_average(self, loss, avg_loss):
        """Running mean of the loss averaged over ranks (one scalar all-reduce per batch)."""
        return super().update_average(ddp_mean(loss), avg_loss)

    def make_dataloader(self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs):
        """As ``Brain.make_dataloader``; the train loader draws its seeds from its own generator."""
        if stage == sb.Stage.TRAIN and "generator" not in loader_kwargs and not isinstance(dataset, IterableDataset):
            seed = int(os.environ.get("SB_GLOBAL_SEED", 563375142))
            loader_kwargs["generator"] = torch.Generator().manual_seed(seed)
        return super().make_dataloader(dataset, stage, ckpt_prefix=ckpt_prefix, **loader_kwargs)
