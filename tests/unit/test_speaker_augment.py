"""Speaker augmentation (speed-perturbed crops as new speakers): the pipeline's crops and labels."""

import math
import random

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.encoder import CategoricalEncoder

from speechbrain_dyncp.verification.speaker_augment import change_speed, draw_speed, speed_label, speed_labels
from speechbrain_dyncp.verification.training import speaker_chunk_datasets

SR = 16000


def test_change_speed_scales_length_and_pitch():
    t = torch.arange(2 * SR) / SR
    tone = torch.sin(2 * math.pi * 180 * t)
    for factor in (0.9, 1.1):
        out = change_speed(tone, factor)
        assert abs(out.numel() - 2 * SR / factor) <= 1
        peak_hz = float(torch.fft.rfft(out).abs().argmax()) * SR / out.numel()
        assert abs(peak_hz - 180 * factor) < 1.0
    assert change_speed(tone, 1.0) is tone


def test_draw_speed_respects_the_share():
    rng = random.Random(0)
    draws = [draw_speed([0.9, 1.1], 0.4, rng) for _ in range(4000)]
    assert abs(sum(d != 1.0 for d in draws) / 4000 - 0.4) < 0.03
    assert set(draws) == {0.9, 1.0, 1.1}


def _manifest(tmp_path, n_speakers=3):
    rows = ["ID,duration,wav,start,stop,spk_id"]
    for s in range(n_speakers):
        wav = tmp_path / f"spk{s}.wav"
        sf.write(wav, 0.1 * np.random.default_rng(s).standard_normal(5 * SR).astype("float32"), SR)
        rows.append(f"spk{s}_0,5.0,{wav},0,{5 * SR},spk{s}")
    for name in ("train.csv", "dev.csv"):
        (tmp_path / name).write_text("\n".join(rows) + "\n")


def _hparams(tmp_path, factors, prob):
    return {"save_folder": str(tmp_path), "sample_rate": SR, "sentence_len": 2.0, "random_chunk": True,
            "label_encoder": CategoricalEncoder(), "speaker_speed_factors": factors, "speaker_speed_prob": prob}


def test_sped_up_crops_get_their_own_class_and_keep_the_crop_length(tmp_path):
    _manifest(tmp_path)
    random.seed(0)
    train, valid, enc = speaker_chunk_datasets(_hparams(tmp_path, [0.9, 1.1], 1.0))
    # the original speakers keep the first indices; each factor adds one class per speaker
    assert [enc.ind2lab[i] for i in range(3)] == ["spk0", "spk1", "spk2"]
    assert set(enc.lab2ind) == {"spk0", "spk1", "spk2", *speed_labels(["spk0", "spk1", "spk2"], [0.9, 1.1])}
    with train.output_keys_as(["sig", "speaker", "spk_id_encoded"]):
        items = [train[i % 3] for i in range(30)]
    assert {it["speaker"].rsplit("_", 1)[-1] for it in items} == {"sp0.9", "sp1.1"}  # prob 1: never the original
    for it in items:
        assert abs(it["sig"].numel() - 2 * SR) <= 2  # crops of sentence_len whatever the speed
        assert enc.ind2lab[int(it["spk_id_encoded"])] == it["speaker"]
    with valid.output_keys_as(["speaker"]):  # validation is never perturbed
        assert {valid[i]["speaker"] for i in range(3)} == {"spk0", "spk1", "spk2"}


def test_without_factors_labels_and_crops_are_unchanged(tmp_path):
    _manifest(tmp_path)
    train, _, enc = speaker_chunk_datasets(_hparams(tmp_path, [], 0.0))
    assert len(enc) == 3
    with train.output_keys_as(["sig", "speaker"]):
        assert {train[i]["speaker"] for i in range(3)} == {"spk0", "spk1", "spk2"}
        assert train[0]["sig"].numel() == 2 * SR


def test_resume_keeps_the_stored_classes(tmp_path):
    _manifest(tmp_path)
    _, _, first = speaker_chunk_datasets(_hparams(tmp_path, [0.9, 1.1], 0.5))
    _, _, again = speaker_chunk_datasets(_hparams(tmp_path, [0.9, 1.1], 0.5))
    assert first.lab2ind == again.lab2ind and len(again) == 9
    assert speed_label("spk0", 0.9) in again.lab2ind
