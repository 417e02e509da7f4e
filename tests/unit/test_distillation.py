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


def test_rows_without_a_teacher_target_do_not_count():
    loss = EmbeddingDistillationLoss(3, 3)
    with torch.no_grad():
        loss.head.weight.copy_(torch.eye(3))
        loss.head.bias.zero_()
    student = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]], requires_grad=True)
    # row 2 has no target: only row 1 (a perfect match) counts, so the loss is 0, not the mean with a miss
    assert float(loss(student, torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(student, torch.tensor([[-2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))) == pytest.approx(2.0)
    none = loss(student, torch.zeros(2, 3))
    none.backward()  # a batch of short words only: no distillation term, the graph still backpropagates
    assert float(none) == 0.0 and float(student.grad.abs().sum()) == 0.0


def test_short_utterances_get_no_target_and_old_tables_are_refused(tmp_path):
    emb = {"s/x/long.wav": torch.ones(2), "s/x/word.wav": torch.ones(2)}
    torch.save({"teacher": "toy", "embeddings": emb, "seconds": {"s/x/long.wav": 3.0, "s/x/word.wav": 0.6}},
               tmp_path / "t.pt")
    table = TeacherEmbeddings(tmp_path / "t.pt", min_seconds=1.6)
    assert table("/d/wav/s/x/word.wav").abs().sum() == 0 and table("/d/wav/s/x/long.wav").sum() == 2.0
    assert TeacherEmbeddings(tmp_path / "t.pt")("/d/wav/s/x/word.wav").sum() == 2.0  # default: every target
    torch.save({"teacher": "toy", "embeddings": emb}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"old\.pt: no per-utterance seconds"):
        TeacherEmbeddings(tmp_path / "old.pt", min_seconds=1.6)
