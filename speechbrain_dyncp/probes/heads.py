"""The probe-head registry: one :class:`Head` per read-out, everything else iterates over it.

A head says what it predicts (its label), how it is fitted (the
:class:`~speechbrain_dyncp.probes.features.ProbeSpec` defaults: logistic or
ridge loss, target transform, features), how it is scored (metric and headline
score) and how it is shown (unit, output name, CSV column, per-file summary,
figure panel). The fitting recipe, ``fit_probes.yaml`` (overrides only),
:class:`~speechbrain_dyncp.inference.enhancement.EnhancementAnalysis`, the
``dyncp enhance --probes`` files and the figures read it; adding a head is one
:func:`register_head` call plus a line under ``heads:`` in the YAML.

Authors
 * speechbrain-dyncp contributors
"""

from dataclasses import dataclass
from typing import Callable, Dict, Optional

import numpy as np

from speechbrain_dyncp.probes.metrics import (class_scores, f0_scores, generic_scores, register_scores, snr_scores,
                                              vad_scores)

# SNR label of speech without noise (the real corpus' clean items, snr = inf): the
# SNR head reads "this clean or cleaner"; its MAE is reported over noisy items.
SNR_CEILING = 30.0
MIN_VOICED = 10  # voiced frames an utterance needs to have a register label


@dataclass(frozen=True)
class Head:
    """One probe head.

    Arguments
    ---------
    name : str
        Head name (an identifier): the key of its fitted weights and outputs.
    probe : dict
        Default :class:`~speechbrain_dyncp.probes.features.ProbeSpec` fields: the
        loss (``task``: logistic or ridge; ``target``: identity or log), the
        features (``level``, ``context``, ``window``) and the regularisation.
    metric : callable
        ``(y_true, y_pred) -> scores`` (classifiers also get ``labels=``).
    headline : str
        The score of ``metric`` the channel curve plots.
    unit : str
        Unit of the output: ``"probability"``, ``"class"`` (class
        probabilities), ``"Hz"``, ``"dB"``, ...
    output : str
        Name of the per-frame output in the analysis result and the CSV
        (default: ``name``).
    frame_label : bool
        One label per frame (else one per utterance).
    label : callable, optional
        ``utterance record -> label`` (default ``record[name]``).
    scored : callable, optional
        ``label -> bool``: utterance labels that are scored (default: all finite).
    column : bool
        A per-frame column of ``dyncp enhance --probes``.
    summary : callable, optional
        ``(analysis, item) -> dict`` of per-file entries.
    display : str
        Short label of figure panels (default: ``name``); ``""`` draws no panel.
    speech_only : bool
        Figures show the output on speech frames only.
    """

    name: str
    probe: dict
    metric: Callable
    headline: str
    unit: str = ""
    output: str = ""
    frame_label: bool = True
    label: Optional[Callable] = None
    scored: Optional[Callable] = None
    column: bool = True
    summary: Optional[Callable] = None
    display: Optional[str] = None
    speech_only: bool = False

    @property
    def key(self) -> str:
        """The per-frame output's name (``output`` or ``name``)."""
        return self.output or self.name

    def label_of(self, record: dict):
        """This head's label of an utterance record (frame array or one value)."""
        return self.label(record) if self.label is not None else record[self.name]

    def is_scored(self, label) -> bool:
        """Whether an utterance label enters the test scores."""
        return has_label(label) and (self.scored is None or bool(self.scored(label)))

    def score(self, y_true, y_pred, labels=None) -> dict:
        """``metric`` on ``(y_true, y_pred)``."""
        if self.probe.get("task", "classify") == "classify" and self.unit == "class":
            return self.metric(y_true, y_pred, labels=labels)
        return self.metric(y_true, y_pred)


def has_label(label) -> bool:
    """A class name, or a finite number (NaN marks an utterance without that label, e.g. no register)."""
    return isinstance(label, str) or bool(np.isfinite(label))


HEADS: Dict[str, Head] = {}


def register_head(head: Head) -> Head:
    """Add (or replace) ``head`` in :data:`HEADS`; returns it."""
    if not head.name.isidentifier():
        raise ValueError(f"probe head name must be an identifier, got {head.name!r}")
    HEADS[head.name] = head
    return head


