"""A folder laid out like SpeechBrain's published ``speechbrain/spkrec-ecapa-voxceleb`` loads
offline as a ``dyncp verify`` / ``DynCPSpeakerRecognition`` speaker model (issue 17, item 2).

The folder is built here with random weights (nothing is downloaded): the same
``hyperparams.yaml`` keys and targets as the hub model (Fbank, sentence
InputNormalization, full-size ECAPA_TDNN, Classifier over 7205 speakers,
``mean_var_norm_emb``, CategoricalEncoder, a Pretrainer whose ``paths`` point at
``<pretrained_path>/embedding_model.ckpt`` ... ``label_encoder.txt`` with
``pretrained_path`` a hub id) and the same file names.
"""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier
from speechbrain.processing.features import InputNormalization

from speechbrain_dyncp.inference.speaker import load_speaker_model, resolve_speaker_source

N_SPEAKERS, EMB = 7205, 192
CHANNELS = [1024, 1024, 1024, 1024, 3072]

HUB_YAML = """# ECAPA speaker verification, laid out like speechbrain/spkrec-ecapa-voxceleb (random weights)
n_mels: 80
pretrained_path: speechbrain/spkrec-ecapa-voxceleb
out_n_neurons: {n_speakers}

compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: {channels}
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 128
    lin_neurons: {emb}

classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: {emb}
    out_neurons: !ref <out_n_neurons>

mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>
    classifier: !ref <classifier>

label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        mean_var_norm_emb: !ref <pretrained_path>/mean_var_norm_emb.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    """(folder, modules) of a hub-layout speaker folder with random weights."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("spkrec-ecapa-voxceleb")
    (folder / "hyperparams.yaml").write_text(HUB_YAML.format(n_speakers=N_SPEAKERS, channels=CHANNELS, emb=EMB))
    emb_model = ECAPA_TDNN(80, channels=CHANNELS, attention_channels=128, lin_neurons=EMB)
    with torch.no_grad():  # non-default BatchNorm statistics, so an unloaded model cannot pass
        for mod in emb_model.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    emb_model.eval()
    classifier = Classifier(EMB, out_neurons=N_SPEAKERS)
    norm_emb = InputNormalization(norm_type="global", std_norm=False)
    norm_emb.train()
    norm_emb(torch.randn(8, 1, EMB) + 3.0, torch.ones(8))  # global statistics to store
    norm_emb.eval()
    torch.save(emb_model.state_dict(), folder / "embedding_model.ckpt")
    torch.save(classifier.state_dict(), folder / "classifier.ckpt")
    norm_emb._save(folder / "mean_var_norm_emb.ckpt")
    enc = CategoricalEncoder()
    enc.update_from_iterable([f"id{10001 + i}" for i in range(N_SPEAKERS)])
    enc.save(folder / "label_encoder.txt")
    return folder, emb_model, norm_emb


@pytest.fixture(scope="module")
def two_wavs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wavs")
    rng = np.random.default_rng(1)
    paths = []
    for i, f0 in enumerate((140.0, 230.0)):
        t = np.arange(16000) / 16000
        wav = 0.1 * np.sin(2 * np.pi * f0 * t * (1 + 0.05 * np.sin(3 * t))) + 0.01 * rng.standard_normal(t.size)
        sf.write(folder / f"spk{i}.wav", wav.astype("float32"), 16000)
        paths.append(folder / f"spk{i}.wav")
    return paths


def _by_hand(emb_model, path):
    from speechbrain_dyncp.data.audio import read_audio

    wav = read_audio(path, sample_rate=16000)[None]
    feats = Fbank(n_mels=80)(wav)
    feats = InputNormalization(norm_type="sentence", std_norm=False)(feats, torch.ones(1))
    with torch.no_grad():
        return emb_model(feats, torch.ones(1))[0, 0]


def test_hub_layout_folder_verifies_like_hand_computed_embeddings(hub_folder, two_wavs):
    folder, emb_model, norm_emb = hub_folder
    model = load_speaker_model(folder)
    e = [_by_hand(emb_model, p) for p in two_wavs]
    score, _ = model.verify_files(*two_wavs)
    expected = torch.nn.functional.cosine_similarity(e[0], e[1], dim=0, eps=1e-6)
    assert float(score) == pytest.approx(float(expected), abs=1e-5)
    same, _ = model.verify_files(two_wavs[0], two_wavs[0])
    assert float(same) == pytest.approx(1.0, abs=1e-5)
    # the stored label encoder and embedding statistics were read, not left at their defaults
    assert len(model.hparams.label_encoder) == N_SPEAKERS
    emb = model.embed_file(two_wavs[0])
    assert torch.allclose(emb, e[0], atol=1e-5)
    from speechbrain_dyncp.data.audio import read_audio

    normed = model.encode_batch(read_audio(two_wavs[0], sample_rate=16000), normalize=True)[0, 0]
    assert torch.allclose(normed, e[0] - norm_emb.glob_mean.reshape(-1), atol=1e-4)


