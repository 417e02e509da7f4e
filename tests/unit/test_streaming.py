"""Streaming DynCP enhancer: equals the offline causal model and really skips channels."""

import pytest
import torch

from speechbrain_dyncp.efficiency import macs_per_frame
from speechbrain_dyncp.lobes.enhancer import dyncp_small

from dyncp_fixtures import planted_model  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def model(planted_model):
    """The shared tiny planted model."""
    return planted_model


def _stream(model, x, chunk, **kw):
    ctx = model.make_streaming_context(x.shape[0], keep_gates=True, **kw)
    outs = [model.forward_streaming(c, ctx) for c in x.split(chunk, 1)]
    assert [o.shape[1] for o in outs] == [c.shape[1] for c in x.split(chunk, 1)]
    y = torch.cat(outs + [model.finish_streaming(ctx)], 1)
    return y, ctx


@pytest.mark.parametrize("length,chunk", [(700, 1), (3001, 7), (3001, 256), (3001, 300), (4097, 1000),
                                          (200, 5000)])
def test_streaming_equals_offline(model, length, chunk):
    """Any chunk size (1 sample, odd, > hop, > signal): output == offline after ``latency`` samples."""
    x = torch.randn(2, length, dtype=torch.double)
    ref = model(x)
    y, ctx = _stream(model, x, chunk)
    assert ctx.latency == 511 and y.shape[1] == length + 511
    assert y[:, :511].abs().max() < 1e-5 * max(1.0, ref.wav.abs().max().item()) or length < 511
    torch.testing.assert_close(y[:, 511:], ref.wav, atol=1e-10, rtol=1e-9)
    assert torch.equal(torch.cat(ctx.gates, 2), ref.gates)


@pytest.mark.parametrize("group", [1, 4])
def test_skipping_equals_dense_masked_and_counts_effective_macs(model, group):
    """Gathering active channels == computing all and multiplying; executed MACs == efficiency count."""
    x = torch.randn(1, 4000, dtype=torch.double)
    skip, ctx = _stream(model, x, 333, group_frames=group)
    dense, ctx_dense = _stream(model, x, 333, group_frames=group, skip_pruned=False)
    torch.testing.assert_close(skip, dense, atol=1e-10, rtol=1e-9)
    ref = model(x)
    counted = macs_per_frame(model, ref.gates, ref.frame_mask)
    assert ctx.frames_done == ref.gates.shape[2]
    if group == 1:  # per frame: exactly the analytic effective count
        assert ctx.macs / ctx.frames_done == pytest.approx(counted["effective"])
    else:  # per group the union of gates is computed: between per-frame and dense
        assert counted["effective"] < ctx.macs / ctx.frames_done < counted["dense"] + counted["gates_overhead"]
    assert ctx_dense.macs / ctx.frames_done == pytest.approx(counted["dense"] + counted["gates_overhead"])


def test_pruned_weights_are_never_read(model):
    """NaN in the weights of channels that are off for the whole stream leaves the output finite."""
    m = dyncp_small(channels=8, hidden=16, gate_hidden=4).eval().double()
    m.load_state_dict(model.state_dict())
    torch.nn.init.constant_(m.tcn.gates[2].convs[-1].bias[:8], -1e6)  # channels 0..7 of block 2 always off
    x = torch.randn(1, 2000, dtype=torch.double)
    ref = m(x)
    with torch.no_grad():
        blk = m.tcn.blocks[2]
        blk.in_conv.weight[:8] = float("nan")
        blk.dw_conv.weight[:8] = float("nan")
        blk.out_conv.weight[:, :8] = float("nan")
    y, _ = _stream(m, x, 256)
    torch.testing.assert_close(y[:, 511:], ref.wav, atol=1e-10, rtol=1e-9)
    dense, _ = _stream(m, x, 256, skip_pruned=False)
    assert torch.isnan(dense).any()


def test_streaming_rejects_noncausal_training_and_finished():
    """Clear errors: non-causal model, training mode, reuse after finish."""
    with pytest.raises(ValueError, match="causal"):
        dyncp_small(causal=False).eval().make_streaming_context()
    with pytest.raises(ValueError, match="eval"):
        dyncp_small().train().make_streaming_context()
    m = dyncp_small(channels=8, hidden=16, gate_hidden=4).eval()
    ctx = m.make_streaming_context()
    m.finish_streaming(ctx)
    with pytest.raises(ValueError, match="finished"):
        m.forward_streaming(torch.zeros(1, 10), ctx)
