"""Audio reading/writing: every bad input gets a clear error naming the file."""

import hashlib

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from speechbrain_dyncp.data.audio import AudioError, list_audio_files, read_audio, write_audio


def test_torchaudio_compiled_ops_load():
    """torch 2.14.1 + torchaudio 2.11.0: compiled CPU ops (lfilter, resample, fbank) work."""
    x = torch.randn(1, 1600)
    # One-pole IIR y[n] = x[n] + 0.5 y[n-1], recomputed by hand.
    y = torchaudio.functional.lfilter(x, torch.tensor([1.0, -0.5]), torch.tensor([1.0, 0.0]), clamp=False)
    ref = torch.zeros_like(x)
    acc = 0.0
    for n in range(x.shape[1]):
        acc = float(x[0, n]) + 0.5 * acc
        ref[0, n] = acc
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)
    tone = torch.sin(2 * torch.pi * 440 * torch.arange(16000) / 16000)
    down = torchaudio.functional.resample(tone, 16000, 8000)
    assert down.shape[0] == 8000
    fb = torchaudio.compliance.kaldi.fbank(tone[None], num_mel_bins=40, sample_frequency=16000)
    # The 440 Hz tone puts the energy peak in one of the lowest mel bands.
    assert int(fb.mean(0).argmax()) < 10


def test_read_resamples_and_downmixes(tmp_path):
    t = np.arange(44100) / 44100
    left = 0.5 * np.sin(2 * np.pi * 300 * t)
    sf.write(tmp_path / "s.wav", np.stack([left, left], 1), 44100)
    wav = read_audio(tmp_path / "s.wav", sample_rate=16000)
    assert abs(wav.shape[0] - 16000) <= 1
    # Downmix of identical channels keeps the amplitude; resampling keeps the tone.
    assert abs(float(wav.abs().max()) - 0.5) < 0.02


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p.write_bytes(b"RIFF\x00\x00garbage"), "Cannot read audio file"),
        (lambda p: sf.write(p, np.zeros(0), 16000), "empty"),
        (lambda p: sf.write(p, np.array([0.1, np.nan, 0.2]), 16000, subtype="FLOAT"), "NaN"),
    ],
    ids=["corrupt", "empty", "nan"],
)
def test_bad_files_name_the_file(tmp_path, make, match):
    p = tmp_path / "bad.wav"
    make(p)
    with pytest.raises(AudioError, match=match) as err:
        read_audio(p)
    assert str(p) in str(err.value)


def test_missing_file_and_rate_refusal(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        read_audio(tmp_path / "nope.wav")
    sf.write(tmp_path / "8k.wav", np.zeros(800), 8000)
    with pytest.raises(AudioError, match="8000 Hz"):
        read_audio(tmp_path / "8k.wav", on_rate_mismatch="error")
    sf.write(tmp_path / "silent.wav", np.zeros(800), 16000)
    with pytest.raises(AudioError, match="silence"):
        read_audio(tmp_path / "silent.wav", allow_silent=False)


def test_write_never_overwrites_and_is_atomic(tmp_path):
    p = write_audio(tmp_path / "o.wav", torch.full((160,), 0.25), 16000)
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    with pytest.raises(FileExistsError):
        write_audio(p, torch.zeros(160), 16000)
    assert hashlib.sha256(p.read_bytes()).hexdigest() == digest
    assert not list(tmp_path.glob("*.part"))
    with pytest.raises(AudioError, match="NaN"):
        write_audio(tmp_path / "n.wav", torch.tensor([float("nan")]), 16000)
    assert abs(float(read_audio(p)[0]) - 0.25) < 1e-3


def test_list_audio_files_recursive(tmp_path):
    write_audio(tmp_path / "b" / "2.flac.wav", torch.zeros(10), 16000)
    write_audio(tmp_path / "a" / "1.wav", torch.zeros(10), 16000)
    (tmp_path / "a" / "notes.txt").write_text("x")
    assert [p.name for p in list_audio_files(tmp_path)] == ["1.wav", "2.flac.wav"]
    with pytest.raises(FileNotFoundError):
        list_audio_files(tmp_path / "missing")
