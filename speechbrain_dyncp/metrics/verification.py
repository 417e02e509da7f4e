"""Speaker-verification scoring: trial lists, cosine scores, score normalisation, EER, minDCF.

Why not ``speechbrain.utils.metric_stats.EER/minDCF``: ``EER`` loops in Python
over ~2N thresholds and ``minDCF`` allocates ``[2N, N_pos]`` + ``[2N, N_neg]``
matrices (GBs for VoxCeleb1-O, out of memory for Vox1-E/H) and is unnormalised.
Here both come from one sort + cumulative sum, O(N log N) time and O(N) memory,
and give the same numbers as SpeechBrain's (same operating points:
accept when ``score > threshold``, EER = (FAR + FRR) / 2 at the threshold
minimising |FAR - FRR|, ties to the lowest threshold).

Score normalisation (z-, t-, s-norm, adaptive s-norm "AS-norm") computes the
cohort statistics once per unique enrol / test id, in chunks, instead of once
per trial as SpeechBrain's verification recipe does.

Authors
 * speechbrain-dyncp contributors
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[float]]
NORM_METHODS = ("none", "z-norm", "t-norm", "s-norm", "as-norm")
_AUDIO_EXT = (".wav", ".flac", ".m4a", ".ogg", ".mp3")


def _np(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64).reshape(-1)


# --------------------------------------------------------------------------- error rates


class ErrorRates(NamedTuple):
    """Miss / false-alarm counts at every distinct operating point, thresholds ascending."""

    thresholds: np.ndarray  # [K+1]; the first is -inf (accept everything)
    n_miss: np.ndarray  # [K+1] targets with score <= threshold
    n_fa: np.ndarray  # [K+1] non-targets with score > threshold
    n_target: int
    n_nontarget: int


def error_rates(scores: ArrayLike, labels: ArrayLike) -> ErrorRates:
    """Miss and false-alarm counts at each distinct score used as threshold.

    Sorts once and accumulates, so the cost is O(N log N) and nothing of size
    N x N is ever built. A trial is accepted when ``score > threshold``.

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
    order = np.argsort(s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_value = np.r_[s[1:] != s[:-1], True]  # end of each run of equal scores
    cum_t = np.cumsum(y)[last_of_value]
    cum_n = np.cumsum(1.0 - y)[last_of_value]
    thresholds = np.r_[-np.inf, s[last_of_value]]
    n_miss = np.r_[0, cum_t].astype(np.int64)
    n_fa = (n_n - np.r_[0, cum_n]).astype(np.int64)
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
    scores : array-like
        ``[N]`` trial scores.
    labels : array-like
        ``[N]`` 1 = target, 0 = non-target.
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


# --------------------------------------------------------------------------- trial lists


class UnknownTrialIdError(KeyError):
    """Trial ids that have no embedding / manifest row; the message lists them."""

    def __str__(self):  # KeyError would repr() the message
        return str(self.args[0])


@dataclass
class Trials:
    """A verification trial list: parallel lists of enrol ids, test ids and 0/1 labels."""

    enrol: List[str]
    test: List[str]
    labels: np.ndarray  # [N] int64, 1 = target
    source: str = "<memory>"

    def __len__(self):
        return len(self.labels)

    def ids(self) -> List[str]:
        """Sorted unique ids appearing on either side."""
        return sorted(set(self.enrol) | set(self.test))

    def check_ids(self, known: Iterable[str]) -> None:
        """Raise :class:`UnknownTrialIdError` naming the ids not in ``known``."""
        known = set(known)
        missing = [i for i in self.ids() if i not in known]
        if missing:
            shown = ", ".join(missing[:10]) + (f", ... ({len(missing)} in all)" if len(missing) > 10 else "")
            raise UnknownTrialIdError(
                f"Trial list {self.source} names {len(missing)} id(s) with no utterance/embedding: {shown}. "
                "Ids are the paths relative to wav/ without extension; check the data folder and trial list.")


def utterance_id(path: str) -> str:
    """Trial-list entry to utterance id: drop an audio extension (``a/b/1.wav`` -> ``a/b/1``).

    Example
    -------
    >>> utterance_id("id10270/x6uYqmx31kE/00001.wav"), utterance_id("spk1_utt2")
    ('id10270/x6uYqmx31kE/00001', 'spk1_utt2')
    """
    root, ext = os.path.splitext(path)
    return root if ext.lower() in _AUDIO_EXT else path


def read_trials(path: Union[str, os.PathLike], known_ids: Optional[Iterable[str]] = None) -> Trials:
    """Read a trial list in VoxCeleb (``1 enrol.wav test.wav``) or Kaldi (``enrol test target``) format.

    The format is detected per line: a leading ``0``/``1`` is VoxCeleb, a
    trailing ``target``/``nontarget`` is Kaldi. Audio extensions are stripped.

    Arguments
    ---------
    path : str or path-like
        The trial file.
    known_ids : iterable of str, optional
        If given, ids missing from it raise :class:`UnknownTrialIdError`.

    Returns
    -------
    Trials

    Example
    -------
    >>> p = getfixture("tmp_path") / "trials.txt"
    >>> _ = p.write_text("1 a/s1/1.wav a/s2/2.wav\\nb/s1/1 a/s1/1 nontarget\\n")
    >>> t = read_trials(p)
    >>> t.enrol, t.test, t.labels.tolist()
    (['a/s1/1', 'b/s1/1'], ['a/s2/2', 'a/s1/1'], [1, 0])
    >>> read_trials(p, known_ids=["a/s1/1", "a/s2/2"])
    Traceback (most recent call last):
    ...
    speechbrain_dyncp.metrics.verification.UnknownTrialIdError: Trial list ... names 1 id(s) ...: b/s1/1. ...
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Trial list not found: {path}")
    enrol, test, labels = [], [], []
    kaldi = {"target": 1, "nontarget": 0}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) == 3 and f[0] in ("0", "1"):
            lab, e, t = int(f[0]), f[1], f[2]
        elif len(f) == 3 and f[2].lower() in kaldi:
            e, t, lab = f[0], f[1], kaldi[f[2].lower()]
        else:
            raise ValueError(f"{path}:{n}: expected '<0|1> <enrol> <test>' or '<enrol> <test> <target|nontarget>', "
                             f"got {line!r}")
        enrol.append(utterance_id(e))
        test.append(utterance_id(t))
        labels.append(lab)
    if not labels:
        raise ValueError(f"Trial list {path} has no trials")
    trials = Trials(enrol, test, np.asarray(labels, dtype=np.int64), source=str(path))
    if known_ids is not None:
        trials.check_ids(known_ids)
    return trials


# --------------------------------------------------------------------------- scoring


def stack_embeddings(embeddings: Mapping[str, torch.Tensor], ids: Sequence[str]) -> torch.Tensor:
    """``[len(ids), D]`` float matrix of the embeddings of ``ids`` (any ``[D]``/``[1, D]`` shape)."""
    missing = [i for i in ids if i not in embeddings]
    if missing:
        raise UnknownTrialIdError(f"{len(missing)} id(s) have no embedding: {', '.join(missing[:10])}")
    return torch.stack([embeddings[i].reshape(-1).float().cpu() for i in ids])


def cosine_scores(enrol: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of two ``[N, D]`` matrices.

    Example
    -------
    >>> cosine_scores(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[2.0, 0.0], [-1.0, -1.0]])).round(decimals=4).tolist()
    [1.0, -1.0]
    """
    return (F.normalize(enrol, dim=-1, eps=1e-6) * F.normalize(test, dim=-1, eps=1e-6)).sum(-1)


class ScoreNormalizer:
    """z-/t-/s-norm and adaptive s-norm (AS-norm) against a cohort of embeddings.

    For an enrol embedding e the cohort scores are ``cos(e, c_m)``; z-norm
    uses their mean and std ``(s - mu_e) / sigma_e``, t-norm the test side's
    ``(s - mu_t) / sigma_t``, s-norm the average of both. With ``top_k`` only
    the k highest cohort scores of each side enter mu and sigma (adaptive
    normalisation; "as-norm" is s-norm with ``top_k``). sigma is the unbiased
    std (as SpeechBrain's recipe, ``torch.std``). Statistics are cached per id.

    Arguments
    ---------
    cohort : torch.Tensor
        ``[M, D]`` cohort embeddings (e.g. training utterances or speaker means).
    method : str
        One of ``none``, ``z-norm``, ``t-norm``, ``s-norm``, ``as-norm``.
    top_k : int, optional
        Cohort size per side for adaptive normalisation (required by ``as-norm``;
        clipped to M).
    chunk_size : int
        Ids scored against the cohort at once (bounds memory to chunk x M).

    Example
    -------
    >>> cohort = torch.randn(50, 8)
    >>> norm = ScoreNormalizer(cohort, "as-norm", top_k=10)
    >>> e, t = torch.randn(3, 8), torch.randn(3, 8)
    >>> s = norm(cosine_scores(e, t), ["e1", "e2", "e3"], e, ["t1", "t2", "t3"], t)
    >>> s.shape, len(norm.cache)
    (torch.Size([3]), 6)
    """

    def __init__(self, cohort: torch.Tensor, method: str = "s-norm", top_k: Optional[int] = None,
                 chunk_size: int = 2048):
        if method not in NORM_METHODS:
            raise ValueError(f"Unknown score normalisation {method!r}; choose from {NORM_METHODS}")
        if method == "as-norm" and not top_k:
            raise ValueError("as-norm needs top_k (the adaptive cohort size, e.g. 300-600)")
        if cohort.ndim != 2 or cohort.shape[0] < 2:
            raise ValueError(f"cohort must be [M >= 2, D], got {tuple(cohort.shape)}")
        if top_k is not None and top_k < 2:
            raise ValueError(f"top_k must be >= 2 (a std needs two scores), got {top_k}")
        self.cohort = F.normalize(cohort.float().cpu(), dim=-1, eps=1e-6)
        self.method = method
        self.top_k = None if top_k is None else min(int(top_k), cohort.shape[0])
        self.chunk_size = chunk_size
        self.cache: Dict[str, torch.Tensor] = {}  # id -> tensor([mean, std])

    def stats(self, ids: Sequence[str], embs: torch.Tensor) -> torch.Tensor:
        """``[N, 2]`` (mean, std) of the (top-k) cohort scores of each embedding, cached by id."""
        todo = sorted({i: k for k, i in enumerate(ids) if i not in self.cache}.items())
        for start in range(0, len(todo), self.chunk_size):
            part = todo[start:start + self.chunk_size]
            rows = F.normalize(embs[[k for _, k in part]].float().cpu(), dim=-1, eps=1e-6)
            sc = rows @ self.cohort.T  # chunk, M
            if self.top_k is not None:
                sc = sc.topk(self.top_k, dim=1).values
            st = torch.stack([sc.mean(1), sc.std(1)], dim=1)
            self.cache.update({i: st[j] for j, (i, _) in enumerate(part)})
        return torch.stack([self.cache[i] for i in ids]) if len(ids) else torch.zeros(0, 2)

    def __call__(self, scores: torch.Tensor, enrol_ids: Sequence[str], enrol_embs: torch.Tensor,
                 test_ids: Sequence[str], test_embs: torch.Tensor) -> torch.Tensor:
        """Normalise ``[N]`` raw scores of trials (enrol_ids[i], test_ids[i])."""
        if self.method == "none":
            return scores
        z = t = None
        if self.method != "t-norm":
            es = self.stats(enrol_ids, enrol_embs)
            z = (scores - es[:, 0]) / es[:, 1]
        if self.method != "z-norm":
            ts = self.stats(test_ids, test_embs)
            t = (scores - ts[:, 0]) / ts[:, 1]
        if z is None:
            return t
        if t is None:
            return z
        return 0.5 * (z + t)


def score_trials(trials: Trials, embeddings: Mapping[str, torch.Tensor],
                 normalizer: Optional[ScoreNormalizer] = None) -> torch.Tensor:
    """Cosine score (optionally normalised) of every trial, vectorised over unique ids.

    Arguments
    ---------
    trials : Trials
        The trial list.
    embeddings : dict
        id -> embedding (``[D]`` or ``[1, D]``).
    normalizer : ScoreNormalizer, optional
        Score normalisation; None = raw cosine.

    Returns
    -------
    torch.Tensor
        ``[N]`` scores in trial order.

    Example
    -------
    >>> emb = {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.0, 1.0])}
    >>> score_trials(Trials(["a", "a"], ["a", "b"], np.array([1, 0])), emb)
    tensor([1., 0.])
    """
    trials.check_ids(embeddings.keys())
    ids = trials.ids()
    index = {i: k for k, i in enumerate(ids)}
    mat = stack_embeddings(embeddings, ids)
    e_idx = torch.tensor([index[i] for i in trials.enrol])
    t_idx = torch.tensor([index[i] for i in trials.test])
    scores = cosine_scores(mat[e_idx], mat[t_idx])
    if normalizer is not None:
        scores = normalizer(scores, trials.enrol, mat[e_idx], trials.test, mat[t_idx])
    return scores


def write_scores(path: Union[str, os.PathLike], trials: Trials, scores: ArrayLike) -> Path:
    """Write ``enrol test label score`` lines (SpeechBrain's scores.txt layout)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    s = _np(scores)
    with open(path, "w") as fh:
        for e, t, y, v in zip(trials.enrol, trials.test, trials.labels, s):
            fh.write(f"{e} {t} {int(y)} {v:.6f}\n")
    return path
