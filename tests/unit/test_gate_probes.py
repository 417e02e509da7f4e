"""GateProbeLoss: the joint VAD / F0 read-outs on the binary gates (losses/gate_probes.py)."""

import math

import pytest
import torch

from speechbrain_dyncp.lobes.gates import ChannelGate
from speechbrain_dyncp.losses.gate_probes import GateProbeLoss


def _batch(seed=0, B=2, L=2, N=12, H=5):
    g = torch.Generator().manual_seed(seed)
    gates = torch.randint(0, 2, (B, L, N, H), generator=g).float()
    vad = torch.randint(0, 2, (B, N), generator=g).float()
    f0 = vad * (80 + 200 * torch.rand(B, N, generator=g))
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[1, 8:] = False
    return gates, mask, vad, f0


def test_loss_is_the_weighted_bce_plus_voiced_log2_mse():
    """Recomputed by hand: BCE over valid frames, MSE in octaves over voiced valid frames."""
    torch.manual_seed(0)
    loss = GateProbeLoss(n_gates=2 * 5, weights={"vad": 0.3, "f0": 2.0}, f0_ref=100.0)
    gates, mask, vad, f0 = _batch()
    out = loss(gates, mask, vad, f0)
    x = gates.permute(0, 2, 1, 3).reshape(2, 12, 10)
    with torch.no_grad():
        bce, mse, n_valid, n_voiced = _by_hand(loss, x, mask, vad, f0)
    assert out.terms["vad"] == pytest.approx(bce / n_valid, rel=1e-5)
    assert out.terms["f0"] == pytest.approx(mse / n_voiced, rel=1e-5)
    assert float(out.loss) == pytest.approx(0.3 * bce / n_valid + 2.0 * mse / n_voiced, rel=1e-5)


def _by_hand(loss, x, mask, vad, f0):
    bce, mse, n_valid, n_voiced = 0.0, 0.0, 0, 0
    for b in range(2):
        for t in range(12):
            if not mask[b, t]:
                continue
            z = float(loss.heads["vad"](x[b, t]))
            p = 1 / (1 + math.exp(-z))
            bce -= float(vad[b, t]) * math.log(p) + (1 - float(vad[b, t])) * math.log(1 - p)
            n_valid += 1
            if f0[b, t] > 0:
                mse += (float(loss.heads["f0"](x[b, t])) - math.log2(float(f0[b, t]) / 100.0)) ** 2
                n_voiced += 1
    return bce, mse, n_valid, n_voiced


def test_padded_and_unvoiced_frames_do_not_count():
    """Whatever sits in padded frames (gates, labels) or in the F0 of unvoiced frames, the loss is the same."""
    loss = GateProbeLoss(n_gates=10)
    gates, mask, vad, f0 = _batch(1)
    ref = loss(gates, mask, vad, f0)
    gates2, vad2, f02 = gates.clone(), vad.clone(), f0.clone()
    gates2[1, :, 8:] = 1 - gates2[1, :, 8:]
    vad2[1, 8:] = 1 - vad2[1, 8:]
    f02[1, 8:] = 500.0
    other = loss(gates2, mask, vad2, f02)
    assert torch.equal(ref.loss, other.loss)
    assert loss.weights == {"vad": 1.0, "f0": 1.0}


def test_f0_loss_reaches_the_gate_scores_through_the_heaviside():
    """The F0 head alone gives the gate's point-wise stack a gradient (substitute derivative)."""
    torch.manual_seed(0)
    gate = ChannelGate(6, 5, window=2, hidden=4, init_bias=0.0)
    loss = GateProbeLoss(n_gates=5, weights={"f0": 1.0})
    x = torch.randn(2, 12, 6)
    gates = gate(x).unsqueeze(1)  # B, L=1, N, H
    f0 = torch.full((2, 12), 150.0)
    loss(gates, torch.ones(2, 12, dtype=torch.bool), torch.zeros(2, 12), f0).loss.backward()
    assert gate.convs[0].weight.grad.abs().sum() > 0
    assert set(loss.heads) == {"f0"}  # a zero-weight head is not built


def test_unknown_head_is_refused():
    with pytest.raises(ValueError, match="snr"):
        GateProbeLoss(n_gates=4, weights={"snr": 1.0})
