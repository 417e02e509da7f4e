"""The bundled default speaker model (speechbrain_dyncp/pretrained/ecapa_real_small_x2, issue 17):
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
    assert sum(f.stat().st_size for f in files) < 10 * 2 ** 20
    assert not [f for f in files if f.suffix.lower() in (".wav", ".flac", ".mp3", ".ogg", ".npz")]
    assert {"hyperparams.yaml", "embedding_model.ckpt", "cohort.ckpt", "calibration.json", "README.md"} \
        <= {f.name for f in files}
    model = load_speaker_model(folder)
    assert model.normalizer is not None and hasattr(model.hparams, "threshold")
    assert QualityCalibrator.load(folder).measures == ["snr_db", "speech_frac", "log_speech_s"]


def test_bundle_fuses_the_bundled_single_ecapa_with_a_second_member():
    """As its model card says: member 0 is ecapa_real_small (Grad-W's E), member 1 another ECAPA."""
    folder = speaker_model_folder(None)
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
