"""Fuzz: hostile bytes and arrays give a valid result or a clear error, never a crash or a hang."""

import io
import struct

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from speechbrain_dyncp.data.audio import AudioError, read_audio
from speechbrain_dyncp.inference.chunking import enhance_file_chunked
from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _wav_header(n_bytes: int, channels: int, rate: int, bits: int) -> bytes:
    """A RIFF/WAVE header (maybe lying about sizes) to get random bodies past the format check."""
    u32 = 0xFFFFFFFF
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * block) & u32, block, bits)
    return (b"RIFF" + struct.pack("<I", (36 + n_bytes) & u32) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", n_bytes & u32))


hostile_files = st.one_of(
    st.binary(max_size=4096),
    st.builds(
        lambda body, ch, rate, bits, lie: _wav_header(len(body) + lie, ch, rate, bits) + body,
        st.binary(max_size=4096), st.sampled_from([0, 1, 2, 7]), st.sampled_from([0, 1, 8000, 44100, 2**31 - 1]),
        st.sampled_from([0, 8, 16, 24, 32, 13]), st.integers(-64, 10**6),
    ),
)


def _check_audio_result(read):
    try:
        wav = read()
    except (AudioError, FileNotFoundError) as exc:
        assert str(exc)  # a message, naming the file (checked in test_audio_io)
        return
    assert wav.dtype == torch.float32 and wav.ndim == 1 and wav.numel() > 0
    assert bool(torch.isfinite(wav).all())


@pytest.mark.timeout(120)
@FUZZ
@given(data=hostile_files)
def test_read_audio_random_bytes(tmp_path, data):
    path = tmp_path / "fuzz.wav"
    path.write_bytes(data)
    _check_audio_result(lambda: read_audio(path))
    _check_audio_result(lambda: read_audio(io.BytesIO(data)))  # the shard path


def _small_model(causal=True):
    torch.manual_seed(0)
    return DynCPEnhancer(channels=8, hidden=8, n_stacks=1, n_blocks=2, gate_hidden=4, causal=causal).eval()


MODEL = _small_model()

special = st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-30, 1e30, 3e38, float("nan"), float("inf"), -float("inf")])
hostile_arrays = st.one_of(
    arrays(np.float32, st.tuples(st.integers(1, 2), st.integers(0, 1200)),
           elements=st.one_of(special, st.floats(-1e4, 1e4, width=32))),
    arrays(np.float32, st.tuples(st.integers(1, 2), st.integers(0, 600), st.integers(1, 3)),
           elements=st.floats(-1, 1, width=32)),  # multichannel [B, T, C]
    arrays(np.float32, st.integers(0, 600), elements=st.floats(-1, 1, width=32)),  # 1-D
)


@pytest.mark.timeout(120)
@FUZZ
@given(x=hostile_arrays)
def test_enhancer_forward_random_arrays(x):
    wav = torch.from_numpy(x)
    try:
        with torch.inference_mode():
            out = MODEL(wav)
    except ValueError as exc:
        assert "DynCPEnhancer" in str(exc)  # says who complains and what it expects
        return
    assert out.wav.shape == wav.shape
    assert bool(torch.isfinite(out.wav).all()), "finite input must give finite output"


@pytest.mark.timeout(120)
@FUZZ
@given(x=arrays(np.float32, st.tuples(st.integers(0, 3000), st.integers(1, 3)),
                elements=st.one_of(st.floats(-1, 1, width=32), special)),
       rate=st.sampled_from([8000, 16000, 22050]))
def test_chunked_enhancement_random_files(tmp_path, x, rate):
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    dst.unlink(missing_ok=True)
    sf.write(src, x, rate, subtype="FLOAT")
    try:
        info = enhance_file_chunked(MODEL, src, dst, block_seconds=0.03)
    except AudioError as exc:
        assert str(src) in str(exc)
        assert not dst.exists() and not (tmp_path / "out.wav.part").exists()
        return
    out, out_rate = sf.read(dst, dtype="float32")
    assert out_rate == 16000 and len(out) == info["samples"] > 0
    assert np.isfinite(out).all()
