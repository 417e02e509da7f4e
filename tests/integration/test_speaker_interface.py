"""Speaker-verification interface: offline model folder, stored cohort and calibrated threshold."""

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbrain_dyncp.cli import main
from speechbrain_dyncp.inference.speaker import add_verification_backend, calibrate_threshold, load_speaker_model
from speechbrain_dyncp.verification.scoring import ScoreNormalizer
from tiny_speaker import write_tiny_speaker_folder



@pytest.fixture()
def speaker_dir(tmp_path):
    d = tmp_path / "spk"
    return d, write_tiny_speaker_folder(d)


def _wav(path, f0, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    sig = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6)) * 0.1 + 0.01 * rng.standard_normal(16000)
    sf.write(path, sig, 16000)
    return path


def test_offline_load_equal_weights_and_calibrated_backend(speaker_dir, tmp_path):
    d, state = speaker_dir
    model = load_speaker_model(d)
    got = model.mods.embedding_model.state_dict()
    assert all(torch.equal(got[k], state[k]) for k in state)
    a, b = _wav(tmp_path / "a.wav", 110, 0), _wav(tmp_path / "b.wav", 220, 1)
    raw, _ = model.verify_files(a, a)
    assert abs(float(raw) - 1.0) < 1e-4  # same file: cosine 1
    assert model.threshold == 0.25  # nothing calibrated yet: SpeechBrain's default

    cohort = torch.randn(20, 12)
    thr = calibrate_threshold([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    assert thr == pytest.approx(0.2)
    add_verification_backend(d, cohort, threshold=thr, score_norm="as-norm", top_k=5)
    add_verification_backend(d, cohort, threshold=thr, score_norm="as-norm", top_k=5)  # rewrite, not append
    model = load_speaker_model(d)
    assert model.threshold == pytest.approx(thr)
    torch.testing.assert_close(model.mods.cohort.embeddings, cohort)
    score, decision = model.verify_files(a, b)
    # The normalised score equals AS-norm recomputed from the embeddings.
    with torch.no_grad():
        ea = model.encode_batch(model.load_audio(str(a)).unsqueeze(0))[:, 0]
        eb = model.encode_batch(model.load_audio(str(b)).unsqueeze(0))[:, 0]
    raw = torch.nn.functional.cosine_similarity(ea, eb, eps=1e-6)
    ref = ScoreNormalizer(cohort, "as-norm", top_k=5)(raw, ["x"], ea, ["y"], eb)
    torch.testing.assert_close(score.reshape(1), ref, rtol=1e-4, atol=1e-4)
    assert bool(decision) == bool(ref[0] > thr)


def test_dyncp_verify_cli(speaker_dir, tmp_path, capsys):
    d, _ = speaker_dir
    a = _wav(tmp_path / "a.wav", 110, 0)
    assert main(["verify", str(a), str(a), "--model", str(d)]) == 0
    assert "same speaker" in capsys.readouterr().out
    assert main(["verify", str(a), str(tmp_path / "missing.wav"), "--model", str(d)]) == 1
    assert "missing.wav" in capsys.readouterr().err
    # digital silence has no speaker: refused by name (it used to score 0.99 "same speaker" against noise)
    sf.write(tmp_path / "quiet.wav", np.full(16000, 2.0 ** -17), 16000, subtype="FLOAT")
    assert main(["verify", str(a), str(tmp_path / "quiet.wav"), "--model", str(d)]) == 1
    assert "quiet.wav is digital silence" in capsys.readouterr().err
    (tmp_path / "quiet.wav").unlink()
    out = tmp_path / "emb.npz"
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    assert main(["embed", str(tmp_path), "-o", str(out), "--model", str(d)]) == 1
    assert sorted(np.load(out).files) == ["a.wav"]


def test_threshold_only_backend_for_raw_cosine(speaker_dir, tmp_path):
    d, _ = speaker_dir
    add_verification_backend(d, None, threshold=0.6, score_norm="none")
    model = load_speaker_model(d)
    assert model.threshold == 0.6 and model.normalizer is None
    a = _wav(tmp_path / "a.wav", 110, 0)
    score, decision = model.verify_files(a, a)
    assert bool(decision) == (float(score) > 0.6)
    with pytest.raises(ValueError, match="needs a cohort"):
        add_verification_backend(d, None, threshold=0.6, score_norm="as-norm")
