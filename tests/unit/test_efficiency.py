"""MAC accounting checked against hand counts and the paper's budget."""

import pytest
import torch

from speechbrain_dyncp.efficiency import (
    dense_macs,
    lookahead_frames,
    macs_per_frame,
    parameter_count,
    plant_gate_ratio,
)
from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer


TINY = dict(n_fft=16, hop_length=8, channels=4, hidden=6, kernel_size=3, n_stacks=1, n_blocks=2,
            gate_hidden=3, gate_window=2)


def test_dense_budget_matches_paper_config():
    """Base config: 32,896 + 9 * 66,304 + 32,896 = 662,528 MACs/frame (the DynCP paper's full-size model)."""
    parts = dense_macs(DynCPEnhancer(gated=False))
    assert parts["total"] == 662_528 and parts["gates"] == 0
    assert parts["block"] == 128 * 256 + 256 * 3 + 256 * 128


def test_macs_per_frame_equals_hand_count_with_planted_gates():
    """Tiny model, planted gates, one padded frame: every figure by hand."""
    model = DynCPEnhancer(**TINY)
    gates = torch.zeros(1, 2, 4, 6)
    for t, a in enumerate([6, 3, 0, 6]):  # block 0: active channels per frame
        gates[0, 0, t, :a] = 1
    for t, a in enumerate([1, 2, 3, 0]):  # block 1
        gates[0, 1, t, 6 - a:] = 1
    frame_mask = torch.tensor([[True, True, True, False]])
    # front 9*4 + back 4*9 = 72; block: 6 ch * (4 + 3 + 4) = 66 -> dense 72 + 132 = 204
    # gate: pool 2*4 + convs 4*3 + 3*6 = 38 per block -> 76
    # active per valid frame, summed over blocks: (7 + 5 + 3) / 3 = 5 -> 5 * 11 = 55
    got = macs_per_frame(model, gates, frame_mask)
    assert got["dense"] == 204
    assert got["gates_overhead"] == 76
    assert got["effective"] == 72 + 76 + 55
    assert got["realised_ratio"] == pytest.approx(5 / 12)
    assert got["saved_pct"] == pytest.approx(100 * (1 - 203 / 204))


def test_dense_model_saves_nothing_and_counts_params():
    """gated=False: effective == dense; gates add exactly the gate-conv parameters."""
    dense, gated = DynCPEnhancer(**TINY, gated=False), DynCPEnhancer(**TINY)
    out = dense(torch.randn(2, 100))
    got = macs_per_frame(dense, out.gates, out.frame_mask)
    assert got["effective"] == got["dense"] and got["saved_pct"] == 0 and got["realised_ratio"] == 1
    gate_params = 2 * ((4 * 3 + 3) + (3 * 6 + 6))
    assert parameter_count(gated) - parameter_count(dense) == gate_params


def test_planted_ratio_is_realised_and_mismatched_gates_rejected():
    """plant_gate_ratio hits its ratio on the calibration audio; wrong gate shapes raise."""
    torch.manual_seed(0)
    model = DynCPEnhancer(**dict(TINY, hidden=40)).eval()
    wav = torch.randn(2, 4000)
    plant_gate_ratio(model, wav, 0.25)
    out = model(wav)
    assert macs_per_frame(model, out.gates, out.frame_mask)["realised_ratio"] == pytest.approx(0.25, abs=0.02)
    with pytest.raises(ValueError, match="L=2"):
        macs_per_frame(model, torch.ones(1, 3, 5, 40))


@pytest.mark.parametrize("gated,gate_input", [(False, "block"), (True, "block"), (True, "features")])
def test_lookahead_bounds_the_future_context(gated, gate_input):
    """Non-causal: output frame t never depends on input frames past t + lookahead.

    Dense: the bound is tight (frame t + lookahead matters). Gated: the gate
    path only acts through gate flips, so only the bound is asserted.
    """
    torch.manual_seed(0)
    model = DynCPEnhancer(**dict(TINY, gate_window=3, n_blocks=2), causal=False, gated=gated,
                          gate_input=gate_input, gate_init_bias=0.0).eval().double()
    la = lookahead_frames(model)
    assert la == (1 + 2) + (0 if not gated else 2 if gate_input == "block" else 1)
    assert lookahead_frames(DynCPEnhancer(**TINY)) == 0
    x = torch.randn(1, 30, 4, dtype=torch.double)
    ref = model.tcn(x).out[:, 10]

    def moved(j):
        y = x.clone()
        y[:, j] += 100.0
        return not torch.equal(model.tcn(y).out[:, 10], ref)

    assert not any(moved(j) for j in range(11 + la, 30))
    assert moved(10 + la) or gated
    assert moved(10 + 3)  # the depthwise chain alone reaches 1 + 2 frames ahead


@pytest.mark.parametrize("gate_hidden,gate_layers,gate_window", [(8, 2, 4), (16, 1, 4), (5, 3, 1), (32, 2, 2)])
def test_gate_macs_equal_the_gate_convs_multiplies(gate_hidden, gate_layers, gate_window):
    """Gate cost = what the gate convs multiply (counted by hooks) + 2 C_in for a running-sum pool."""
    model = DynCPEnhancer(**dict(TINY, gate_hidden=gate_hidden, gate_window=gate_window), gate_layers=gate_layers)
    counted = []

    def hook(mod, inp, out):  # 1x1 conv: in * out multiplies per frame
        counted.append(mod.in_channels * mod.out_channels * out.shape[-1])

    hooks = [c.register_forward_hook(hook) for g in model.tcn.gates for c in g.convs]
    out = model(torch.randn(1, 400))
    for h in hooks:
        h.remove()
    frames = out.gates.shape[2]
    pool = 2 * 4 * 2 if gate_window > 1 else 0  # 2 blocks, C_in = 4
    assert dense_macs(model)["gates"] == sum(counted) // frames + pool
    assert len(counted) == 2 * gate_layers
