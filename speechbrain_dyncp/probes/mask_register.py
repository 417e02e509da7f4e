"""A speaker's F0 register read off the enhancer's own time-frequency mask.

The gate-probe register (median of a linear F0 read-out of the channel gates) is within 10 %
of the reference for 44 % of the real test utterances: the gates carry a pitch *level*, coarsely.
The T-F mask keeps the speech harmonics and removes the noise between them, so the masked
spectrum ``S = (m |X|)^p`` of each frame is already a denoised harmonic spectrum. Its inverse
FFT is a (generalised, Tolonen & Karjalainen 2000) autocorrelation; divided by the analysis
window's own autocorrelation (Boersma 1993), its highest peak in the lag range of
``fmin..fmax`` gives the frame's period and its height the frame's periodicity. The register
is the median F0 over frames that are speech (the VAD probe, where the model has one) and
periodic enough. Cost: one inverse real FFT per frame on the spectrum the enhancer already
computed, no network MACs.

The frame track is *not* offered as a pitch tracker: a 32 ms window at 16 kHz resolves low
voices poorly and the lag grid is coarse at high F0; the median over an utterance is what it is
measured for (``recipes/DynCP/choose_mask_register.py``: the settings below were chosen on the
real *valid* split and then scored once on the test split).

Authors
 * speechbrain-dyncp contributors
"""

from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import Tensor

from speechbrain_dyncp.lobes.stft_masking import unfloored


@dataclass(frozen=True)
class MaskRegisterSettings:
    """Settings of the masked-autocorrelation register (defaults chosen on the real valid split).

    Arguments
    ---------
    fmin, fmax : float
        F0 search range (Hz).
    exponent : float
        ``p`` of ``(m |X|)^p``: 2 is the plain autocorrelation, smaller flattens the formants.
    octave_tolerance : float
        The shortest lag whose peak reaches this fraction of the highest wins (a guard
        against the period-doubling errors of autocorrelation).
    voicing_threshold : float
        Normalised autocorrelation peak a frame needs to count as voiced.
    min_frames : int
        Voiced speech frames an utterance needs to get a register (else None).
    """

    fmin: float = 70.0
    fmax: float = 500.0
    exponent: float = 1.5
    octave_tolerance: float = 0.95
    voicing_threshold: float = 0.45
    min_frames: int = 10


def masked_autocorrelation_f0(spec: Tensor, mask: Tensor, window: Tensor, sample_rate: int,
                              settings: MaskRegisterSettings = MaskRegisterSettings()):
    """Per-frame F0 and periodicity from the masked spectrum.

    Arguments
    ---------
    spec : torch.Tensor
        Complex input STFT ``[B, F, N]`` (``DynCPEnhancer.spectrum``).
    mask : torch.Tensor
        T-F mask ``[B, N, F]`` (``EnhancerOutput.mask``).
    window : torch.Tensor
        The analysis window (length ``n_fft``).
    sample_rate : int
        Sampling rate (Hz).
    settings : MaskRegisterSettings
        Search range, exponent, octave guard.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        F0 (Hz) and periodicity (normalised autocorrelation peak, about 0..1), both ``[B, N]``.

    Example
    -------
    >>> sr, n_fft = 16000, 512
    >>> t = torch.arange(sr) / sr
    >>> wav = sum(torch.sin(2 * torch.pi * 160 * k * t) / k for k in range(1, 8))[None]
    >>> win = torch.hann_window(n_fft)
    >>> spec = torch.stft(wav, n_fft, 256, window=win, center=True, return_complex=True)
    >>> f0, per = masked_autocorrelation_f0(spec, torch.ones(1, spec.shape[-1], spec.shape[1]), win, sr)
    >>> abs(float(f0[0, 10:-10].median()) - 160) < 5, float(per[0, 10:-10].median()) > 0.8
    (True, True)
    """
    n_fft = window.numel()
    n = min(spec.shape[-1], mask.shape[1])
    power = (spec[..., :n].abs() * mask[:, :n].transpose(1, 2).to(spec.real.dtype)) ** settings.exponent
    ac = torch.fft.irfft(power, n_fft, dim=1)  # B, n_fft, N (circular, lags >= 0 first)
    ac = ac / ac[:, :1].clamp_min(1e-12)
    w_ac = torch.fft.irfft(torch.fft.rfft(window.double(), 2 * n_fft).abs() ** 2)[:n_fft]
    ac = ac / (w_ac / w_ac[0]).clamp_min(1e-3).to(ac.dtype)[None, :, None]  # undo the window's taper
    lags = torch.arange(int(sample_rate / settings.fmax), int(sample_rate / settings.fmin) + 1, device=ac.device)
    seg = ac[:, lags]  # B, L, N
    top = seg.max(dim=1, keepdim=True).values
    best = (seg >= settings.octave_tolerance * top).to(torch.int8).argmax(dim=1)  # the shortest such lag
    periodicity = seg.gather(1, best[:, None]).squeeze(1)
    return sample_rate / lags[best].to(spec.real.dtype), periodicity


