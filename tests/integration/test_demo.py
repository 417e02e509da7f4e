"""``dyncp demo``: the main job end to end, on the embedded corpus (exact labels) and on real recordings."""

import json

import pytest

from speechbrain_dyncp.cli import main


@pytest.mark.slow
def test_demo_end_to_end_with_synthetic_model_on_embedded_corpus(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--n-files", "16", "--data", "embedded",
                 "--model", "dyncp_synthetic_small"]) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["data"].startswith("embedded")
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


@pytest.mark.slow
def test_demo_on_real_recordings_with_the_default_model(tmp_path, capsys, shared_data, monkeypatch):
    """The default (real-trained) model on held-out real mixtures: it says which data, helps on average,
    computes less in pauses, and streaming equals offline."""
    monkeypatch.setenv("DYNCP_SHARED_DATA", str(shared_data))
    monkeypatch.chdir(tmp_path)  # the real corpus is prepared under ./results
    assert main(["demo", "-o", str(tmp_path / "demo"), "--n-files", "12"]) == 0
    s = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert s["data"].startswith("real test split") and "dyncp_real_base" in s["model"]
    assert s["si_sdr_improvement_db"] > 0.0
    assert s["dynamism"]["nonspeech_over_speech"] < 0.8
    assert s["streaming_max_abs_diff"] < 1e-4
    out = capsys.readouterr().out
    assert "data: real test split" in out and "register" in out


@pytest.mark.slow
def test_demo_scores_no_noise_class_the_model_does_not_know(tmp_path, capsys):
    """The real-speech model on the embedded corpus: its noise vocabulary (babble_crowd, ...) has none
    of the synthetic labels, so no accuracy is printed (it would be a number that is not an answer)."""
    assert main(["demo", "-o", str(tmp_path), "--n-files", "4", "--data", "embedded"]) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["data"].startswith("embedded") and "noise" not in s
    assert "noise class from masks" not in capsys.readouterr().out
