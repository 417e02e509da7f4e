"""SI-SDR against its closed form; PESQ/STOI wrappers on known cases."""

import math

import pytest
import torch

from speechbrain_dyncp.metrics.enhancement import (
    batch_metric,
    pesq_available,
    pesq_wb,
    si_sdr,
    si_sdr_improvement,
    stoi,
)


def _orthogonal_noise(ref, seed):
    n = torch.randn(ref.shape, generator=torch.Generator().manual_seed(seed), dtype=ref.dtype)
    n = n - n.mean()
    r = ref - ref.mean()
    return n - (n @ r) / (r @ r) * r


@pytest.mark.parametrize("gain,snr_db", [(1.0, 10.0), (0.3, -5.0), (4.0, 25.0)])
def test_si_sdr_closed_form(gain, snr_db):
    """est = g*ref + n with n orthogonal to ref gives SI-SDR = 10 log10(g^2 |ref|^2 / |n|^2)."""
    ref = torch.randn(8000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = ref - ref.mean()
    noise = _orthogonal_noise(ref, 1)
    noise = noise * (gain * ref.norm() / noise.norm()) / 10 ** (snr_db / 20)
    got = si_sdr((gain * ref + noise)[None], ref[None]).item()
    want = 10 * math.log10((gain * ref).pow(2).sum().item() / noise.pow(2).sum().item())
    assert got == pytest.approx(want, abs=1e-6)
    assert want == pytest.approx(snr_db, abs=1e-6)


def test_si_sdr_is_scale_and_offset_invariant():
    """Rescaling or shifting the estimate does not change SI-SDR (zero-mean version)."""
    g = torch.Generator().manual_seed(2)
    ref, est = torch.randn(2, 4000, generator=g), torch.randn(2, 4000, generator=g)
    est = ref + 0.5 * est
    torch.testing.assert_close(si_sdr(5 * est + 0.1, ref), si_sdr(est, ref), rtol=1e-4, atol=1e-4)


def test_si_sdr_honours_lengths():
    """Padding (with anything in it) does not change the score of a short item."""
    g = torch.Generator().manual_seed(3)
    ref, est = torch.randn(3000, generator=g), torch.randn(3000, generator=g)
    est = ref + est
    alone = si_sdr(est[None], ref[None])
    pad_est, pad_ref = torch.randn(2, 5000, generator=g), torch.randn(2, 5000, generator=g)
    pad_est[0, :3000], pad_ref[0, :3000] = est, ref
    got = si_sdr(pad_est, pad_ref, torch.tensor([0.6, 1.0]))
    torch.testing.assert_close(got[0], alone[0], rtol=1e-5, atol=1e-5)
    assert not torch.isclose(si_sdr(pad_est, pad_ref)[0], alone[0], atol=0.1)


def test_si_sdr_improvement_closed_form():
    """Halving an orthogonal noise (in amplitude) improves SI-SDR by 20 log10(2) dB."""
    ref = torch.randn(8000, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    noise = _orthogonal_noise(ref, 5)
    noisy, enhanced = ref + noise, ref + 0.5 * noise
    got = si_sdr_improvement(enhanced[None], noisy[None], ref[None]).item()
    assert got == pytest.approx(20 * math.log10(2), abs=1e-6)


@pytest.mark.skipif(not pesq_available(), reason="pesq not installed (metrics extra)")
def test_pesq_orders_quality_and_guards_silence():
    """PESQ-WB: clean > noisy; silent input gives NaN (no exception, no retry)."""
    t = torch.arange(32000) / 16000
    clean = 0.3 * torch.sin(2 * math.pi * 200 * t) * (torch.sin(2 * math.pi * 1.5 * t) > 0)
    noisy = clean + 0.1 * torch.randn(32000, generator=torch.Generator().manual_seed(6))
    assert pesq_wb(clean, clean) > 4.0
    assert pesq_wb(noisy, clean) < pesq_wb(clean, clean) - 1.0
    assert math.isnan(pesq_wb(torch.zeros(32000), clean))
    assert math.isnan(pesq_wb(clean[:100], clean[:100]))  # too short


def test_stoi_batch_trims_to_lengths():
    """STOI of an identical signal is 1; noise lowers it; padding is trimmed per item."""
    pytest.importorskip("pystoi")
    g = torch.Generator().manual_seed(7)
    clean = torch.randn(2, 16000, generator=g)
    noisy = clean + 3 * torch.randn(2, 16000, generator=g)
    got = batch_metric(stoi, clean, clean, torch.tensor([1.0, 0.8]))
    assert torch.allclose(got, torch.ones(2, dtype=torch.float64), atol=1e-6)
    assert stoi(noisy[0], clean[0]) < 0.9


def test_capped_si_sdr_is_a_soft_ceiling_for_the_training_loss():
    """max_db bounds near-perfect items (clean input) and leaves noisy items' SI-SDR alone."""
    torch.manual_seed(0)
    ref = torch.randn(3, 8000)
    est = ref + torch.stack([torch.zeros(8000), 0.1 * torch.randn(8000), 1.0 * torch.randn(8000)])
    est.requires_grad_(True)
    capped = si_sdr(est, ref, max_db=30.0)
    plain, c = si_sdr(est, ref).tolist(), capped.tolist()
    assert plain[0] > 60 and c[0] == pytest.approx(30.0, abs=0.01)
    assert plain[1] - 0.5 < c[1] < plain[1] and c[2] == pytest.approx(plain[2], abs=0.01)  # 20 dB, 0 dB
    (-capped.sum()).backward()
    assert torch.isfinite(est.grad).all() and est.grad[2].abs().sum() > 0
