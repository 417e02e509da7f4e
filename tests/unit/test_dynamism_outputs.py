"""Dynamism where users meet it: the Pretrained analysis result and ``dyncp enhance --probes`` files."""

import csv
import json

import pytest
import torch
from torch import nn

from speechbrain_dyncp.cli import write_probe_outputs
from speechbrain_dyncp.efficiency import dynamism, plant_gate_ratio
from speechbrain_dyncp.inference.enhancement import DynCPEnhancement
from speechbrain_dyncp.lobes.enhancer import dyncp_small


class HalfSpeechProbe(nn.Module):
    """Stand-in for fitted mask probes: VAD says speech on the first half of the valid frames."""

    def forward(self, gates, frame_mask):
        n = frame_mask.sum(1, keepdim=True)
        return {"vad": (torch.arange(gates.shape[2])[None] < n / 2).float() * frame_mask}


@pytest.fixture(scope="module")
def analysis():
    torch.manual_seed(0)
    enhancer = dyncp_small(channels=8, hidden=16, gate_hidden=4).eval()
    wav = torch.randn(2, 6000)
    plant_gate_ratio(enhancer, wav, 0.4)
    model = DynCPEnhancement(modules={"enhancer": enhancer, "probes": HalfSpeechProbe()},
                             hparams={"sample_rate": 16000})
    return model.analyze_batch(wav, torch.tensor([1.0, 0.6])), enhancer(wav, torch.tensor([1.0, 0.6]))


def test_analysis_carries_per_frame_compute_and_dynamism(analysis):
    """active_ratio is the gates' per-frame mean (0 on padding); dynamism splits by the VAD probe."""
    res, out = analysis
    assert torch.equal(res.active_ratio, out.gates.mean((1, 3)) * out.frame_mask)
    speech = res.vad_prob > 0.5
    for i, d in enumerate(res.dynamism):
        ref = dynamism(out.gates, out.frame_mask, speech)[i]
        assert "active_ratio" not in d and d == {k: v for k, v in ref.items() if k != "active_ratio"}
        assert d["frames"] == int(out.frame_mask[i].sum()) and d["speech_frames"] == (d["frames"] + 1) // 2
        assert d["active_ratio_mean"] == pytest.approx(res.realised_ratio[i], abs=1e-6)
        valid = res.active_ratio[i, : d["frames"]]
        assert d["active_ratio_speech"] == pytest.approx(float(valid[: d["speech_frames"]].mean()))


def test_probe_files_have_the_compute_column_and_fields(analysis, tmp_path):
    """CSV: one active_ratio per frame; JSON: the dynamism figures of that file (item 1: padded)."""
    res, _ = analysis
    write_probe_outputs(tmp_path / "x", res, item=1)
    rows = list(csv.DictReader(open(tmp_path / "x.probes.csv")))
    assert len(rows) == res.dynamism[1]["frames"]
    assert [float(r["active_ratio"]) for r in rows] == pytest.approx(res.active_ratio[1, : len(rows)].tolist(),
                                                                     abs=1e-4)
    summary = json.loads((tmp_path / "x.json").read_text())
    for key in ("active_ratio_speech", "active_ratio_nonspeech", "switching_channels", "flip_rate",
                "active_ratio_std", "nonspeech_over_speech"):
        assert summary[key] == pytest.approx(res.dynamism[1][key]), key
