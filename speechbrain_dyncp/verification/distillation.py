"""Embedding distillation: a speaker model trained with AAM *and* toward a pretrained teacher's embeddings.

With a few hundred training speakers (the real speech of ``../shared/data``: 417)
an ECAPA trained with AAM softmax alone overfits its speakers (docs/speaker_real.md).
A public encoder trained on thousands of speakers knows more about unseen voices;
its per-utterance embeddings, computed once on the clean training files
(``recipes/VoxCeleb/teacher_embeddings.py``), become a second target: a linear
head maps the student's embedding to the teacher's space and the cosine distance
to the teacher's embedding of the *whole clean utterance* is added to the loss,
for every crop and every augmented copy (so the student also learns to ignore
the noise and rooms the teacher never heard). The head is dropped at export:
the shipped model is the plain ECAPA.

A teacher is only as good as what it heard: Resemblyzer embeds windows of
1.6 s, so a one-second word (after its silence is trimmed) is a padded
fraction of one window. ``min_seconds`` leaves such utterances without a
target (they keep the AAM loss alone); the table stores the seconds each
embedding was computed from.

Authors
 * speechbrain-dyncp contributors
"""

from pathlib import Path
from typing import Union

import torch


def utterance_key(wav: Union[str, Path]) -> str:
    """``<speaker>/<session>/<utterance>.wav``: the VoxCeleb-layout id of a file, whatever its root.

    Example
    -------
    >>> utterance_key("/data/vox/wav/id10001/1zcIwhmdeo4/00001.wav")
    'id10001/1zcIwhmdeo4/00001.wav'
    """
    return "/".join(Path(wav).parts[-3:])


class TeacherEmbeddings:
    """Precomputed teacher embeddings, looked up by training file.

    Arguments
    ---------
    path : str or Path
        A ``torch.save``-d dict ``{"teacher": str, "embeddings": {utterance_key: tensor [D]},
        "seconds": {utterance_key: float}}`` (written by ``recipes/VoxCeleb/teacher_embeddings.py``).
    min_seconds : float
        Utterances the teacher heard for less than this get an all-zero target, which
        :class:`EmbeddingDistillationLoss` leaves out (0: every utterance has a target).

    Example
    -------
    >>> path = getfixture("tmp_path") / "teacher.pt"
    >>> torch.save({"teacher": "toy", "embeddings": {"s/x/u.wav": torch.ones(3), "s/x/w.wav": torch.ones(3)},
    ...             "seconds": {"s/x/u.wav": 4.0, "s/x/w.wav": 0.7}}, path)
    >>> table = TeacherEmbeddings(path, min_seconds=1.6)
    >>> table("/any/root/wav/s/x/u.wav"), table("/any/root/wav/s/x/w.wav"), table.dim, table.n_targets
    (tensor([1., 1., 1.]), tensor([0., 0., 0.]), 3, 1)
    """

    def __init__(self, path: Union[str, Path], min_seconds: float = 0.0):
        stored = torch.load(path, map_location="cpu", weights_only=True)
        self.name = stored["teacher"]
        self.table = stored["embeddings"]
        if not self.table:
            raise ValueError(f"{path}: no teacher embeddings")
        self.path = Path(path)
        self.dim = int(next(iter(self.table.values())).numel())
        self.skipped = set()
        if min_seconds > 0:
            seconds = stored.get("seconds")
            if seconds is None:
                raise ValueError(f"{path}: no per-utterance seconds stored; recompute it to use min_seconds")
            self.skipped = {k for k in self.table if seconds[k] < min_seconds}
        self.n_targets = len(self.table) - len(self.skipped)

    def __call__(self, wav: Union[str, Path]) -> torch.Tensor:
        key = utterance_key(wav)
        if key not in self.table:
            raise KeyError(f"{wav}: no teacher embedding for {key!r} in {self.path} (recompute it for this data folder)")
        if key in self.skipped:
            return torch.zeros(self.dim)
        return self.table[key].float()


class EmbeddingDistillationLoss(torch.nn.Module):
    """Mean cosine distance between a linear map of the student's embedding and the teacher's.

    Rows whose teacher target is all zeros (no reliable target, see :class:`TeacherEmbeddings`)
    are left out of the mean; a batch without any target gives 0.

    Arguments
    ---------
    student_dim : int
        Size of the student's embedding.
    teacher_dim : int
        Size of the teacher's embedding.

    Example
    -------
    >>> loss = EmbeddingDistillationLoss(4, 3)
    >>> teacher = torch.nn.functional.normalize(torch.randn(5, 3), dim=-1)
    >>> float(loss(torch.randn(5, 1, 4), teacher)) <= 2.0
    True
    """

    def __init__(self, student_dim: int, teacher_dim: int):
        super().__init__()
        self.head = torch.nn.Linear(student_dim, teacher_dim)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """``student`` [B, 1, S] (ECAPA's output) or [B, S]; ``teacher`` [B, T]; returns a scalar."""
        mapped = self.head(student.reshape(student.shape[0], -1))
        teacher = teacher.to(mapped.dtype)
        has_target = (teacher.abs().sum(dim=-1) > 0).to(mapped.dtype)
        distance = 1.0 - torch.nn.functional.cosine_similarity(mapped, teacher, dim=-1)
        return (distance * has_target).sum() / has_target.sum().clamp(min=1.0)
