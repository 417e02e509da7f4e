"""Speed perturbation: the waveform's pitch and the perturbed labels move together."""

import math

import numpy as np
import pytest
import torch

from speechbrain_dyncp.data import speech_synth
from speechbrain_dyncp.data.labels import autocorr_f0, n_frames
from speechbrain_dyncp.data.speed import perturb_speed, perturb_speed_labels


@pytest.mark.parametrize("factor", [0.8, 0.9, 1.15, 1.25])
def test_perturbed_labels_match_the_pitch_of_the_perturbed_audio(factor):
    """YIN on the sped-up synthetic utterance agrees with the perturbed exact labels
    (median relative error < 2 %), and not with the unperturbed labels resampled in time only."""
    rng = np.random.default_rng(3)
    wav, vad, f0 = speech_synth.synthesize(speech_synth.random_speaker("s", rng), 4.0, rng)
    lab_vad, lab_f0 = speech_synth.frame_labels(vad, f0)
    fast = perturb_speed(torch.from_numpy(wav), factor)
    assert fast.numel() == math.ceil(len(wav) / factor - 1e-9)
    pv, pf = perturb_speed_labels(torch.from_numpy(lab_vad), torch.from_numpy(lab_f0), factor, fast.numel())
    assert len(pv) == len(pf) == n_frames(fast.numel())
    est = autocorr_f0(fast.double().numpy(), 16000)
    both = (pf.numpy() > 0) & (est > 0)
    assert both.sum() > 50
    rel = np.abs(est[both] - pf.numpy()[both]) / pf.numpy()[both]
    assert np.median(rel) < 0.02
    unscaled = np.abs(est[both] - pf.numpy()[both] / factor) / (pf.numpy()[both] / factor)
    assert np.median(unscaled) > 0.05  # the check can fail: F0 left unscaled is caught


def test_unit_speed_is_the_identity():
    """Factor 1 returns the signal and labels unchanged."""
    x = torch.randn(4000)
    vad, f0 = torch.tensor([0, 1, 1] * 6), torch.rand(18) * 200
    assert torch.equal(perturb_speed(x, 1.0), x)
    pv, pf = perturb_speed_labels(vad[: n_frames(4000)], f0[: n_frames(4000)], 1.0, 4000)
    assert torch.equal(pv, vad[: n_frames(4000)]) and torch.equal(pf, f0[: n_frames(4000)])


def test_factors_that_need_huge_filters_are_refused():
    """A factor that is no ratio of small integers raises instead of building a huge filter."""
    with pytest.raises(ValueError, match="ratio of small integers"):
        perturb_speed(torch.randn(100), 1.0 + 1e-4)
    with pytest.raises(ValueError, match="> 0"):
        perturb_speed(torch.randn(100), 0.0)
