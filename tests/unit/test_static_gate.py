"""The static-pruning baseline (gate_input="static", issue 15): one learned mask for all frames."""

import pytest
import torch

from speechbrain_dyncp.efficiency import macs_per_frame
from speechbrain_dyncp.efficiency.macs import dense_macs
from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer
from speechbrain_dyncp.losses.dyncp import DynCPLoss
from speechbrain_dyncp.streaming.engine import block_plans


def _model(**kw):
    return DynCPEnhancer(channels=8, hidden=16, n_stacks=1, n_blocks=2, gate_input="static", **kw)


def test_static_mask_is_the_same_on_every_frame_and_input():
    torch.manual_seed(0)
    model = _model().eval()
    with torch.no_grad():
        for gate in model.tcn.gates:
            gate.logits.copy_(torch.randn(16))
    a, b = model(torch.randn(1, 8000)).gates, model(torch.randn(1, 8000) * 5).gates
    assert torch.equal(a[0], b[0])
    assert (a[0] == a[0, :, :1]).all()  # [L, N, H]: no change along frames
    assert 0 < a.mean() < 1


def test_ratio_loss_learns_the_budget_and_gates_cost_nothing():
    torch.manual_seed(0)
    model = _model()
    with torch.no_grad():  # channels differ (in training the spectral loss tells them apart)
        for gate in model.tcn.gates:
            gate.logits.add_(0.5 * torch.randn(16))
    cost = DynCPLoss(phi_target=0.25, lambda_dcp=1.0)
    opt = torch.optim.Adam([g.logits for g in model.tcn.gates], lr=0.02)
    wav = torch.randn(2, 8000)
    for _ in range(100):
        out = model(wav)
        terms = cost(out.wav, wav, out.gates, None, out.frame_mask)
        opt.zero_grad()
        terms.dcp.backward()
        opt.step()
    model.eval()
    out = model(wav)
    assert abs(out.gates.mean().item() - 0.25) < 0.04  # learned from dense (init 0.5 -> all on)
    parts = dense_macs(model)
    assert parts["gates"] == 0
    macs = macs_per_frame(model, out.gates, out.frame_mask)
    expected = parts["front"] + parts["back"] + out.gates.mean().item() * parts["blocks"]
    assert macs["effective"] == pytest.approx(expected, rel=1e-6)


def test_streaming_refuses_a_static_model_clearly():
    with pytest.raises(ValueError, match="static"):
        block_plans(_model().eval())
