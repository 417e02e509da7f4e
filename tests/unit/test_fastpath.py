"""NumPy / C per-frame streamers: same output as the offline model, same skipped channels."""

import copy

import numpy as np
import pytest
import torch

from speechbrain_dyncp.efficiency import plant_gate_ratio
from speechbrain_dyncp.streaming import FastStreamer, c_available
from speechbrain_dyncp.lobes.enhancer import dyncp_small

from dyncp_fixtures import planted_model  # noqa: F401 (fixture)

BACKENDS = ["numpy", pytest.param("c", marks=pytest.mark.skipif(not c_available(), reason="C kernel not built"))]


@pytest.fixture(scope="module")
def model(planted_model):
    """The shared tiny planted model."""
    return planted_model


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("length,chunk", [(600, 1), (3001, 77), (3001, 1000)])
def test_fast_streamer_equals_offline(model, backend, length, chunk):
    """Output from sample ``latency`` on == offline causal output; executed channels == gates."""
    x = torch.randn(1, length, dtype=torch.double)
    ref = model(x)
    fs = FastStreamer(model, backend=backend, dtype=np.float64)
    parts = [fs.process(c) for c in np.split(x[0].numpy(), range(chunk, length, chunk))]
    y = np.concatenate(parts + [fs.finish()])
    assert len(y) == length + fs.latency
    np.testing.assert_allclose(y[fs.latency:], ref.wav[0].detach().numpy(), atol=1e-10, rtol=1e-9)
    assert fs.channel_frames == int(ref.gates.sum())


@pytest.mark.parametrize("backend", BACKENDS)
def test_fast_streamer_dense_model_and_effective_macs(backend):
    """Dense model: every channel computed; gated: exactly the channels whose gates are on."""
    torch.manual_seed(1)
    dense = dyncp_small(channels=8, hidden=16, gated=False).eval().double()
    x = torch.randn(1, 2500, dtype=torch.double)
    fs = FastStreamer(dense, backend=backend, dtype=np.float64)
    y = np.concatenate([fs.process(x[0].numpy()), fs.finish()])
    np.testing.assert_allclose(y[fs.latency:], dense(x).wav[0].detach().numpy(), atol=1e-10, rtol=1e-9)
    assert fs.channel_frames == fs.frames_done * 6 * 16
    gated = dyncp_small(channels=8, hidden=16, gate_hidden=4).eval().double()
    plant_gate_ratio(gated, x, 0.5)
    fs = FastStreamer(gated, backend=backend, dtype=np.float64)
    fs.process(x[0].numpy())
    fs.finish()
    out = gated(x)
    assert fs.channel_frames == int(out.gates.sum()) < fs.frames_done * 6 * 16 * 0.6


def test_loading_the_c_kernel_keeps_subnormal_floats():
    """A kernel built with -ffast-math would set flush-to-zero for the whole process."""
    from speechbrain_dyncp.streaming import c_available

    if not c_available():
        pytest.skip("the C kernel was not built at install")
    assert np.float32(1e-40) * np.float32(2.0) > 0
    assert bool((torch.tensor(1e-40) * 2) > 0)


@pytest.mark.skipif(not c_available(), reason="C kernel not built")
def test_c_frame_step_equals_numpy_fft_step(model):
    """The whole step in C (own real FFT) == C network between NumPy's FFTs, float64 and float32."""
    x = np.random.default_rng(0).standard_normal(4000)
    for dtype, tol in ((np.float64, 1e-11), (np.float32, 2e-5)):
        m = model if dtype == np.float64 else copy.deepcopy(model).float()
        outs = []
        for c_fft in (True, False):
            fs = FastStreamer(m, backend="c", dtype=dtype, c_fft=c_fft)
            assert (fs._call_full is not None) == c_fft
            outs.append(np.concatenate([fs.process(c) for c in np.split(x, range(256, 4000, 256))] + [fs.finish()]))
        np.testing.assert_allclose(outs[0], outs[1], atol=tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_forked_streams_served_round_robin_equal_separate_streams(model, backend):
    """Forks share the weights but not the state: interleaved hops give each stream its own output."""
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal(2600) for _ in range(3)]
    first = FastStreamer(model, backend=backend, dtype=np.float64)
    streams = [first] + [first.fork() for _ in xs[1:]]
    outs = [[] for _ in xs]
    for start in range(0, 2600, 256):  # round robin, one hop per stream per turn
        for s, x, o in zip(streams, xs, outs):
            o.append(s.process(x[start: start + 256]))
    for s, x, o in zip(streams, xs, outs):
        alone = FastStreamer(model, backend=backend, dtype=np.float64)
        np.testing.assert_array_equal(np.concatenate(o + [s.finish()]),
                                      np.concatenate([alone.process(x), alone.finish()]))
    assert streams[1].weights is first.weights and streams[1].net is not first.net


def test_union_skipping_equals_the_offline_model_and_skips(model):
    """Batch-wide pruned channels left out: same output, only channels on somewhere are computed."""
    from speechbrain_dyncp.streaming import union_skipping

    x = torch.randn(3, 1200, dtype=torch.double, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([1.0, 0.7, 0.4])  # ~5 frames a file: some channels are off in all of them
    view = union_skipping(model)
    got, ref = view(x, lengths), model(x, lengths)
    torch.testing.assert_close(got.wav, ref.wav, atol=1e-10, rtol=1e-9)
    assert torch.equal(got.gates * ref.frame_mask[:, None, :, None], ref.gates * ref.frame_mask[:, None, :, None])
    on = (ref.gates * ref.frame_mask[:, None, :, None]).amax((0, 2)).sum()
    assert view.tcn._union_channels == int(on) < 6 * 16
    assert model.tcn.forward.__func__ is type(model.tcn).forward  # the model itself is untouched
    with pytest.raises(ValueError, match="gated model in eval"):
        union_skipping(dyncp_small(channels=8, hidden=16, gated=False).eval())
