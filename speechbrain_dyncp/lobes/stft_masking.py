"""The mask side of the DynCP enhancer: the attenuation limit's mask floor (and its inverse, for the
read-outs), the energy a mask keeps and removes, and the inverse STFT over valid frames (used by
:class:`~speechbrain_dyncp.lobes.enhancer.DynCPEnhancer`).

Authors
 * speechbrain-dyncp contributors
"""

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor


def attenuation_floor(limit_db: Optional[float]) -> float:
    """Mask floor ``10 ** (-limit / 20)`` of a limit in dB; None or 0 = no limit (as DeepFilterNet's).

    Example
    -------
    >>> attenuation_floor(20.0), attenuation_floor(None), attenuation_floor(0)
    (0.1, 0.0, 0.0)
    """
    if limit_db is None or float(limit_db) == 0.0:
        return 0.0
    if float(limit_db) < 0:
        raise ValueError(f"attenuation_limit_db must be positive (dB of attenuation), got {limit_db}")
    return 10.0 ** (-float(limit_db) / 20.0)


def unfloored(mask: Tensor, floor: Union[float, Tensor]) -> Tensor:
    """The sigmoid under a floored mask, ``(mask - floor) / (1 - floor)`` in ``[0, 1]``: the inverse of the
    attenuation floor (``floor`` a number or per frame ``[B, N, 1]``), so the T-F mask read-outs do not
    depend on the limits a model or a user picks.

    Example
    -------
    >>> unfloored(torch.tensor([0.25, 0.625, 1.0]), 0.25).tolist()  # the floor itself is 0
    [0.0, 0.5, 1.0]
    """
    return ((mask - floor) / (1.0 - floor)).clamp(0.0, 1.0)


def kept_removed_energy(raw: Tensor, power: Tensor) -> Tuple[Tensor, Tensor]:
    """Energy an un-floored mask ``raw`` keeps and removes of the input ``power`` ``|X|^2``, summed over the
    last dimension: ``sum raw^2 |X|^2`` and ``sum (1 - raw)^2 |X|^2``.

    Example
    -------
    >>> [float(e) for e in kept_removed_energy(torch.tensor([1.0, 0.5]), torch.tensor([2.0, 4.0]))]
    [3.0, 1.0]
    """
    return (raw * raw * power).sum(-1), ((1.0 - raw) ** 2 * power).sum(-1)


def masked_istft(spec: Tensor, frame_mask: Tensor, window: Tensor, hop: int, length: int) -> Tensor:
    """Inverse of ``torch.stft(center=True)`` using only valid frames.

    Same as ``torch.istft`` (weighted overlap-add divided by the summed squared
    window) except that invalid frames add neither signal nor window energy,
    so padding a batch never changes a valid sample.

    Arguments
    ---------
    spec : torch.Tensor
        Complex ``[B, F, N]``.
    frame_mask : torch.Tensor
        ``[B, N]`` bool.
    window : torch.Tensor
        ``[n_fft]`` synthesis window.
    hop : int
        Hop length.
    length : int
        Output samples T.

    Returns
    -------
    torch.Tensor
        ``[B, T]``.

    Example
    -------
    >>> x, w = torch.randn(2, 1000), torch.hann_window(64)
    >>> X = torch.stft(x, 64, 16, window=w, return_complex=True)
    >>> ok = torch.ones(2, X.shape[-1], dtype=torch.bool)
    >>> torch.allclose(masked_istft(X, ok, w, 16, 1000), x, atol=1e-5)
    True
    """
    n_fft = window.shape[0]
    n = spec.shape[-1]
    m = frame_mask.unsqueeze(1).to(window.dtype)  # B, 1, N
    frames = torch.fft.irfft(spec, n=n_fft, dim=1) * window[:, None] * m  # B, n_fft, N
    env = (window**2)[None, :, None] * m
    full = (n - 1) * hop + n_fft
    both = torch.cat([frames, env], 0)
    ola = F.fold(both, (1, full), (1, n_fft), stride=(1, hop)).flatten(1)  # 2B, full
    num, den = ola.chunk(2, 0)
    start = n_fft // 2
    num, den = num[:, start : start + length], den[:, start : start + length]
    out = torch.where(den > 1e-11, num / den.clamp(min=1e-11), torch.zeros_like(num))
    return F.pad(out, (0, length - out.shape[-1]))
