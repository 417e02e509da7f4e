"""Properties of on-the-fly mixing: exact SNR, padding ignored, alignment kept."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from speechbrain_dyncp.data.mixing import fit_length, mix_at_snr, reverberate
from speechbrain_dyncp.data.noise_synth import make_rir


def _snr(clean, noise):
    return 10 * torch.log10(clean.double().pow(2).sum(-1) / noise.double().pow(2).sum(-1))


@settings(max_examples=25, deadline=None)
@given(snr=st.floats(-10, 30), length=st.integers(50, 4000), seed=st.integers(0, 2**16))
def test_mixture_has_requested_snr(snr, length, seed):
    """Recomputed SNR of (mixture - clean) vs clean is the requested one within 0.1 dB (in fact ~1e-4)."""
    g = torch.Generator().manual_seed(seed)
    clean = torch.randn(length, generator=g) * 0.1
    noise = torch.rand(length, generator=g) - 0.3  # non-zero mean, non-Gaussian
    mix = mix_at_snr(clean, noise, snr)
    assert abs(float(_snr(clean, mix - clean)) - snr) < 0.1
    assert abs(float(_snr(clean, mix - clean)) - snr) < 1e-3


def test_per_item_snr_broadcast_and_padding_excluded():
    """Per-item SNR over valid samples only; padded noise is zeroed; a scalar SNR broadcasts."""
    g = torch.Generator().manual_seed(0)
    clean, noise = torch.randn(3, 1000, generator=g), torch.randn(3, 1000, generator=g)
    lengths = torch.tensor([1.0, 0.5, 7 / 13])
    valid = [1000, 500, 538]
    clean_pad = clean.clone()
    for b, n in enumerate(valid):
        clean_pad[b, n:] = 1e3  # huge padding must not change anything
    snrs = torch.tensor([0.0, 5.0, -3.0])
    mix, scaled = mix_at_snr(clean_pad, noise, snrs, lengths=lengths, return_noise=True)
    for b, n in enumerate(valid):
        assert abs(float(_snr(clean[b, :n], scaled[b, :n])) - float(snrs[b])) < 1e-3
        assert torch.equal(mix[b, n:], clean_pad[b, n:])  # padding left as it was
        # the same item alone, unpadded, gives the same mixture
        alone = mix_at_snr(clean[b, :n], noise[b, :n], float(snrs[b]))
        torch.testing.assert_close(mix[b, :n], alone)
    same = mix_at_snr(clean, noise, 10.0, return_noise=True)[1]
    assert torch.allclose(_snr(clean, same), torch.full((3,), 10.0, dtype=torch.float64), atol=1e-3)


def test_mix_errors():
    with pytest.raises(ValueError, match="differ"):
        mix_at_snr(torch.zeros(10), torch.zeros(11), 0.0)
    with pytest.raises(ValueError, match="silent"):
        mix_at_snr(torch.ones(2, 10), torch.zeros(2, 10), 0.0)
    with pytest.raises(ValueError, match="batch"):
        mix_at_snr(torch.ones(2, 10), torch.ones(2, 10), torch.zeros(3))


def test_fit_length_tiles_and_crops_contiguously():
    """Output is a contiguous window of the (tiled) noise; same seed, same window."""
    noise = torch.arange(100.0)
    long = fit_length(noise, 250, rng=3)
    start = int(long[0])
    assert torch.equal(long, (torch.arange(250) + start) % 100.0)
    short = fit_length(noise, 30, rng=np.random.default_rng(5))
    start = int(short[0])
    assert torch.equal(short, torch.arange(start, start + 30, dtype=torch.float32))
    assert torch.equal(fit_length(noise, 30, rng=7), fit_length(noise, 30, rng=7))
    batch = fit_length(torch.stack([noise, -noise]), 130, rng=1)
    assert batch.shape == (2, 130) and torch.equal(batch[0], -batch[1])


def test_reverberate_keeps_direct_path_alignment():
    """A delayed-impulse RIR gives back the clean signal; a synthetic room keeps lag 0."""
    g = torch.Generator().manual_seed(0)
    clean = torch.randn(2, 4000, generator=g)
    delta = torch.zeros(300)
    delta[123] = 0.5
    torch.testing.assert_close(reverberate(clean, delta), clean, atol=1e-5, rtol=0)
    rir = torch.from_numpy(make_rir(0.4, np.random.default_rng(0)))
    wet = reverberate(clean[0], rir)
    xc = [float((wet[100 + k : 3900 + k] * clean[0, 100:3900]).sum()) for k in range(-20, 21)]
    assert int(np.argmax(xc)) == 20  # peak cross-correlation at lag 0


def test_reverberate_matches_speechbrain_up_to_gain():
    """Same waveform as speechbrain's reverberate up to its amplitude rescaling.

    SpeechBrain's FFT convolution is circular (the tail of the end wraps onto the
    first len(rir) samples); ours is linear, so compare after that stretch.
    """
    from speechbrain.processing.signal_processing import reverberate as sb_reverberate

    g = torch.Generator().manual_seed(1)
    clean = torch.randn(1, 16000, generator=g)
    rir = torch.from_numpy(make_rir(0.3, np.random.default_rng(1)))
    skip = len(rir)
    ours = reverberate(clean, rir)[0, skip:]
    ref = sb_reverberate(clean, rir, rescale_amp="avg")[0, skip:]
    corr = float((ours * ref).sum() / (ours.norm() * ref.norm()))
    assert corr > 0.9999
