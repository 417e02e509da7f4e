"""``dyncp verify --front-end`` (issue 17): the bundled SV-aware front-end, the speaker model trained on its
output, their own calibration, and the uncalibrated fallback for any front-end the calibration was not fitted
for."""

import re

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbrain_dyncp.inference.front_end import (
    FRONT_END_CALIBRATION_FILE,
    front_end_calibration,
    front_end_embedding,
)
from speechbrain_dyncp.inference.loading import SV_FRONT_END, bundled_model_dir, load_enhancer
from speechbrain_dyncp.inference.speaker import load_speaker_model, speaker_model_folder
from speechbrain_dyncp.inference.speaker_folders import DEFAULT_SPEAKER_MODEL, FRONT_END_SPEAKER_MODEL
from speechbrain_dyncp.verification.calibration import QualityCalibrator, model_fingerprint, probe_quality


@pytest.fixture(scope="module")
def two_voices(tmp_path_factory):
    """Two 1.5 s harmonic 'voices' (120 / 210 Hz) in white noise at about 5 dB SNR."""
    folder = tmp_path_factory.mktemp("voices")
    rng = np.random.default_rng(0)
    t = np.arange(24000) / 16000
    paths = []
    for i, f0 in enumerate((120.0, 210.0)):
        voice = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8)) * 0.05
        noisy = voice + 0.56 * voice.std() * rng.standard_normal(t.size)
        paths.append(folder / f"{i}.wav")
        sf.write(paths[-1], noisy.astype("float32"), 16000)
    return paths


def _verify(*args):
    return subprocess.run([sys.executable, "-m", "speechbrain_dyncp.cli", "verify", *map(str, args)],
                          capture_output=True, text=True)


def test_the_bundled_front_end_gets_the_speaker_model_trained_on_its_output():
    assert speaker_model_folder(None, SV_FRONT_END).name == FRONT_END_SPEAKER_MODEL
    # no front-end, or one the matched model never heard: the default; --model always wins
    assert speaker_model_folder(None).name == speaker_model_folder(None, "dyncp_real_base").name == DEFAULT_SPEAKER_MODEL
    default = speaker_model_folder(None)
    assert speaker_model_folder(str(default), SV_FRONT_END) == default
    matched, plain = (load_speaker_model(speaker_model_folder(None, f)) for f in (SV_FRONT_END, None))
    wav = torch.randn(16000, generator=torch.Generator().manual_seed(0)) * 0.1
    assert torch.cosine_similarity(matched.embed_waveform(wav, "x"), plain.embed_waveform(wav, "x"), dim=0) < 0.99


@pytest.mark.parametrize("speaker", [DEFAULT_SPEAKER_MODEL, FRONT_END_SPEAKER_MODEL])
def test_bundled_front_end_has_its_calibration_in_the_speaker_bundles(speaker):
    speaker = speaker_model_folder(None).parent / speaker
    cal, why_not = front_end_calibration(speaker, bundled_model_dir(SV_FRONT_END))
    assert why_not is None and cal.measures == ["snr_db", "speech_frac", "log_speech_s"]
    assert cal.info["front_end_bundled"] == SV_FRONT_END
    # the enhancement default is another front-end: its scores were never calibrated
    cal, why_not = front_end_calibration(speaker, bundled_model_dir())
    assert cal is None and "another front-end" in why_not


def test_calibration_is_used_only_with_the_weights_it_was_fitted_for(tmp_path):
    speaker, front = tmp_path / "spk", tmp_path / "fe"
    speaker.mkdir()
    front.mkdir()
    (front / "enhancer.ckpt").write_bytes(b"weights A")
    assert "no " + FRONT_END_CALIBRATION_FILE in front_end_calibration(speaker, front)[1]
    cal = QualityCalibrator([]).fit(np.r_[0.1, 0.2, 0.7, 0.8], np.r_[0, 0, 1, 1])
    cal.info.update({"front_end": str(front), "front_end_sha256": model_fingerprint(front)})
    cal.save(speaker / FRONT_END_CALIBRATION_FILE)
    assert front_end_calibration(speaker, front)[0] is not None
    (front / "enhancer.ckpt").write_bytes(b"weights B")  # retrained in place: same name, other weights
    assert front_end_calibration(speaker, front)[0] is None


