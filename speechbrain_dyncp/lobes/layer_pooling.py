"""Pooling over the layers of an SSL model: LAP and the SUPERB weighted sum.

Layer Attentive Pooling (LAP; Kim et al., Interspeech 2025) scores every layer
of a pre-trained speech model per frame and per head, re-weights the layers
and max-pools across them; attentive statistics temporal pooling (ASTP,
:mod:`speechbrain_dyncp.lobes.temporal_pooling`) then turns the frames into a
speaker embedding. The SUPERB weighted sum (one softmax weight per layer for
the whole corpus) is the baseline, behind the same interface, so either can
feed ASTP or SpeechBrain's ``ECAPA_TDNN``.

A layer pooling is any module built as ``cls(n_layers=L, input_size=D, **kwargs)``
with ``forward(hidden_states [B, L, T, D], lengths) -> [B, T, C]`` and
``get_out_dim() -> C`` (``layer_scores`` for the plots is optional). Adding one
is that class plus an entry under ``poolings:`` in the recipe's YAML
(``hparams/VoxCeleb/train_lap.yaml``); no recipe code names a pooling.

Conventions (SpeechBrain): hidden states ``[B, L, T, D]`` (batch, layers,
frames, channels; SpeechBrain's SSL wrappers return ``[L, B, T, D]``, see
:func:`to_batch_first`), relative ``lengths`` ``[B]``, frame outputs
``[B, T, D_out]``, embeddings ``[B, 1, E]``. Padding never changes a result:
padded frames are left out of every statistic (BatchNorm included, in
training) and are zero in the output. The paper's 1x1 convolutions are
written as ``nn.Linear`` on channel-last tensors (the same maps).

Authors
 * speechbrain-dyncp contributors
"""

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from speechbrain_dyncp.lobes.temporal_pooling import frame_mask, masked_batch_norm


def to_batch_first(hidden_states: Union[torch.Tensor, Sequence[torch.Tensor]]) -> torch.Tensor:
    """Stack SSL hidden states into the ``[B, L, T, D]`` layout of this module.

    Arguments
    ---------
    hidden_states : torch.Tensor or sequence of torch.Tensor
        SpeechBrain's ``output_all_hiddens`` stack ``[L, B, T, D]`` or a list
        of L tensors ``[B, T, D]`` (HF ``outputs.hidden_states``).

    Returns
    -------
    torch.Tensor
        ``[B, L, T, D]``.

    Example
    -------
    >>> to_batch_first(torch.zeros(13, 2, 50, 8)).shape
    torch.Size([2, 13, 50, 8])
    >>> to_batch_first([torch.zeros(2, 50, 8)] * 3).shape
    torch.Size([2, 3, 50, 8])
    """
    if isinstance(hidden_states, (list, tuple)):
        return torch.stack(list(hidden_states), dim=1)
    if hidden_states.ndim != 4:
        raise ValueError(
            f"Expected hidden states [L, B, T, D], got {tuple(hidden_states.shape)}"
        )
    return hidden_states.transpose(0, 1)


