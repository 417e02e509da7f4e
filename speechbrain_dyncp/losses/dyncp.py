"""DynCP training objective: compressed spectral loss + gate-ratio loss ``L_DCP``.

``L = L_SE + lambda * L_DCP`` (Miccini et al., ICASSP 2025, Eq. for the total loss). ``L_SE`` is the power-law
compressed spectral MSE of the DynCP experiment code ("DynCompMSE"), computed on
the STFT of the *time-domain* output so that the iSTFT is inside the graph.
``L_DCP`` pulls the realised fraction of active gated channels toward the
target ratio ``phi_target``.

Authors
 * speechbrain-dyncp contributors
"""

import math
from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from speechbrain_dyncp.lengths import frame_lengths, length_mask

N_FFT = 512
HOP = 256
EPS = 1e-9
# Frame energy ||X(:, t)|| * sqrt(2) / n_fft above this counts as active speech.
ACTIVE_THRESHOLD = 0.025


def stft_frame_mask(lengths: Optional[Tensor], n_samples: int, batch: int, device=None) -> Tensor:
    """Bool mask ``[B, N]`` of the STFT frames of the valid part of each item.

    An item of ``n`` samples has ``1 + n // hop`` frames (the corpus label grid);
    with zero (constant) centre padding these frames are identical whether or not
    the batch is padded after the item.

    Example
    -------
    >>> stft_frame_mask(torch.tensor([0.5, 1.0]), 1024, 2).sum(1)
    tensor([3, 5])
    """
    n = frame_lengths(lengths, n_samples, batch).to(device)
    n_frames = 1 + n_samples // HOP
    return torch.arange(n_frames, device=device).unsqueeze(0) < (1 + n // HOP).unsqueeze(1)


def stft(wav: Tensor) -> Tensor:
    """Complex STFT ``[B, N, F]`` (n_fft 512, hop 256, Hann, centred, zero padding)."""
    window = torch.hann_window(N_FFT, device=wav.device, dtype=wav.dtype)
    spec = torch.stft(
        wav, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True
    )
    return spec.transpose(1, 2)


def active_speech_level(clean_spec: Tensor, frame_mask: Tensor) -> Tensor:
    """Mean frame energy over active-speech frames, ``[B]``.

    Frame energy is ``||X(:, t)|| * sqrt(2) / 512``; frames above 0.025 are active.
    An item without active frames falls back to its mean energy over valid
    frames, and a silent item to 1 (so nothing is divided by ``eps``).

    Example
    -------
    >>> spec = torch.zeros(1, 3, 257, dtype=torch.cfloat)
    >>> spec[0, 0, 0] = 512 / math.sqrt(2)  # energy 1.0: active
    >>> spec[0, 1, 0] = 512 / math.sqrt(2) * 0.01  # energy 0.01: inactive
    >>> active_speech_level(spec, torch.ones(1, 3, dtype=torch.bool))
    tensor([1.0000])
    """
    energy = clean_spec.abs().pow(2).sum(-1).sqrt() * math.sqrt(2) / N_FFT  # B, N
    valid = frame_mask.to(energy.dtype)
    active = valid * (energy > ACTIVE_THRESHOLD).to(energy.dtype)
    n_active = active.sum(1)
    level = (energy * active).sum(1) / n_active.clamp(min=1)
    fallback = (energy * valid).sum(1) / valid.sum(1).clamp(min=1)
    level = torch.where(n_active > 0, level, fallback)
    return torch.where(level > 0, level, torch.ones_like(level))


def compressed_spectral_loss(
    est_wav: Tensor,
    clean_wav: Tensor,
    lengths: Optional[Tensor] = None,
    compress: float = 0.3,
    mag_weight: float = 0.7,
    reduction: str = "mean",
    overshoot_weight: float = 0.0,
) -> Tensor:
    """Power-law compressed spectral MSE on level-normalised spectra (``L_SE``).

    ``L_SE = 0.7 * mean(((|S^|+eps)^c - (|S|+eps)^c)^2)
    + 0.3 * mean(|S^ (|S^|+eps)^(c-1) - S (|S|+eps)^(c-1)|^2)`` with ``c = 0.3``,
    ``eps = 1e-9``, both spectra divided by ``(sigma + eps)`` where ``sigma`` is the
    clean active speech level (:func:`active_speech_level`). Means run over the
    valid frames of each item (padding is zeroed in the waveform and its frames
    are excluded), then over the batch.

    Arguments
    ---------
    est_wav, clean_wav : torch.Tensor
        Waveforms ``[B, T]``.
    lengths : torch.Tensor, optional
        Relative lengths ``[B]``.
    compress : float
        Compression exponent ``c``.
    mag_weight : float
        Weight of the magnitude term; the complex term gets ``1 - mag_weight``.
    reduction : {"mean", "batch"}
        ``"batch"`` returns the per-item losses ``[B]``.
    overshoot_weight : float
        Bins where the estimate exceeds the clean magnitude (noise let through) weigh ``1 + overshoot_weight``.

    Returns
    -------
    torch.Tensor
        Scalar, or ``[B]`` with ``reduction="batch"``.

    Example
    -------
    >>> clean = torch.randn(2, 4000)
    >>> float(compressed_spectral_loss(clean, clean))
    0.0
    >>> bool(compressed_spectral_loss(0.5 * clean, clean) > 0)
    True
    """
    if est_wav.shape != clean_wav.shape or est_wav.ndim != 2:
        raise ValueError(
            f"Expected est and clean waveforms [batch, time] of one shape, got "
            f"{tuple(est_wav.shape)} and {tuple(clean_wav.shape)}"
        )
    batch, n_samples = est_wav.shape
    keep = length_mask(lengths, n_samples, batch, est_wav.device).to(est_wav.dtype)
    est_spec = stft(est_wav * keep)  # B, N, F
    clean_spec = stft(clean_wav * keep)
    fmask = stft_frame_mask(lengths, n_samples, batch, est_wav.device)
    sigma = active_speech_level(clean_spec, fmask).detach()  # B
    norm = (sigma + EPS).view(-1, 1, 1)
    est_spec, clean_spec = est_spec / norm, clean_spec / norm

    est_mag, clean_mag = est_spec.abs() + EPS, clean_spec.abs() + EPS
    est_c, clean_c = est_mag.pow(compress), clean_mag.pow(compress)
    mag_err = (est_c - clean_c).pow(2) * (1.0 + overshoot_weight * (est_c > clean_c).to(est_c.dtype))  # B, N, F
    cplx_err = (est_spec * (est_c / est_mag) - clean_spec * (clean_c / clean_mag)).abs().pow(2)
    per_bin = mag_weight * mag_err + (1.0 - mag_weight) * cplx_err

    valid = fmask.to(per_bin.dtype)
    per_item = (per_bin.sum(-1) * valid).sum(1) / (valid.sum(1) * per_bin.shape[-1])
    if reduction == "batch":
        return per_item
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'batch', got {reduction!r}")
    return per_item.mean()


def realised_ratio(gates: Tensor, frame_mask: Optional[Tensor] = None, per_block: bool = False) -> Tensor:
    """Fraction of active gated channels over valid frames.

    Arguments
    ---------
    gates : torch.Tensor
        ``[B, L, N, H]`` gate values (binary in the forward pass).
    frame_mask : torch.Tensor, optional
        ``[B, N]`` bool, True on valid frames; None means all valid.
    per_block : bool
        If True return ``[L]`` (one ratio per gated block), else a scalar.

    Example
    -------
    >>> g = torch.zeros(1, 2, 4, 8); g[:, 0] = 1.0
    >>> float(realised_ratio(g))
    0.5
    >>> realised_ratio(g, per_block=True)
    tensor([1., 0.])
    """
    if gates.ndim != 4:
        raise ValueError(f"Expected gates [batch, blocks, frames, channels], got {tuple(gates.shape)}")
    batch, n_blocks, n_frames, n_ch = gates.shape
    if frame_mask is None:
        frame_mask = torch.ones(batch, n_frames, dtype=torch.bool, device=gates.device)
    if frame_mask.shape != (batch, n_frames):
        raise ValueError(
            f"frame_mask {tuple(frame_mask.shape)} does not match gates {tuple(gates.shape)}"
        )
    valid = frame_mask.to(gates.dtype).view(batch, 1, n_frames, 1)
    active = (gates * valid).sum(dim=(0, 2, 3))  # L
    total = valid.sum() * n_ch
    ratios = active / total.clamp(min=1)
    return ratios if per_block else ratios.mean()


def gate_ratio_loss(
    gates: Tensor,
    frame_mask: Optional[Tensor] = None,
    target: float = 0.25,
    kind: str = "abs",
    per_block: bool = False,
) -> Tensor:
    """``L_DCP``: distance of the realised active-channel ratio from ``target``.

    ``kind="abs"`` (default) is ``|phi - target|``: its gradient does not vanish near
    the target, so with a moderate ``lambda`` the realised ratio settles within a
    few points of it; ``kind="squared"`` is ``(phi - target)^2``, which lets the
    spectral loss pull the ratio away by an amount that depends on ``lambda``.
    With ``per_block=True`` each gated block is pulled to the target separately
    (mean over blocks); otherwise the budget is global, so blocks may differ.

    Arguments
    ---------
    gates : torch.Tensor
        ``[B, L, N, H]``.
    frame_mask : torch.Tensor, optional
        ``[B, N]`` bool; padded frames are excluded.
    target : float
        ``phi_target`` in [0, 1].
    kind : {"abs", "squared"}
        Distance.
    per_block : bool
        One ratio per block instead of one global ratio.

    Returns
    -------
    torch.Tensor
        Scalar loss.

    Example
    -------
    >>> g = torch.ones(2, 3, 5, 4, requires_grad=True)
    >>> loss = gate_ratio_loss(g, target=0.25, kind="squared")
    >>> round(loss.item(), 4)
    0.5625
    >>> loss.backward(); bool((g.grad > 0).all())
    True
    """
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"target ratio must lie in [0, 1], got {target}")
    phi = realised_ratio(gates, frame_mask, per_block=per_block)
    diff = phi - target
    if kind == "abs":
        dist = diff.abs()
    elif kind == "squared":
        dist = diff.pow(2)
    else:
        raise ValueError(f"kind must be 'abs' or 'squared', got {kind!r}")
    return dist.mean()


