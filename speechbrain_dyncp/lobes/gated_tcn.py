"""Conv-TasNet-style TCN whose hidden channels are gated per frame (DynCP).

Block (residual width B, hidden width H, kernel P, dilation d)::

    u = g * Norm(PReLU(W1 x + b1))        1x1 conv B -> H
    v = g * Norm(PReLU(DWConv_d(u)))      depthwise, dilated, no bias
    y = x + W2 v                          1x1 conv H -> B, no bias

``g`` (``[B, H, N]``, binary) comes from a :class:`ChannelGate`. It is applied
after the first norm *and* after the second, so a channel gated off at frame t
needs neither its W1 row, nor its depthwise taps, nor its W2 column at t, and
contributes a zero to the depthwise history of later frames (exactly what
"not computed" means at inference). Training multiplies; inference may skip
(``speechbrain_dyncp.streaming``), with identical results.

Norm: :class:`MaskedBatchNorm1d`, batch norm whose batch statistics use only
valid frames. It is a per-channel affine at inference: causal, streamable,
padding invariant, and (unlike a channel LayerNorm or Conv-TasNet's gLN/cLN)
it mixes no channels, so pruned channels never influence active ones, which
is what makes skipping them exact. (The co-author's deployment variant of
Conv-FSENet also uses BatchNorm.)

Padding: hidden activations of padded frames are zeroed before the depthwise
conv and gate inputs of padded frames before pooling, so valid frames get the
same result as without padding, in causal *and* non-causal mode.

Authors
 * speechbrain-dyncp contributors
"""

from typing import List, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechbrain_dyncp.lobes.gates import ChannelGate, StaticChannelGate

GATE_INPUTS = ("block", "features", "static")


class TCNOutput(NamedTuple):
    """Output of :class:`GatedTCN`."""

    out: Tensor  # B, N, C (residual stream after the last block)
    gates: Tensor  # B, L, N, H in {0, 1}; all ones when not gated


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over ``[B, C, N]`` whose training statistics skip padded frames.

    Example
    -------
    >>> bn = MaskedBatchNorm1d(3)
    >>> x = torch.randn(2, 3, 5)
    >>> mask = torch.tensor([[1.0] * 5, [1.0] * 3 + [0.0] * 2]).unsqueeze(1)
    >>> padded = x.clone(); padded[1, :, 3:] = 1e4
    >>> torch.allclose(bn(x, mask)[..., :3], bn(padded, mask)[..., :3])
    True
    """

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Normalise ``x`` ``[B, C, N]``; ``mask`` ``[B, 1, N]`` (1 = valid)."""
        if not self.training or mask is None:
            return super().forward(x)
        n = mask.sum().clamp(min=2.0)
        mean = (x * mask).sum((0, 2)) / n
        var = (((x - mean[:, None]) ** 2) * mask).sum((0, 2)) / n
        if self.track_running_stats:
            with torch.no_grad():
                m = self.momentum
                self.running_mean.mul_(1 - m).add_(m * mean)
                self.running_var.mul_(1 - m).add_(m * var * n / (n - 1))
                self.num_batches_tracked += 1
        x = (x - mean[:, None]) / torch.sqrt(var[:, None] + self.eps)
        return x * self.weight[:, None] + self.bias[:, None]

    def affine(self):
        """Eval-mode ``(scale, shift)`` per channel: ``Norm(x) = scale * x + shift``."""
        scale = self.weight / torch.sqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale


