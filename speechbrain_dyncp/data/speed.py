"""Speed perturbation of a training item together with its frame labels.

Playing a signal ``factor`` times faster scales every frequency, F0
included, by ``factor``: the harmonic spacing still gives the pitch, but the
pairing of a training speaker's voice with a pitch register is broken. With
only a few dozen training speakers, a jointly trained F0 read-out
(``losses/gate_probes.py``) otherwise learns "which training voice is this"
instead of pitch, and does not carry to unseen speakers (see
recipes/DynCP/README.md, "Mask probes").

SpeechBrain's ``augment.time_domain.SpeedPerturb`` draws its speed inside the
call and acts on batches, so the labels could not follow; here the factor is
chosen by the caller and applied to the waveforms (torchaudio's polyphase
``resample``) and to the VAD / F0 frame labels alike.

Authors
 * speechbrain-dyncp contributors
"""

from fractions import Fraction
from typing import Tuple

import torch
import torchaudio

from speechbrain_dyncp.data.labels import n_frames


def speed_rates(factor: float) -> Tuple[int, int]:
    """``(orig, new)`` resampling rates that play a signal ``factor`` times faster.

    Raises a ``ValueError`` naming the factor where it is not a positive ratio of
    small integers (recipes call it on their factor list before training starts).

    Example
    -------
    >>> speed_rates(1.25), speed_rates(0.9)
    ((5, 4), (9, 10))
    """
    if factor <= 0:
        raise ValueError(f"Speed factor must be > 0, got {factor}")
    frac = Fraction(factor).limit_denominator(100)
    if abs(float(frac) - factor) > 1e-6:
        raise ValueError(f"Speed factor {factor} is not a ratio of small integers (use e.g. 0.9 or 1.25)")
    return frac.numerator, frac.denominator


def perturb_speed(wav: torch.Tensor, factor: float) -> torch.Tensor:
    """``wav`` ``[..., T]`` played ``factor`` times faster (F0 times ``factor``).

    Arguments
    ---------
    wav : torch.Tensor
        Waveform(s), time last.
    factor : float
        > 1 faster and higher, < 1 slower and lower; a ratio of small integers.

    Returns
    -------
    torch.Tensor
        ``[..., ceil(T / factor)]``.

    Example
    -------
    >>> t = torch.arange(16000) / 16000
    >>> y = perturb_speed(torch.sin(2 * torch.pi * 100 * t), 1.25)  # 100 Hz -> 125 Hz
    >>> y.shape
    torch.Size([12800])
    >>> int(torch.fft.rfft(y).abs().argmax() * 16000 / y.numel())
    125
    """
    orig, new = speed_rates(factor)
    if orig == new:
        return wav
    return torchaudio.functional.resample(wav, orig, new)


def perturb_speed_labels(
    vad: torch.Tensor, f0: torch.Tensor, factor: float, n_samples: int, hop: int = 256
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Frame labels of a signal sped up by ``factor``, now ``n_samples`` long.

    Frame ``t`` of the perturbed signal is centred on sample ``t * hop``, which
    was sample ``t * hop * factor`` of the original: it takes the original
    frame nearest to that, and F0 is scaled by ``factor`` (unvoiced stays 0).

    Arguments
    ---------
    vad, f0 : torch.Tensor
        ``[N]`` labels of the original signal.
    factor : float
        The speed factor given to :func:`perturb_speed`.
    n_samples : int
        Length of the perturbed signal.
    hop : int
        Frame hop in samples.

    Returns
    -------
    tuple of torch.Tensor
        ``vad``, ``f0`` on the perturbed signal's ``1 + n_samples // hop`` frames.

    Example
    -------
    >>> vad, f0 = torch.tensor([0, 1, 1, 1, 0]), torch.tensor([0.0, 100, 110, 120, 0])
    >>> perturb_speed_labels(vad, f0, 2.0, n_samples=512, hop=256)
    (tensor([0, 1, 0]), tensor([  0., 220.,   0.]))
    """
    t = torch.arange(n_frames(n_samples, hop), dtype=torch.float64)
    src = torch.clamp(torch.round(t * factor).long(), max=len(vad) - 1)
    return vad[src], f0[src] * factor
