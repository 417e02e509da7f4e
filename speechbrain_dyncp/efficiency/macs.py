"""Compute accounting of the DynCP enhancer: parameters, dense vs gate-effective MACs, latency.

What is counted (per STFT frame, multiply-accumulates of the conv / linear
layers, as in the DynCP paper's MAC budget):

* front-end ``F * B`` and back-end ``B * F`` (F = n_fft // 2 + 1 bins);
* each TCN block: per *active* hidden channel, its W1 row (``B``), its
  depthwise taps (``P``) and its W2 column (``B``), i.e. ``a_t * (2B + P)``;
  the dense model has ``a_t = H``;
* each gate (only in gated models): the moving average as a running sum
  (``2 * C_in`` accumulates: add the new frame, subtract the oldest; the
  ``1/K`` scale folds into the first 1x1 conv; 0 when K = 1) plus its
  point-wise stack (``sum in * out`` over its 1x1 convs).

Not counted (stated so that figures compare with the paper's): STFT / iSTFT
(FFTs), magnitude, bias additions, residual additions, PReLU, the norms (a
per-channel affine at inference), the sigmoid and the mask multiply. All are
element-wise and O(F + B + H) per frame, small next to the O(B * H) convs.

Authors
 * speechbrain-dyncp contributors
"""

from typing import Dict, Optional

import torch
from torch import Tensor, nn


