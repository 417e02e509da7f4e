"""calibrate_quality.py's SNR-gated front-end: only files the quality model calls noisy are enhanced."""

import math
from types import SimpleNamespace

import torch


class FakeEnhancer:
    """Analyses whose SNR estimate is read from the file name (``snr<dB>.wav``) and whose output is all ones."""

    def analyze_file(self, path):
        snr = path.split("snr")[-1][: -len(".wav")]
        value = math.nan if snr == "nan" else float(snr)
        return SimpleNamespace(wav=torch.ones(1, 100), frame_mask=torch.ones(1, 4, dtype=torch.bool),
                               vad_prob=torch.ones(1, 4), utterance_snr=lambda i: value, hop_length=25,
                               sample_rate=16000)


class FakeSpeaker:
    """Embeds the unenhanced input as -1 and the enhanced output (all ones) as +1."""

    def embed_waveform(self, wav, source):
        return torch.full((2,), float(wav.mean()))

    def embed_file(self, path):
        return torch.full((2,), -1.0)


def test_only_files_estimated_below_the_threshold_are_enhanced(recipe_module, tmp_path):
    cq = recipe_module("recipes/VoxCeleb/calibrate_quality.py")
    ids = ["a/snr20", "b/snr3", "c/snrnan"]
    cache = {}
    cq.embed_and_measure(ids, [tmp_path], FakeSpeaker(), FakeEnhancer(), cache, front_end=True, below_snr=10.0)
    assert {i: (float(cache[i][0][0]), cache[i][2]) for i in ids} == {
        "a/snr20": (-1.0, False), "b/snr3": (1.0, True), "c/snrnan": (1.0, True)}  # unknown SNR: enhanced
    assert cache["a/snr20"][1][0] == 20.0  # the quality measure is still the input's
    everything = {}
    cq.embed_and_measure(ids, [tmp_path], FakeSpeaker(), FakeEnhancer(), everything, front_end=True)
    assert all(everything[i][2] for i in ids)
    nothing = {}
    cq.embed_and_measure(ids, [tmp_path], FakeSpeaker(), FakeEnhancer(), nothing)
    assert not any(nothing[i][2] for i in ids)
