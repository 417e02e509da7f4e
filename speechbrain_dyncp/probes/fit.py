"""Fitting linear probes on gate features with channel selection (scikit-learn).

A probe is fitted once on all features, features are ranked, and the probe is
refitted on the top ``n_channels`` (the probing paper reports that about 200
features suffice). The ranking is computed on training data only.

Rankings:

* ``coef``: ``|w_j| * std(x_j)`` of an L2 fit (norm over classes), the change of
  the decision value a typical flip of feature j causes;
* ``anova``: univariate F statistic (``f_classif`` / ``f_regression``), cheaper
  and blind to redundancy.

Authors
 * speechbrain-dyncp contributors
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
from sklearn.feature_selection import f_classif, f_regression
from sklearn.linear_model import LogisticRegression, Ridge

from speechbrain_dyncp.probes.features import ProbeSpec
from speechbrain_dyncp.probes.heads import headline, score_head


@dataclass
class FittedProbe:
    """A fitted probe: scikit-learn estimator on the ``selected`` feature columns."""

    spec: ProbeSpec
    estimator: object
    selected: np.ndarray  # flat feature indices used, in ranking order
    ranking: np.ndarray  # all feature indices, most useful first
    n_features: int  # width of the full feature vector

    @property
    def classes(self) -> Optional[list]:
        """Class labels of a classifier (None for a regressor)."""
        return list(self.estimator.classes_) if self.spec.task == "classify" else None

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions from full-width features: P(class 1) for a binary probe,
        the class label for a multi-class one, the target (Hz for ``log``) otherwise."""
        Xs = np.asarray(X, dtype=np.float64)[:, self.selected]
        if self.spec.task == "classify":
            if len(self.estimator.classes_) == 2:
                return self.estimator.predict_proba(Xs)[:, 1]
            return self.estimator.predict(Xs)
        y = self.estimator.predict(Xs)
        return np.exp(y) if self.spec.target == "log" else y


def _estimator(spec: ProbeSpec):
    if spec.task == "classify":
        return LogisticRegression(C=spec.reg, max_iter=3000, tol=1e-5)
    return Ridge(alpha=spec.reg)


def _prepare(spec: ProbeSpec, X, y, max_samples: Optional[int], seed: int):
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"probe {spec.name!r}: {len(X)} feature rows but {len(y)} labels")
    if spec.voiced_only:
        keep = y.astype(float) > 0
        X, y = X[keep], y[keep]
    if spec.target == "log":
        if np.any(y.astype(float) <= 0):
            raise ValueError(f"probe {spec.name!r}: target='log' needs positive labels")
        y = np.log(y.astype(float))
    if max_samples is not None and len(X) > max_samples:
        idx = np.random.default_rng(seed).choice(len(X), max_samples, replace=False)
        X, y = X[np.sort(idx)], y[np.sort(idx)]
    if len(X) == 0:
        raise ValueError(f"probe {spec.name!r}: no training samples (all frames filtered out)")
    if spec.task == "classify" and len(np.unique(y)) < 2:
        raise ValueError(f"probe {spec.name!r}: training labels hold a single class {np.unique(y)}")
    return X, y


def rank_features(spec: ProbeSpec, X: np.ndarray, y: np.ndarray, method: str = "coef") -> np.ndarray:
    """Feature indices sorted by usefulness (see module docstring).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 2, (400, 6)).astype(float); y = X[:, 4].astype(int)
    >>> from speechbrain_dyncp.probes.features import ProbeSpec
    >>> int(rank_features(ProbeSpec("vad"), X, y)[0])
    4
    """
    if method == "anova":
        with np.errstate(divide="ignore", invalid="ignore"):  # constant / perfect features
            score, _ = (f_classif if spec.task == "classify" else f_regression)(X, y)
        score = np.nan_to_num(score, nan=0.0)
    elif method == "coef":
        est = _estimator(spec).fit(X, y)
        coef = np.atleast_2d(est.coef_)
        score = np.linalg.norm(coef, axis=0) * X.std(0)
    else:
        raise ValueError(f"Unknown ranking {method!r}; choose 'coef' or 'anova'.")
    return np.argsort(-score, kind="stable")


