"""Teacher-embedding table and distillation loss (speechbrain_dyncp.verification.distillation)."""

import pytest
import torch

from speechbrain_dyncp.verification.distillation import EmbeddingDistillationLoss, TeacherEmbeddings


def test_a_file_without_a_teacher_embedding_is_named(tmp_path):
    torch.save({"teacher": "toy", "embeddings": {"spk/sess/a.wav": torch.ones(4)}}, tmp_path / "t.pt")
    table = TeacherEmbeddings(tmp_path / "t.pt")
    with pytest.raises(KeyError, match=r"/data/wav/spk/sess/b\.wav"):
        table("/data/wav/spk/sess/b.wav")


def test_loss_is_zero_when_the_mapped_student_points_where_the_teacher_does():
    loss = EmbeddingDistillationLoss(3, 3)
    with torch.no_grad():
        loss.head.weight.copy_(2.0 * torch.eye(3))  # scale does not count: a cosine distance
        loss.head.bias.zero_()
    student = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]])
    assert float(loss(student, torch.tensor([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(student, torch.tensor([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))) == pytest.approx(1.5)