def parameter_count(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model``.

    Example
    -------
    >>> parameter_count(nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def gate_macs(gate) -> int:
    """MACs per frame of one :class:`~speechbrain_dyncp.lobes.gates.ChannelGate`."""
    pool = 2 * gate.input_size if gate.window > 1 else 0
    return pool + sum(c.in_channels * c.out_channels for c in gate.convs)


def dense_macs(model) -> Dict[str, int]:
    """Per-frame MACs of the dense (ungated) network, by part.

    Arguments
    ---------
    model : DynCPEnhancer

    Returns
    -------
    dict
        ``front``, ``block`` (one block, all H channels), ``blocks`` (all),
        ``back``, ``gates`` (sum over gates, 0 if not gated), ``total``
        (dense network, gates excluded), ``per_channel`` (one hidden channel
        of one block: ``2B + P``).

    Example
    -------
    >>> from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer
    >>> dense_macs(DynCPEnhancer(gated=False))["total"]  # the DynCP paper's full-size Conv-FSENet
    662528
    """
    tcn = model.tcn
    per_channel = 2 * tcn.channels + tcn.kernel_size
    front = model.front.in_features * model.front.out_features
    back = model.back.in_features * model.back.out_features
    block = tcn.hidden * per_channel
    gates = sum(gate_macs(g) for g in tcn.gates) if tcn.gated else 0
    blocks = block * tcn.n_gated
    return dict(front=front, block=block, blocks=blocks, back=back, gates=gates,
                total=front + blocks + back, per_channel=per_channel)


def macs_per_frame(model, gates: Tensor, frame_mask: Optional[Tensor] = None) -> Dict[str, float]:
    """Dense vs effective MACs per frame, averaged over the valid frames of ``gates``.

    Arguments
    ---------
    model : DynCPEnhancer
        The model the gates came from.
    gates : torch.Tensor
        ``[B, L, N, H]`` in {0, 1} (``EnhancerOutput.gates``).
    frame_mask : torch.Tensor, optional
        ``[B, N]`` bool; None = all frames valid.

    Returns
    -------
    dict
        ``dense`` (MACs/frame of the unpruned model, no gates),
        ``effective`` (active channels only, plus the gates' own cost),
        ``gates_overhead``, ``saved_pct`` (``100 * (1 - effective / dense)``),
        ``realised_ratio`` (mean active fraction over valid frames, blocks
        and channels).

    Example
    -------
    >>> from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer
    >>> m = DynCPEnhancer(gated=False)
    >>> macs_per_frame(m, torch.ones(1, 9, 10, 256))["saved_pct"]
    0.0
    """
    b, n_blocks, n, h = gates.shape
    parts = dense_macs(model)
    if (n_blocks, h) != (model.tcn.n_gated, model.tcn.hidden):
        raise ValueError(f"gates [B, L, N, H] must have L={model.tcn.n_gated}, H={model.tcn.hidden}; "
                         f"got {tuple(gates.shape)}.")
    if frame_mask is None:
        frame_mask = torch.ones(b, n, dtype=torch.bool, device=gates.device)
    w = frame_mask.to(gates.dtype)[:, None, :, None]  # B, 1, N, 1
    n_valid = w.sum().clamp(min=1.0)
    active = (gates * w).sum() / n_valid  # active channels per frame, summed over blocks
    effective = parts["front"] + parts["back"] + parts["gates"] + parts["per_channel"] * active.item()
    return dict(
        dense=float(parts["total"]),
        effective=float(effective),
        gates_overhead=float(parts["gates"]),
        saved_pct=100.0 * (1.0 - effective / parts["total"]),
        realised_ratio=(active / (n_blocks * h)).item(),
    )


def lookahead_frames(model) -> int:
    """Future STFT frames one output frame depends on (0 when causal).

    Non-causal: per block, the centred depthwise conv reads ``(P - 1) * d / 2``
    frames ahead and the centred gate pooling ``K - 1 - K // 2`` more; with
    ``gate_input="block"`` they add up over blocks, with ``"features"`` the
    gates look at the TCN input, so only the largest gate window adds.

    Example
    -------
    >>> from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer
    >>> lookahead_frames(DynCPEnhancer(causal=False, gated=False))  # 3 * (1 + 2 + 4)
    21
    """
    tcn = model.tcn
    if tcn.causal:
        return 0
    dw = sum(blk.history // 2 for blk in tcn.blocks)
    gates = [g.window - 1 - g.window // 2 for g in tcn.gates] if tcn.gated else [0]
    return dw + (sum(gates) if tcn.gate_input == "block" else max(gates))


def algorithmic_latency_samples(model) -> int:
    """Input-to-output delay of a streaming implementation, in samples.

    ``n_fft - 1`` for the causal model (see :mod:`speechbrain_dyncp.streaming`),
    plus ``hop * lookahead_frames`` for a non-causal one.

    Example
    -------
    >>> from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer
    >>> algorithmic_latency_samples(DynCPEnhancer())  # 31.9 ms at 16 kHz
    511
    """
    return model.n_fft - 1 + model.hop_length * lookahead_frames(model)


def frames_per_second(model) -> float:
    """STFT frames per second of audio (62.5 at 16 kHz, hop 256)."""
    return model.sample_rate / model.hop_length


@torch.no_grad()
def plant_gate_ratio(model, wav: Tensor, ratio: float, lengths: Optional[Tensor] = None) -> None:
    """Set every gate's last bias so each channel is on for ``ratio`` of ``wav``'s frames.

    For benchmarks and tests before a trained model exists: gates stay
    input-dependent (the scores still vary per frame), but the density is
    planted rather than learned. Per channel, the threshold goes half-way
    between the two calibration scores around the ``1 - ratio`` quantile. Gates are calibrated block by block, since a
    gate's input depends on the earlier blocks' gates. Works in place.

    Arguments
    ---------
    model : DynCPEnhancer
        A gated model.
    wav : torch.Tensor
        ``[B, T]`` calibration audio.
    ratio : float
        Target active fraction in (0, 1].
    lengths : torch.Tensor, optional
        Relative lengths of ``wav``.

    Example
    -------
    >>> from speechbrain_dyncp.lobes.enhancer import dyncp_small
    >>> model = dyncp_small(channels=8, hidden=16, gate_hidden=4).eval()
    >>> wav = torch.randn(2, 8000)
    >>> plant_gate_ratio(model, wav, 0.25)
    >>> round(float(model(wav).gates.detach().mean()), 1)
    0.2
    """
    if not model.tcn.gated:
        raise ValueError("plant_gate_ratio needs a gated model (gated=True).")
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}.")
    for gate in model.tcn.gates:
        seen = []
        hook = gate.convs[-1].register_forward_hook(lambda mod, inp, out: seen.append(out))
        try:
            valid = model(wav, lengths).frame_mask
        finally:
            hook.remove()
        s = seen[0].transpose(1, 2)[valid].sort(0).values  # frames, H (ascending per channel)
        n_off = s.shape[0] - round(ratio * s.shape[0])
        lo = s[n_off - 1] if n_off > 0 else s[0] - 1.0
        hi = s[n_off] if n_off < s.shape[0] else s[-1] + 1.0
        # threshold half-way between neighbouring scores (not on one, which a rounding
        # difference between implementations would flip)
        gate.convs[-1].bias.sub_((lo + hi) / 2 - gate.threshold)
