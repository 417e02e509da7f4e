"""Residual-noise term: how much of the noise the mask lets through, in dB.

A mask applied to the noisy STFT is linear: ``M (S + N) = M S + M N``, so in training (where the
target ``S`` is known) the noise that passes is exactly ``M N`` with ``N = X - S``. The SI-SDR and
spectral terms weigh residual noise against the speech energy of the whole item, so noise left in
pauses costs them little, while listeners and DNSMOS's background score hear it most there (the
real test split's DNSMOS gap to RNNoise is background, not speech: docs/results_real.md). This term
is the noise's attenuation ``10 log10(|M N|^2 / |N|^2)`` per item over valid frames, soft-floored at
``-max_atten_db`` so that the loss stops asking for more once the noise is that far down (the shipped
models cap the mask at a 20 dB attenuation limit anyway). It is the noise half of the weighted
speech-distortion loss of Xia et al. (ICASSP 2020), kept in dB so every item counts the same
whatever its level; the speech half is the existing spectral and SI-SDR terms.

Authors
 * speechbrain-dyncp contributors
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

NOISELESS_RATIO = 1e-6  # items whose noise has < 1e-6 of the target's energy (clean items) are skipped


def noise_attenuation_db(mask: Tensor, noisy_spec: Tensor, clean_spec: Tensor,
                         frame_mask: Optional[Tensor] = None, max_atten_db: float = 30.0):
    """Per-item residual-noise level ``[B]`` in dB (<= 0; softly floored at ``-max_atten_db``) and the
    boolean ``[B]`` of items that have noise.

    Arguments
    ---------
    mask : torch.Tensor
        Real mask ``[B, N, F]`` (as ``EnhancerOutput.mask``).
    noisy_spec, clean_spec : torch.Tensor
        Complex STFTs ``[B, F, N]`` of the input and of the training target (same transform).
    frame_mask : torch.Tensor, optional
        ``[B, N]``, True on valid frames (padding is left out).
    max_atten_db : float
        Attenuation beyond which the term flattens (softplus floor, no gradient cliff).

    Example
    -------
    >>> clean = torch.randn(2, 257, 10, dtype=torch.cfloat)
    >>> noise = 0.1 * torch.randn(2, 257, 10, dtype=torch.cfloat)
    >>> noise[1] = 0  # a clean item
    >>> mask = torch.full((2, 10, 257), 0.1)  # passes 1 % of the noise energy: -20 dB
    >>> db, has_noise = noise_attenuation_db(mask, clean + noise, clean, max_atten_db=60.0)
    >>> round(float(db[0]), 1), has_noise.tolist()
    (-20.0, [True, False])
    """
    noise = (noisy_spec - clean_spec).transpose(1, 2)  # B, N, F
    valid = torch.ones(mask.shape[:2], dtype=torch.bool, device=mask.device) if frame_mask is None else frame_mask
    w = valid.unsqueeze(-1).to(mask.dtype)
    noise_energy = (noise.abs() ** 2 * w).sum((1, 2))
    residual = ((mask * noise).abs() ** 2 * w).sum((1, 2))
    target_energy = (clean_spec.transpose(1, 2).abs() ** 2 * w).sum((1, 2))
    has_noise = noise_energy > NOISELESS_RATIO * target_energy.clamp(min=1e-12)
    eps = 1e-10 * noise_energy.detach().clamp(min=1e-12)
    db = 10 * torch.log10((residual + eps) / (noise_energy + eps).clamp(min=1e-12))
    # soft floor: ~db above -max_atten_db, ~-max_atten_db below it
    return -max_atten_db + F.softplus(db + max_atten_db), has_noise


def residual_noise_loss(mask: Tensor, noisy_spec: Tensor, clean_spec: Tensor,
                        frame_mask: Optional[Tensor] = None, max_atten_db: float = 30.0) -> Tensor:
    """Mean residual-noise level (dB) over the items that have noise; 0 for a batch of clean items.

    Example
    -------
    >>> clean = torch.randn(1, 257, 10, dtype=torch.cfloat)
    >>> noisy = clean + 0.3 * torch.randn(1, 257, 10, dtype=torch.cfloat)
    >>> deeper = residual_noise_loss(torch.full((1, 10, 257), 0.1), noisy, clean)
    >>> bool(deeper < residual_noise_loss(torch.full((1, 10, 257), 0.5), noisy, clean))
    True
    """
    db, has_noise = noise_attenuation_db(mask, noisy_spec, clean_spec, frame_mask, max_atten_db)
    if not bool(has_noise.any()):
        return db.sum() * 0.0  # keeps the graph (and DDP's unused-parameter check) intact
    return db[has_noise].mean()
