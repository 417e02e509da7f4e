"""Verification scores: cosine similarity of embeddings and score normalisation.

Score normalisation (z-, t-, s-norm, adaptive s-norm "AS-norm") computes the
cohort statistics once per unique enrol / test id, in chunks, instead of once
per trial as SpeechBrain's verification recipe does. The cohort is a set of
embeddings (training utterances) or their per-speaker means.

Authors
 * speechbrain-dyncp contributors
"""

from typing import Callable, Dict, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

from speechbrain_dyncp.verification.trials import Trials, UnknownTrialIdError, speaker_of_id

NORM_METHODS = ("none", "z-norm", "t-norm", "s-norm", "as-norm")


def stack_embeddings(embeddings: Mapping[str, torch.Tensor], ids: Sequence[str]) -> torch.Tensor:
    """``[len(ids), D]`` float matrix of the embeddings of ``ids`` (any ``[D]``/``[1, D]`` shape).

    Example
    -------
    >>> stack_embeddings({"a": torch.ones(1, 2), "b": torch.zeros(2)}, ["b", "a"])
    tensor([[0., 0.],
            [1., 1.]])
    """
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
    >>> import numpy as np
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


def speaker_means(embeddings: Mapping[str, torch.Tensor], speaker_of: Callable[[str], str] = speaker_of_id
                  ) -> torch.Tensor:
    """``[S, D]`` mean of the length-normalised embeddings of each speaker (a speaker-level cohort).

    Arguments
    ---------
    embeddings : dict
        id -> embedding.
    speaker_of : callable
        id -> speaker (default :func:`~speechbrain_dyncp.verification.trials.speaker_of_id`:
        VoxCeleb trial ids and manifest chunk ids).

    Example
    -------
    >>> speaker_means({"a/1": torch.tensor([1.0, 0.0]), "a/2": torch.tensor([0.0, 1.0]),
    ...                "b/1": torch.tensor([2.0, 0.0])})
    tensor([[0.5000, 0.5000],
            [1.0000, 0.0000]])
    """
    ids = sorted(embeddings)
    spk = sorted({speaker_of(i) for i in ids})
    index = {s: k for k, s in enumerate(spk)}
    mat = F.normalize(stack_embeddings(embeddings, ids), dim=-1)
    which = torch.tensor([index[speaker_of(i)] for i in ids])
    sums = torch.zeros(len(spk), mat.shape[1]).index_add_(0, which, mat)
    return sums / torch.bincount(which, minlength=len(spk)).unsqueeze(1)


def cohort_matrix(cohort: Mapping[str, torch.Tensor], speaker_mean: bool = False) -> torch.Tensor:
    """``[M, D]`` cohort used for score normalisation: the utterances, or per-speaker means."""
    return speaker_means(cohort) if speaker_mean else stack_embeddings(cohort, sorted(cohort))


def make_normalizer(method: str, cohort: Optional[Mapping[str, torch.Tensor]] = None, top_k: Optional[int] = None,
                    speaker_mean: bool = False) -> Optional[ScoreNormalizer]:
    """A :class:`ScoreNormalizer` from a cohort dict (None for ``method="none"``).

    ``speaker_mean=True`` replaces the cohort utterances by per-speaker means
    (as in LAP's AS-norm with VoxCeleb2 speaker means).

    Example
    -------
    >>> cohort = {f"s{k}/u": torch.randn(4) for k in range(5)}
    >>> make_normalizer("none", cohort) is None, make_normalizer("s-norm", cohort).cohort.shape
    (True, torch.Size([5, 4]))
    """
    if method in (None, "none"):
        return None
    if not cohort:
        raise ValueError(f"score normalisation {method!r} needs a cohort of embeddings (got none)")
    return ScoreNormalizer(cohort_matrix(cohort, speaker_mean), method, top_k=top_k)