class LayerAttentivePooling(nn.Module):
    """Layer Attentive Pooling (LAP): time-dynamic, per-head layer scores + max.

    For every frame: BatchNorm over D (statistics over batch, frames and
    layers), a 1x1 mix D->D shared across layers, a split into ``n_heads``
    heads of ``d = D / n_heads`` channels, per head and layer the mean and the
    max over the d channels, a per-head squeeze-excitation MLP over the layer
    axis (L -> L//2 -> L, ReLU) shared by both statistics, a sigmoid of their
    sum as layer scores, dropout on the scores, re-weighting, max over layers,
    then a 1x1 projection D -> ``out_channels`` and BatchNorm (no activation).

    Arguments
    ---------
    n_layers : int
        Number of hidden states L (transformer layers + 1), at least 2.
    input_size : int
        Channels D of each hidden state; divisible by ``n_heads``.
    out_channels : int
        Output width (512 in the paper).
    n_heads : int
        Heads h (16 in the paper); 1 disables the input mix.
    dropout : float
        Dropout on the layer scores.

    Example
    -------
    >>> lap = LayerAttentivePooling(n_layers=5, input_size=32, out_channels=24, n_heads=4)
    >>> hs = torch.randn(2, 5, 40, 32)  # B, L, T, D
    >>> lap(hs, torch.tensor([1.0, 0.5])).shape, lap.get_out_dim()
    (torch.Size([2, 40, 24]), 24)
    >>> s = lap.eval().layer_scores(hs)  # B, T, heads, L
    >>> s.shape, bool(((s > 0) & (s < 1)).all())
    (torch.Size([2, 40, 4, 5]), True)
    """

    def __init__(self, n_layers: int, input_size: int, out_channels: int = 512, n_heads: int = 16, dropout: float = 0.1):
        super().__init__()
        if n_layers < 2:
            raise ValueError(f"LAP needs at least 2 layers to score, got n_layers={n_layers}")
        if input_size % n_heads:
            raise ValueError(
                f"input_size={input_size} must be divisible by n_heads={n_heads} (each head takes D/h channels)"
            )
        self.n_layers, self.n_heads, self.out_channels = n_layers, n_heads, out_channels
        hid = n_layers // 2
        self.in_norm = nn.BatchNorm1d(input_size)  # the paper's BatchNorm2d over D
        self.in_mix = nn.Linear(input_size, input_size) if n_heads > 1 else nn.Identity()
        self.sq_weight = nn.Parameter(torch.empty(n_heads, n_layers, hid))
        self.sq_bias = nn.Parameter(torch.zeros(n_heads, 1, hid))
        self.ex_weight = nn.Parameter(torch.empty(n_heads, hid, n_layers))
        self.ex_bias = nn.Parameter(torch.zeros(n_heads, 1, n_layers))
        self.score_dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(input_size, out_channels)
        self.out_norm = nn.BatchNorm1d(out_channels)
        self.reset_parameters()

    def reset_parameters(self):
        """Xavier-uniform on every weight of 2+ dims (the 3-D SE weights too), zero biases."""
        for name, p in self.named_parameters():
            if "weight" in name and p.ndim >= 2:
                nn.init.xavier_uniform_(p)
            elif "bias" in name:
                nn.init.zeros_(p)

    def get_out_dim(self) -> int:
        """Output channels per frame."""
        return self.out_channels

    def _squeeze_excite(self, z: torch.Tensor) -> torch.Tensor:
        """Per-head MLP over the layer axis: ``[B, T, h, L] -> [B, T, h, L]``."""
        z = F.relu(torch.einsum("bthl,hlk->bthk", z, self.sq_weight) + self.sq_bias.squeeze(1))
        return torch.einsum("bthk,hkl->bthl", z, self.ex_weight) + self.ex_bias.squeeze(1)

    def _heads(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Normalise, mix and split: ``[B, L, T, D] -> [B, T, h, d, L]``."""
        B, L, T, D = hidden_states.shape
        if L != self.n_layers:
            raise ValueError(f"LAP was built for {self.n_layers} layers, got {L} (is LayerDrop off?)")
        x = hidden_states.masked_fill(~mask[:, None, :, None], 0.0)  # padding never leaks (NaN/inf)
        x = self.in_mix(masked_batch_norm(self.in_norm, x, mask[:, None, :]))
        return x.permute(0, 2, 3, 1).reshape(B, T, self.n_heads, D // self.n_heads, L)

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        """Layer scores in (0, 1) from the per-head mean and max: ``[B, T, h, L]``."""
        return torch.sigmoid(self._squeeze_excite(x.mean(dim=3)) + self._squeeze_excite(x.amax(dim=3)))

    def forward(self, hidden_states: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Pool the layers of every frame.

        Arguments
        ---------
        hidden_states : torch.Tensor
            ``[B, L, T, D]``.
        lengths : torch.Tensor, optional
            Relative lengths ``[B]``.

        Returns
        -------
        torch.Tensor
            ``[B, T, out_channels]``, zero on padded frames.
        """
        mask = frame_mask(hidden_states, lengths)
        x = self._heads(hidden_states, mask)  # B, T, h, d, L
        s = self.score_dropout(self._scores(x))  # B, T, h, L
        y = (x * s.unsqueeze(3)).amax(dim=-1)  # re-weight THEN max over layers
        y = self.out_proj(y.flatten(2))  # B, T, D_out
        return masked_batch_norm(self.out_norm, y, mask)

    @torch.no_grad()
    def layer_scores(self, hidden_states: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-frame, per-head layer scores (before dropout), for analysis plots.

        Arguments
        ---------
        hidden_states : torch.Tensor
            ``[B, L, T, D]``.
        lengths : torch.Tensor, optional
            Relative lengths ``[B]``.

        Returns
        -------
        torch.Tensor
            ``[B, T, n_heads, L]`` in (0, 1); zero on padded frames.
        """
        mask = frame_mask(hidden_states, lengths)
        s = self._scores(self._heads(hidden_states, mask))
        return s * mask[:, :, None, None]


class WeightedSumLayerPooling(nn.Module):
    """SUPERB baseline: one softmax weight per layer, shared by all frames.

    Arguments
    ---------
    n_layers : int
        Number of hidden states L.
    input_size : int
        Channels D (also the output width).

    Example
    -------
    >>> pool = WeightedSumLayerPooling(n_layers=3, input_size=8)
    >>> hs = torch.randn(2, 3, 10, 8)
    >>> torch.allclose(pool(hs), hs.mean(dim=1))  # logits start equal
    True
    >>> pool.layer_scores(hs).shape
    torch.Size([2, 10, 1, 3])
    """

    def __init__(self, n_layers: int, input_size: int):
        super().__init__()
        self.n_layers, self.out_channels = n_layers, input_size
        self.layer_logits = nn.Parameter(torch.full((n_layers,), 1.0 / n_layers))

    def get_out_dim(self) -> int:
        """Output channels per frame."""
        return self.out_channels

    def forward(self, hidden_states: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Weighted sum over layers: ``[B, L, T, D] -> [B, T, D]``, zero on padded frames.

        Arguments
        ---------
        hidden_states : torch.Tensor
            ``[B, L, T, D]``.
        lengths : torch.Tensor, optional
            Relative lengths ``[B]``.

        Returns
        -------
        torch.Tensor
            ``[B, T, D]``.
        """
        if hidden_states.shape[1] != self.n_layers:
            raise ValueError(f"Built for {self.n_layers} layers, got {hidden_states.shape[1]} (is LayerDrop off?)")
        mask = frame_mask(hidden_states, lengths)
        x = hidden_states.masked_fill(~mask[:, None, :, None], 0.0)
        return torch.einsum("bltd,l->btd", x, torch.softmax(self.layer_logits, dim=0))

    @torch.no_grad()
    def layer_scores(self, hidden_states: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The (static) layer weights broadcast to ``[B, T, 1, L]``, zero on padded frames.

        Arguments
        ---------
        hidden_states : torch.Tensor
            ``[B, L, T, D]``.
        lengths : torch.Tensor, optional
            Relative lengths ``[B]``.

        Returns
        -------
        torch.Tensor
            ``[B, T, 1, L]``.
        """
        B, L, T, _ = hidden_states.shape
        mask = frame_mask(hidden_states, lengths)
        w = torch.softmax(self.layer_logits, dim=0).expand(B, T, 1, L)
        return w * mask[:, :, None, None]
