"""Pooling over time for speaker embeddings, padding-exact: ASTP and a masked BatchNorm.

Attentive statistics temporal pooling (ASTP) turns frames ``[B, T, C]`` into a
speaker embedding ``[B, 1, E]`` (the backend of LAP, Kim et al., Interspeech
2025). :func:`masked_batch_norm` normalises channel-last tensors from the valid
positions only, so padding never changes a result (also used by the layer
poolings of :mod:`speechbrain_dyncp.lobes.layer_pooling`).

Authors
 * speechbrain-dyncp contributors
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from speechbrain_dyncp.lengths import length_mask


def masked_batch_norm(bn: nn.Module, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Batch-normalise channel-last ``x`` using only the unmasked positions.

    In training the statistics (and running averages) come from the valid
    positions only; in eval every position is normalised with the running
    statistics. Masked positions are zero in the output.

    Arguments
    ---------
    bn : torch.nn.BatchNorm1d
        Normalisation over the last axis of ``x`` (``num_features = C``).
    x : torch.Tensor
        ``[..., C]``.
    mask : torch.Tensor, optional
        Bool, broadcastable to ``x.shape[:-1]``; True on valid positions.

    Returns
    -------
    torch.Tensor
        Same shape as ``x``.

    Example
    -------
    >>> bn = nn.BatchNorm1d(3, affine=False)
    >>> x = torch.randn(2, 5, 3)
    >>> mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    >>> y = masked_batch_norm(bn, x, mask)
    >>> torch.allclose(y[mask].mean(0), torch.zeros(3), atol=1e-6), bool((y[~mask] == 0).all())
    (True, True)
    """
    n_ch = x.shape[-1]
    if mask is None:
        return bn(x.reshape(-1, n_ch)).reshape(x.shape)
    mask = mask.expand(x.shape[:-1])
    out = x.new_zeros(x.shape)
    out[mask] = bn(x[mask])
    return out


def frame_mask(x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    """Valid-frame mask ``[B, T]`` for ``x`` of shape ``[B, ..., T, D]``.

    Example
    -------
    >>> frame_mask(torch.zeros(2, 3, 4, 5), torch.tensor([1.0, 0.5])).int().tolist()
    [[1, 1, 1, 1], [1, 1, 0, 0]]
    """
    return length_mask(lengths, x.shape[-2], x.shape[0], device=x.device)


class AttentiveStatisticsTemporalPooling(nn.Module):
    """ASTP: channel-wise attentive mean/std over time, then a 192-d embedding.

    Attention logits come from ``[x, mean_t x, std_t x]`` (global context,
    over valid frames only) through Linear(3C -> a) -> ReLU -> BN -> Linear(a -> C).
    In training whole frames are dropped from the softmax with probability
    ``frame_dropout``. Weighted mean and std (clamped at 1e-4 variance) are
    concatenated, batch-normalised and projected: Linear(2C -> E) -> BN.

    Arguments
    ---------
    input_size : int
        Channels C per frame.
    lin_neurons : int
        Embedding size E.
    attention_channels : int, optional
        Hidden width a of the attention MLP (default C // 2).
    frame_dropout : float
        Probability of removing a frame from the attention in training.

    Example
    -------
    >>> astp = AttentiveStatisticsTemporalPooling(input_size=16, lin_neurons=8)
    >>> astp(torch.randn(3, 20, 16), torch.tensor([1.0, 0.7, 0.4])).shape
    torch.Size([3, 1, 8])
    """

    def __init__(self, input_size: int, lin_neurons: int = 192, attention_channels: Optional[int] = None, frame_dropout: float = 0.1):
        super().__init__()
        att = attention_channels or max(1, input_size // 2)
        self.frame_dropout = frame_dropout
        self.att_in = nn.Linear(3 * input_size, att)
        self.att_norm = nn.BatchNorm1d(att)
        self.att_out = nn.Linear(att, input_size)
        self.stats_norm = nn.BatchNorm1d(2 * input_size)
        self.embed = nn.Linear(2 * input_size, lin_neurons)
        self.embed_norm = nn.BatchNorm1d(lin_neurons)

    def get_out_dim(self) -> int:
        """Embedding size."""
        return self.embed.out_features

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Pool frames ``[B, T, C]`` into embeddings ``[B, 1, E]``.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, T, C]``.
        lengths : torch.Tensor, optional
            Relative lengths ``[B]``.

        Returns
        -------
        torch.Tensor
            ``[B, 1, lin_neurons]``.
        """
        mask = frame_mask(x, lengths)  # B, T
        m = mask.unsqueeze(-1).to(x.dtype)
        x = x * m  # padding (even NaN-free huge values) never enters a sum
        n = m.sum(dim=1, keepdim=True)  # B, 1, 1
        mean = x.sum(dim=1, keepdim=True) / n
        var = (((x - mean) * m) ** 2).sum(dim=1, keepdim=True) / (n - 1).clamp(min=1)  # unbiased
        context = torch.cat([x, mean.expand_as(x), var.clamp(min=1e-8).sqrt().expand_as(x)], dim=-1)
        h = masked_batch_norm(self.att_norm, F.relu(self.att_in(context)), mask)
        logits = self.att_out(h)  # B, T, C
        keep = mask
        if self.training and self.frame_dropout > 0:
            keep = mask & (torch.rand(mask.shape, device=x.device) >= self.frame_dropout)
        # dropped frames get the dtype minimum (uniform if all are dropped), padding -inf
        logits = logits.masked_fill(~keep.unsqueeze(-1), torch.finfo(logits.dtype).min)
        alpha = torch.softmax(logits.masked_fill(~mask.unsqueeze(-1), float("-inf")), dim=1)
        mu = (alpha * x).sum(dim=1)
        sigma = ((alpha * x * x).sum(dim=1) - mu**2).clamp(min=1e-4).sqrt()
        stats = self.stats_norm(torch.cat([mu, sigma], dim=-1))  # B, 2C
        return self.embed_norm(self.embed(stats)).unsqueeze(1)
