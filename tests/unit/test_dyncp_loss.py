"""Properties of the DynCP objective: spectral loss formula, padding, ratio loss direction."""

import math

import numpy as np
import pytest
import torch

from speechbrain_dyncp.losses.dyncp import (
    DynCPLoss,
    compressed_spectral_loss,
    gate_ratio_loss,
    realised_ratio,
)


def _reference_loss(est: np.ndarray, clean: np.ndarray) -> float:
    """The DynCP paper's loss written out with explicit frames and numpy's rfft."""
    n_fft, hop, eps = 512, 256, 1e-9
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann

    def spec(x):
        x = np.pad(x, n_fft // 2)  # centre, zero padding
        n = 1 + (len(x) - n_fft) // hop
        return np.stack([np.fft.rfft(window * x[t * hop : t * hop + n_fft]) for t in range(n)])

    s_hat, s = spec(est), spec(clean)
    energy = np.linalg.norm(s, axis=1) * math.sqrt(2) / n_fft
    sigma = energy[energy > 0.025].mean()
    s_hat, s = s_hat / (sigma + eps), s / (sigma + eps)
    m_hat, m = np.abs(s_hat) + eps, np.abs(s) + eps
    l_mag = np.mean((m_hat**0.3 - m**0.3) ** 2)
    l_cplx = np.mean(np.abs(s_hat * m_hat**-0.7 - s * m**-0.7) ** 2)
    return 0.7 * l_mag + 0.3 * l_cplx


def _speechlike(n, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 16000
    env = (torch.sin(2 * math.pi * 2 * t) > -0.3).float()  # on/off "syllables"
    return 0.3 * env * torch.sin(2 * math.pi * 220 * t) + 0.01 * torch.randn(n, generator=g)


def test_spectral_loss_matches_hand_computation():
    """The loss equals the formula recomputed independently in numpy."""
    clean = _speechlike(4000, 0).double()
    est = clean + 0.05 * torch.randn(4000, generator=torch.Generator().manual_seed(1)).double()
    got = compressed_spectral_loss(est[None], clean[None]).item()
    want = _reference_loss(est.numpy(), clean.numpy())
    assert got == pytest.approx(want, rel=1e-6)
    assert got > 1e-4


def test_spectral_loss_zero_iff_identical_and_scale_sensitive():
    """Zero for identical signals; a gain error is penalised (the loss is not scale-invariant)."""
    clean = torch.stack([_speechlike(6000, 2), _speechlike(6000, 3)])
    assert compressed_spectral_loss(clean, clean).item() == 0.0
    assert compressed_spectral_loss(0.7 * clean, clean).item() > 1e-3


def test_overshoot_weight_punishes_noise_let_through_not_attenuation():
    """The asymmetric term grows the loss of an estimate that carries extra noise, leaves an attenuated
    estimate (every bin below the clean magnitude: what a sigmoid mask does to clean input) unchanged,
    and is the plain loss at weight 0."""
    clean = torch.stack([_speechlike(6000, 6), _speechlike(6000, 7)])
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(2))
    attenuated = 0.7 * clean
    for est in (noisy, attenuated):
        assert compressed_spectral_loss(est, clean, overshoot_weight=0.0).item() == compressed_spectral_loss(
            est, clean).item()
    plain, weighted = (compressed_spectral_loss(noisy, clean, overshoot_weight=w).item() for w in (0.0, 4.0))
    assert weighted > 1.5 * plain
    plain, weighted = (compressed_spectral_loss(attenuated, clean, overshoot_weight=w).item() for w in (0.0, 4.0))
    assert weighted == pytest.approx(plain, rel=1e-6)
    loss = DynCPLoss(overshoot_weight=4.0, lambda_dcp=0.0)
    assert loss(noisy, clean, torch.ones(2, 1, 24, 4)).se.item() == pytest.approx(
        compressed_spectral_loss(noisy, clean, overshoot_weight=4.0).item(), rel=1e-6)


def test_spectral_loss_ignores_padding():
    """Padding a short item (with garbage in the estimate's padding) leaves its loss unchanged."""
    short_clean, long_clean = _speechlike(3000, 4), _speechlike(5000, 5)
    short_est, long_est = 0.8 * short_clean + 0.01, long_clean.flip(0)
    alone = compressed_spectral_loss(short_est[None], short_clean[None]).item()
    est = torch.zeros(2, 5000)
    clean = torch.zeros(2, 5000)
    est[0, :3000], clean[0, :3000] = short_est, short_clean
    est[0, 3000:] = 5 * torch.randn(2000)  # the model may write anything into padding
    est[1], clean[1] = long_est, long_clean
    batch = compressed_spectral_loss(est, clean, torch.tensor([0.6, 1.0]), reduction="batch")
    assert batch[0].item() == pytest.approx(alone, rel=1e-5)
    assert batch[1].item() == pytest.approx(compressed_spectral_loss(long_est[None], long_clean[None]).item(), rel=1e-5)


def test_realised_ratio_excludes_padded_frames():
    """Gates on padded frames do not count toward the realised ratio."""
    gates = torch.zeros(1, 2, 10, 4)
    gates[:, :, :5] = 1.0  # on in the first 5 frames
    gates[:, :, 5:] = 0.0
    mask = torch.tensor([[True] * 5 + [False] * 5])
    assert realised_ratio(gates, mask).item() == 1.0
    assert realised_ratio(gates).item() == 0.5
    assert gate_ratio_loss(gates, mask, target=1.0).item() == 0.0


class _ToyGate(torch.nn.Module):
    """Binary per-frame, per-channel gates with a sigmoid surrogate gradient."""

    def __init__(self, init_bias):
        super().__init__()
        self.proj = torch.nn.Linear(6, 16)
        torch.nn.init.constant_(self.proj.bias, init_bias)

    def forward(self, x):  # x: B, N, 6
        s = self.proj(x)
        soft = torch.sigmoid(s)
        hard = (s > 0).to(s.dtype)
        return (hard + soft - soft.detach()).unsqueeze(1)  # B, 1, N, H


@pytest.mark.parametrize("kind", ["abs", "squared"])
@pytest.mark.parametrize("init_bias,target", [(3.0, 0.25), (-3.0, 0.75)])
def test_ratio_loss_moves_realised_ratio_to_target(kind, init_bias, target):
    """From all-on (all-off) gates, optimising L_DCP alone brings phi down (up) to the target."""
    torch.manual_seed(0)
    gate = _ToyGate(init_bias)
    x = torch.randn(4, 50, 6)
    mask = torch.ones(4, 50, dtype=torch.bool)
    mask[0, 30:] = False
    opt = torch.optim.Adam(gate.parameters(), lr=0.1)
    start = realised_ratio(gate(x), mask).item()
    for _ in range(120):
        opt.zero_grad()
        gate_ratio_loss(gate(x), mask, target=target, kind=kind).backward()
        opt.step()
    end = realised_ratio(gate(x), mask).item()
    assert abs(start - target) > 0.2
    assert abs(end - target) < 0.05, (start, end)


def test_per_block_ratio_loss_balances_blocks():
    """With per_block=True a block already at the target gets no push; globally it does."""
    gates = torch.zeros(1, 2, 4, 8, requires_grad=True)
    with torch.no_grad():
        gates[:, 0] = 1.0
    gate_ratio_loss(gates, target=0.5, kind="squared", per_block=True).backward()
    g0 = gates.grad[:, 0].abs().sum().item()
    assert g0 > 0
    gates.grad = None
    with torch.no_grad():
        gates[:, 1, :, :4] = 1.0
        gates[:, 0, :, 4:] = 0.0  # both blocks at 0.5
    gate_ratio_loss(gates, target=0.5, kind="squared", per_block=True).backward()
    assert gates.grad.abs().sum().item() == 0.0


def test_dyncp_loss_combines_terms():
    """L = L_SE + lambda * L_DCP; the ratio is reported over valid frames."""
    clean = torch.stack([_speechlike(4096, 6), _speechlike(4096, 7)])
    est = 0.9 * clean
    gates = torch.ones(2, 3, 17, 8)
    gates[1, :, 9:] = 0.0
    lengths = torch.tensor([1.0, 0.5])
    out = DynCPLoss(phi_target=0.25, lambda_dcp=2.0)(est, clean, gates, lengths)
    se = compressed_spectral_loss(est, clean, lengths)
    assert out.se.item() == pytest.approx(se.item())
    assert out.ratio.item() == pytest.approx(1.0, abs=0.07)  # item 1 gates off only on padding
    assert out.loss.item() == pytest.approx(se.item() + 2.0 * abs(out.ratio.item() - 0.25), rel=1e-5)
