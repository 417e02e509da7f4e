"""Attenuation limit (mask floor): the same limit in every inference path, and it is a mix-back."""

import copy

import numpy as np
import pytest
import torch

from speechbrain_dyncp import streaming
from speechbrain_dyncp.streaming import FastStreamer, c_available
from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer

from dyncp_fixtures import planted_model  # noqa: F401 (fixture)

BACKENDS = ["numpy", pytest.param("c", marks=pytest.mark.skipif(not c_available(), reason="C kernel not built"))]


@pytest.fixture(scope="module")
def limited(planted_model):
    """The planted model with a 20 dB limit (floor 0.1), and the same model without one."""
    free = copy.deepcopy(planted_model)
    free.attenuation_limit_db = None
    lim = copy.deepcopy(planted_model)
    lim.attenuation_limit_db = 20.0
    return free, lim


def test_limit_floors_the_mask_and_equals_mixing_the_input_back(limited):
    """out = 0.1 * noisy + 0.9 * unlimited output (linear STFT), and no mask value under 0.1."""
    free, lim = limited
    x = torch.randn(2, 4000, dtype=torch.double)
    lengths = torch.tensor([1.0, 0.6], dtype=torch.double)
    with torch.no_grad():
        a, b = free(x, lengths), lim(x, lengths)
    valid = b.frame_mask
    assert float(b.mask[valid].min()) >= 0.1 - 1e-12
    assert float(a.mask[valid].min()) < 0.1  # the limit changed something
    keep = (torch.arange(4000)[None] < (lengths[:, None] * 4000)).double()
    torch.testing.assert_close(b.wav, (0.1 * x * keep + 0.9 * a.wav), atol=1e-9, rtol=1e-7)


def test_no_limit_is_the_plain_sigmoid(limited):
    free, _ = limited
    z = torch.linspace(-8, 8, 11)
    assert free.mask_floor == 0.0
    torch.testing.assert_close(free.mask_from_logits(z), torch.sigmoid(z))
    free.attenuation_limit_db = 0  # 0 = no limit (what `dyncp enhance --attenuation-limit-db 0` sets)
    torch.testing.assert_close(free.mask_from_logits(z), torch.sigmoid(z))
    free.attenuation_limit_db = None


def test_negative_limit_is_refused():
    with pytest.raises(ValueError, match="attenuation_limit_db"):
        DynCPEnhancer(channels=8, hidden=8, n_stacks=1, n_blocks=1, gate_hidden=4, attenuation_limit_db=-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fast_streamer_applies_the_limit(limited, backend):
    """The NumPy / C streamers read the limit from the model: same output as the offline model."""
    _, lim = limited
    x = torch.randn(1, 3001, dtype=torch.double)
    ref = lim(x).wav[0].detach().numpy()
    fs = FastStreamer(lim, backend=backend, dtype=np.float64)
    y = np.concatenate([fs.process(x[0].numpy()), fs.finish()])
    np.testing.assert_allclose(y[fs.latency:], ref, atol=1e-10, rtol=1e-9)


def test_torch_streaming_applies_the_limit(limited):
    _, lim = limited
    x = torch.randn(1, 3001, dtype=torch.double)
    ref = lim(x).wav
    ctx = streaming.make_context(lim)
    y = torch.cat([lim.forward_streaming(c, ctx) for c in x.split(500, dim=1)]
                  + [streaming.finish_streaming(lim, ctx)], dim=1)
    lat = y.shape[1] - x.shape[1]
    torch.testing.assert_close(y[:, lat:], ref, atol=1e-9, rtol=1e-7)
