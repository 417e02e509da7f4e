"""recipes/DynCP/compare_runs.py: seeds averaged with their spread, per-SNR columns only for fixed SNRs."""

import csv
import math

import pytest


def _run(folder, rows):
    (folder / "test").mkdir(parents=True)
    with open(folder / "test" / "per_utterance.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["ID", "snr", "si_sdr_enhanced", "pesq_enhanced", "stoi_enhanced",
                                          "macs_per_frame", "macs_dense", "ratio"])
        w.writeheader()
        for i, (snr, sdr) in enumerate(rows):
            w.writerow(dict(ID=f"u{i}", snr=snr, si_sdr_enhanced=sdr, pesq_enhanced=2.0, stoi_enhanced=0.9,
                            macs_per_frame=1000.0, macs_dense=2000.0, ratio=0.5))
    return folder


def test_seeds_are_averaged_and_clean_items_stay_out_of_the_noisy_mean(tmp_path, recipe_module):
    mod = recipe_module("recipes/DynCP/compare_runs.py")
    a = _run(tmp_path / "a", [(0.0, 2.0), (20.0, 16.0), ("inf", 90.0)])
    b = _run(tmp_path / "b", [(0.0, 4.0), (20.0, 18.0), ("inf", 30.0)])
    seeds = [mod.run_figures(a), mod.run_figures(b)]
    table = mod.combine(seeds)
    assert table["si_sdr@0dB"] == pytest.approx(3.0) and table["si_sdr@0dB_spread"] == pytest.approx(1.0)
    assert table["si_sdr_noisy_mean"] == pytest.approx(10.0)  # (2 + 16 + 4 + 18) / 4: the clean items left out
    assert table["si_sdr@clean"] == pytest.approx(60.0) and table["n_seeds"] == 2
    assert "0dB" in mod.markdown({"x": table})


def test_continuous_snrs_give_no_per_snr_columns_and_a_missing_report_is_named(tmp_path, recipe_module):
    mod = recipe_module("recipes/DynCP/compare_runs.py")
    figures = mod.run_figures(_run(tmp_path / "emb", [(2.5, 5.0), (7.31, 9.0)]))
    assert not [k for k in figures if k.startswith("si_sdr@")] and figures["si_sdr_noisy_mean"] == 7.0
    assert math.isfinite(figures["macs_per_frame"])
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        mod.run_figures(tmp_path / "nothing_here")
