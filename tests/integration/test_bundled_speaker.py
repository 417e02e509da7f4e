"""The bundled default speaker model (speechbrain_dyncp/pretrained/speaker_real_fusion, issue 17):
small, no audio inside, loads offline, and ``dyncp verify`` without ``--model`` uses its calibration."""

import itertools
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbrain_dyncp.inference.speaker import load_speaker_model, speaker_model_folder
from speechbrain_dyncp.verification.calibration import QualityCalibrator


def test_bundle_is_small_without_audio_and_has_its_backend():
    folder = speaker_model_folder(None)
    files = list(folder.iterdir())
    assert sum(f.stat().st_size for f in files) < 16 * 2 ** 20  # two small ECAPAs + GE2E: 12 MB
    assert not [f for f in files if f.suffix.lower() in (".wav", ".flac", ".mp3", ".ogg", ".npz")]
    assert {"hyperparams.yaml", "embedding_model.ckpt", "cohort.ckpt", "calibration.json", "README.md"} \
        <= {f.name for f in files}
    model = load_speaker_model(folder)
    assert model.normalizer is not None and hasattr(model.hparams, "threshold")
    assert QualityCalibrator.load(folder).measures == ["snr_db", "speech_frac", "log_speech_s"]


@pytest.mark.parametrize("front_end", [None, "dyncp_sv_frontend"])
def test_bundle_fuses_the_bundled_single_ecapa_with_a_second_member_and_ge2e(front_end):
    """As the model cards say: ECAPA member 0 is ecapa_real_small (Grad-W's E), member 1 another ECAPA, and
    Resemblyzer's GE2E encoder (tests/unit/test_ge2e.py) holds half of the joint cosine."""
    folder = speaker_model_folder(None, front_end)
    assert folder.name == ("speaker_real_fusion_fe" if front_end else "speaker_real_fusion")
    members = load_speaker_model(folder).mods["waveform_members"]
    assert members.weights == [0.5, 0.5] and type(members.members[0]).__name__ == "GE2EEncoder"
    state = torch.load(folder / "embedding_model.ckpt", weights_only=True)
    single = torch.load(folder.parent / "ecapa_real_small" / "embedding_model.ckpt", weights_only=True)
    assert {k.split(".")[1] for k in state} == {"0", "1"}
    for key, value in single.items():
        assert torch.equal(state[f"members.0.{key}"], value)
    differs = [k for k, v in single.items() if v.is_floating_point() and not torch.equal(state[f"members.1.{k}"], v)]
    assert len(differs) > 0.9 * sum(v.is_floating_point() for v in single.values())


def test_cli_verify_without_model_uses_the_calibrated_bundle(tmp_path):
    t = np.arange(16000) / 16000
    paths = []
    for i, f0 in enumerate((120.0, 210.0)):
        paths.append(tmp_path / f"{i}.wav")
        sf.write(paths[-1], (0.1 * np.sin(2 * np.pi * f0 * t)).astype("float32"), 16000)
    out = subprocess.run([sys.executable, "-m", "speechbrain_dyncp.cli", "verify", *map(str, paths)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "calibrated LLR" in out.stdout and "UNCALIBRATED" not in out.stdout


@pytest.mark.shared_data
def test_bundle_separates_real_test_speakers(shared_data):
    """Three speechocean762 test speakers (never trained on): target pairs outscore impostor pairs."""
    from speechbrain_dyncp.data.real_speech import find_utterances, split_speakers

    utts = [u for u in find_utterances(shared_data) if u["corpus"] == "so762"]
    split = split_speakers(find_utterances(shared_data), seed=0)
    spks = sorted({u["spk"] for u in utts if split[u["spk"]] == "test"})[:3]
    model = load_speaker_model(speaker_model_folder(None))
    emb = {u["id"]: (u["spk"], model.embed_file(u["path"])) for u in utts if u["spk"] in spks}
    tar, non = [], []
    for (sa, ea), (sb, eb) in itertools.combinations(emb.values(), 2):
        s = float(model.score_embeddings(ea[None], eb[None])[0][0])
        (tar if sa == sb else non).append(s)
    assert np.mean(tar) > np.mean(non)
    assert np.mean(np.array(tar)[:, None] > np.array(non)[None, :]) > 0.8  # AUC of these pairs
