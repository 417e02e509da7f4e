"""``dyncp demo`` with the bundled model: the main job end to end, scored against exact labels."""

import json

import pytest

from speechbrain_dyncp.cli import main


@pytest.mark.slow
def test_demo_end_to_end_with_bundled_model(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--n-files", "16"]) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    # Unseen synthetic speakers and noises (corpus seed 1; the model saw seed 0).
    assert s["si_sdr_improvement_db"] > 3.0
    assert abs(s["realised_channel_ratio"] - 0.25) < 0.03
    assert s["macs_saved_pct"] > 20.0
    assert abs(s["streaming_macs_saved_pct"] - s["macs_saved_pct"]) < 2.0
    assert s["streaming_max_abs_diff"] < 1e-4
    assert s["vad"]["accuracy"] > 0.85 and s["vad"]["roc_auc"] > 0.9
    assert s["noise"]["accuracy"] > 0.8
    assert s["snr"]["mae_db"] < 4.0
    assert (tmp_path / "demo_figure.png").stat().st_size > 50_000
    assert len(list((tmp_path / "enhanced").glob("*.wav"))) == 16
    assert "MACs saved" in capsys.readouterr().out
