"""The waveform (SI-SDR) term: a low-SNR boost adds gradient on hard items only."""

import torch

from speechbrain_dyncp.losses.waveform import low_snr_weights, waveform_loss


def _mixtures(snrs_db, n=16000, seed=0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.randn(len(snrs_db), n, generator=g)
    noise = torch.randn(len(snrs_db), n, generator=g)
    scale = torch.tensor([10 ** (-s / 20) for s in snrs_db]).unsqueeze(1)
    return clean, clean + scale * noise


def test_weights_ramp_from_one_to_one_plus_boost_across_the_pivot():
    clean, noisy = _mixtures([30.0, 10.0, 7.5, 5.0, 2.5, 0.0, -10.0])
    w = low_snr_weights(noisy, clean, low_snr_db=5.0, low_snr_boost=4.0)
    expected = torch.tensor([1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.0])
    assert torch.allclose(w, expected, atol=0.1), w


def test_weights_honour_lengths():
    """Padding past an item's length (here: loud noise) must not make an easy item look hard."""
    clean, noisy = _mixtures([20.0, 20.0])
    noisy[1, 8000:] += 100 * torch.randn(8000)
    w = low_snr_weights(noisy, clean, torch.tensor([1.0, 0.5]), low_snr_db=5.0, low_snr_boost=3.0)
    assert w[1] == 1.0 and w[0] == 1.0


def test_boost_leaves_easy_items_gradient_and_scales_hard_ones():
    clean, noisy = _mixtures([25.0, -5.0])
    grads = []
    for boost in (0.0, 2.0):
        est = noisy.clone().requires_grad_(True)
        waveform_loss(est, clean, max_db=30.0, noisy=noisy, low_snr_boost=boost).backward()
        grads.append(est.grad)
    assert torch.allclose(grads[1][0], grads[0][0])  # 25 dB item: weight 1 either way
    assert torch.allclose(grads[1][1], 3.0 * grads[0][1], rtol=1e-4, atol=1e-9)  # -5 dB item: 1 + 2


def test_no_noisy_input_means_no_boost():
    clean, noisy = _mixtures([-5.0, 0.0])
    plain = waveform_loss(noisy, clean)
    assert waveform_loss(noisy, clean, low_snr_boost=5.0) == plain
