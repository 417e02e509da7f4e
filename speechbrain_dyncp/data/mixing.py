"""On-the-fly mixing: noise at an exact SNR, noise length fitting, reverberation.

SNR is defined on the samples given: ``10 log10(sum clean^2 / sum noise^2)``
over each item's valid (unpadded) samples. Unlike
``speechbrain.augment.AddNoise``, the clean signal keeps its level (only the
noise is scaled), so the clean waveform stays a valid enhancement target.

Authors
 * speechbrain-dyncp contributors
"""

from typing import Optional, Union

import numpy as np
import torch
from torchaudio.functional import add_noise

from speechbrain_dyncp.lengths import length_mask


def mix_at_snr(
    clean: torch.Tensor,
    noise: torch.Tensor,
    snr_db: Union[float, torch.Tensor],
    lengths: Optional[torch.Tensor] = None,
    return_noise: bool = False,
):
    """Add ``noise`` to ``clean`` scaled to an exact SNR (``torchaudio.functional.add_noise``
    in float64, plus shape / silence checks, noise zeroed on padding and the scaled noise).

    Arguments
    ---------
    clean : torch.Tensor
        ``[T]`` or ``[B, T]``.
    noise : torch.Tensor
        Same shape as ``clean`` (see :func:`fit_length`).
    snr_db : float or torch.Tensor
        Scalar or ``[B]`` per-item SNR in dB.
    lengths : torch.Tensor, optional
        ``[B]`` relative lengths; padding is excluded from both energies and
        the noise is zeroed there (the padded mixture equals the padded clean).
    return_noise : bool
        Also return the scaled noise (``mixture = clean + scaled_noise``).

    Returns
    -------
    torch.Tensor
        The mixture, shaped like ``clean`` (and the scaled noise if asked).
        Silent clean items give silent noise (SNR undefined there).

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> clean, noise = torch.randn(2, 8000, generator=g), torch.randn(2, 8000, generator=g)
    >>> mix, n = mix_at_snr(clean, noise, torch.tensor([0.0, 10.0]), return_noise=True)
    >>> snr = 10 * torch.log10(clean.pow(2).sum(1) / n.pow(2).sum(1))
    >>> [abs(round(v, 4)) for v in snr.tolist()]
    [0.0, 10.0]
    """
    if clean.shape != noise.shape:
        raise ValueError(f"mix_at_snr: clean {tuple(clean.shape)} and noise {tuple(noise.shape)} differ; "
                         "use fit_length(noise, clean.shape[-1]) first.")
    squeeze = clean.ndim == 1
    if squeeze:
        clean, noise = clean.unsqueeze(0), noise.unsqueeze(0)
    if clean.ndim != 2:
        raise ValueError(f"mix_at_snr expects [time] or [batch, time], got {tuple(clean.shape)}")
    batch, time = clean.shape
    valid = length_mask(lengths, time, batch, clean.device)
    noise = noise * valid.to(noise.dtype)
    e_noise = noise.double().pow(2).sum(-1)
    if bool((e_noise <= 0).any()):
        bad = torch.nonzero(e_noise <= 0).flatten().tolist()
        raise ValueError(f"mix_at_snr: noise item(s) {bad} are silent over the valid samples; cannot reach an SNR.")
    snr = torch.as_tensor(snr_db, dtype=torch.float64, device=clean.device)
    if snr.ndim > 1 or (snr.ndim == 1 and snr.numel() not in (1, batch)):
        raise ValueError(f"snr_db must be a scalar or [batch]={batch} values, got shape {tuple(snr.shape)}")
    # torchaudio's scaling, in float64; the noise was zeroed on padding above (add_noise scales all of it)
    mixed = add_noise(clean.double(), noise.double(), snr.expand(batch), valid.sum(-1))
    scaled = (mixed - clean.double()).to(clean.dtype)
    mix = clean + scaled
    if squeeze:
        mix, scaled = mix.squeeze(0), scaled.squeeze(0)
    return (mix, scaled) if return_noise else mix


def fit_length(
    noise: torch.Tensor,
    n: int,
    rng: Optional[Union[np.random.Generator, int]] = None,
) -> torch.Tensor:
    """Crop (random offset) or tile ``noise`` ``[..., L]`` to ``[..., n]`` samples.

    Arguments
    ---------
    noise : torch.Tensor
        ``[L]`` or ``[B, L]``.
    n : int
        Wanted length.
    rng : numpy.random.Generator or int, optional
        Offset randomness (an int seeds a generator; None = offset 0).

    Example
    -------
    >>> fit_length(torch.arange(3.0), 7).tolist()
    [0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 0.0]
    >>> fit_length(torch.arange(10.0), 4, rng=0).shape
    torch.Size([4])
    """
    length = noise.shape[-1]
    if length == 0:
        raise ValueError("fit_length: empty noise")
    if isinstance(rng, (int, np.integer)):
        rng = np.random.default_rng(int(rng))
    offset = int(rng.integers(length)) if rng is not None else 0
    if length >= n and offset + n > length:
        offset = int(rng.integers(length - n + 1)) if rng is not None else 0
    reps = -(-(offset + n) // length)  # ceil
    tiled = noise.repeat(*([1] * (noise.ndim - 1)), reps) if reps > 1 else noise
    return tiled[..., offset : offset + n]


def reverberate(clean: torch.Tensor, rir: torch.Tensor) -> torch.Tensor:
    """Convolve with a room impulse response, aligned to its direct path.

    The RIR is divided by its direct-path sample (its largest absolute value),
    and the output is shifted by that sample's index, so the direct sound
    keeps the clean signal's timing and level (the reverberant tail adds).
    Not ``speechbrain.processing.signal_processing.reverberate``: its FFT
    convolution is circular (the tail wraps onto the start, RIRs longer than
    the signal are cut) and it rescales the output's amplitude instead.

    Arguments
    ---------
    clean : torch.Tensor
        ``[T]`` or ``[B, T]``.
    rir : torch.Tensor
        ``[L]`` (shared) or ``[B, L]`` (one per item).

    Returns
    -------
    torch.Tensor
        Same shape as ``clean``.

    Example
    -------
    >>> x = torch.zeros(10); x[2] = 1.0
    >>> h = torch.tensor([0.0, 0.0, 2.0, 1.0])  # direct path at index 2
    >>> [round(v, 6) + 0.0 for v in reverberate(x, h).tolist()]
    [0.0, 0.0, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """
    squeeze = clean.ndim == 1
    x = clean.unsqueeze(0) if squeeze else clean
    h = rir.unsqueeze(0) if rir.ndim == 1 else rir
    if h.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"reverberate: {h.shape[0]} RIRs for a batch of {x.shape[0]}")
    direct = h.abs().argmax(dim=-1)  # [B or 1]
    peak = h.gather(-1, direct.unsqueeze(-1))
    h = h / peak
    t, length = x.shape[-1], h.shape[-1]
    n_fft = 1 << int(np.ceil(np.log2(t + length - 1)))
    y = torch.fft.irfft(torch.fft.rfft(x.double(), n_fft) * torch.fft.rfft(h.double(), n_fft), n_fft)
    idx = direct.view(-1, 1) + torch.arange(t, device=x.device)
    out = y.gather(-1, idx.expand(x.shape[0], t)).to(clean.dtype)
    return out.squeeze(0) if squeeze else out
