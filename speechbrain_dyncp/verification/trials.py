"""Verification trial lists: reading, ids, writing scores.

A trial list pairs an enrolment utterance with a test utterance and says whether
they share a speaker. Both layouts in use are read: VoxCeleb's
``1 enrol.wav test.wav`` and Kaldi's ``enrol test target``. Ids are utterance
paths relative to ``wav/`` without their audio extension.

Authors
 * speechbrain-dyncp contributors
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Union

import numpy as np
import torch

_AUDIO_EXT = (".wav", ".flac", ".m4a", ".ogg", ".mp3")


class UnknownTrialIdError(KeyError):
    """Trial ids that have no embedding / manifest row; the message lists them."""

    def __str__(self):  # KeyError would repr() the message
        return str(self.args[0])


@dataclass
class Trials:
    """A verification trial list: parallel lists of enrol ids, test ids and 0/1 labels.

    Example
    -------
    >>> t = Trials(["a", "a"], ["b", "c"], np.array([1, 0]))
    >>> len(t), t.ids()
    (2, ['a', 'b', 'c'])
    """

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


def speaker_of_id(utt_id: str) -> str:
    """Speaker of a VoxCeleb trial id (``spk/video/utt``) or a manifest chunk id (``spk--video--utt_s_e``).

    Example
    -------
    >>> speaker_of_id("id10270/x6uYqmx31kE/00001"), speaker_of_id("id10001--1zcIwhmdeo4--00001_0.0_3.0")
    ('id10270', 'id10001')
    """
    return utt_id.split("/")[0].split("--")[0]


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
    speechbrain_dyncp.verification.trials.UnknownTrialIdError: Trial list ... names 1 id(s) ...: b/s1/1. ...
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


def write_scores(path: Union[str, os.PathLike], trials: Trials, scores) -> Path:
    """Write ``enrol test label score`` lines (SpeechBrain's scores.txt layout).

    Example
    -------
    >>> p = write_scores(getfixture("tmp_path") / "s.txt", Trials(["a"], ["b"], np.array([1])), [0.5])
    >>> p.read_text()
    'a b 1 0.500000\\n'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    with open(path, "w") as fh:
        for e, t, y, v in zip(trials.enrol, trials.test, trials.labels, np.asarray(scores, dtype=np.float64).reshape(-1)):
            fh.write(f"{e} {t} {int(y)} {v:.6f}\n")
    return path
