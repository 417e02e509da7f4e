"""Enhancement metrics: SI-SDR (with lengths), SI-SDR improvement, PESQ-WB, STOI.

SpeechBrain's ``cal_si_snr`` works on separation tensors ``[T, B, C]`` and uses
the padded length; here SI-SDR honours relative lengths so padding never
changes a score. PESQ and STOI wrap the ``pesq`` and ``pystoi`` packages (the
``metrics`` extra): a silent or too-short input gives NaN with a warning
instead of an exception, so a SpeechBrain ``MetricStats`` (use ``n_jobs=1``;
its multiprocess path retries failing items forever) never stalls.

Authors
 * speechbrain-dyncp contributors
"""

import logging
import math
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from speechbrain_dyncp.lengths import frame_lengths, length_mask

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000


def si_sdr(est: Tensor, ref: Tensor, lengths: Optional[Tensor] = None, eps: float = 1e-8,
           max_db: Optional[float] = None) -> Tensor:
    """Scale-invariant SDR in dB per item, ``[B]`` (zero-mean over valid samples).

    ``SI-SDR = 10 log10(||a r||^2 / ||a r - e||^2)`` with ``a = <e, r> / ||r||^2``.

    Arguments
    ---------
    est, ref : torch.Tensor
        ``[B, T]`` estimate and reference (``[T]`` is treated as one item).
    lengths : torch.Tensor, optional
        Relative lengths ``[B]``; samples past each length are ignored.
    eps : float
        Keeps silent references and perfect estimates finite.
    max_db : float, optional
        Soft ceiling (the thresholded SDR of Wisdom et al., 2020): ``tau = 10^(-max_db/10)``
        of the target energy is added to the residual, so near-perfect items (clean input)
        stop dominating a training loss. None = plain SI-SDR (the metric).

    Returns
    -------
    torch.Tensor
        ``[B]`` in dB.

    Example
    -------
    >>> ref = torch.randn(1, 16000)
    >>> round(float(si_sdr(3.0 * ref, ref)), 1) > 60  # scaling is free
    True
    >>> noise = torch.randn(1, 16000)
    >>> noise = noise - (noise * ref).sum() / (ref * ref).sum() * ref  # orthogonal
    >>> est = ref + noise * (ref.norm() / noise.norm()) / 10  # 20 dB below
    >>> round(float(si_sdr(est, ref)), 1)
    20.0
    >>> round(float(si_sdr(ref, ref, max_db=30.0)), 1)  # capped
    30.0
    """
    if est.shape != ref.shape:
        raise ValueError(f"est {tuple(est.shape)} and ref {tuple(ref.shape)} must have one shape")
    if est.ndim == 1:
        est, ref = est.unsqueeze(0), ref.unsqueeze(0)
    batch, n_samples = est.shape
    mask = length_mask(lengths, n_samples, batch, est.device).to(est.dtype)
    n_valid = mask.sum(1, keepdim=True)
    est = (est - (est * mask).sum(1, keepdim=True) / n_valid) * mask
    ref = (ref - (ref * mask).sum(1, keepdim=True) / n_valid) * mask
    scale = (est * ref).sum(1, keepdim=True) / (ref.pow(2).sum(1, keepdim=True) + eps)
    target = scale * ref
    residual = est - target
    energy = target.pow(2).sum(1)
    floor = 0.0 if max_db is None else 10 ** (-max_db / 10) * energy
    return 10 * torch.log10((energy + eps) / (residual.pow(2).sum(1) + floor + eps))


def si_sdr_improvement(est: Tensor, noisy: Tensor, clean: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
    """SI-SDRi: ``SI-SDR(est, clean) - SI-SDR(noisy, clean)`` in dB, ``[B]``.

    Example
    -------
    >>> clean = torch.randn(2, 8000)
    >>> noisy = clean + torch.randn(2, 8000)
    >>> si_sdr_improvement(noisy, noisy, clean).abs().max() < 1e-4
    tensor(True)
    """
    return si_sdr(est, clean, lengths) - si_sdr(noisy, clean, lengths)


def _to_numpy(wav) -> np.ndarray:
    if isinstance(wav, Tensor):
        wav = wav.detach().cpu().float().numpy()
    return np.asarray(wav, dtype=np.float64).reshape(-1)


def pesq_wb(est, ref, sample_rate: int = SAMPLE_RATE) -> float:
    """Wide-band PESQ (P.862.2) of one utterance; NaN with a warning when undefined.

    Arguments
    ---------
    est, ref : torch.Tensor or numpy.ndarray
        ``[T]`` degraded/enhanced and reference waveforms (already trimmed).
    sample_rate : int
        16000 (PESQ-WB is defined at 16 kHz).

    Returns
    -------
    float
        MOS-LQO in [-0.5, 4.64], or NaN for silent / too-short input.

    Example
    -------
    >>> import math
    >>> math.isnan(pesq_wb(torch.zeros(16000), torch.zeros(16000)))
    True
    """
    try:
        from pesq import BufferTooShortError, NoUtterancesError, pesq
    except ImportError as exc:  # the "metrics" extra
        raise ImportError("PESQ needs the 'pesq' package: pip install speechbrain-dyncp[metrics]") from exc
    est, ref = _to_numpy(est), _to_numpy(ref)
    if not (np.abs(ref).max(initial=0) > 0 and np.abs(est).max(initial=0) > 0):
        logger.warning("PESQ undefined for a silent signal; returning NaN")
        return math.nan
    try:
        return float(pesq(sample_rate, ref, est, "wb"))
    except (NoUtterancesError, BufferTooShortError) as exc:
        logger.warning("PESQ undefined (%s); returning NaN", type(exc).__name__)
        return math.nan


def stoi(est, ref, sample_rate: int = SAMPLE_RATE, extended: bool = False) -> float:
    """STOI (or ESTOI) of one utterance via ``pystoi``; NaN when undefined.

    Example
    -------
    >>> ref = torch.randn(16000)
    >>> round(stoi(ref, ref), 3)
    1.0
    """
    try:
        from pystoi import stoi as _stoi
    except ImportError as exc:
        raise ImportError("STOI needs the 'pystoi' package: pip install speechbrain-dyncp[metrics]") from exc
    est, ref = _to_numpy(est), _to_numpy(ref)
    if not np.abs(ref).max(initial=0) > 0:
        logger.warning("STOI undefined for a silent reference; returning NaN")
        return math.nan
    return float(_stoi(ref, est, sample_rate, extended=extended))


def pesq_available() -> bool:
    """Whether the optional ``pesq`` package can be imported."""
    try:
        import pesq  # noqa: F401
    except ImportError:
        return False
    return True


def stoi_available() -> bool:
    """Whether the optional ``pystoi`` package can be imported."""
    try:
        import pystoi  # noqa: F401
    except ImportError:
        return False
    return True


def batch_metric(fn, est: Tensor, ref: Tensor, lengths: Optional[Tensor] = None, **kwargs) -> Tensor:
    """Apply a one-utterance metric (``pesq_wb``, ``stoi``) to each trimmed item, ``[B]``.

    Example
    -------
    >>> ref = torch.randn(2, 16000)
    >>> batch_metric(stoi, ref, ref, torch.tensor([1.0, 0.75])).round(decimals=3)
    tensor([1., 1.], dtype=torch.float64)
    """
    n = frame_lengths(lengths, est.shape[1], est.shape[0])
    return torch.tensor([fn(e[:k], r[:k], **kwargs) for e, r, k in zip(est, ref, n.tolist())], dtype=torch.float64)