def test_speechbrain_itself_gives_the_same_score(hub_folder, two_wavs):
    """Parity with SpeechBrain's own SpeakerRecognition on the same folder (offline, local paths)."""
    from speechbrain.inference.speaker import SpeakerRecognition
    from speechbrain.utils.fetching import FetchConfig, LocalStrategy

    folder = hub_folder[0]
    sb_model = SpeakerRecognition.from_hparams(
        source=str(folder), overrides={"pretrained_path": str(folder)}, local_strategy=LocalStrategy.NO_LINK,
        fetch_config=FetchConfig(allow_network=False), run_opts={"device": "cpu"})
    sb_score, _ = sb_model.verify_files(str(two_wavs[0]), str(two_wavs[1]))
    ours, _ = load_speaker_model(folder).verify_files(*two_wavs)
    assert float(ours) == pytest.approx(float(sb_score.reshape(-1)[0]), abs=1e-5)


def test_cli_verify_with_hub_layout_folder_says_threshold_is_a_fallback(hub_folder, two_wavs):
    out = subprocess.run([sys.executable, "-m", "speechbrain_dyncp.cli", "verify", str(two_wavs[0]),
                          str(two_wavs[1]), "--model", str(hub_folder[0])], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "score" in out.stdout and "uncalibrated" in out.stdout.lower()


def test_missing_checkpoint_is_named(hub_folder, tmp_path):
    import shutil

    folder = tmp_path / "broken"
    shutil.copytree(hub_folder[0], folder)
    (folder / "embedding_model.ckpt").unlink()
    with pytest.raises(Exception, match="embedding_model.ckpt"):
        load_speaker_model(folder)


def test_unknown_hub_id_offline_fails_with_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="no-such-owner/no-such-model"):
        resolve_speaker_source("no-such-owner/no-such-model")


@pytest.mark.parametrize("measures", [[], ["snr_db", "speech_frac", "log_speech_s"]])
def test_cli_verify_prints_calibrated_llr_with_calibration_json(hub_folder, two_wavs, tmp_path, measures):
    """With calibration.json the CLI prints the calibrated LLR and P(same) (quality from the DynCP probes)."""
    import shutil

    from speechbrain_dyncp.inference.loading import DEFAULT_ENHANCER
    from speechbrain_dyncp.verification.calibration import QualityCalibrator

    folder = tmp_path / "calibrated"
    shutil.copytree(hub_folder[0], folder)
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.5
    s = np.where(y, 0.7, 0.3) + 0.1 * rng.normal(size=200)
    q = rng.uniform([0.0, 0.3, -2.0], [30.0, 1.0, 2.5], size=(200, 3))
    cal = QualityCalibrator(measures).fit(s, y, *((q, q[::-1]) if measures else ()))
    cal.info["quality_model_bundled"] = DEFAULT_ENHANCER
    cal.save(folder)
    out = subprocess.run([sys.executable, "-m", "speechbrain_dyncp.cli", "verify", str(two_wavs[0]),
                          str(two_wavs[1]), "--model", str(folder)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "calibrated LLR" in out.stdout and "P(same)" in out.stdout
    assert ("[quality snr_db" in out.stdout) == bool(measures)
    assert ("log_speech_s" in out.stdout) == bool(measures)  # the seconds of speech read off the VAD probe


def test_cli_verify_warns_when_the_probe_model_changed_since_calibration(hub_folder, two_wavs, tmp_path):
    import shutil

    from speechbrain_dyncp.inference.loading import DEFAULT_ENHANCER, bundled_model_dir
    from speechbrain_dyncp.verification.calibration import QualityCalibrator, model_fingerprint

    folder = tmp_path / "calibrated"
    shutil.copytree(hub_folder[0], folder)
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.5
    q = rng.uniform([0.0, 0.3], [30.0, 1.0], size=(200, 2))
    cal = QualityCalibrator().fit(np.where(y, 0.7, 0.3) + 0.1 * rng.normal(size=200), y, q, q[::-1])
    cal.info["quality_model_bundled"] = DEFAULT_ENHANCER
    for fingerprint, warned in ((model_fingerprint(bundled_model_dir()), False), ("0" * 16, True)):
        cal.info["quality_model_sha256"] = fingerprint
        cal.save(folder)
        out = subprocess.run([sys.executable, "-m", "speechbrain_dyncp.cli", "verify", str(two_wavs[0]),
                              str(two_wavs[1]), "--model", str(folder)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert ("changed since" in out.stdout) == warned
