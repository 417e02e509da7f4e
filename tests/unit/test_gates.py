"""Properties of the DynCP channel gates (binary forward, relaxed backward)."""

import pytest
import torch

from speechbrain_dyncp.lobes.gates import ChannelGate, heaviside, moving_average


def test_gates_exactly_binary_in_eval_and_train():
    """The Heaviside forward is binary in both modes (only backward is relaxed)."""
    torch.manual_seed(0)
    gate = ChannelGate(8, 16, window=3, hidden=4, init_bias=0.0)
    x = torch.randn(3, 30, 8)
    for mode in (gate.eval(), gate.train()):
        g = mode(x)
        assert set(g.unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("backward", ["surrogate", "ste", "ste_clipped"])
def test_gradients_reach_gate_parameters(backward):
    """Every backward variant gives nonzero gradients on all gate convs."""
    torch.manual_seed(0)
    gate = ChannelGate(8, 16, window=3, hidden=4, backward=backward, init_bias=0.0)
    x = torch.randn(2, 20, 8)
    (gate(x) * torch.randn(2, 20, 16)).sum().backward()
    for p in gate.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_surrogate_and_ste_derivatives_match_formulas():
    """Surrogate = 1/(beta|s|+1)^2, STE = 1, clipped STE = 1[|s| <= 1]."""
    s = torch.tensor([-3.0, -0.5, 0.0, 0.7, 2.0])
    for mode, beta, want in [
        ("surrogate", 2.0, 1 / (2 * s.abs() + 1) ** 2),
        ("ste", 2.0, torch.ones(5)),
        ("ste_clipped", 2.0, (s.abs() <= 1).float()),
    ]:
        leaf = s.clone().requires_grad_(True)
        heaviside(leaf, beta, mode).sum().backward()
        torch.testing.assert_close(leaf.grad, want)


def test_causal_gate_ignores_future_frames():
    """A causal gate at frame t does not change when frames > t change."""
    torch.manual_seed(0)
    gate = ChannelGate(8, 16, window=4, hidden=4, init_bias=0.0).eval()
    x = torch.randn(1, 20, 8)
    y = x.clone()
    y[:, 12:] = 100 * torch.randn(1, 8, 8)
    s_x, s_y = gate.scores(x.transpose(1, 2)), gate.scores(y.transpose(1, 2))
    torch.testing.assert_close(s_x[..., :12], s_y[..., :12])
    assert not torch.allclose(s_x[..., 12:], s_y[..., 12:])


def test_noncausal_gate_ignores_padded_frames():
    """With frame_mask, padded frames never reach a valid frame's (centred) window."""
    torch.manual_seed(0)
    gate = ChannelGate(8, 16, window=5, hidden=4, causal=False).eval()
    x = torch.randn(1, 7, 8)
    padded = torch.cat([x, 1e3 * torch.randn(1, 6, 8)], 1)
    mask = torch.arange(13)[None] < 7
    torch.testing.assert_close(gate.scores(padded.transpose(1, 2), mask)[..., :7],
                               gate.scores(x.transpose(1, 2)))


def test_moving_average_is_the_window_mean():
    """Causal MA at t = mean of the last K frames (zeros before the start)."""
    x = torch.arange(1.0, 7.0).view(1, 1, 6)
    want = torch.tensor([1, 3, 6, 9, 12, 15]) / 3.0
    torch.testing.assert_close(moving_average(x, 3)[0, 0], want)


def test_unknown_backward_is_rejected():
    """A typo in the backward name fails with the valid choices."""
    with pytest.raises(ValueError, match="surrogate"):
        ChannelGate(4, 4, backward="sigmoid")
