"""Causal frame-in / frame-out streaming for :class:`DynCPEnhancer`, skipping pruned channels.

Use::

    ctx = model.make_streaming_context(batch_size=1)
    for chunk in chunks:                      # any size in samples, [B, S]
        out = model.forward_streaming(chunk, ctx)   # [B, S]
    tail = model.finish_streaming(ctx)        # [B, latency]

Alignment and latency: the offline model uses ``torch.stft(center=True)``, so
frame t covers samples ``[t*hop - n_fft/2, t*hop + n_fft/2)``; it can be
computed once sample ``t*hop + n_fft/2 - 1`` has arrived, and after it the
output before sample ``(t+1)*hop - n_fft/2`` is final. The streamer returns
as many samples as it is given, delayed by a fixed ``ctx.latency = n_fft - 1``
samples (511 = 31.9 ms at 16 kHz; the smallest fixed delay that always has
final samples ready), so ``cat(outputs + [tail])[..., latency:]`` equals the
offline causal output sample for sample (float tolerance). ``finish_streaming``
zero-pads the end exactly like the offline centred STFT. Binary gates make
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
executed, with the conventions of :mod:`speechbrain_dyncp.efficiency`.

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
class StreamingContext:
    """Mutable state carried across :meth:`DynCPEnhancer.forward_streaming` calls."""

    blocks: List[BlockState]
    in_buf: Tensor
    """[B, S]: input not yet consumed by a complete frame; starts with n_fft/2 zeros (centre pad)."""
    ola_num: Tensor
    """[B, n_fft - hop]: pending overlap-add of the windowed output frames."""
    ola_den: Tensor
    """[B, n_fft - hop]: pending overlap-add of the squared window (the iSTFT normaliser)."""
    out_buf: Tensor
    """[B, S]: final output samples not yet returned; starts with ``latency`` zeros."""
    plans: List[BlockPlan]
    latency: int
    """Fixed delay in samples between input and returned output (n_fft - 1)."""
    group_frames: int = 1
    """Frames processed together; channels are gathered per group (union of its gates)."""
    skip_pruned: bool = True
    trim: int = 0
    """Output samples still to drop (the n_fft/2 centre padding)."""
    samples_in: int = 0
    frames_done: int = 0
    macs: int = 0
    """MACs executed so far (front, back, gates, gathered channels)."""
    finished: bool = False
    gates: List[Tensor] = field(default_factory=list)
    """When ``keep_gates``: per group, [B, L, F, H] gates (for checks / probes)."""
    keep_gates: bool = False


def _affine(bn):
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale.detach().clone(), (bn.bias - bn.running_mean * scale).detach().clone()


def block_plans(model) -> List[BlockPlan]:
    """Eval-mode constants of every block of ``model`` (norms folded to per-channel affines)."""
    tcn, plans = model.tcn, []
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
    n_fft, hop = model.n_fft, model.hop_length
    return StreamingContext(
        blocks=blocks, in_buf=torch.zeros(batch_size, n_fft // 2, **kw),
        ola_num=torch.zeros(batch_size, n_fft - hop, **kw), ola_den=torch.zeros(batch_size, n_fft - hop, **kw),
        out_buf=torch.zeros(batch_size, n_fft - 1, **kw), plans=block_plans(model), latency=n_fft - 1,
        group_frames=group_frames, skip_pruned=skip_pruned, trim=n_fft // 2, keep_gates=keep_gates,
    )


def _gate(plan: BlockPlan, st: BlockState, src: Tensor) -> Tensor:
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


def _block(plan: BlockPlan, st: BlockState, x: Tensor, g: Optional[Tensor], skip: bool):
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
            g = _gate(plan, st, src0 if tcn.gate_input == "features" else x)
            macs += (2 * tcn.channels if plan.window > 1 else 0) + sum(w.numel() for w in plan.gate_w)
            if ctx.keep_gates:
                gates.append(g)
        x, n_act = _block(plan, st, x, g, ctx.skip_pruned)
        macs += n_act * per_ch
    ctx.macs += macs * n
    if gates:
        ctx.gates.append(torch.stack(gates, 1).transpose(2, 3))
    mask = model.mask_from_logits(torch.matmul(model.back.weight, x) + model.back.bias[:, None])  # B, bins, F
    return torch.fft.irfft(spec * mask, n=model.n_fft, dim=1) * model.window[:, None]


def _run(model, ctx: StreamingContext) -> None:
    """Consume every complete frame in ``ctx.in_buf``; append final samples to ``ctx.out_buf``."""
    n_fft, hop = model.n_fft, model.hop_length
    avail = (ctx.in_buf.shape[-1] - n_fft) // hop + 1
    if avail <= 0:
        return
    frames = ctx.in_buf[:, : (avail - 1) * hop + n_fft].unfold(-1, n_fft, hop).transpose(1, 2)
    ctx.in_buf = ctx.in_buf[:, avail * hop:]
    outs = [_frames(model, ctx, f) for f in frames.split(ctx.group_frames, dim=-1)]
    out = torch.cat(outs, -1)  # B, n_fft, avail
    full = (avail - 1) * hop + n_fft
    env = (model.window**2)[None, :, None].expand(1, n_fft, avail)
    num = F.fold(out, (1, full), (1, n_fft), stride=(1, hop)).flatten(1)
    den = F.fold(env, (1, full), (1, n_fft), stride=(1, hop)).flatten(1)
    carry = n_fft - hop
    num[:, :carry] += ctx.ola_num
    den = den + F.pad(ctx.ola_den, (0, full - carry))
    ctx.ola_num, ctx.ola_den = num[:, avail * hop:], den[:, avail * hop:]
    _emit(ctx, num[:, : avail * hop], den[:, : avail * hop])
    ctx.frames_done += avail


def _emit(ctx: StreamingContext, num: Tensor, den: Tensor) -> None:
    out = torch.where(den > 1e-11, num / den.clamp(min=1e-11), torch.zeros_like(num))
    drop = min(ctx.trim, out.shape[-1])
    ctx.trim -= drop
    ctx.out_buf = torch.cat([ctx.out_buf, out[:, drop:]], -1)


def forward_streaming(model, chunk: Tensor, ctx: StreamingContext) -> Tensor:
    """Feed ``chunk`` ``[B, S]`` (any S >= 0); return ``[B, S]`` output delayed by ``ctx.latency``."""
    if ctx.finished:
        raise ValueError("This streaming context is finished; make a new one.")
    if chunk.ndim != 2 or chunk.shape[0] != ctx.in_buf.shape[0]:
        raise ValueError(f"forward_streaming expects [batch={ctx.in_buf.shape[0]}, samples], "
                         f"got {tuple(chunk.shape)}.")
    s = chunk.shape[-1]
    ctx.in_buf = torch.cat([ctx.in_buf, chunk.to(ctx.in_buf.dtype)], -1)
    ctx.samples_in += s
    _run(model, ctx)
    out, ctx.out_buf = ctx.out_buf[:, :s], ctx.out_buf[:, s:]
    return out


def finish_streaming(model, ctx: StreamingContext) -> Tensor:
    """Flush the end (zero padding as the offline centred STFT); returns the last ``latency`` samples."""
    if ctx.finished:
        raise ValueError("This streaming context is already finished.")
    n_fft, hop = model.n_fft, model.hop_length
    todo = 1 + ctx.samples_in // hop - ctx.frames_done  # offline frame count minus frames done
    if todo > 0:
        need = (todo - 1) * hop + n_fft
        ctx.in_buf = F.pad(ctx.in_buf, (0, max(0, need - ctx.in_buf.shape[-1])))
        _run(model, ctx)
    left = ctx.latency + ctx.trim - ctx.out_buf.shape[-1]  # tail samples still owed
    _emit(ctx, ctx.ola_num[:, :left], ctx.ola_den[:, :left])
    ctx.finished = True
    out, ctx.out_buf = ctx.out_buf, ctx.out_buf[:, :0]
    return out


_plan = block_plans  # older name, kept for callers that import it
