"""Quality-aware score calibration for speaker verification: scores to log-likelihood ratios.

A cosine (or AS-norm) score is not a likelihood ratio: its scale and offset drift
with the recording conditions (noisy trials score lower for targets *and*
impostors), so one threshold cannot be right at every SNR. :class:`QualityCalibrator`
maps ``[score, quality of both sides]`` to a calibrated log-likelihood ratio (LLR,
natural log) with a scikit-learn ``LogisticRegression`` fitted on a held-out dev
trial list ("quality measure functions", QMF). The quality of a side is a few
per-utterance measures, e.g. the DynCP probes' SNR and speech-fraction estimates and
the seconds of speech they imply (:func:`probe_quality`); a trial feature is the min and the max of the two sides
per measure (symmetric in enrol / test), and optionally ``score x min`` so the
score's *scale* may depend on quality, not only its offset. Classes are weighted
so the fitted log-odds are LLRs (prior 0.5): add ``logit(prior)`` for a posterior.

Its quality is measured with :func:`~speechbrain_dyncp.verification.metrics.cllr`
and ``min_cllr`` (Cllr - minCllr is the calibration loss).

The fitted calibrator is stored as plain JSON (``calibration.json`` in a speaker
model folder), never a pickle, so loading it runs no code.

Authors
 * speechbrain-dyncp contributors
"""

import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

CALIBRATION_FILE = "calibration.json"
SNR_CLIP = (-10.0, 40.0)  # dB; beyond this the probes' estimate carries no more information
SPEECH_S_FLOOR = 0.1  # s added before the log: a file without detected speech stays finite


