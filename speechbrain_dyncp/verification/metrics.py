"""Speaker-verification metrics: EER, minDCF, Cllr and minCllr.

EER and minDCF come from the ROC of scikit-learn (``sklearn.metrics.roc_curve``,
one sort, O(N log N) time and O(N) memory) read as integer miss / false-alarm
counts, and give the same numbers as ``speechbrain.utils.metric_stats.EER`` /
``minDCF`` (same operating points: accept when ``score > threshold``, EER =
(FAR + FRR) / 2 at the threshold minimising |FAR - FRR|, ties to the lowest
threshold). SpeechBrain's own are not used: ``EER`` loops in Python over ~2N
thresholds and ``minDCF`` allocates ``[2N, N_pos]`` + ``[2N, N_neg]`` matrices
(GBs for VoxCeleb1-O, out of memory for Vox1-E/H) and is unnormalised.
The ROC rates are turned back into integer counts so that EER ties are
compared exactly (no float ties).

Cllr (the cost of log-likelihood ratios, Brümmer & du Preez 2006, in bits: 0
perfect, 1 = an uninformative system that always says LLR 0) and minCllr (the
Cllr after the best monotonic recalibration, pool-adjacent-violators through
scikit-learn's ``IsotonicRegression``) are written from their definitions
(a few lines): ``lir`` (NFI) has them but would add a dependency and its
plotting stack for two formulas, and SpeechBrain has none.

Authors
 * speechbrain-dyncp contributors
"""

import math
from typing import Dict, Iterable, NamedTuple, Sequence, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[float]]


def _np(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64).reshape(-1)


class ErrorRates(NamedTuple):
    """Miss / false-alarm counts at every distinct operating point, thresholds ascending."""

    thresholds: np.ndarray  # [K+1]; the first is -inf (accept everything)
    n_miss: np.ndarray  # [K+1] targets with score <= threshold
    n_fa: np.ndarray  # [K+1] non-targets with score > threshold
    n_target: int
    n_nontarget: int


def error_rates(scores: ArrayLike, labels: ArrayLike) -> ErrorRates:
    """Miss and false-alarm counts at each distinct score used as threshold.

    One ROC (``sklearn.metrics.roc_curve``), so the cost is O(N log N) and nothing
    of size N x N is ever built. A trial is accepted when ``score > threshold``.

    Arguments
    ---------
    scores : array-like
        ``[N]`` trial scores (higher = more likely target).
    labels : array-like
        ``[N]`` 1 for target trials, 0 for non-target trials.

    Returns
    -------
    ErrorRates

    Example
    -------
    >>> r = error_rates([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    >>> r.thresholds[1:].tolist(), r.n_miss.tolist(), r.n_fa.tolist()
    ([0.1, 0.35, 0.4, 0.8], [0, 0, 1, 1, 2], [2, 1, 1, 0, 0])
    """
    s, y = _np(scores), _np(labels)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape[0]} vs {y.shape[0]}")
    if not np.isfinite(s).all():
        raise ValueError(f"{int((~np.isfinite(s)).sum())} scores are NaN or infinite")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (non-target) or 1 (target)")
    n_t, n_n = int(y.sum()), int(len(y) - y.sum())
    if n_t == 0 or n_n == 0:
        raise ValueError(f"need both target and non-target trials, got {n_t} and {n_n}")
    from sklearn.metrics import roc_curve

    # roc_curve accepts ``score >= t`` at each distinct score, descending, after an
    # accept-nothing point at +inf. The same operating points, reversed, are
    # "accept ``score > t``" at the next lower distinct score (-inf: accept everything).
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    n_fa = np.rint(fpr[::-1] * n_n).astype(np.int64)
    n_miss = (n_t - np.rint(tpr[::-1] * n_t)).astype(np.int64)
    thresholds = np.r_[-np.inf, thr[:0:-1]]
    return ErrorRates(thresholds, n_miss, n_fa, n_t, n_n)


def compute_eer(scores: ArrayLike, labels: ArrayLike):
    """Equal error rate and its threshold, as ``speechbrain.utils.metric_stats.EER``.

    Arguments
    ---------
    scores : array-like
        ``[N]`` trial scores.
    labels : array-like
        ``[N]`` 1 = target, 0 = non-target.

    Returns
    -------
    eer : float
        (FAR + FRR) / 2 at the threshold where |FAR - FRR| is smallest, in [0, 1].
    threshold : float
        That threshold (accept when ``score > threshold``).

    Example
    -------
    >>> compute_eer([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    (0.5, 0.35)
    >>> compute_eer([0.1, 0.2, 0.7, 0.8], [0, 0, 1, 1])[0]
    0.0
    """
    r = error_rates(scores, labels)
    # exact integer comparison of |FA/Nn - Miss/Nt| (no float ties)
    gap = np.abs(r.n_fa * r.n_target - r.n_miss * r.n_nontarget)
    k = int(np.argmin(gap))  # first = lowest threshold, like SpeechBrain
    eer = (r.n_fa[k] / r.n_nontarget + r.n_miss[k] / r.n_target) / 2
    return float(eer), float(r.thresholds[k])


