"""benchmarks/sisdr_by_condition.py: per-condition means keyed the way bench_real keys them."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "sisdr_by_condition.py"


class PassThrough:
    """A 'model' that returns its input: the score is then the input's own SI-SDR."""

    def enhance_batch(self, noisy):
        return noisy


def test_scores_are_split_by_room_and_snr(tmp_path):
    spec = importlib.util.spec_from_file_location("sisdr_by_condition", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = np.random.default_rng(0)
    rows = []
    for i, (cond, snr) in enumerate([("dry_5.0", 5.0), ("rev_5.0", 5.0), ("dry_0.0", 0.0), ("rev_0.0", 0.0)]):
        clean = 0.1 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)
        noise = rng.standard_normal(16000)
        noise *= np.sqrt((clean**2).sum() / (noise**2).sum() / 10 ** (snr / 10))
        noise -= clean * (noise @ clean) / (clean @ clean)  # orthogonal: SI-SDR equals the SNR exactly
        noise *= np.sqrt((clean**2).sum() / (noise**2).sum() / 10 ** (snr / 10))
        sf.write(tmp_path / f"c{i}.wav", clean, 16000, subtype="FLOAT")
        sf.write(tmp_path / f"n{i}.wav", clean + noise, 16000, subtype="FLOAT")
        rows.append({"noisy_wav": str(tmp_path / f"n{i}.wav"), "clean_wav": str(tmp_path / f"c{i}.wav"),
                     "condition": cond})
    scores = bench.score(PassThrough(), rows)
    assert scores["all_5.0|si_sdr"] == pytest.approx(5.0, abs=0.01)
    assert scores["dry_0.0|si_sdr"] == pytest.approx(0.0, abs=0.01)
    assert set(scores) == {f"{r}_{s}|si_sdr" for r in ("all", "dry", "rev") for s in ("5.0", "0.0")}