def trial_features(scores, q_enrol: np.ndarray, q_test: np.ndarray, interactions: bool = True) -> np.ndarray:
    """``[N, F]`` features: score, per-measure min and max of the two sides, and score x min.

    Arguments
    ---------
    scores : array-like ``[N]``
    q_enrol, q_test : array-like ``[N, M]``
        Quality measures of each side (same column order).
    interactions : bool
        Add ``score * min`` per measure (quality may rescale the score).

    Example
    -------
    >>> trial_features([0.5], [[10.0, 0.8]], [[0.0, 0.9]]).tolist()
    [[0.5, 0.0, 0.8, 10.0, 0.9, 0.0, 0.4]]
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1, 1)
    qe, qt = np.atleast_2d(np.asarray(q_enrol, dtype=np.float64)), np.atleast_2d(np.asarray(q_test, dtype=np.float64))
    lo, hi = np.minimum(qe, qt), np.maximum(qe, qt)
    cols = [s, lo, hi] + ([s * lo] if interactions else [])
    return np.concatenate(cols, axis=1)


class QualityCalibrator:
    """Logistic-regression calibration of scores with quality measures (see the module doc).

    Arguments
    ---------
    measures : sequence of str
        Names of the quality columns (e.g. ``["snr_db", "speech_frac"]``); empty for
        plain score calibration (``llr = a * score + b``).
    interactions : bool
        See :func:`trial_features`.
    C : float
        Inverse L2 strength of the logistic regression.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.random(400) < 0.3
    >>> s = np.where(y, 0.6, 0.2) + 0.1 * rng.normal(size=400)
    >>> cal = QualityCalibrator([]).fit(s, y)
    >>> from speechbrain_dyncp.verification.metrics import cllr
    >>> cllr(cal.llr(s), y) < 0.3
    True
    """

    def __init__(self, measures: Sequence[str] = ("snr_db", "speech_frac"), interactions: bool = True,
                 C: float = 1.0):
        self.measures, self.interactions, self.C = list(measures), interactions, C
        self.mean = self.scale = self.coef = None
        self.intercept = 0.0
        self.info: Dict[str, object] = {}

    def _features(self, scores, q_enrol=None, q_test=None) -> np.ndarray:
        n = len(np.atleast_1d(scores))
        if not self.measures:
            return np.asarray(scores, dtype=np.float64).reshape(-1, 1)
        if q_enrol is None or q_test is None:
            raise ValueError(f"this calibrator needs the quality measures {self.measures} of both sides")
        qe = _clip_quality(np.asarray(q_enrol, dtype=np.float64).reshape(n, -1), self.measures)
        qt = _clip_quality(np.asarray(q_test, dtype=np.float64).reshape(n, -1), self.measures)
        return trial_features(scores, qe, qt, self.interactions)

    def fit(self, scores, labels, q_enrol=None, q_test=None) -> "QualityCalibrator":
        """Fit on dev trials (labels 1 = same speaker); returns self."""
        from sklearn.linear_model import LogisticRegression

        x = self._features(scores, q_enrol, q_test)
        y = np.asarray(labels).astype(int)
        self.mean, self.scale = x.mean(0), x.std(0) + 1e-9
        lr = LogisticRegression(C=self.C, class_weight="balanced", max_iter=1000)
        lr.fit((x - self.mean) / self.scale, y)
        self.coef, self.intercept = lr.coef_[0].astype(np.float64), float(lr.intercept_[0])
        self.info = {"n_target": int(y.sum()), "n_nontarget": int((1 - y).sum())}
        return self

    def llr(self, scores, q_enrol=None, q_test=None) -> np.ndarray:
        """Calibrated natural-log likelihood ratios ``[N]``."""
        if self.coef is None:
            raise RuntimeError("QualityCalibrator is not fitted")
        x = self._features(scores, q_enrol, q_test)
        return (x - self.mean) / self.scale @ self.coef + self.intercept

    def to_dict(self) -> dict:
        return {"measures": self.measures, "interactions": self.interactions, "C": self.C,
                "mean": list(map(float, self.mean)), "scale": list(map(float, self.scale)),
                "coef": list(map(float, self.coef)), "intercept": self.intercept, "info": self.info}

    @classmethod
    def from_dict(cls, d: dict) -> "QualityCalibrator":
        cal = cls(d["measures"], d["interactions"], d.get("C", 1.0))
        cal.mean, cal.scale, cal.coef = (np.asarray(d[k], dtype=np.float64) for k in ("mean", "scale", "coef"))
        cal.intercept, cal.info = float(d["intercept"]), dict(d.get("info", {}))
        if not (len(cal.mean) == len(cal.scale) == len(cal.coef)):
            raise ValueError("calibration: mean / scale / coef lengths differ")
        return cal

    def save(self, path) -> Path:
        """Write JSON (``path`` may be a model folder: ``calibration.json`` inside)."""
        path = Path(path)
        path = path / CALIBRATION_FILE if path.is_dir() else path
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path) -> Optional["QualityCalibrator"]:
        """The calibrator of a JSON file or model folder; None when a folder has none.
        A malformed file is a ``ValueError`` naming it."""
        path = Path(path)
        path = path / CALIBRATION_FILE if path.is_dir() else path
        if not path.exists():
            return None
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a calibration file ({type(exc).__name__}: {exc})") from exc


def _clip_quality(q: np.ndarray, measures: List[str]) -> np.ndarray:
    q = q.copy()
    for j, name in enumerate(measures):
        if name.startswith("snr"):
            q[:, j] = np.clip(np.nan_to_num(q[:, j], nan=SNR_CLIP[1], posinf=SNR_CLIP[1], neginf=SNR_CLIP[0]),
                              *SNR_CLIP)
    return q


def posterior(llr, prior: float = 0.5):
    """P(same speaker) from an LLR and a prior of same-speaker trials.

    Example
    -------
    >>> round(float(posterior(0.0)), 3), round(float(posterior(0.0, prior=0.1)), 3)
    (0.5, 0.1)
    """
    return 1.0 / (1.0 + np.exp(-(np.asarray(llr, dtype=np.float64) + math.log(prior / (1 - prior)))))


def model_fingerprint(folder) -> str:
    """Short SHA-256 of a model folder's ``*.ckpt`` files (names and bytes): a calibration
    records the probe model it was fitted with, and a changed model is detected.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> _ = (folder / "probes.ckpt").write_bytes(b"weights")
    >>> a = model_fingerprint(folder); _ = (folder / "probes.ckpt").write_bytes(b"other")
    >>> len(a), a == model_fingerprint(folder)
    (16, False)
    """
    import hashlib

    h = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.ckpt")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def probe_quality(analysis, i: int = 0) -> Dict[str, float]:
    """Quality measures of item ``i`` of a DynCP :class:`EnhancementAnalysis`: the SNR probe's
    utterance estimate (``snr_db``), the share of frames the VAD probe calls speech
    (``speech_frac``) and the log of the seconds of speech (``log_speech_s``).

    Net speech duration is the classic quality measure of speaker verification: a
    one-second word gives a noisier embedding than a sentence, so the same cosine
    means less (on the real dev lists it moves target and impostor scores apart by
    duration: docs/speaker_real.md). Without probes the SNR is NaN (clipped to its top
    when calibrating) and the speech fraction 1.0 (the whole file counts as speech).

    Example
    -------
    >>> from types import SimpleNamespace
    >>> import torch
    >>> a = SimpleNamespace(frame_mask=torch.ones(1, 125), hop_length=256, sample_rate=16000, vad_prob=None,
    ...                     utterance_snr=lambda i: None)
    >>> q = probe_quality(a)
    >>> q["speech_frac"], round(math.exp(q["log_speech_s"]) - SPEECH_S_FLOOR, 2), math.isnan(q["snr_db"])
    (1.0, 2.0, True)
    """
    n = int(analysis.frame_mask[i].sum())
    snr = analysis.utterance_snr(i)
    frac = float((analysis.vad_prob[i, :n] > 0.5).float().mean()) if analysis.vad_prob is not None else 1.0
    seconds = n * analysis.hop_length / analysis.sample_rate * frac
    return {"snr_db": float("nan") if snr is None else snr, "speech_frac": frac,
            "log_speech_s": math.log(seconds + SPEECH_S_FLOOR)}
