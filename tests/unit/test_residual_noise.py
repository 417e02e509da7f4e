"""Residual-noise term (losses/residual_noise.py): exact levels, padding, clean items, soft floor."""
import math

import pytest
import torch

from speechbrain_dyncp.losses.residual_noise import noise_attenuation_db, residual_noise_loss


def _specs(batch=2, frames=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.randn(batch, 257, frames, dtype=torch.cfloat, generator=g)
    noise = 0.3 * torch.randn(batch, 257, frames, dtype=torch.cfloat, generator=g)
    return clean, clean + noise


@pytest.mark.parametrize("gain", [1.0, 0.5, 0.1, 0.01])
def test_a_constant_mask_attenuates_the_noise_by_its_gain(gain):
    clean, noisy = _specs()
    db, has_noise = noise_attenuation_db(torch.full((2, 12, 257), gain), noisy, clean, max_atten_db=200.0)
    assert has_noise.all()
    assert db.tolist() == pytest.approx([20 * math.log10(gain)] * 2, abs=1e-3)


def test_only_the_noise_counts_not_the_speech():
    """A mask that removes exactly the bins where there is no noise leaves the level unchanged."""
    clean, _ = _specs(batch=1)
    noise = torch.zeros_like(clean)
    noise[:, :100] = 0.3  # noise only in the low 100 bins
    mask = torch.ones(1, 12, 257)
    full, _ = noise_attenuation_db(mask, clean + noise, clean)
    mask[:, :, 100:] = 0.0  # speech-only bins removed: no noise passed changes
    assert float(noise_attenuation_db(mask, clean + noise, clean)[0]) == pytest.approx(float(full), abs=1e-4)


def test_padded_frames_are_ignored():
    clean, noisy = _specs()
    frame_mask = torch.ones(2, 12, dtype=torch.bool)
    frame_mask[1, 8:] = False
    mask = torch.rand(2, 12, 257, generator=torch.Generator().manual_seed(1))
    ref, _ = noise_attenuation_db(mask, noisy, clean, frame_mask)
    noisy2, mask2 = noisy.clone(), mask.clone()
    noisy2[1, :, 8:] += 1e3  # loud noise in the padding
    mask2[1, 8:] = 1.0
    assert torch.allclose(noise_attenuation_db(mask2, noisy2, clean, frame_mask)[0], ref, atol=1e-4)


def test_clean_items_are_skipped_and_a_clean_batch_gives_zero_without_gradient():
    clean, noisy = _specs()
    noisy[1] = clean[1]
    mask = torch.full((2, 12, 257), 0.5, requires_grad=True)
    loss = residual_noise_loss(mask, noisy, clean)
    assert float(loss.detach()) == pytest.approx(20 * math.log10(0.5), abs=1e-3)  # the noisy item alone
    loss.backward()
    assert mask.grad[1].abs().max() == 0 and mask.grad[0].abs().max() > 0
    mask.grad = None
    clean_only = residual_noise_loss(mask, clean, clean)
    clean_only.backward()
    assert float(clean_only.detach()) == 0.0 and mask.grad.abs().max() == 0


def test_the_soft_floor_stops_asking_for_more_suppression():
    clean, noisy = _specs(batch=1)
    levels = [float(noise_attenuation_db(torch.full((1, 12, 257), 10 ** (-a / 20)), noisy, clean,
                                         max_atten_db=30.0)[0]) for a in (10, 50, 80)]
    assert levels[0] == pytest.approx(-10.0, abs=0.01)
    assert levels[1] == pytest.approx(-30.0, abs=0.01) and levels[2] == pytest.approx(-30.0, abs=1e-6)
    mask = torch.full((1, 12, 257), 10 ** (-60 / 20), requires_grad=True)
    noise_attenuation_db(mask, noisy, clean, max_atten_db=30.0)[0].sum().backward()
    assert mask.grad.abs().max() < 1e-6  # far below the floor: (almost) no push