class DynCPLossOutput(NamedTuple):
    """Terms of :class:`DynCPLoss`; ``ratio`` is detached, for logging."""

    loss: Tensor  # scalar, L_SE + lambda * L_DCP
    se: Tensor  # scalar L_SE
    dcp: Tensor  # scalar L_DCP
    ratio: Tensor  # scalar realised active-channel fraction (valid frames)
    ratio_speech: Optional[Tensor] = None  # on speech frames (when a speech mask is given)
    ratio_pause: Optional[Tensor] = None  # on non-speech frames


class DynCPLoss(nn.Module):
    """``L = L_SE + lambda * L_DCP`` for a DynCP enhancer output.

    With ``phi_pause`` set and a frame speech mask passed to ``forward`` (the
    clean reference's VAD labels), the budget depends on the frame: speech
    frames are pulled to ``phi_target`` and non-speech frames to ``phi_pause``,
    each over its own frames. A single global budget lets the gates settle on
    one static set of channels (measured: pauses used 0.24 of the channels and
    speech 0.25); a lower budget where there is nothing to enhance teaches the
    gates to read the input. Without a speech mask the global budget applies.

    Arguments
    ---------
    phi_target : float
        Target fraction of active channels (on speech frames when ``phi_pause`` is used).
    lambda_dcp : float
        Weight of the ratio loss; 0 (or ``gated=False`` models, whose gates are
        all ones) trains the dense baseline.
    kind : {"abs", "squared"}
        See :func:`gate_ratio_loss`.
    per_block : bool
        See :func:`gate_ratio_loss`.
    phi_pause : float, optional
        Target fraction on non-speech frames; None = one global budget.

    Example
    -------
    >>> loss_fn = DynCPLoss(phi_target=0.5, lambda_dcp=1.0)
    >>> clean = torch.randn(2, 2048)
    >>> gates = torch.ones(2, 3, 9, 8)
    >>> out = loss_fn(clean, clean, gates)
    >>> float(out.se), float(out.dcp), float(out.loss), float(out.ratio)
    (0.0, 0.5, 0.5, 1.0)
    >>> speech = torch.zeros(2, 9, dtype=torch.bool); speech[:, :6] = True
    >>> gates[:, :, 6:] = 0.0  # pauses already at 0 channels
    >>> out = DynCPLoss(phi_target=0.5, phi_pause=0.0)(clean, clean, gates, speech=speech)
    >>> round(float(out.dcp), 4), float(out.ratio_speech), float(out.ratio_pause)  # 6/9 * |1 - 0.5|
    (0.3333, 1.0, 0.0)
    """

    def __init__(self, phi_target: float = 0.25, lambda_dcp: float = 1.0, kind: str = "abs",
                 per_block: bool = False, phi_pause: Optional[float] = None, overshoot_weight: float = 0.0):
        super().__init__()
        for name, value in (("phi_target", phi_target), ("phi_pause", phi_pause)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        self.phi_target = phi_target
        self.phi_pause = phi_pause
        self.lambda_dcp = lambda_dcp
        self.kind = kind
        self.per_block = per_block
        self.overshoot_weight = overshoot_weight  # compressed_spectral_loss's asymmetric term

    def forward(
        self,
        est_wav: Tensor,
        clean_wav: Tensor,
        gates: Tensor,
        lengths: Optional[Tensor] = None,
        frame_mask: Optional[Tensor] = None,
        speech: Optional[Tensor] = None,
    ) -> DynCPLossOutput:
        """Total loss and its terms; ``frame_mask`` defaults to one from ``lengths``.

        ``speech`` (``[B, N]`` bool or 0/1, the frame VAD of the clean reference)
        switches on the speech/pause budget where ``phi_pause`` is set.
        """
        se = compressed_spectral_loss(est_wav, clean_wav, lengths, overshoot_weight=self.overshoot_weight)
        if frame_mask is None:
            frame_mask = length_mask(lengths, gates.shape[2], gates.shape[0], gates.device)
        split = self.phi_pause is not None and speech is not None
        if split:
            speech = speech[:, : gates.shape[2]].bool() & frame_mask.bool()
            pause = frame_mask.bool() & ~speech
            dcp = self._split_budget(gates, speech, pause)
        else:
            dcp = gate_ratio_loss(gates, frame_mask, self.phi_target, self.kind, self.per_block)
        loss = se + self.lambda_dcp * dcp if self.lambda_dcp else se
        with torch.no_grad():
            g = gates.detach()
            ratio = realised_ratio(g, frame_mask)
            by_frame = (realised_ratio(g, speech), realised_ratio(g, pause)) if split else (None, None)
        return DynCPLossOutput(loss, se, dcp, ratio, *by_frame)

    def _split_budget(self, gates: Tensor, speech: Tensor, pause: Tensor) -> Tensor:
        """Speech frames to ``phi_target``, pause frames to ``phi_pause``, weighted by their frame shares."""
        n_speech, n_pause = speech.sum(), pause.sum()
        total = (n_speech + n_pause).clamp(min=1)
        terms = gates.new_zeros(())
        for frames, count, target in ((speech, n_speech, self.phi_target), (pause, n_pause, self.phi_pause)):
            if int(count) > 0:
                terms = terms + (count / total) * gate_ratio_loss(gates, frames, target, self.kind, self.per_block)
        return terms
