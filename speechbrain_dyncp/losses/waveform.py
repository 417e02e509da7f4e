"""Waveform (SI-SDR) term of the enhancement loss, optionally weighted towards low-SNR items.

The spectral loss of ``losses/dyncp.py`` leaves phase and scale errors that cost SI-SDR; a
negative, soft-capped SI-SDR term (Wisdom et al., 2020) fixes them. Applied uniformly, a
strong term also trades a little PESQ on easy (high-SNR) items for SI-SDR there
(docs/results_real.md, session 8). ``low_snr_boost`` spends the extra weight only where the
input is hard: an item's weight is ``1 + low_snr_boost * ramp`` with ``ramp`` going from 0 at
an input SNR of ``low_snr_db + 5`` to 1 at ``low_snr_db - 5`` (linear between), so clean and
high-SNR items keep weight 1.
"""
from typing import Optional

import torch
from torch import Tensor

from speechbrain_dyncp.metrics.enhancement import si_sdr

RAMP_HALF_WIDTH_DB = 5.0  # the weight ramps over low_snr_db +- 5 dB (no cliff at one SNR)


def low_snr_weights(noisy: Tensor, clean: Tensor, lengths: Optional[Tensor] = None,
                    low_snr_db: float = 5.0, low_snr_boost: float = 0.0) -> Tensor:
    """Per-item weights ``[B]``: 1 on easy items, up to ``1 + low_snr_boost`` on hard ones.

    The input SNR is the noisy input's SI-SDR against the training target (so reverberant
    targets count the noise only). Weights carry no gradient.

    Example
    -------
    >>> clean = torch.randn(3, 8000)
    >>> noise = torch.randn(3, 8000)
    >>> noisy = clean + noise * torch.tensor([[0.0], [0.562], [10.0]])  # clean, 5 dB, -20 dB
    >>> low_snr_weights(noisy, clean, low_snr_db=5.0, low_snr_boost=2.0).round().tolist()
    [1.0, 2.0, 3.0]
    """
    with torch.no_grad():
        snr_in = si_sdr(noisy, clean, lengths)
        ramp = ((low_snr_db + RAMP_HALF_WIDTH_DB - snr_in) / (2 * RAMP_HALF_WIDTH_DB)).clamp(0.0, 1.0)
        return 1.0 + low_snr_boost * ramp


def waveform_loss(est: Tensor, clean: Tensor, lengths: Optional[Tensor] = None, max_db: float = 30.0,
                  noisy: Optional[Tensor] = None, low_snr_db: float = 5.0, low_snr_boost: float = 0.0) -> Tensor:
    """Mean negative SI-SDR (soft-capped at ``max_db``), each item weighted by ``low_snr_weights``.

    The mean is over the batch (not over the weights), so a boost adds gradient on hard items
    without taking any from easy ones.

    Example
    -------
    >>> clean = torch.randn(2, 8000)
    >>> noisy = clean + torch.randn(2, 8000) * torch.tensor([[0.1], [3.0]])
    >>> plain = waveform_loss(noisy, clean)
    >>> boosted = waveform_loss(noisy, clean, noisy=noisy, low_snr_boost=1.0)
    >>> bool(boosted > plain)  # the -9.5 dB item counts twice
    True
    """
    neg_sdr = -si_sdr(est, clean, lengths, max_db=max_db)
    if low_snr_boost and noisy is not None:
        neg_sdr = neg_sdr * low_snr_weights(noisy, clean, lengths, low_snr_db, low_snr_boost)
    return neg_sdr.mean()
