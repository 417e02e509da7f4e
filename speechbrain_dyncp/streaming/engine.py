"""Causal frame-in / frame-out streaming for :class:`DynCPEnhancer`, skipping pruned channels.

Use::

    ctx = model.make_streaming_context(batch_size=1)
    for chunk in chunks:                      # any size in samples, [B, S]
        out = model.forward_streaming(chunk, ctx)   # [B, S]
    tail = model.finish_streaming(ctx)        # [B, latency]

Alignment and latency are those of :class:`~speechbrain_dyncp.streaming.framing.OverlapAdd`
(the framer every streaming path shares): the output is the offline causal
output delayed by ``ctx.latency = n_fft - 1`` samples, and ``finish_streaming``
zero-pads the end like the offline centred STFT. Binary gates make
"float tolerance" two-sided: in float32 a gate score within rounding of its
threshold can flip between two implementations and change a few frames
(bench_dyncp.py reports the fraction; tests use float64, where they agree to
1e-10).

Skipping: for each group of ``ctx.group_frames`` frames (1 = per frame) and
each block, only the hidden channels whose gate is on somewhere in the group
are computed: their W1 rows, depthwise taps and W2 columns are gathered with
``index_select``; the other channels' weights are never read or multiplied.
With ``skip_pruned=False`` every channel is computed and multiplied by its
gate (the dense-masked reference). ``ctx.macs`` counts the MACs actually
executed, with the conventions of :mod:`speechbrain_dyncp.efficiency.macs`.

Weights are snapshotted (eval mode: norms as per-channel affines) when the
context is made; later weight changes need a new context.

Authors
 * speechbrain-dyncp contributors
"""

from dataclasses import dataclass, field
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from speechbrain_dyncp.streaming.framing import Framed, OverlapAdd


@dataclass
class BlockPlan:
    """Eval-mode constants of one gated block (gathered from at run time)."""

    w1: Tensor  # H, C   (rows gathered)
    b1: Tensor  # H
    a1: Tensor  # PReLU slope (1)
    s1: Tensor  # H, norm1 scale
    t1: Tensor  # H, norm1 shift
    dw: Tensor  # H, 1, P depthwise taps
    a2: Tensor
    s2: Tensor
    t2: Tensor
    w2t: Tensor  # H, C   (W2 transposed, so its columns are contiguous rows)
    dilation: int
    gate_w: List[Tensor]  # PW stack weights [out, in] (empty when not gated)
    gate_b: List[Tensor]
    window: int = 1
    threshold: float = 0.0


@dataclass
class BlockState:
    """Per-block recurrent state."""

    dw_hist: Tensor
    """[B, H, (P-1)*d]: the last gated, normalised hidden frames (zeros at start)."""
    gate_hist: Tensor
    """[B, C_in, K-1]: the last gate inputs for the moving average (zeros at start)."""


@dataclass
class StreamingContext(Framed):
    """Mutable state carried across :meth:`DynCPEnhancer.forward_streaming` calls."""

    blocks: List[BlockState]
    plans: List[BlockPlan]
    ola: OverlapAdd
    """Input buffer, framing and overlap-add ([B, S] tensors)."""
    group_frames: int = 1
    """Frames processed together; channels are gathered per group (union of its gates)."""
    skip_pruned: bool = True
    macs: int = 0
    """MACs executed so far (front, back, gates, gathered channels)."""
    finished: bool = False
    gates: List[Tensor] = field(default_factory=list)
    """When ``keep_gates``: per group, [B, L, F, H] gates (for checks / probes)."""
    keep_gates: bool = False
    masked_spectra: List[Tensor] = field(default_factory=list)
    """When ``keep_gates``: per group, the spectrum masked with the model's constant floor [B, bins, F] (the register)."""
    pause_credit: Optional[Tensor] = None
    """With a pause floor: [B] frames of speech left (``PauseFloor.stream_floors``' state)."""
    pause_window: Optional[Tensor] = None
    """With a low-SNR floor: [B, 3, window] the last frames' energies (``PauseFloor.initial_window``)."""


def _affine(bn):
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale.detach().clone(), (bn.bias - bn.running_mean * scale).detach().clone()


