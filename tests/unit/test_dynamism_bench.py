"""bench_dyncp's issue-15 sections run end to end at toy size and report consistent figures."""

import importlib.util
import json
from pathlib import Path

import pytest

from speechbrain_dyncp.streaming import c_available

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_dyncp.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_dyncp", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mac_table_matches_the_counter(bench, tmp_path):
    """Gate width 8 on the small model: 7.5% overhead, 49.0% saved at 25% (docs/dynamic_compute.md)."""
    out = tmp_path / "macs.json"
    assert bench.main(["--mac-table", "--out", str(out)]) == 0
    rows = {(r["model"], r["gate_hidden"]): r for r in json.loads(out.read_text())["rows"]}
    small8 = rows[("small 64/128/2x3", 8)]
    assert small8["gate_macs"] == 6 * (2 * 64 + 64 * 8 + 8 * 128)
    assert round(small8["gate_overhead_pct"], 1) == 7.5 and round(small8["macs_saved_pct"], 1) == 49.0
    assert rows[("full 128/256/3x3", 16)]["gate_overhead_pct"] < 10 < rows[("full 128/256/3x3", 32)]["gate_overhead_pct"]


@pytest.mark.skipif(not c_available(), reason="C kernel not built at install: no C streams")
def test_multistream_and_offline_sections(bench, tmp_path):
    """Two streams, two files, half a second: every path ran, union = gated output, planted gates all used."""
    out = tmp_path / "b.json"
    assert bench.main(["--config", "small", "--gate-hidden", "8", "--seconds", "0.5", "--repeats", "1",
                       "--fast-repeats", "1", "--sections", "multistream,offline", "--streams", "2", "--batch", "2",
                       "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert "fast_paths" not in d and d["sections"] == ["multistream", "offline"]
    ms = d["multistream"]
    for sharing in ("shared_weights", "separate_weights"):
        for name in ("dense", "pruned"):
            e = ms[sharing][name]
            assert e["rtf_per_stream"] == pytest.approx(e["rtf_aggregate"] * 2) and e["turn_s"]["max"] > 0
    ob = d["offline_batch"]
    assert ob["union_max_abs_diff_vs_gated"] < 1e-5
    assert set(ob["rtf"]) >= {"torch_dense", "torch_gated", "torch_union", "tcn_union", "c_pruned"}
    assert 0 < ob["union_channel_share"]["one_file"] <= ob["union_channel_share"]["batch"] <= 1


def test_bench_dynamism_pools_a_manifest(tmp_path):
    """Two files with frame labels: pooled figures by labels and by the bundled model's VAD probe, per SNR."""
    import numpy as np
    import soundfile as sf

    spec = importlib.util.spec_from_file_location("bench_dynamism", BENCH.with_name("bench_dynamism.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(0)
    lines = ["noisy_wav,labels,snr"]
    for i, snr in enumerate(["5.0", "inf"]):
        wav, lab = tmp_path / f"{i}.wav", tmp_path / f"{i}.npz"
        sf.write(wav, 0.05 * rng.standard_normal(16000), 16000)
        np.savez(lab, vad=(np.arange(63) >= 20).astype(np.uint8))
        lines.append(f"{wav},{lab},{snr}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "d.json"
    assert module.main(["--manifest", str(tmp_path / "m.csv"), "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["files"] == 2 and set(d["by_snr_db"]) == {"5", "clean"}
    lab = d["speech_from_labels"]
    assert 0 < lab["active_ratio_nonspeech"] < 1 and lab["nonspeech_over_speech"] == pytest.approx(
        lab["active_ratio_nonspeech"] / lab["active_ratio_speech"], abs=1e-5)
    assert d["speech_from_vad_probe"]["files"] == 2 and "compute_vs_input_snr" not in d  # one noisy file only
