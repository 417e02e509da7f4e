"""VoiceBank preparation: rounding is not a length mismatch, and one bad pair does not stop the run (issue 18)."""

import csv

import numpy as np
import soundfile as sf

from speechbrain_dyncp.data.voicebank import prepare_voicebank


def _write(root, kind, split, utt, n, sr):
    folder = root / f"{kind}_{split}_wav"
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / f"{utt}.wav", np.zeros(n), sr)


def _ids(path):
    with open(path, newline="") as fh:
        return [r["ID"] for r in csv.DictReader(fh)]


def test_lengths_within_one_sample_period_pass_and_bad_pairs_are_reported(tmp_path):
    root = tmp_path / "vb"
    pairs = {  # utt: (clean samples, clean rate, noisy samples, noisy rate)
        "p1_001": (48000, 48000, 48001, 48000),  # one sample longer: 2e-5 s
        "p1_002": (16001, 16000, 48000, 48000),  # 16 kHz clean beside 48 kHz noisy: 6e-5 s
        "p2_001": (48000, 48000, 48000, 48000),
        "p2_002": (48000, 48000, 24000, 48000),  # half a second short: a bad pair
    }
    for utt, (nc, rc, nn, rn) in pairs.items():
        _write(root, "clean", "trainset", utt, nc, rc)
        _write(root, "noisy", "trainset", utt, nn, rn)
    _write(root, "clean", "testset", "p9_001", 16000, 16000)
    _write(root, "noisy", "testset", "p9_001", 16000, 16000)
    out = prepare_voicebank(root, tmp_path / "csv", valid_speakers=["p2"])
    assert _ids(out["train"]) == ["p1_001", "p1_002"]
    assert _ids(out["valid"]) == ["p2_001"] and _ids(out["test"]) == ["p9_001"]
    skipped = (tmp_path / "csv" / "skipped.txt").read_text().splitlines()
    assert len(skipped) == 1 and "p2_002.wav" in skipped[0] and "differ in length" in skipped[0]
