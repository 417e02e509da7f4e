"""Does compute follow the input? Per-frame active ratio, dynamism figures and their pooling.

One definition of "dynamism" for the project (the demo, ``benchmarks/bench_dynamism.py``,
:class:`~speechbrain_dyncp.inference.enhancement.DynCPEnhancement`): how the binary
gate masks ``[B, L, N, H]`` of a :class:`DynCPEnhancer` vary over the frames of a
file, with speech, and with the input SNR.

Authors
 * speechbrain-dyncp contributors
"""

from typing import Dict, List, Optional

import torch
from torch import Tensor


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