def block_plans(model) -> List[BlockPlan]:
    """Eval-mode constants of every block of ``model`` (norms folded to per-channel affines)."""
    tcn, plans = model.tcn, []
    if tcn.gated and tcn.gate_input == "static":
        # a static mask is a narrowed dense model: nothing to gate per frame
        raise ValueError("A static-mask model (gate_input='static', the static-pruning baseline) has no "
                         "streaming path; run it offline.")
    for i, blk in enumerate(tcn.blocks):
        s1, t1 = _affine(blk.norm1)
        s2, t2 = _affine(blk.norm2)
        gw, gb, window, thr = [], [], 1, 0.0
        if tcn.gated:
            gate = tcn.gates[i]
            gw = [c.weight.detach()[..., 0].clone() for c in gate.convs]
            gb = [c.bias.detach().clone() for c in gate.convs]
            window, thr = gate.window, gate.threshold
        plans.append(BlockPlan(
            w1=blk.in_conv.weight.detach()[..., 0].contiguous(), b1=blk.in_conv.bias.detach().clone(),
            a1=blk.act1.weight.detach().clone(), s1=s1, t1=t1, dw=blk.dw_conv.weight.detach().clone(),
            a2=blk.act2.weight.detach().clone(), s2=s2, t2=t2,
            w2t=blk.out_conv.weight.detach()[..., 0].t().contiguous(), dilation=blk.dilation,
            gate_w=gw, gate_b=gb, window=window, threshold=thr,
        ))
    return plans


def make_context(model, batch_size: int = 1, group_frames: int = 1, skip_pruned: bool = True,
                 keep_gates: bool = False) -> StreamingContext:
    """Fresh streaming state for ``model`` (causal, eval mode); see module docstring."""
    if not model.causal:
        raise ValueError("Streaming needs a causal model (DynCPEnhancer(causal=True)).")
    if model.training:
        raise ValueError("Streaming uses eval-mode norms; call model.eval() first.")
    if group_frames < 1:
        raise ValueError(f"group_frames must be >= 1, got {group_frames}.")
    tcn, w = model.tcn, model.window
    kw = dict(dtype=w.dtype, device=w.device)
    blocks = [
        BlockState(torch.zeros(batch_size, tcn.hidden, blk.history, **kw),
                   torch.zeros(batch_size, tcn.channels, (tcn.gates[i].window - 1) if tcn.gated else 0, **kw))
        for i, blk in enumerate(tcn.blocks)
    ]
    return StreamingContext(
        blocks=blocks, plans=block_plans(model), ola=OverlapAdd(w, model.hop_length, (batch_size,)),
        group_frames=group_frames, skip_pruned=skip_pruned, keep_gates=keep_gates,
        pause_credit=None if model.pause_floor is None else torch.zeros(batch_size, **kw),
        pause_window=None if model.pause_floor is None else model.pause_floor.initial_window(batch_size, w.device),
    )


def step_gate(plan: BlockPlan, st: BlockState, src: Tensor) -> Tensor:
    """Binary gates [B, H, F] from gate input ``src`` [B, C, F]; updates the pooling state."""
    if plan.window > 1:
        seq = torch.cat([st.gate_hist, src], -1)
        st.gate_hist = seq[..., seq.shape[-1] - plan.window + 1:]
        src = F.avg_pool1d(seq, plan.window, stride=1)
    h = src
    for j, (w, b) in enumerate(zip(plan.gate_w, plan.gate_b)):
        h = torch.matmul(w, h) + b[:, None]
        if j < len(plan.gate_w) - 1:
            h = torch.relu(h)
    return (h - plan.threshold > 0).to(src.dtype)


def step_block(plan: BlockPlan, st: BlockState, x: Tensor, g: Optional[Tensor], skip: bool):
    """One block on x [B, C, F]; returns (y, channels computed)."""
    n_frames, hidden = x.shape[-1], plan.w1.shape[0]
    if g is not None and skip:
        idx = g.amax((0, 2)).nonzero().squeeze(1)  # channels on anywhere in the group
        g = g.index_select(1, idx)
        w1, b1, s1, t1 = (p.index_select(0, idx) for p in (plan.w1, plan.b1, plan.s1, plan.t1))
        dw, s2, t2, w2t = (p.index_select(0, idx) for p in (plan.dw, plan.s2, plan.t2, plan.w2t))
        hist = st.dw_hist.index_select(1, idx)
    else:
        idx = None
        w1, b1, s1, t1, dw, s2, t2, w2t = (plan.w1, plan.b1, plan.s1, plan.t1, plan.dw, plan.s2, plan.t2,
                                           plan.w2t)
        hist = st.dw_hist
    n_act = w1.shape[0]
    if n_act == 0:  # the whole block is pruned for this group: identity, zeros into the history
        st.dw_hist = F.pad(st.dw_hist, (0, n_frames))[..., n_frames:]
        return x, 0
    u = F.prelu(torch.matmul(w1, x) + b1[:, None], plan.a1) * s1[:, None] + t1[:, None]
    if g is not None:
        u = u * g
    seq = torch.cat([hist, u], -1)
    v = F.conv1d(seq, dw, dilation=plan.dilation, groups=n_act)
    v = F.prelu(v, plan.a2) * s2[:, None] + t2[:, None]
    if g is not None:
        v = v * g
    if idx is None:
        full = seq
    else:  # channels skipped in this group contribute zeros to the history
        full = torch.cat([st.dw_hist, u.new_zeros(u.shape[0], hidden, n_frames).index_copy_(1, idx, u)], -1)
    st.dw_hist = full[..., full.shape[-1] - st.dw_hist.shape[-1]:]
    return x + torch.matmul(w2t.t(), v), n_act


