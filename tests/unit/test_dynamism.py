"""Dynamism measures (efficiency.dynamism) on hand-made gate patterns with known answers."""

import pytest
import torch

from speechbrain_dyncp.efficiency import compute_vs_snr, dynamism, frame_active_ratio, macs_per_frame
from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer


def test_static_pattern_has_no_dynamism():
    """The same channels on at every frame: spread 0, switching 0, flips 0, pauses cost as much."""
    g = torch.zeros(2, 3, 50, 8)
    g[:, :, :, :2] = 1  # 2 of 8 channels in every block, always
    speech = torch.zeros(2, 50, dtype=torch.bool)
    speech[:, 10:30] = True
    for d in dynamism(g, speech=speech):
        assert d["active_ratio_mean"] == 0.25 and d["active_ratio_std"] == 0
        assert d["switching_channels"] == 0 and d["flip_rate"] == 0
        assert d["active_ratio_speech"] == d["active_ratio_nonspeech"] == 0.25
        assert d["nonspeech_over_speech"] == 1.0
        assert torch.equal(d["active_ratio"], torch.full((50,), 0.25))


def test_pauses_with_fewer_gates_give_exact_nonspeech_over_speech():
    """Speech frames: 4 of 8 channels per block; pause frames: 1 of 8 -> ratio 0.25 exactly."""
    n = 20
    speech = torch.tensor([[False] * 5 + [True] * 10 + [False] * 5])
    g = torch.zeros(1, 2, n, 8)
    g[0, :, :, 0] = 1  # channel 0 always on
    g[0, :, 5:15, 1:4] = 1  # channels 1-3 on during speech only
    d = dynamism(g, speech=speech)[0]
    assert d["active_ratio_speech"] == 0.5 and d["active_ratio_nonspeech"] == 0.125
    assert d["nonspeech_over_speech"] == 0.25
    assert d["speech_frames"] == 10 and d["frames"] == 20
    # 3 of 8 channels per block switch; each flips twice over 19 transitions of 16 channels
    assert d["switching_channels"] == 3 / 8
    assert d["flip_rate"] == pytest.approx(2 * 3 * 2 / (19 * 16))
    mean = (10 * 0.5 + 10 * 0.125) / 20
    assert d["active_ratio_mean"] == pytest.approx(mean)
    assert d["active_ratio_std"] == pytest.approx(0.1875)  # two equal halves at mean +- 0.1875


def test_padding_frames_are_ignored():
    """A padded copy gives the same figures as the unpadded item; padding garbage never counts."""
    torch.manual_seed(0)
    g = (torch.rand(1, 2, 30, 6) > 0.6).float()
    speech = torch.rand(1, 30) > 0.5
    padded = torch.cat([g, torch.ones(1, 2, 10, 6)], 2)  # all-on padding would raise every figure
    padded = torch.cat([padded, torch.zeros_like(padded)])  # item 1: all zeros, only 3 valid frames
    mask = torch.zeros(2, 40, dtype=torch.bool)
    mask[0, :30] = True
    mask[1, :3] = True
    sp = torch.cat([speech, torch.ones(1, 10, dtype=torch.bool)], 1).repeat(2, 1)
    sp[1] = True  # item 1: speech only, so no non-speech figure
    ref = dynamism(g, speech=speech)[0]
    got, empty = dynamism(padded, mask, sp)
    for k, v in ref.items():
        assert torch.equal(got[k], v) if k == "active_ratio" else got[k] == v, k
    assert empty["frames"] == 3 and empty["switching_channels"] == 0 and empty["flip_rate"] == 0
    assert empty["active_ratio_speech"] == 0 and empty["speech_frames"] == 3
    assert empty["active_ratio_nonspeech"] is None and empty["nonspeech_over_speech"] is None
    ratio = frame_active_ratio(padded, mask)
    assert torch.equal(ratio[0, :30], ref["active_ratio"]) and not ratio[:, 30:].any()


def test_mean_active_ratio_is_the_mac_counters_realised_ratio():
    """One definition: dynamism's mean equals macs_per_frame's realised ratio on the same gates."""
    torch.manual_seed(1)
    model = DynCPEnhancer(n_fft=16, hop_length=8, channels=4, hidden=6, n_stacks=1, n_blocks=2, gate_hidden=3)
    g = (torch.rand(1, 2, 25, 6) > 0.3).float()
    mask = torch.arange(25)[None] < 21
    assert dynamism(g, mask)[0]["active_ratio_mean"] == pytest.approx(
        macs_per_frame(model, g, mask)["realised_ratio"], abs=1e-7)


def test_compute_vs_snr_slope_and_errors():
    """Compute falling by 0.02 per dB gives slope -0.2 per 10 dB; flat compute gives r = 0."""
    snr = [0.0, 5.0, 10.0, 20.0]
    got = compute_vs_snr([0.5 - 0.02 * s for s in snr], snr)
    assert got["slope_per_10db"] == pytest.approx(-0.2) and got["pearson_r"] == pytest.approx(-1.0)
    assert compute_vs_snr([0.25] * 4, snr) == dict(slope_per_10db=0.0, pearson_r=0.0, files=4)
    with pytest.raises(ValueError, match=">= 2 files"):
        compute_vs_snr([0.2], [3.0])
    with pytest.raises(ValueError, match="speech must be"):
        dynamism(torch.ones(1, 1, 5, 2), speech=torch.ones(1, 4, dtype=torch.bool))