def fit_probe(
    spec: ProbeSpec,
    X,
    y,
    ranking_method: str = "coef",
    max_samples: Optional[int] = 60000,
    seed: int = 0,
) -> FittedProbe:
    """Fit ``spec`` on full-width features ``X`` ``[M, D]`` and labels ``y`` ``[M]``.

    Arguments
    ---------
    spec : ProbeSpec
        The probe (task, target transform, regularisation, ``n_channels``).
    X : array-like
        Features from :func:`speechbrain_dyncp.probes.features.spec_features`.
    y : array-like
        Labels (class labels, Hz, dB, ...).
    ranking_method : {"coef", "anova"}
        How features are ranked before keeping ``spec.n_channels``.
    max_samples : int or None
        Random subsample of training rows (fitting cost on 2 CPU cores).
    seed : int
        Subsampling seed.

    Returns
    -------
    FittedProbe

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 2, (500, 40)).astype(float)
    >>> y = (X[:, 7] > 0).astype(int)
    >>> p = fit_probe(ProbeSpec("vad", n_channels=3), X, y)
    >>> int(p.selected[0]), float(((p.predict(X) > 0.5) == y).mean())
    (7, 1.0)
    """
    Xp, yp = _prepare(spec, X, y, max_samples, seed)
    ranking = rank_features(spec, Xp, yp, ranking_method)
    k = Xp.shape[1] if spec.n_channels is None else min(spec.n_channels, Xp.shape[1])
    selected = np.sort(ranking[:k]) if k == Xp.shape[1] else ranking[:k]
    est = _estimator(spec).fit(Xp[:, selected], yp)
    return FittedProbe(spec, est, np.asarray(selected), ranking, Xp.shape[1])


def evaluate_probe(probe: FittedProbe, X, y) -> dict:
    """Scores of ``probe`` on held-out ``(X, y)`` (see :mod:`speechbrain_dyncp.probes.metrics`)."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if probe.spec.voiced_only:
        keep = y.astype(float) > 0
        X, y = X[keep], y[keep]
    return score_head(probe.spec.name, probe.spec.task, y, probe.predict(X), probe.classes)


def channel_curve(
    spec: ProbeSpec,
    X_train,
    y_train,
    X_test,
    y_test,
    ranking: np.ndarray,
    sizes: Sequence[int] = (4, 8, 16, 32, 64, 128, 202, 256, 512, 1024),
    max_samples: Optional[int] = 60000,
    seed: int = 0,
) -> List[dict]:
    """Test score versus number of channels kept (refit on the top-k of ``ranking``).

    Returns a list of ``{"n_channels": k, "score": headline metric, "scores": {...}}``;
    sizes above the feature width are replaced by the full width.
    """
    Xp, yp = _prepare(spec, X_train, y_train, max_samples, seed)
    curve = []
    for k in sorted({min(int(s), Xp.shape[1]) for s in sizes}):
        sel = ranking[:k]
        est = _estimator(spec).fit(Xp[:, sel], yp)
        probe = FittedProbe(spec, est, sel, ranking, Xp.shape[1])
        scores = evaluate_probe(probe, X_test, y_test)
        curve.append({"n_channels": k, "score": headline(spec.name, scores), "scores": scores})
    return curve


def speaker_split(speakers: Sequence[str], test_fraction: float = 0.25, seed: int = 0) -> np.ndarray:
    """Boolean ``is_test`` per item such that no speaker is on both sides.

    Example
    -------
    >>> spk = ["a", "a", "b", "b", "c", "d"]
    >>> t = speaker_split(spk, 0.5, seed=1)
    >>> sorted({s for s, x in zip(spk, t) if x} & {s for s, x in zip(spk, t) if not x})
    []
    """
    uniq = sorted(set(speakers))
    if len(uniq) < 2:
        raise ValueError(f"speaker-disjoint split needs >= 2 speakers, got {uniq}")
    rng = np.random.default_rng(seed)
    n_test = min(len(uniq) - 1, max(1, int(round(test_fraction * len(uniq)))))
    test = set(rng.permutation(uniq)[:n_test].tolist())
    return np.array([s in test for s in speakers])
