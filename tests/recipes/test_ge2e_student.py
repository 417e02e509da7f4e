"""recipes/VoxCeleb/train_ge2e_student.py: a GE2E student that learns a front-end's output, distilled from the
frozen teacher on the clean crop (docs/speaker_real.md, session 14)."""

from types import SimpleNamespace

import speechbrain as sb
import torch

from speechbrain_dyncp.lobes.enhancer import dyncp_small
from speechbrain_dyncp.lobes.ge2e import GE2EEncoder
from tests.unit.test_ge2e import bundled_ge2e


class _Batch:
    def __init__(self, wavs, lens):
        self.sig = (wavs, lens)

    def to(self, device):
        return self


def _add_noise(wavs, lens):
    return wavs + 0.1 * torch.randn_like(wavs), lens


def _brain(recipe_module, clean_share, front_end):
    student = bundled_ge2e(trim_silence=False)  # published weights: a random LSTM embeds everything alike
    brain = recipe_module("recipes/VoxCeleb/train_ge2e_student.py").GE2EStudentBrain(
        modules={"student": student}, hparams={"wav_augment": _add_noise, "clean_share": clean_share},
        run_opts={"device": "cpu"})
    brain.teacher = GE2EEncoder(trim_silence=False)
    brain.teacher.load_state_dict(student.state_dict())
    brain.front_end = front_end
    return brain


def test_student_sees_the_front_end_output_of_the_noisy_crop_and_the_teacher_the_clean_one(recipe_module):
    t = torch.arange(24000) / 16000
    wavs = torch.stack([0.1 * torch.sin(2 * torch.pi * f0 * t) * (1 + torch.sin(2 * torch.pi * 3 * t)) for f0 in (140, 220)])
    lens = torch.tensor([1.0, 0.75])
    identity = lambda w, lens: SimpleNamespace(wav=w)  # noqa: E731
    # all crops clean, no front-end change, student = teacher: nothing to learn
    brain = _brain(recipe_module, 1.0, identity)
    with torch.no_grad():
        loss = brain.compute_objectives(brain.compute_forward(_Batch(wavs, lens), sb.Stage.TRAIN), None, sb.Stage.TRAIN)
    assert float(loss) < 1e-6
    # noisy crops through a real front-end: the student embeds front_end(noisy), the teacher the clean crop
    front_end = dyncp_small(channels=8, hidden=16, gate_hidden=4).eval()
    brain = _brain(recipe_module, 0.0, front_end)
    torch.manual_seed(1)
    with torch.no_grad():
        student, target = brain.compute_forward(_Batch(wavs, lens), sb.Stage.TRAIN)
        torch.manual_seed(1)
        noisy, _ = _add_noise(wavs, lens)
        torch.rand(2)  # the clean-share draw comes after the noise, as in compute_forward
        by_hand = brain.modules.student(front_end(noisy, lens).wav, lens)
    assert torch.allclose(student, by_hand, atol=1e-6)
    assert torch.allclose(target, brain.teacher(wavs, lens), atol=1e-6)
    assert float(brain.compute_objectives((student, target), None, sb.Stage.TRAIN)) > 1e-3


def test_a_short_run_writes_a_student_that_make_ensemble_accepts(repo_root, recipe_module, tiny_corpus, tmp_path):
    torch.manual_seed(0)
    teacher = GE2EEncoder()
    torch.save({"model_state": teacher.state_dict()}, tmp_path / "teacher.pt")  # Resemblyzer's file layout
    recipe_module("recipes/VoxCeleb/train_ge2e_student.py").main([
        str(repo_root / "hparams/VoxCeleb/train_ge2e_student.yaml"), f"--data_folder={tiny_corpus.voxceleb}",
        f"--output_folder={tmp_path / 'run'}", "--number_of_epochs=1", "--device=cpu", "--noprogressbar",
        "--seg_dur=1.0", "--sentence_len=1.0", "--lr=0.001", f"--teacher_file={tmp_path / 'teacher.pt'}",
        f"--front_end={repo_root / 'speechbrain_dyncp/pretrained/dyncp_real_small'}"])
    out = tmp_path / "run" / "ge2e_student.pt"
    student = GE2EEncoder().load_resemblyzer(out)
    moved = [k for k, v in student.state_dict().items() if not torch.equal(v, teacher.state_dict()[k])]
    assert len(moved) == len(teacher.state_dict())  # every tensor trained (none frozen by mistake)
    log = (tmp_path / "run" / "train_log.txt").read_text()
    assert "epoch: 1" in log and "nan" not in log.lower()
