"""Chunked long-file enhancement equals whole-file enhancement, with bounded blocks."""

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from speechbrain_dyncp.data.audio import AudioError, read_audio
from speechbrain_dyncp.inference.chunking import _resampled, enhance_file_chunked
from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer

PCM16 = 1.5 / 32768  # output quantisation step


def _model(causal):
    torch.manual_seed(0)
    return DynCPEnhancer(channels=8, hidden=8, n_stacks=1, n_blocks=2, gate_hidden=4, causal=causal).eval()


@pytest.mark.parametrize("causal", [True, False])
def test_chunked_equals_whole_file(tmp_path, causal):
    wav = 0.2 * torch.randn(23_456)
    sf.write(tmp_path / "in.wav", wav.numpy(), 16000, subtype="FLOAT")
    model = _model(causal)
    info = enhance_file_chunked(model, tmp_path / "in.wav", tmp_path / "out.wav", block_seconds=0.1,
                                context_seconds=0.25)
    out, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    with torch.no_grad():
        ref = model(wav[None]).wav[0].clamp(-1, 1).numpy()
    assert info["mode"] == ("streaming" if causal else "overlap") and info["samples"] == len(wav)
    assert np.abs(out - ref).max() < PCM16


@pytest.mark.parametrize("orig", [8000, 22050, 44100])
def test_blockwise_resampling_equals_whole_signal(orig):
    x = np.random.default_rng(orig).standard_normal(orig + 777).astype(np.float32)
    whole = torchaudio.functional.resample(torch.from_numpy(x), orig, 16000)
    for block in (300, 5000):
        parts = torch.cat(list(_resampled((x[i : i + block] for i in range(0, len(x), block)), orig, 16000, 2048)))
        torch.testing.assert_close(parts, whole, atol=1e-5, rtol=0)


def test_stereo_44k_file_matches_read_audio_path(tmp_path):
    x = np.random.default_rng(1).uniform(-0.3, 0.3, (44100, 2)).astype(np.float32)
    sf.write(tmp_path / "in.flac", x, 44100)
    model = _model(True)
    enhance_file_chunked(model, tmp_path / "in.flac", tmp_path / "out.wav", block_seconds=0.2)
    out, rate = sf.read(tmp_path / "out.wav", dtype="float32")
    with torch.no_grad():
        ref = model(read_audio(tmp_path / "in.flac")[None]).wav[0].clamp(-1, 1).numpy()
    assert rate == 16000 and np.abs(out - ref).max() < 1e-3


def test_bad_input_is_named_and_leaves_nothing(tmp_path):
    x = np.zeros(16000, np.float32)
    x[12_345] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan.wav contains NaN.*sample 12345"):
        enhance_file_chunked(_model(True), tmp_path / "nan.wav", tmp_path / "out.wav", block_seconds=0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.wav"]  # no output, no .part
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="empty"):
        enhance_file_chunked(_model(True), tmp_path / "empty.wav", tmp_path / "out.wav")
    (tmp_path / "out.wav").write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        enhance_file_chunked(_model(True), tmp_path / "nan.wav", tmp_path / "out.wav")
    assert (tmp_path / "out.wav").read_bytes() == b"keep me"
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        enhance_file_chunked(_model(True), tmp_path / "missing.wav", tmp_path / "o2.wav")