class DCF(NamedTuple):
    """Minimum detection cost at one operating prior."""

    min_dcf: float  # normalised by min(c_miss * p_target, c_fa * (1 - p_target))
    min_dcf_unnormalised: float  # = speechbrain.utils.metric_stats.minDCF
    threshold: float
    p_target: float


def compute_min_dcf(
    scores: ArrayLike,
    labels: ArrayLike,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> DCF:
    """Minimum of the detection cost ``c_miss P_miss p_t + c_fa P_fa (1 - p_t)``.

    Arguments
    ---------
    scores, labels : array-like
        ``[N]`` trial scores and their 0/1 labels (1 = target).
    p_target : float
        Prior of a target trial (NIST SRE / VoxCeleb: 0.01; VoxSRC: 0.05).
    c_miss, c_fa : float
        Costs of a miss and of a false alarm.

    Returns
    -------
    DCF
        ``min_dcf`` is the NIST-normalised value (1 = no better than always
        accepting or always rejecting); ``min_dcf_unnormalised`` is what
        SpeechBrain's ``minDCF`` returns.

    Example
    -------
    >>> d = compute_min_dcf([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], p_target=0.05)
    >>> round(d.min_dcf, 6), round(d.min_dcf_unnormalised, 6), d.threshold
    (0.5, 0.025, 0.4)
    """
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    r = error_rates(scores, labels)
    cost = c_miss * p_target * r.n_miss / r.n_target + c_fa * (1 - p_target) * r.n_fa / r.n_nontarget
    k = int(np.argmin(cost))
    norm = min(c_miss * p_target, c_fa * (1 - p_target))
    return DCF(float(cost[k] / norm), float(cost[k]), float(r.thresholds[k]), p_target)


def verification_metrics(scores: ArrayLike, labels: ArrayLike, p_targets: Iterable[float] = (0.01, 0.05),
                         c_miss: float = 1.0, c_fa: float = 1.0) -> Dict[str, float]:
    """EER and normalised minDCF at each prior, as a flat dict (for JSON / logs).

    Arguments
    ---------
    scores, labels : array-like
        ``[N]`` scores and 0/1 labels.
    p_targets : iterable of float
        Priors at which to report minDCF.
    c_miss, c_fa : float
        Detection costs.

    Returns
    -------
    dict
        ``EER`` (percent), ``EER_threshold``, ``n_target``, ``n_nontarget`` and for
        each prior ``minDCF@<p>`` (normalised) and ``minDCF_unnorm@<p>``.

    Example
    -------
    >>> m = verification_metrics([0.1, 0.2, 0.7, 0.8], [0, 0, 1, 1], p_targets=[0.05])
    >>> m["EER"], m["minDCF@0.05"], m["n_target"]
    (0.0, 0.0, 2)
    """
    eer, thr = compute_eer(scores, labels)
    y = _np(labels)
    out = {"EER": 100.0 * eer, "EER_threshold": thr, "n_target": int(y.sum()), "n_nontarget": int(len(y) - y.sum()),
           "c_miss": c_miss, "c_fa": c_fa}
    for p in p_targets:
        d = compute_min_dcf(scores, labels, p_target=p, c_miss=c_miss, c_fa=c_fa)
        out[f"minDCF@{p:g}"] = d.min_dcf
        out[f"minDCF_unnorm@{p:g}"] = d.min_dcf_unnormalised
    return out


def cllr(llrs, labels) -> float:
    """Cost of log-likelihood ratios in bits (natural-log LLRs; labels 1 target, 0 non-target).

    ``Cllr = 1/2 [mean_tar log2(1 + e^-llr) + mean_non log2(1 + e^llr)]``.

    Example
    -------
    >>> round(cllr([0.0, 0.0], [1, 0]), 6), round(cllr([20.0, -20.0], [1, 0]), 6)
    (1.0, 0.0)
    """
    llrs, labels = np.asarray(llrs, dtype=np.float64), np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise ValueError("cllr needs both target and non-target trials")
    c_tar = np.logaddexp(0.0, -llrs[labels]).mean()
    c_non = np.logaddexp(0.0, llrs[~labels]).mean()
    return float((c_tar + c_non) / (2 * math.log(2)))


def pav_llrs(scores, labels) -> np.ndarray:
    """LLRs of the optimal monotonic (pool-adjacent-violators) calibration of ``scores``.

    Example
    -------
    >>> pav_llrs([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1])[[0, 3]]
    array([-inf,  inf])
    """
    from sklearn.isotonic import IsotonicRegression

    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    post = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels).predict(scores)
    prior = labels.mean()
    with np.errstate(divide="ignore"):
        return np.log(post) - np.log1p(-post) - math.log(prior / (1 - prior))


def min_cllr(scores, labels) -> float:
    """Cllr after the best monotonic recalibration (the discrimination part of Cllr).

    Example
    -------
    >>> s = np.random.default_rng(0).normal(size=200); y = s + np.random.default_rng(1).normal(size=200) > 0
    >>> 0.0 < min_cllr(s, y) <= cllr(2 * s, y)
    True
    """
    llrs = pav_llrs(scores, labels)
    labels = np.asarray(labels).astype(bool)
    # an infinite LLR on the right side costs 0, on the wrong side PAV never puts one
    return cllr(np.clip(llrs, -700, 700), labels)
