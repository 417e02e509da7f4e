"""Offline batches that skip the channels pruned in the whole batch (eval, gated models).

The offline graph (training graph) computes every channel and multiplies by the gates, so
a gated model pays for its gates and saves nothing. In eval, a channel that is off at every
valid frame of the batch contributes exactly zero: its W1 row, depthwise taps and W2 column
can be left out of the batched convs. Trained gates are close to static within a file
(docs/dynamic_compute.md), so this union of active channels is far below all channels.

Authors
 * speechbrain-dyncp contributors
"""

import copy
import types

import torch
import torch.nn.functional as F

from speechbrain_dyncp.lobes.gated_tcn import TCNOutput


def _linear(x, conv, rows=None, cols=None, bias=True):
    """A 1x1 ``conv`` on channels-last ``x`` [..., C] as one GEMM (selected out rows / in columns).

    Why channels-last and not Conv1d: CPU PyTorch runs a 1x1 Conv1d as im2col + GEMM
    and a weight @ [B, C, N] product as a batched GEMM; on [B * N, C] rows it is one plain
    GEMM, and the gathered weights need no copy of the activations.
    """
    w = conv.weight[:, :, 0]
    w = w if rows is None else w[rows]
    w = w if cols is None else w[:, cols]
    flat = x.reshape(-1, x.shape[-1])
    if bias and conv.bias is not None:
        y = torch.addmm(conv.bias if rows is None else conv.bias[rows], flat, w.t())
    else:
        y = flat @ w.t()
    return y.reshape(*x.shape[:-1], w.shape[0])


def _time_shifted_sum(x, weights, dilation, left):
    """``y[:, t] = sum_j weights[j] * x[:, t + j * dilation - left]`` (zeros outside), ``x`` [B, N, C]."""
    n, span = x.shape[1], (len(weights) - 1) * dilation
    xp = F.pad(x, (0, 0, left, span - left))
    y = xp[:, :n] * weights[0]
    for j in range(1, len(weights)):
        y.add_(xp[:, j * dilation: j * dilation + n] * weights[j])
    return y


def _gates_channels_last(gate, x, valid):
    """``gate`` on channels-last ``x`` [B, N, C] (``valid`` [B, N, 1]) -> binary gates [B, N, H].

    The moving average runs as K shifted adds (``avg_pool1d`` with stride 1 cost as much
    as the gate convs); float rounding may differ from the training graph, which can flip a
    gate whose score is within rounding of its threshold, as in streaming.
    """
    k = gate.window
    if gate.causal:  # right padding never reaches a valid frame's past-only window: no masking
        h = x.clone() if k > 1 else x
        for j in range(1, k):
            h[:, j:] += x[:, :-j]
    else:
        x = x * valid
        h = _time_shifted_sum(x, [1.0] * k, 1, k // 2) if k > 1 else x
    if k > 1:
        h = h.div_(k)
    for i, conv in enumerate(gate.convs):
        h = _linear(h, conv)
        if i < len(gate.convs) - 1:
            h = h.relu_()
    return (h > gate.threshold).to(x.dtype)  # == (h - threshold > 0): float differences are exact-zero only when equal


def _block_on_channels(blk, h, keep, idx):
    """Residual update of ``blk`` (eval), hidden channels ``idx`` only; ``h`` [B, N, C], ``keep`` [B, N, k]."""
    # MaskedBatchNorm1d.affine() is shadowed on instances by nn.BatchNorm1d's ``affine`` flag
    (s1, t1), (s2, t2) = (type(bn).affine(bn) for bn in (blk.norm1, blk.norm2))
    u = F.prelu(_linear(h, blk.in_conv, rows=idx), blk.act1.weight)
    u = torch.addcmul(t1[idx], u, s1[idx]).mul_(keep)
    pad = blk.history
    v = _time_shifted_sum(u, blk.dw_conv.weight[idx, 0].t(), blk.dilation, pad if blk.causal else pad // 2)
    v = torch.addcmul(t2[idx], F.prelu(v, blk.act2.weight), s2[idx]).mul_(keep)
    return _linear(v, blk.out_conv, cols=idx, bias=False)


def _union_tcn_forward(tcn, x, frame_mask=None):
    """:meth:`GatedTCN.forward` in eval, channels-last, per block only the channels on somewhere."""
    b, n, _ = x.shape
    if frame_mask is None:
        frame_mask = torch.ones(b, n, dtype=torch.bool, device=x.device)
    valid = frame_mask.unsqueeze(-1).to(x.dtype)  # B, N, 1
    h = feats = x
    gates, computed = [], 0
    for i, blk in enumerate(tcn.blocks):
        g = _gates_channels_last(tcn.gates[i], feats if tcn.gate_input == "features" else h, valid)
        gates.append(g)
        keep = g * valid
        idx = keep.amax((0, 1)).nonzero().squeeze(1)
        computed += len(idx)
        if len(idx) == keep.shape[-1]:  # every channel on somewhere: views, no gathers
            h = h + _block_on_channels(blk, h, keep, slice(None))
        elif len(idx):  # a block with every channel off is the identity
            h = h + _block_on_channels(blk, h, keep.index_select(-1, idx), idx)
    tcn._union_channels = computed
    return TCNOutput(h, torch.stack(gates, 1))


def union_skipping(model):
    """An eval view of a gated ``DynCPEnhancer`` whose offline forward skips batch-wide pruned channels.

    Same weights (shared, not copied), same outputs as ``model`` up to float
    rounding (the norms run as their eval affine; gates at padded frames, which
    nothing uses, may differ); per block only the hidden
    channels whose gate is on in at least one valid frame of the batch are
    computed. After a call, ``view.tcn._union_channels`` holds how many
    (block, channel) pairs were computed. For MAC accounting use ``model``.

    Arguments
    ---------
    model : DynCPEnhancer
        A gated model in eval mode.

    Returns
    -------
    DynCPEnhancer
        A shallow copy whose ``tcn`` forward is the union path.

    Example
    -------
    >>> import torch
    >>> from speechbrain_dyncp.lobes.enhancer import dyncp_small
    >>> model = dyncp_small(channels=8, hidden=16, gate_hidden=4, gate_init_bias=-0.2).eval()
    >>> x = torch.randn(2, 4000)
    >>> bool(torch.allclose(union_skipping(model)(x).wav, model(x).wav, atol=1e-6))
    True
    """
    if model.training or not model.tcn.gated or model.tcn.gate_input == "static":
        raise ValueError("union_skipping needs a (per-frame) gated model in eval mode.")
    view = copy.copy(model)
    view._modules = dict(model._modules)
    tcn = copy.copy(model.tcn)  # a shallow copy: the original keeps its forward
    tcn.forward = types.MethodType(_union_tcn_forward, tcn)
    view._modules["tcn"] = tcn
    return view