def _frames(model, ctx: StreamingContext, frames: Tensor) -> Tensor:
    """Process time frames [B, n_fft, F]; returns windowed output frames [B, n_fft, F]."""
    tcn, n = model.tcn, frames.shape[-1]
    spec = torch.fft.rfft(frames * model.window[:, None], dim=1)  # B, bins, F
    feats = model.features(spec).transpose(1, 2)  # B, bins, F
    x = torch.relu(torch.matmul(model.front.weight, feats) + model.front.bias[:, None])  # B, C, F
    src0, gates = x, []
    per_ch = 2 * tcn.channels + tcn.kernel_size
    macs = model.front.weight.numel() + model.back.weight.numel()
    for plan, st, gate in zip(ctx.plans, ctx.blocks, tcn.gates if tcn.gated else [None] * tcn.n_gated):
        g = None
        if gate is not None:
            g = step_gate(plan, st, src0 if tcn.gate_input == "features" else x)
            macs += (2 * tcn.channels if plan.window > 1 else 0) + sum(w.numel() for w in plan.gate_w)
            if ctx.keep_gates or ctx.pause_credit is not None:
                gates.append(g)
        x, n_act = step_block(plan, st, x, g, ctx.skip_pruned)
        macs += n_act * per_ch
    ctx.macs += macs * n
    floor = None
    logits = torch.matmul(model.back.weight, x) + model.back.bias[:, None]  # B, bins, F
    if gates:
        gates = torch.stack(gates, 1).transpose(2, 3)  # B, L, F, H
        if ctx.keep_gates:
            ctx.gates.append(gates)
        if ctx.pause_credit is not None:  # the pause floor (lobes/pause_floor.py), frame by frame
            energies = None
            if ctx.pause_window is not None:  # its low-SNR part: the frames' kept / removed energies
                energies = model.pause_floor.frame_energies(logits.transpose(1, 2), feats.transpose(1, 2),
                                                            model.power_exponent)
            floor, ctx.pause_credit, ctx.pause_window = model.pause_floor.stream_floors(
                gates, ctx.pause_credit, model.mask_floor, energies, ctx.pause_window)
            floor = floor.unsqueeze(1)  # B, 1, F
    mask = model.mask_from_logits(logits, floor)  # B, bins, F
    masked = spec * mask
    if ctx.keep_gates:  # for the register read-out: the model's own floor (probes.mask_register.constant_floor_mask)
        ctx.masked_spectra.append(masked if floor is None else spec * model.mask_from_logits(logits))
    return torch.fft.irfft(masked, n=model.n_fft, dim=1) * model.window[:, None]


def _run(model, ctx: StreamingContext) -> None:
    """Compute every complete input frame, in groups of ``ctx.group_frames``."""
    frames = ctx.ola.frames()  # B, F, n_fft
    if not frames.shape[1]:
        return
    for group in frames.split(ctx.group_frames, dim=1):
        out = _frames(model, ctx, group.transpose(1, 2))  # B, n_fft, G
        for k in range(out.shape[-1]):
            ctx.ola.add(out[..., k])


@torch.no_grad()
def forward_streaming(model, chunk: Tensor, ctx: StreamingContext) -> Tensor:
    """Feed ``chunk`` ``[B, S]`` (any S >= 0); return ``[B, S]`` output delayed by ``ctx.latency``."""
    if ctx.finished:
        raise ValueError("This streaming context is finished; make a new one.")
    batch = ctx.ola.in_buf.shape[0]
    if chunk.ndim != 2 or chunk.shape[0] != batch:
        raise ValueError(f"forward_streaming expects [batch={batch}, samples], got {tuple(chunk.shape)}.")
    ctx.ola.push(chunk.to(ctx.ola.in_buf.dtype))
    _run(model, ctx)
    return ctx.ola.pull(chunk.shape[-1])


@torch.no_grad()
def finish_streaming(model, ctx: StreamingContext) -> Tensor:
    """Flush the end (zero padding as the offline centred STFT); returns the last ``latency`` samples."""
    if ctx.finished:
        raise ValueError("This streaming context is already finished.")
    ctx.ola.end()
    _run(model, ctx)
    ctx.finished = True
    return ctx.ola.tail()