def test_front_end_embeds_the_output_and_measures_the_input(two_voices):
    speaker = load_speaker_model(speaker_model_folder(None))
    enhancer = load_enhancer(SV_FRONT_END)
    emb, quality = front_end_embedding(speaker, enhancer, two_voices[0])
    analysis = enhancer.analyze_file(str(two_voices[0]))
    assert quality == probe_quality(analysis)  # the same pass's probes, not another model's
    assert torch.allclose(emb, speaker.embed_waveform(analysis.wav[0], "x"), atol=1e-5)
    assert torch.cosine_similarity(emb, speaker.embed_file(two_voices[0]), dim=0) < 0.999  # not the raw input


def test_cli_verify_front_end_calibrated_and_fallback(two_voices):
    out = _verify("--front-end", *two_voices)  # the bare flag first: the recordings are not taken as its MODEL
    assert out.returncode == 0, out.stderr
    assert "calibrated LLR" in out.stdout and f"[front-end {SV_FRONT_END}]" in out.stdout
    assert "UNCALIBRATED" not in out.stdout
    # the score is the matched speaker model's (AS-norm with its own cohort), not the default's
    speaker = load_speaker_model(speaker_model_folder(None, SV_FRONT_END))
    enhancer = load_enhancer(SV_FRONT_END)
    e1, e2 = (front_end_embedding(speaker, enhancer, p)[0] for p in two_voices)
    expected = float(speaker.score_embeddings(e1[None], e2[None])[0][0])
    assert float(re.search(r"score (\S+)", out.stdout).group(1)) == pytest.approx(expected, abs=2e-4)
    other = _verify(*two_voices, "--front-end", "dyncp_real_base")
    assert other.returncode == 0, other.stderr
    assert "UNCALIBRATED FALLBACK" in other.stdout and "calibrated LLR" not in other.stdout


def test_a_bare_front_end_flag_before_the_inputs_means_the_bundled_one(two_voices, tmp_path):
    from speechbrain_dyncp.cli import bare_front_end_first

    enroll, test = map(str, two_voices)
    model = tmp_path / "my_enhancer"
    model.mkdir()
    (model / "hyperparams.yaml").write_text("x: 1\n")
    assert bare_front_end_first(["verify", "--front-end", enroll, test]) == [
        "verify", f"--front-end={SV_FRONT_END}", enroll, test]
    folder = str(two_voices[0].parent)  # embed's input folder
    assert bare_front_end_first(["embed", "--front-end", folder, "-o", "x.npz"])[1] == f"--front-end={SV_FRONT_END}"
    for kept in (["verify", "--front-end", str(model), enroll, test], ["verify", "--front-end", "dyncp_real_base", enroll,
                 test], ["verify", enroll, test, "--front-end"], ["verify", f"--front-end={model}", enroll, test]):
        assert bare_front_end_first(kept) == kept


def test_cli_embed_front_end_is_honoured(two_voices, tmp_path):
    folder = two_voices[0].parent
    for name, extra in (("raw", []), ("fe", ["--front-end"])):
        out = subprocess.run([sys.executable, "-m", "speechbrain_dyncp.cli", "embed", str(folder), "-o",
                              str(tmp_path / name), *extra], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    raw, fe = np.load(tmp_path / "raw.npz"), np.load(tmp_path / "fe.npz")
    assert sorted(raw.files) == sorted(fe.files) == ["0.wav", "1.wav"]
    a, b = raw["0.wav"], fe["0.wav"]
    assert np.isfinite(b).all() and a @ b / np.linalg.norm(a) / np.linalg.norm(b) < 0.999
