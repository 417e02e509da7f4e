"""Scores for mask probes: VAD, noise class, F0, SNR and register (which head uses which: ``heads.py``).

Authors
 * speechbrain-dyncp contributors
"""

from typing import Optional, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, r2_score, roc_auc_score


def _r2(t, p) -> float:
    """R² (NaN with fewer than two values)."""
    return float(r2_score(t, p)) if len(t) > 1 else float("nan")


def _with_r2(t, p, **scores) -> dict:
    """``scores`` as floats, plus R² and the count ``n``."""
    return {**{k: float(v) for k, v in scores.items()}, "r2": _r2(t, p), "n": len(t)}


def cents(f_est, f_ref) -> np.ndarray:
    """Pitch difference in cents, ``1200*log2(f_est/f_ref)`` (both > 0).

    Example
    -------
    >>> float(cents(np.array([220.0]), np.array([110.0]))[0])
    1200.0
    """
    return 1200.0 * np.log2(np.asarray(f_est, float) / np.asarray(f_ref, float))


def vad_scores(y_true, prob, threshold: float = 0.5) -> dict:
    """Accuracy, F1 (speech = positive) and ROC-AUC of a frame VAD.

    Example
    -------
    >>> s = vad_scores([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9])
    >>> s["accuracy"], s["roc_auc"]
    (0.75, 1.0)
    """
    y_true = np.asarray(y_true).astype(int)
    prob = np.asarray(prob, float)
    pred = (prob >= threshold).astype(int)
    auc = float(roc_auc_score(y_true, prob)) if len(np.unique(y_true)) == 2 else float("nan")
    return {
        "accuracy": float(accuracy_score(y_true, pred)),
        "f1": float(f1_score(y_true, pred, zero_division=0)),
        "roc_auc": auc,
        "speech_fraction": float(y_true.mean()),
        "n_frames": int(len(y_true)),
    }


def class_scores(y_true, y_pred, labels: Optional[Sequence] = None) -> dict:
    """Accuracy, balanced per-class recall and the confusion matrix (rows = truth).

    Example
    -------
    >>> s = class_scores(["a", "b", "b"], ["a", "b", "a"], labels=["a", "b"])
    >>> round(s["accuracy"], 3), s["confusion"]
    (0.667, [[1, 0], [1, 1]])
    """
    labels = list(labels) if labels is not None else sorted(set(y_true) | set(y_pred))
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    recall = cm.diagonal() / np.maximum(cm.sum(1), 1)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(recall[cm.sum(1) > 0].mean()),
        "labels": [str(x) for x in labels],
        "confusion": cm.tolist(),
        "n": int(len(y_true)),
    }


def f0_scores(f_true, f_pred) -> dict:
    """F0 regression scores on voiced frames (``f_true > 0``).

    R² is computed on Hz, RMSE in Hz and cents, and raw pitch accuracy (RPA) is the
    fraction of frames within 50 cents.

    Example
    -------
    >>> s = f0_scores([100.0, 200.0, 0.0], [100.0, 205.0, 50.0])
    >>> s["n_frames"], round(s["rpa_50c"], 2)
    (2, 1.0)
    """
    f_true = np.asarray(f_true, float)
    f_pred = np.maximum(np.asarray(f_pred, float), 1e-3)
    voiced = f_true > 0
    t, p = f_true[voiced], f_pred[voiced]
    c = cents(p, t)
    return {
        "r2": _r2(t, p),
        "r2_log": _r2(np.log(t), np.log(p)),
        "rmse_hz": float(np.sqrt(np.mean((p - t) ** 2))),
        "rmse_cents": float(np.sqrt(np.mean(c**2))),
        "rpa_50c": float(np.mean(np.abs(c) <= 50)),
        "n_frames": int(voiced.sum()),
    }


def snr_scores(snr_true, snr_pred) -> dict:
    """MAE and RMSE in dB and R² of an SNR estimate.

    Example
    -------
    >>> s = snr_scores([0.0, 10.0], [1.0, 8.0])
    >>> s["mae_db"], s["n"]
    (1.5, 2)
    """
    t, p = np.asarray(snr_true, float), np.asarray(snr_pred, float)
    return _with_r2(t, p, mae_db=np.mean(np.abs(p - t)), rmse_db=np.sqrt(np.mean((p - t) ** 2)))


def register_scores(reg_true, reg_pred) -> dict:
    """Utterance F0 register: share within 10 % of the reference, median relative error, R² (Hz).

    Example
    -------
    >>> register_scores([100.0, 200.0], [105.0, 250.0])["within_10pct"]
    0.5
    """
    t, p = np.asarray(reg_true, float), np.asarray(reg_pred, float)
    rel = np.abs(p / t - 1)
    return _with_r2(t, p, within_10pct=np.mean(rel <= 0.10), median_rel_error=np.median(rel))


def generic_scores(y_true, y_pred) -> dict:
    """R² and MAE of a regression head without scores of its own.

    Example
    -------
    >>> generic_scores([1.0, 2.0], [1.0, 3.0])["mae"]
    0.5
    """
    return {"r2": _r2(y_true, y_pred), "mae": float(np.mean(np.abs(np.subtract(y_pred, y_true))))}
