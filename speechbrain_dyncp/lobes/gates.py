"""Per-frame binary channel gates for dynamic channel pruning (DynCP).

A gate looks at a block's input, smooths it over time with a moving average,
turns it into one raw score per prunable channel with a small point-wise conv
stack, and binarises the scores with a Heaviside step. The step has no useful
derivative, so the backward pass substitutes one (surrogate gradient or
straight-through estimator), as compared in the DynCP paper.

Authors
 * speechbrain-dyncp contributors
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BACKWARDS = ("surrogate", "ste", "ste_clipped")


class HeavisideFunction(torch.autograd.Function):
    """``1[s > 0]`` forward; a substitute derivative backward.

    ``mode`` is one of :data:`BACKWARDS`:

    * ``"surrogate"``: SuperSpike / fast-sigmoid derivative ``1 / (beta |s| + 1)^2``;
    * ``"ste"``: identity (plain straight-through);
    * ``"ste_clipped"``: identity where ``|s| <= 1``, zero elsewhere.
    """

    @staticmethod
    def forward(ctx, scores: Tensor, beta: float, mode: str) -> Tensor:
        """Binarise ``scores`` (strictly positive -> 1)."""
        ctx.save_for_backward(scores)
        ctx.beta, ctx.mode = beta, mode
        return (scores > 0).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        """Pass ``grad`` through the chosen substitute derivative."""
        (scores,) = ctx.saved_tensors
        if ctx.mode == "surrogate":
            grad = grad / (ctx.beta * scores.abs() + 1.0) ** 2
        elif ctx.mode == "ste_clipped":
            grad = grad * (scores.abs() <= 1.0).to(grad.dtype)
        return grad, None, None


def heaviside(scores: Tensor, beta: float = 5.0, mode: str = "surrogate") -> Tensor:
    """Binary step with a substitute gradient; see :class:`HeavisideFunction`.

    Arguments
    ---------
    scores : torch.Tensor
        Raw scores, any shape.
    beta : float
        Surrogate slope (only for ``mode="surrogate"``).
    mode : str
        One of ``"surrogate"``, ``"ste"``, ``"ste_clipped"``.

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``scores``, values in {0, 1}.

    Example
    -------
    >>> s = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    >>> g = heaviside(s, beta=1.0)
    >>> g
    tensor([0., 0., 1.], grad_fn=...)
    >>> g.sum().backward(); s.grad  # 1 / (|s| + 1)^2
    tensor([0.2500, 1.0000, 0.1111])
    """
    if mode not in BACKWARDS:
        raise ValueError(f"Unknown gate backward {mode!r}; choose from {BACKWARDS}.")
    if not (torch.is_grad_enabled() and scores.requires_grad):
        # No backward needed (inference, ONNX tracing): a plain comparison that
        # exporters understand, instead of the custom autograd Function.
        return (scores > 0).to(scores.dtype)
    return HeavisideFunction.apply(scores, float(beta), mode)


def moving_average(x: Tensor, window: int, causal: bool = True) -> Tensor:
    """Moving average over time of ``x`` ``[B, C, N]`` with zero padding.

    Causal: frame t averages frames ``t-K+1 .. t`` (frames before 0 count as
    zeros, the sum is always divided by K, which is what a zero-initialised
    streaming state gives). Non-causal: a centred window (K odd).

    Arguments
    ---------
    x : torch.Tensor
        ``[B, C, N]``; padded frames must already be zero.
    window : int
        K frames.
    causal : bool
        Causal (past only) or centred window.

    Returns
    -------
    torch.Tensor
        ``[B, C, N]``.

    Example
    -------
    >>> moving_average(torch.tensor([[[3.0, 3.0, 3.0]]]), 3)
    tensor([[[1., 2., 3.]]])
    """
    if window == 1:
        return x
    left = window - 1 if causal else window // 2
    x = F.pad(x, (left, window - 1 - left))
    return F.avg_pool1d(x, window, stride=1)


class ChannelGate(nn.Module):
    """DynCP gating module: moving average -> point-wise conv stack -> Heaviside.

    For input frames ``z_t`` (``C_in`` channels) it outputs ``g_t`` in
    {0, 1}^H, one bit per prunable channel, in training and in eval (binary
    forward always; only the backward pass is relaxed).

    Choices the DynCP paper leaves open (Miccini et al., ICASSP 2025), each a constructor
    argument here:

    * pooling window K and its causality (``window``, ``causal``): zero-padded
      moving average, past-only when causal, centred otherwise;
    * which tensor feeds the gate: the caller decides (``GatedTCN`` feeds the
      block input by default);
    * width and depth of the point-wise stack (``hidden`` r, ``n_layers``):
      ``n_layers`` 1x1 convs, ReLU between them, none after the last;
    * Heaviside threshold (``threshold``) and the initial bias of the last conv
      (``init_bias``; > 0 starts the network mostly dense, so pruning is
      learned from a working dense model);
    * backward (``backward``): ``"surrogate"`` = SuperSpike/fast-sigmoid
      derivative ``1 / (beta |s| + 1)^2`` with slope ``beta``, ``"ste"`` =
      identity, ``"ste_clipped"`` = identity on ``|s| <= 1``.

    Arguments
    ---------
    input_size : int
        Channels C_in of the gate input.
    n_channels : int
        Prunable channels H (one gate each).
    window : int
        Moving-average window K in frames.
    hidden : int
        Width r of the point-wise stack.
    n_layers : int
        Number of 1x1 convs in the stack (>= 1).
    causal : bool
        Past-only moving average.
    backward : str
        ``"surrogate"``, ``"ste"`` or ``"ste_clipped"``.
    beta : float
        Surrogate slope.
    threshold : float
        Gate is on where ``score > threshold``.
    init_bias : float
        Initial bias of the last conv.

    Example
    -------
    >>> gate = ChannelGate(16, 32, window=4, hidden=8)
    >>> g = gate(torch.randn(2, 50, 16))  # B, N, C_in
    >>> g.shape
    torch.Size([2, 50, 32])
    >>> bool(((g == 0) | (g == 1)).all())
    True
    """

    def __init__(
        self,
        input_size: int,
        n_channels: int,
        *,
        window: int = 4,
        hidden: int = 64,
        n_layers: int = 2,
        causal: bool = True,
        backward: str = "surrogate",
        beta: float = 5.0,
        threshold: float = 0.0,
        init_bias: float = 0.5,
    ):
        super().__init__()
        if backward not in BACKWARDS:
            raise ValueError(f"Unknown gate backward {backward!r}; choose from {BACKWARDS}.")
        if window < 1 or n_layers < 1:
            raise ValueError(f"ChannelGate needs window >= 1 and n_layers >= 1, got {window}, {n_layers}.")
        self.input_size, self.n_channels = input_size, n_channels
        self.window, self.hidden, self.causal = window, hidden, causal
        self.backward_mode, self.beta, self.threshold = backward, beta, threshold
        sizes = [input_size] + [hidden] * (n_layers - 1) + [n_channels]
        self.convs = nn.ModuleList(nn.Conv1d(a, b, 1) for a, b in zip(sizes[:-1], sizes[1:]))
        with torch.no_grad():
            self.convs[-1].bias.fill_(init_bias)

    def pw_stack(self, pooled: Tensor) -> Tensor:
        """Point-wise stack on pooled input ``[B, C_in, N]`` -> scores ``[B, H, N]``."""
        h = pooled
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i < len(self.convs) - 1:
                h = torch.relu(h)
        return h - self.threshold

    def scores(self, x: Tensor, frame_mask: Optional[Tensor] = None) -> Tensor:
        """Raw scores (gate on where > 0) for ``x`` ``[B, C_in, N]`` -> ``[B, H, N]``.

        ``frame_mask`` ``[B, N]`` (True = valid) zeroes padded frames before
        pooling, so padding never reaches a valid frame's gate.
        """
        if frame_mask is not None:
            x = x * frame_mask.unsqueeze(1).to(x.dtype)
        return self.pw_stack(moving_average(x, self.window, self.causal))

    def forward(self, x: Tensor, frame_mask: Optional[Tensor] = None) -> Tensor:
        """Binary gates for ``x`` ``[B, N, C_in]`` -> ``[B, N, H]`` in {0, 1}.

        Arguments
        ---------
        x : torch.Tensor
            Gate input ``[B, N, C_in]``.
        frame_mask : torch.Tensor, optional
            ``[B, N]`` bool, True on valid frames.

        Returns
        -------
        torch.Tensor
            ``[B, N, H]`` gates.
        """
        s = self.scores(x.transpose(1, 2), frame_mask)
        return heaviside(s, self.beta, self.backward_mode).transpose(1, 2)

    def gates_bcn(self, x: Tensor, frame_mask: Optional[Tensor] = None) -> Tensor:
        """Like :meth:`forward` on channel-first ``[B, C_in, N]`` -> ``[B, H, N]``."""
        return heaviside(self.scores(x, frame_mask), self.beta, self.backward_mode)


class StaticChannelGate(nn.Module):
    """One learned binary mask per block, the same for every frame (static channel pruning).

    The baseline DynCP has to beat (issue 15): the channel budget is learned with
    the same Heaviside step, substitute gradient and ratio loss as
    :class:`ChannelGate`, but the gate sees no input, so the pruned channel set
    is fixed after training. It costs nothing per frame (no pooling, no
    point-wise stack: the MAC counter reads ``window == 1`` and no convs), and a
    trained model is equivalent to a dense one with these channels removed.

    Arguments
    ---------
    input_size : int
        Channels of the block input (kept for the MAC counter's interface).
    n_channels : int
        Prunable channels H.
    backward : str
        ``"surrogate"``, ``"ste"`` or ``"ste_clipped"``.
    beta : float
        Surrogate slope.
    init_bias : float
        Initial score of every channel (> 0: start dense).

    Example
    -------
    >>> gate = StaticChannelGate(16, 4)
    >>> with torch.no_grad():
    ...     _ = gate.logits.copy_(torch.tensor([1.0, -1.0, 1.0, -1.0]))
    >>> g = gate(torch.randn(2, 5, 16))
    >>> g[0, :, 1].sum().item(), g[1, 3].tolist()  # channel 1 off everywhere, same mask per frame
    (0.0, [1.0, 0.0, 1.0, 0.0])
    """

    def __init__(self, input_size: int, n_channels: int, *, backward: str = "surrogate",
                 beta: float = 5.0, init_bias: float = 0.5):
        super().__init__()
        if backward not in BACKWARDS:
            raise ValueError(f"Unknown gate backward {backward!r}; choose from {BACKWARDS}.")
        self.input_size, self.n_channels = input_size, n_channels
        self.window, self.hidden, self.causal = 1, 0, True
        self.backward_mode, self.beta, self.threshold = backward, beta, 0.0
        self.convs = nn.ModuleList()  # no per-frame stack: zero gate MACs
        self.logits = nn.Parameter(torch.full((n_channels,), float(init_bias)))

    def scores(self, x: Tensor, frame_mask: Optional[Tensor] = None) -> Tensor:
        """The learned scores broadcast to ``[B, H, N]`` for ``x`` ``[B, C_in, N]``."""
        return self.logits.view(1, -1, 1).expand(x.shape[0], -1, x.shape[2])

    def forward(self, x: Tensor, frame_mask: Optional[Tensor] = None) -> Tensor:
        """Binary gates ``[B, N, H]`` for ``x`` ``[B, N, C_in]`` (same mask on every frame)."""
        return self.gates_bcn(x.transpose(1, 2), frame_mask).transpose(1, 2)

    def gates_bcn(self, x: Tensor, frame_mask: Optional[Tensor] = None) -> Tensor:
        """Like :meth:`forward` on channel-first ``[B, C_in, N]`` -> ``[B, H, N]``."""
        return heaviside(self.scores(x, frame_mask), self.beta, self.backward_mode)
