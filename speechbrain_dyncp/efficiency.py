"""Compute accounting for the DynCP enhancer: parameters, dense vs gate-effective MACs.

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

from typing import Dict, List, Optional

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


def frame_active_ratio(gates: Tensor, frame_mask: Optional[Tensor] = None) -> Tensor:
    """Active fraction of the gated channels per frame, over all blocks: ``[B, N]``.

    Arguments
    ---------
    gates : torch.Tensor
        ``[B, L, N, H]`` in {0, 1}.
    frame_mask : torch.Tensor, optional
        ``[B, N]`` bool; padded frames get 0.

    Returns
    -------
    torch.Tensor
        ``[B, N]`` float in [0, 1].

    Example
    -------
    >>> g = torch.zeros(1, 2, 3, 4); g[0, :, 1, :2] = 1; g[0, 0, 2] = 1
    >>> frame_active_ratio(g)
    tensor([[0.0000, 0.5000, 0.5000]])
    """
    ratio = gates.float().mean((1, 3))
    if frame_mask is not None:
        ratio = ratio * frame_mask.to(ratio.dtype)
    return ratio


def _ratio_on(ratio: Tensor, where: Tensor) -> Optional[float]:
    """Mean of ``ratio`` over the frames ``where`` is True; None when there are none."""
    return float(ratio[where].mean()) if bool(where.any()) else None


def dynamism(gates: Tensor, frame_mask: Optional[Tensor] = None, speech: Optional[Tensor] = None) -> List[Dict]:
    """How much the gates follow the input, per item of a batch (one definition for the project).

    All figures use the valid frames only (``frame_mask``); a gate decision is
    one (block, channel, frame) bit, a channel one (block, channel) pair.

    * ``active_ratio``: ``[n]`` tensor, active fraction of all gated channels
      at each valid frame (:func:`frame_active_ratio`);
    * ``active_ratio_mean`` / ``active_ratio_std``: its mean (= the realised
      ratio) and population standard deviation within the file;
    * ``active_ratio_speech`` / ``active_ratio_nonspeech``: its mean on the
      frames ``speech`` marks True / False (None without such frames), and
      ``nonspeech_over_speech`` their ratio (< 1: pauses cost less);
    * ``switching_channels``: share of channels whose gate takes both values
      within the file (0 for a static pruning);
    * ``flip_rate``: share of gate decisions that differ from the same
      channel's decision at the previous valid frame (0 for a static pruning).

    Arguments
    ---------
    gates : torch.Tensor
        ``[B, L, N, H]`` in {0, 1}.
    frame_mask : torch.Tensor, optional
        ``[B, N]`` bool, True on valid frames; None = all valid. Valid frames
        must come first (right padding).
    speech : torch.Tensor, optional
        ``[B, N]`` bool speech labels or VAD decisions on the same frame grid.

    Returns
    -------
    list of dict
        One dict per item with the keys above and ``frames`` (valid frames),
        ``speech_frames`` (None without ``speech``).

    Example
    -------
    >>> g = torch.ones(1, 1, 4, 4)          # 1 block, 4 frames, 4 channels
    >>> g[0, 0, 2:, 2:] = 0                # channels 2, 3 off in the last two frames
    >>> d = dynamism(g, speech=torch.tensor([[True, True, False, False]]))[0]
    >>> d["active_ratio"]
    tensor([1.0000, 1.0000, 0.5000, 0.5000])
    >>> d["nonspeech_over_speech"], d["switching_channels"], round(d["flip_rate"], 4)
    (0.5, 0.5, 0.1667)
    """
    b, n_blocks, n, h = gates.shape
    if frame_mask is None:
        frame_mask = torch.ones(b, n, dtype=torch.bool, device=gates.device)
    if speech is not None and tuple(speech.shape) != (b, n):
        raise ValueError(f"speech must be [B, N] = {(b, n)}, got {tuple(speech.shape)}.")
    out = []
    for i in range(b):
        valid = frame_mask[i].bool()
        g = gates[i][:, valid].bool()  # L, n, H
        m = g.shape[1]
        ratio = g.float().mean((0, 2))
        d = dict(frames=m, active_ratio=ratio,
                 active_ratio_mean=float(ratio.mean()) if m else 0.0,
                 active_ratio_std=float(ratio.std(unbiased=False)) if m else 0.0,
                 # a channel that is on in some valid frames and off in others
                 switching_channels=float((g.any(1) & ~g.all(1)).float().mean()) if m else 0.0,
                 flip_rate=float((g[:, 1:] != g[:, :-1]).float().mean()) if m > 1 else 0.0)
        d.update(speech_frames=None, active_ratio_speech=None, active_ratio_nonspeech=None,
                 nonspeech_over_speech=None)
        if speech is not None:
            s = speech[i][valid].bool()
            on, off = _ratio_on(ratio, s), _ratio_on(ratio, ~s)
            d.update(speech_frames=int(s.sum()), active_ratio_speech=on, active_ratio_nonspeech=off,
                     nonspeech_over_speech=off / on if on and off is not None else None)
        out.append(d)
    return out


def compute_vs_snr(active_ratio_means, snr_db) -> Dict[str, float]:
    """How the files' mean compute varies with their input SNR (several files).

    Arguments
    ---------
    active_ratio_means : sequence of float
        ``active_ratio_mean`` of each file (see :func:`dynamism`).
    snr_db : sequence of float
        Each file's input SNR in dB (labels, or the SNR probe's estimate).

    Returns
    -------
    dict
        ``slope_per_10db`` (least-squares change of the active ratio per 10 dB
        more SNR; < 0: noisier files get more compute), ``pearson_r`` (0 when
        either input is constant) and ``files``.

    Example
    -------
    >>> compute_vs_snr([0.30, 0.25, 0.20], [0.0, 5.0, 10.0])
    {'slope_per_10db': -0.1, 'pearson_r': -1.0, 'files': 3}
    """
    a = torch.as_tensor(list(active_ratio_means), dtype=torch.float64)
    s = torch.as_tensor(list(snr_db), dtype=torch.float64)
    if a.numel() != s.numel() or a.numel() < 2:
        raise ValueError(f"need >= 2 files with one SNR each, got {a.numel()} ratios and {s.numel()} SNRs.")
    da, ds = a - a.mean(), s - s.mean()
    var_s, var_a = float((ds**2).sum()), float((da**2).sum())
    slope = float((da * ds).sum()) / var_s if var_s > 0 else 0.0
    r = float((da * ds).sum()) / (var_s * var_a) ** 0.5 if var_s > 0 and var_a > 0 else 0.0
    return dict(slope_per_10db=round(10 * slope, 12), pearson_r=round(r, 12), files=int(a.numel()))


def pool_dynamism(items: List[Dict]) -> Dict[str, Optional[float]]:
    """Corpus-level summary of per-file :func:`dynamism` dicts.

    Within-file figures (``active_ratio_std``, ``switching_channels``,
    ``flip_rate``) are averaged over files; the speech / non-speech active
    ratios are frame-weighted over all files (each file's mean times its
    frame count), so short files do not count as much as long ones.

    Example
    -------
    >>> pool_dynamism([dict(frames=4, speech_frames=2, active_ratio_mean=0.3, active_ratio_std=0.1,
    ...     switching_channels=0.2, flip_rate=0.01, active_ratio_speech=0.4, active_ratio_nonspeech=0.2),
    ...     dict(frames=6, speech_frames=6, active_ratio_mean=0.5, active_ratio_std=0.0,
    ...     switching_channels=0.0, flip_rate=0.0, active_ratio_speech=0.5, active_ratio_nonspeech=None)])
    ... # doctest: +NORMALIZE_WHITESPACE
    {'files': 2, 'active_ratio_mean': 0.42, 'active_ratio_std': 0.05, 'switching_channels': 0.1,
     'flip_rate': 0.005, 'active_ratio_speech': 0.475, 'active_ratio_nonspeech': 0.2,
     'nonspeech_over_speech': 0.421053}
    """
    def mean(key):
        return round(sum(d[key] for d in items) / len(items), 6)

    def weighted(key, count):
        pairs = [(d[key], count(d)) for d in items if d.get(key) is not None and count(d)]
        total = sum(c for _, c in pairs)
        return round(sum(v * c for v, c in pairs) / total, 6) if total else None

    frames = sum(d["frames"] for d in items)
    on = weighted("active_ratio_speech", lambda d: d.get("speech_frames") or 0)
    off = weighted("active_ratio_nonspeech", lambda d: d["frames"] - (d.get("speech_frames") or 0))
    return dict(files=len(items),
                active_ratio_mean=round(sum(d["active_ratio_mean"] * d["frames"] for d in items) / max(frames, 1), 6),
                active_ratio_std=mean("active_ratio_std"), switching_channels=mean("switching_channels"),
                flip_rate=mean("flip_rate"), active_ratio_speech=on, active_ratio_nonspeech=off,
                nonspeech_over_speech=round(off / on, 6) if on and off is not None else None)