class TCNBlock(nn.Module):
    """One dilated depthwise-separable residual block with gated hidden channels.

    Arguments
    ---------
    channels : int
        Residual width B.
    hidden : int
        Hidden (prunable) width H.
    kernel_size : int
        Depthwise kernel P (odd when non-causal).
    dilation : int
        Depthwise dilation d.
    causal : bool
        Left-only padding of the depthwise conv.
    dropout : float
        Dropout after each PReLU (rate unknown in the paper; default 0).

    Example
    -------
    >>> blk = TCNBlock(8, 16, dilation=2).eval()
    >>> x = torch.randn(1, 8, 20)
    >>> y = blk(x, torch.ones(1, 16, 20), torch.ones(1, 1, 20))
    >>> torch.allclose(y[..., :10], blk(x[..., :10], torch.ones(1, 16, 10), torch.ones(1, 1, 10)))
    True
    """

    def __init__(self, channels: int, hidden: int, kernel_size: int = 3, dilation: int = 1,
                 causal: bool = True, dropout: float = 0.0):
        super().__init__()
        if not causal and kernel_size % 2 == 0:
            raise ValueError(f"Non-causal TCNBlock needs an odd kernel_size, got {kernel_size}.")
        self.kernel_size, self.dilation, self.causal = kernel_size, dilation, causal
        self.in_conv = nn.Conv1d(channels, hidden, 1)
        self.act1 = nn.PReLU()
        self.norm1 = MaskedBatchNorm1d(hidden)
        self.dw_conv = nn.Conv1d(hidden, hidden, kernel_size, dilation=dilation, groups=hidden, bias=False)
        self.act2 = nn.PReLU()
        self.norm2 = MaskedBatchNorm1d(hidden)
        self.out_conv = nn.Conv1d(hidden, channels, 1, bias=False)
        self.drop = nn.Dropout(dropout)

    @property
    def history(self) -> int:
        """Past frames the depthwise conv reads: ``(P - 1) * d``."""
        return (self.kernel_size - 1) * self.dilation

    def forward(self, x: Tensor, keep: Tensor, mask: Tensor) -> Tensor:
        """``x`` ``[B, C, N]``, ``keep`` = gates * frame mask ``[B, H, N]``, ``mask`` ``[B, 1, N]``."""
        u = self.norm1(self.drop(self.act1(self.in_conv(x))), mask) * keep
        pad = self.history
        u = F.pad(u, (pad, 0) if self.causal else (pad // 2, pad // 2))
        v = self.norm2(self.drop(self.act2(self.dw_conv(u))), mask) * keep
        return x + self.out_conv(v)


class GatedTCN(nn.Module):
    """Stacks of :class:`TCNBlock` (dilations 1, 2, 4, ...) with DynCP gates.

    Arguments
    ---------
    channels : int
        Residual width B.
    hidden : int
        Hidden width H (the gated channels).
    kernel_size : int
        Depthwise kernel P.
    n_stacks : int
        Stacks; each restarts the dilation at 1.
    n_blocks : int
        Blocks per stack; block i has dilation 2**i.
    causal : bool
        Causal depthwise convs and gate pooling.
    gated : bool
        False gives the dense baseline (no gate modules; gates all ones).
    gate_input : str
        ``"block"``: each gate sees its block input (default, as in the DynCP paper);
        ``"features"``: every gate sees the TCN input (all gates computable up
        front); ``"static"``: one learned mask per block for all frames
        (:class:`StaticChannelGate`, the static-pruning baseline; no gate MACs).
    gate_window, gate_hidden, gate_layers, gate_backward, gate_beta, gate_threshold, gate_init_bias
        Passed to :class:`ChannelGate` (``window``, ``hidden``, ``n_layers``,
        ``backward``, ``beta``, ``threshold``, ``init_bias``).
    dropout : float
        Dropout rate in the blocks.

    Example
    -------
    >>> tcn = GatedTCN(16, 32, n_stacks=1, n_blocks=3, gate_hidden=8)
    >>> out = tcn(torch.randn(2, 40, 16))
    >>> out.out.shape, out.gates.shape
    (torch.Size([2, 40, 16]), torch.Size([2, 3, 40, 32]))
    >>> bool(((out.gates == 0) | (out.gates == 1)).all())
    True
    """

    def __init__(
        self,
        channels: int = 128,
        hidden: int = 256,
        *,
        kernel_size: int = 3,
        n_stacks: int = 3,
        n_blocks: int = 3,
        causal: bool = True,
        gated: bool = True,
        gate_input: str = "block",
        gate_window: int = 4,
        gate_hidden: int = 64,
        gate_layers: int = 2,
        gate_backward: str = "surrogate",
        gate_beta: float = 5.0,
        gate_threshold: float = 0.0,
        gate_init_bias: float = 0.5,
        dropout: float = 0.0,
    ):
        super().__init__()
        if gate_input not in GATE_INPUTS:
            raise ValueError(f"Unknown gate_input {gate_input!r}; choose from {GATE_INPUTS}.")
        self.channels, self.hidden, self.kernel_size = channels, hidden, kernel_size
        self.causal, self.gated, self.gate_input = causal, gated, gate_input
        dilations = [2**i for _ in range(n_stacks) for i in range(n_blocks)]
        self.blocks = nn.ModuleList(
            TCNBlock(channels, hidden, kernel_size, d, causal, dropout) for d in dilations
        )
        self.gates = nn.ModuleList()
        if gated and gate_input == "static":
            self.gates.extend(StaticChannelGate(channels, hidden, backward=gate_backward, beta=gate_beta,
                                                init_bias=gate_init_bias) for _ in dilations)
        elif gated:
            self.gates.extend(
                ChannelGate(channels, hidden, window=gate_window, hidden=gate_hidden,
                            n_layers=gate_layers, causal=causal, backward=gate_backward,
                            beta=gate_beta, threshold=gate_threshold, init_bias=gate_init_bias)
                for _ in dilations
            )

    @property
    def n_gated(self) -> int:
        """L, the number of gated blocks."""
        return len(self.blocks)

    def forward(self, x: Tensor, frame_mask: Optional[Tensor] = None) -> TCNOutput:
        """Run the blocks on ``x`` ``[B, N, C]``; ``frame_mask`` ``[B, N]`` bool (True = valid).

        Arguments
        ---------
        x : torch.Tensor
            ``[B, N, C]`` features (C = residual width).
        frame_mask : torch.Tensor, optional
            Valid frames; None = all valid.

        Returns
        -------
        TCNOutput
            ``out`` ``[B, N, C]`` and ``gates`` ``[B, L, N, H]``.
        """
        if x.ndim != 3 or x.shape[-1] != self.channels:
            raise ValueError(f"GatedTCN expects [batch, frames, {self.channels}], got {tuple(x.shape)}.")
        b, n, _ = x.shape
        if frame_mask is None:
            frame_mask = torch.ones(b, n, dtype=torch.bool, device=x.device)
        mask = frame_mask.unsqueeze(1).to(x.dtype)  # B, 1, N
        h = x.transpose(1, 2)  # B, C, N
        feats = h
        gates: List[Tensor] = []
        for i, block in enumerate(self.blocks):
            if self.gated:
                src = feats if self.gate_input == "features" else h
                g = self.gates[i].gates_bcn(src, frame_mask)  # B, H, N
            else:
                g = torch.ones(b, self.hidden, n, dtype=x.dtype, device=x.device)
            gates.append(g)
            h = block(h, g * mask, mask)
        return TCNOutput(h.transpose(1, 2), torch.stack(gates, 1).transpose(2, 3))