def head(name: str) -> Head:
    """The registered head ``name``, or a plain one (own scores, a per-frame column)."""
    if name in HEADS:
        return HEADS[name]
    return Head(name, {}, generic_scores, "r2")


def ordered(names) -> list:
    """Head names in registry order, unregistered heads last.

    Example
    -------
    >>> ordered(["toy", "snr", "vad"])
    ['vad', 'snr', 'toy']
    """
    return [n for n in HEADS if n in names] + [n for n in names if n not in HEADS]


def register_label(f0: np.ndarray) -> float:
    """The register head's label: median voiced F0 (Hz); NaN with fewer than MIN_VOICED voiced frames.

    Example
    -------
    >>> register_label(np.array([0.0] * 5 + [100.0] * 6 + [130.0] * 5)), register_label(np.zeros(20))
    (100.0, nan)
    """
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if len(voiced) >= MIN_VOICED else float("nan")


NOISE_MIN_PROB = 0.5  # an unfamiliar noise spreads its probability: say "unknown", not a guess


def _noise_summary(analysis, item: int) -> dict:
    best, prob = analysis.top_class("noise", item)  # below NOISE_MIN_PROB: reported but not claimed
    return {"noise_class": best if prob >= NOISE_MIN_PROB else "unknown", "noise_best": best, "noise_prob": prob}


def _speech_fraction(analysis, item: int) -> dict:
    n = int(analysis.frame_mask[item].sum())
    return {"speech_fraction": float((analysis.outputs["vad"][item, :n] > 0.5).float().mean())}


# Rates use the whole utterance by default; set window (e.g. 125 frames = 2 s)
# for a sliding-window streaming estimate.
register_head(Head("vad", dict(task="classify", level="frame", context=0, reg=0.1), vad_scores,
                   "accuracy", unit="probability", output="vad_prob", summary=_speech_fraction, display="VAD"))
register_head(Head("noise", dict(task="classify", level="rate", window=None, reg=100.0, fit_window=62),
                   class_scores, "accuracy", unit="class", output="noise_probs", frame_label=False,
                   column=False, summary=_noise_summary, display=""))
register_head(Head("snr", dict(task="regress", level="rate", window=None, reg=1.0, fit_window=62),
                   snr_scores, "mae_db", unit="dB", output="snr_db", frame_label=False,
                   scored=lambda y: y < SNR_CEILING,  # clean items: no SNR to score
                   summary=lambda a, i: {"snr_db": a.utterance_snr(i), "snr_db_bound": a.utterance_snr_bound(i)},
                   display="SNR"))
# no per-frame F0 column: the masks give a speaker's register, not a pitch track (f0_register_hz)
register_head(Head("f0", dict(task="regress", level="frame", context=0, target="log", voiced_only=True, reg=1.0),
                   f0_scores, "r2", unit="Hz", output="f0_hz", column=False,
                   summary=lambda a, i: {"f0_register_hz": a.register_hz(i)}, display="F0", speech_only=True))
# the speaker's F0 register (median voiced F0 of the utterance) from the firing rates:
# what the masks carry of pitch, read where they carry it (not frame by frame)
register_head(Head("register", dict(task="regress", level="rate", window=None, target="log", reg=1.0, fit_window=62),
                   register_scores, "within_10pct", unit="Hz", output="register_track", frame_label=False,
                   label=lambda u: register_label(u["f0"]), column=False, display=""))


def headline(name: str, scores: dict) -> float:
    """The one number the channel curve plots for head ``name``.

    Example
    -------
    >>> headline("snr", {"mae_db": 2.0})
    2.0
    """
    key = head(name).headline if name in HEADS else ("accuracy" if "accuracy" in scores else "r2")
    return float(scores[key])


def score_head(name: str, task: str, y_true, pred, labels=None) -> dict:
    """Scores of head ``name`` (its registered metric; classes or R² / MAE otherwise).

    Example
    -------
    >>> score_head("snr", "regress", [1.0, 2.0], [1.0, 2.0])["mae_db"]
    0.0
    """
    if name in HEADS:
        return HEADS[name].score(y_true, pred, labels)
    if task == "classify":
        return class_scores(y_true, pred, labels)
    return generic_scores(y_true, pred)
