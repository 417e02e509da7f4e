"""A BatchNorm classifier over framed waveforms, for the scaling tests.

Authors
 * speechbrain-dyncp contributors
"""

import torch
from torch import nn

from speechbrain_dyncp.lengths import length_mask


class TinyClassifier(nn.Module):
    """Frames -> Linear -> BatchNorm (valid frames) -> ReLU -> masked mean -> Linear.

    Arguments
    ---------
    frame : int
        Samples per frame.
    hidden : int
        Hidden channels (BatchNorm'ed).
    n_classes : int
        Output classes.
    bn_groups : int
        In training, normalise items ``g, g+G, ...`` with their own batch
        statistics (G groups; running statistics from group 0 only). With G
        equal to the DDP world size this is exactly what each CPU rank does
        without SyncBatchNorm (DDP broadcasts rank 0's buffers), so a
        single-process run can reproduce a DDP run step by step.

    Example
    -------
    >>> model = TinyClassifier(frame=4, hidden=3, n_classes=2).eval()
    >>> x = torch.randn(1, 12)
    >>> padded = torch.cat([x, 100 * torch.ones(1, 8)], dim=1)
    >>> torch.allclose(model(x), model(padded, torch.tensor([0.6])))
    True
    """

    def __init__(self, frame: int = 80, hidden: int = 16, n_classes: int = 4, bn_groups: int = 1):
        super().__init__()
        self.frame, self.bn_groups = frame, bn_groups
        self.proj = nn.Linear(frame, hidden)
        self.norm = nn.BatchNorm1d(hidden)
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor = None) -> torch.Tensor:
        """Logits ``[B, n_classes]`` of waveforms ``[B, T]`` with relative ``lengths``."""
        n = wav.shape[1] // self.frame
        x = self.proj(wav[:, : n * self.frame].reshape(wav.shape[0], n, self.frame))  # B, N, H
        mask = length_mask(lengths, n, wav.shape[0], device=wav.device)  # B, N
        x = torch.relu(self._normalize(x, mask)) * mask.unsqueeze(-1)
        return self.out(x.sum(1) / mask.sum(1, keepdim=True))

    def _normalize(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """BatchNorm over valid frames only, so padding never changes the statistics."""
        out = torch.zeros_like(x)
        if not self.training or self.bn_groups == 1:
            out[mask] = self.norm(x[mask])  # M, H: the module call (SyncBatchNorm on CUDA DDP)
            return out
        for g in range(self.bn_groups):
            stats = (self.norm.running_mean, self.norm.running_var) if g == 0 else (None, None)
            xg, mg = x[g :: self.bn_groups], mask[g :: self.bn_groups]
            yg = torch.zeros_like(xg)
            yg[mg] = nn.functional.batch_norm(
                xg[mg], *stats, self.norm.weight, self.norm.bias, True, self.norm.momentum, self.norm.eps
            )
            out[g :: self.bn_groups] = yg
        self.norm.num_batches_tracked += 1
        return out
