"""What ``dyncp enhance --probes`` claims: a register, not a pitch track; no confident guess on unfamiliar noise."""

import json

import pytest
import torch
from torch import nn

from speechbrain_dyncp.cli import NOISE_MIN_PROB, write_probe_outputs
from speechbrain_dyncp.inference.enhancement import DynCPEnhancement
from speechbrain_dyncp.lobes.enhancer import dyncp_small


class FixedProbes(nn.Module):
    """Stand-in for fitted probes: speech on frames 5..24, F0 rising 100 -> 290 Hz, fixed noise probabilities."""

    heads = {"noise": {"classes": ["babble_crowd", "music", "none"]}}

    def __init__(self, noise_probs):
        super().__init__()
        self.noise_probs = torch.tensor(noise_probs)

    def forward(self, gates, frame_mask):
        b, n = frame_mask.shape
        t = torch.arange(n, dtype=torch.float32)
        vad = ((t >= 5) & (t < 25)).float().expand(b, n)
        return {"vad": vad, "f0": (100.0 + 10.0 * (t - 5)).expand(b, n),
                "noise": self.noise_probs.expand(b, n, -1).clone()}


def _summary(tmp_path, noise_probs):
    model = DynCPEnhancement(modules={"enhancer": dyncp_small(channels=8, hidden=16, gate_hidden=4).eval(),
                                      "probes": FixedProbes(noise_probs)}, hparams={"sample_rate": 16000})
    res = model.analyze_batch(torch.randn(1, 256 * 40))
    write_probe_outputs(tmp_path / "x", res)
    return res, json.loads((tmp_path / "x.json").read_text()), (tmp_path / "x.probes.csv").read_text()


def test_register_is_the_median_over_speech_frames_and_no_f0_track_is_written(tmp_path):
    res, summary, csv_text = _summary(tmp_path, [0.8, 0.1, 0.1])
    assert summary["f0_register_hz"] == res.register_hz(0) == res.register_from_mask_hz[0]  # the T-F mask's
    assert res.register_from_mask_hz[0] is None  # white-noise input: nothing periodic, no register
    res.register_from_mask_hz = None  # without the mask read-out: the gate probe's F0 over speech frames
    assert res.register_hz(0) == pytest.approx(190.0)  # frames 5..24
    assert "f0" not in csv_text.splitlines()[0]
    assert summary["noise_class"] == "babble_crowd" and summary["noise_prob"] == pytest.approx(0.8)


def test_spread_noise_probabilities_are_reported_as_unknown(tmp_path):
    _, summary, _ = _summary(tmp_path, [0.4, 0.35, 0.25])
    assert 0.4 < NOISE_MIN_PROB
    assert summary["noise_class"] == "unknown" and summary["noise_best"] == "babble_crowd"
