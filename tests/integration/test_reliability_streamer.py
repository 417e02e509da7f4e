"""The live streamer takes what audio APIs hand out: NumPy, int16, and refuses stereo (issue 18)."""

import numpy as np
import pytest
import torch

from speechbrain_dyncp.inference.streaming import EnhancementStreamer
from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer


@pytest.fixture(scope="module")
def enhancer():
    torch.manual_seed(0)
    return DynCPEnhancer(channels=8, hidden=8, n_stacks=1, n_blocks=2, gate_hidden=4).eval()


def _stream(enhancer, chunks):
    s = EnhancementStreamer(enhancer)
    return torch.cat([s.process(c).wav for c in chunks] + [s.finish()])


def test_numpy_and_int16_chunks_equal_float_tensor_chunks(enhancer):
    pcm = (np.random.default_rng(0).standard_normal(4000) * 3000).astype(np.int16)
    ref = _stream(enhancer, torch.from_numpy(pcm / 32768.0).float().split(500))
    from_numpy_float = _stream(enhancer, np.split((pcm / 32768.0).astype(np.float32), 8))
    from_numpy_int16 = _stream(enhancer, np.split(pcm, 8))
    from_tensor_int16 = _stream(enhancer, torch.from_numpy(pcm).split(500))
    for out in (from_numpy_float, from_numpy_int16, from_tensor_int16):
        torch.testing.assert_close(out, ref)
    assert ref.abs().max() < 10  # int16 was 17,262 at the output before rescaling


def test_stereo_chunk_is_refused_not_flattened(enhancer):
    s = EnhancementStreamer(enhancer)
    with pytest.raises(ValueError, match=r"mono audio chunk.*\(2, 16000\).*down-mix"):
        s.process(np.zeros((2, 16000), np.float32))
    assert s.ctx.frames_done == 0  # nothing was fed
    assert s.process(np.zeros((1, 16000), np.float32)).wav.numel() == 16000