def register_from_track(f0: Tensor, periodicity: Tensor, speech: Tensor,
                        settings: MaskRegisterSettings = MaskRegisterSettings()) -> List[Optional[float]]:
    """Median F0 (Hz) over voiced speech frames, per item; None with fewer than ``min_frames``.

    Example
    -------
    >>> f0 = torch.tensor([[100.0] * 12 + [300.0] * 3])
    >>> per = torch.tensor([[0.9] * 12 + [0.2] * 3])
    >>> register_from_track(f0, per, torch.ones(1, 15, dtype=torch.bool))
    [100.0]
    """
    voiced = speech[:, : f0.shape[1]] & (periodicity > settings.voicing_threshold)
    return [float(f[v].median()) if int(v.sum()) >= settings.min_frames else None for f, v in zip(f0, voiced)]


def constant_floor_mask(enhancer, out) -> Tensor:
    """``out.mask`` with the per-frame pause / low-SNR floors (``out.floors``) replaced by the model's own one.

    The register reads the masked spectrum, and its settings were chosen on masks with one floor; a deeper
    floor where speech is buried would change the read-out without changing the voice (on the real
    validation mixtures 80 % within 10 % with this mask, 76 % with the deeper floors). The SNR read-out
    undoes the floors for the same reason (:mod:`~speechbrain_dyncp.probes.mask_snr`).
    """
    if out.floors is None:
        return out.mask
    raw = unfloored(out.mask, out.floors)
    floor = enhancer.mask_floor
    return (floor + (1.0 - floor) * raw) * out.frame_mask[..., None].to(raw.dtype)


def enhancer_mask_register_hz(enhancer, noisy: Tensor, out, speech: Optional[Tensor] = None,
                              settings: MaskRegisterSettings = MaskRegisterSettings(),
                              spec: Optional[Tensor] = None) -> List[Optional[float]]:
    """The register of each item of a ``DynCPEnhancer`` forward ``out`` on ``noisy`` ``[B, T]``.

    ``speech`` ``[B, N]`` (e.g. the VAD probe > 0.5) limits the median to speech frames; without
    it every valid frame may vote (periodic noise such as hum then can). ``spec``:
    ``enhancer.spectrum(noisy)`` where the caller already has it.
    """
    spec = enhancer.spectrum(noisy) if spec is None else spec
    f0, periodicity = masked_autocorrelation_f0(spec, constant_floor_mask(enhancer, out), enhancer.window,
                                                int(enhancer.sample_rate), settings)
    valid = out.frame_mask[:, : f0.shape[1]].bool()
    if speech is not None:
        valid = valid & speech[:, : f0.shape[1]].bool()
    return register_from_track(f0, periodicity, valid, settings)
