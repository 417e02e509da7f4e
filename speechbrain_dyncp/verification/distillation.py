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
        A ``torch.save``-d dict ``{"teacher": str, "embeddings": {utterance_key: tensor [D]}}``
        (written by ``recipes/VoxCeleb/teacher_embeddings.py``).

    Example
    -------
    >>> path = getfixture("tmp_path") / "teacher.pt"
    >>> torch.save({"teacher": "toy", "embeddings": {"s/x/u.wav": torch.ones(3)}}, path)
    >>> table = TeacherEmbeddings(path)
    >>> table("/any/root/wav/s/x/u.wav"), table.dim
    (tensor([1., 1., 1.]), 3)
    """

    def __init__(self, path: Union[str, Path]):
        stored = torch.load(path, map_location="cpu", weights_only=True)
        self.name = stored["teacher"]
        self.table = stored["embeddings"]
        if not self.table:
            raise ValueError(f"{path}: no teacher embeddings")
        self.path = Path(path)
        self.dim = int(next(iter(self.table.values())).numel())

    def __call__(self, wav: Union[str, Path]) -> torch.Tensor:
        key = utterance_key(wav)
        if key not in self.table:
            raise KeyError(f"{wav}: no teacher embedding for {key!r} in {self.path} (recompute it for this data folder)")
        return self.table[key].float()


class EmbeddingDistillationLoss(torch.nn.Module):
    """Mean cosine distance between a linear map of the student's embedding and the teacher's.

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
        return (1.0 - torch.nn.functional.cosine_similarity(mapped, teacher.to(mapped.dtype), dim=-1)).mean()
