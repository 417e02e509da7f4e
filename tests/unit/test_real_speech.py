"""Real-speech corpus preparation (data/real_speech.py) and mixing (data/real_mixing.py).

The ``mini_shared`` fixture (tests/conftest.py) is a miniature development
folder with the real layout, built from a few real files of ../shared/data, so
the split, hold-out and bad-file rules are checked end to end in seconds.
"""

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbrain_dyncp.data.labels import load_frame_labels, n_frames
from speechbrain_dyncp.data.real_mixing import CONDITIONS, RealMixer
from speechbrain_dyncp.data.real_speech import (
    find_utterances,
    noise_class,
    prepare_real_speech,
    split_speakers,
)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def prepared(mini_shared, digest, tmp_path_factory):
    before = digest(mini_shared)
    out = prepare_real_speech(mini_shared, tmp_path_factory.mktemp("real_corpus"), seed=3)
    return out, before


def test_splits_are_speaker_disjoint_and_cover_every_condition(prepared):
    out, _ = prepared
    speakers = {s: {r["spk_id"] for r in _rows(out[s])} for s in ("train", "valid", "test")}
    assert speakers["train"] and speakers["test"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["train"] & speakers["valid"]
    assert not speakers["valid"] & speakers["test"]
    conditions = {r["condition"] for r in _rows(out["test"])}
    dry = {f"dry_{c}" for c in CONDITIONS[: len(_rows(out["test"])) // 2]}
    assert dry <= conditions


def test_test_noise_segments_and_rooms_are_never_in_training(prepared):
    out, _ = prepared
    train_noise = {Path(r["wav"]).resolve() for r in _rows(out["noise_train"])}
    test_noise = {Path(r["wav"]).resolve() for r in _rows(out["noise_test"])}
    assert train_noise and test_noise and not train_noise & test_noise
    # the segments are cut from disjoint time spans: no test sample equals a training excerpt
    for a, b in zip(sorted(train_noise), sorted(test_noise)):
        x, y = sf.read(a)[0][:4000], sf.read(b)[0][:4000]
        assert not np.allclose(x[: len(y)], y[: len(x)])
    train_rooms = {r["ID"] for r in _rows(out["rir_train"])}
    test_rooms = {r["ID"] for r in _rows(out["rir_test"])}
    assert test_rooms == {"openair_large_church"} and "openair_large_church" not in train_rooms
    assert {r["room"] for r in _rows(out["test"]) if r["room"]} <= test_rooms


def test_bad_file_is_reported_and_nothing_is_written_into_the_source(prepared, mini_shared, digest):
    out, before = prepared
    skipped = (out["train"].parent / "skipped.txt").read_text()
    assert "_bad.flac" in skipped
    assert digest(mini_shared) == before
    with pytest.raises(ValueError, match="inside"):
        prepare_real_speech(mini_shared, mini_shared / "corpus")


def test_fixed_mixtures_hit_their_snr_over_the_speech_span(prepared):
    out, _ = prepared
    for row in _rows(out["test"]):
        noisy, _ = sf.read(row["noisy_wav"])
        clean, _ = sf.read(row["clean_wav"])
        lab = load_frame_labels(row["labels"])
        assert len(lab["vad"]) == n_frames(len(clean))
        if row["snr"] == "inf":
            assert np.abs(noisy - clean).max() < 1e-4 and row["noise"] == "none"
            continue
        if row["room"]:  # the reverberant tail runs past the dry speech span the SNR is set on
            continue
        speech = np.flatnonzero(np.abs(clean) > 0)
        span = slice(speech[0], speech[-1] + 1)
        snr = 10 * np.log10(np.sum(clean[span] ** 2) / np.sum((noisy - clean)[span] ** 2))
        # the exact span is the mixer's (unit test below); here the first and last
        # non-zero samples of a 16-bit copy bound it, a little inside
        assert snr == pytest.approx(float(row["snr"]), abs=1.5)
        assert np.abs(noisy[: speech[0]]).max() > 0  # the lead-in carries noise only
        assert lab["vad"][: speech[0] // 256].sum() == 0


def test_real_folder_split_is_speaker_disjoint(shared_data):
    utts = find_utterances(shared_data)
    split = split_speakers(utts)
    by_corpus = {}
    for u in utts:
        by_corpus.setdefault(u["corpus"], set()).add(split[u["spk"]])
    assert by_corpus["fda"] == {"test"} and by_corpus["fsdd"] == {"train"}
    assert by_corpus["so762"] == {"train", "valid", "test"}
    so = [u for u in utts if u["corpus"] == "so762"]
    test_genders = {u["gender"] for u in so if split[u["spk"]] == "test"}
    assert test_genders == {"f", "m"}


def test_mixer_labels_follow_the_lead_in_and_clean_items_pass_through():
    mixer = RealMixer(None, None, clean_prob=1.0, pause_range=(0.5, 0.5), level_range=(-30.0, -30.0))
    clean = 0.2 * torch.randn(4096)
    vad, f0 = torch.ones(n_frames(4096)), torch.full((n_frames(4096),), 120.0)
    item = mixer(clean, vad, f0, rng=np.random.default_rng(1))
    lead = item["lead"] // 256
    assert item["lead"] == 8000 // 256 * 256 and item["snr"] == math.inf
    assert torch.equal(item["noisy"], item["clean"])
    assert item["vad"][:lead].sum() == 0 and item["vad"][lead : lead + len(vad)].all()
    assert len(item["vad"]) == n_frames(item["clean"].numel())


def test_mixer_sets_the_snr_over_the_speech_span_only(tmp_path):
    noise = tmp_path / "n.wav"
    sf.write(noise, 0.1 * np.random.default_rng(0).standard_normal(16000), 16000)
    (tmp_path / "n.csv").write_text(f"ID,duration,wav,wav_format,wav_opts,noise_class\nn,1.0,{noise},wav,,hum\n")
    mixer = RealMixer(tmp_path / "n.csv", None, snr_range=(7.0, 7.0), clean_prob=0.0, reverb_prob=0.0,
                      pause_range=(0.2, 0.6), level_range=(-25.0, -25.0))
    clean = 0.3 * torch.randn(8000)
    item = mixer(clean, rng=np.random.default_rng(2))
    span = slice(item["lead"], item["lead"] + 8000)
    speech, noise_part = item["clean"][span].double(), (item["noisy"] - item["clean"])[span].double()
    assert float(10 * torch.log10(speech.pow(2).sum() / noise_part.pow(2).sum())) == pytest.approx(7.0, abs=1e-3)
    assert item["noise"] == "hum" and item["snr"] == 7.0
    assert float(speech.pow(2).mean().sqrt()) == pytest.approx(10 ** (-25 / 20), rel=1e-3)


def _tone_noises(tmp_path):
    """Two noise recordings: a 300 Hz and a 2 kHz tone (which one is in a mixture shows in its spectrum)."""
    t = np.arange(32000) / 16000
    rows = ["ID,duration,wav,wav_format,wav_opts,noise_class"]
    for name, hz in (("low", 300), ("high", 2000)):
        sf.write(tmp_path / f"{name}.wav", 0.1 * np.sin(2 * np.pi * hz * t), 16000)
        rows.append(f"{name},2.0,{tmp_path / name}.wav,wav,,machine_hum")
    (tmp_path / "n.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "n.csv"


def _band_db(x, hz):
    spec = torch.fft.rfft(x.double()).abs().pow(2)
    k = round(hz * x.numel() / 16000)
    return float(10 * torch.log10(spec[k - 3 : k + 4].sum()))


def test_noise_mixing_sums_two_recordings_at_a_bounded_ratio_and_keeps_the_snr(tmp_path):
    kw = dict(snr_range=(5.0, 5.0), clean_prob=0.0, reverb_prob=0.0, pause_range=(0.0, 0.0), level_range=(-25.0, -25.0))
    clean = 0.3 * torch.randn(16000, generator=torch.Generator().manual_seed(0))
    plain, mixed = RealMixer(_tone_noises(tmp_path), None, **kw), RealMixer(tmp_path / "n.csv", None, noise_mix_prob=1.0, **kw)
    gaps = []
    for seed in range(20):
        alone = plain(clean, rng=np.random.default_rng(seed))
        one = alone["noisy"] - alone["clean"]
        assert abs(_band_db(one, 300) - _band_db(one, 2000)) > 30  # one recording: one tone
        item = mixed(clean, rng=np.random.default_rng(seed))
        noise = item["noisy"] - item["clean"]
        gaps.append(abs(_band_db(noise, 300) - _band_db(noise, 2000)))
        snr = 10 * torch.log10(item["clean"].double().pow(2).sum() / noise.double().pow(2).sum())
        assert float(snr) == pytest.approx(5.0, abs=1e-3)  # the SNR is of the summed noise
    assert max(gaps) <= 10.5 and min(gaps) < 8  # second recording 0-10 dB below the first


def test_noise_eq_colours_training_noise_but_never_the_fixed_mixtures(tmp_path):
    noise = tmp_path / "white.wav"
    sf.write(noise, 0.1 * np.random.default_rng(0).standard_normal(48000), 16000)
    (tmp_path / "n.csv").write_text(f"ID,duration,wav,wav_format,wav_opts,noise_class\nw,3.0,{noise},wav,,hum\n")
    kw = dict(snr_range=(0.0, 0.0), clean_prob=0.0, reverb_prob=0.0, pause_range=(0.0, 0.0), level_range=(-25.0, -25.0))
    eq = RealMixer(tmp_path / "n.csv", None, noise_eq_prob=1.0, **kw)
    clean = torch.zeros(32000)
    clean[::400] = 1.0  # any non-silent speech; the noise spectrum is what is looked at

    def spread_db(item):  # spread of the noise's level over 16 bands between 100 Hz and 7 kHz
        spec = torch.fft.rfft((item["noisy"] - item["clean"]).double()).abs().pow(2)
        edges = np.geomspace(100, 7000, 17) * 2  # 2 bins per Hz at 32000 samples
        bands = torch.stack([spec[int(a) : int(b)].mean() for a, b in zip(edges[:-1], edges[1:])])
        return float(10 * torch.log10(bands.max() / bands.min()))

    coloured = [spread_db(eq(clean, rng=np.random.default_rng(s))) for s in range(10)]
    fixed = spread_db(eq(clean, rng=np.random.default_rng(0), snr=0.0, noise_index=0))
    assert fixed < 3.0 and np.median(coloured) > 6.0


def test_fixed_mixtures_draw_what_the_original_corpus_code_drew(tmp_path):
    """With noise diversity off (its default, and always for the fixed valid / test mixtures) the mixer takes
    exactly the random draws of the corpus code that the documented figures were measured with (commit
    057a000): conditions, lead-ins and samples below are that code's output. Session 8's noise-diversity
    options drew even when off and silently changed every fixed mixture of a fresh clone."""
    mixer = RealMixer(_tone_noises(tmp_path), None, clean_prob=0.2, reverb_prob=0.0)
    rng = np.random.default_rng(11)
    clean = 0.3 * torch.sin(torch.arange(8000) * 0.05)
    drawn = []
    for _ in range(6):
        item = mixer(clean, rng=rng)
        drawn.append((round(float(item["snr"]), 4), item["lead"], round(float(item["noisy"].abs().sum()), 1)))
    assert drawn == [(-4.1393, 2048, 3480.9), (13.6565, 1024, 287.2), (math.inf, 10496, 605.2),
                     (11.4723, 10496, 482.9), (2.059, 7680, 1900.7), (-2.5065, 2048, 268.8)]


def test_a_second_preparation_gives_the_same_mixtures(prepared, mini_shared, tmp_path):
    """Same files and seed, another folder: byte-identical valid / test mixtures (manifest_digest); another
    seed: other mixtures. The digests are what bench_real.py stores beside its figures."""
    from speechbrain_dyncp.data.manifest import manifest_digest

    out, _ = prepared
    again = prepare_real_speech(mini_shared, tmp_path / "again", seed=3)
    other = prepare_real_speech(mini_shared, tmp_path / "other", seed=4)
    for split in ("valid", "test"):
        assert manifest_digest(again[split]) == manifest_digest(out[split]) != manifest_digest(other[split])


def test_a_moved_corpus_is_prepared_again_not_trusted(mini_shared, tmp_path):
    """Manifests hold absolute paths: after the folder moves, preparing into its new place must rewrite them
    (the skip-if-done check would otherwise keep rows that point at the old place)."""
    prepare_real_speech(mini_shared, tmp_path / "a", seed=3)
    (tmp_path / "a").rename(tmp_path / "b")
    moved = prepare_real_speech(mini_shared, tmp_path / "b", seed=3)
    rows = _rows(moved["test"])
    assert rows and all(Path(r["noisy_wav"]).is_file() and (tmp_path / "b") in Path(r["noisy_wav"]).parents
                        for r in rows)


def test_noise_vocabulary():
    assert {noise_class(c) for c in ("cafe_babble", "rain", "fridge_hum", "music_piano", "train_passing")} == {
        "babble_crowd", "water_nature", "machine_hum", "music", "traffic_vehicle"}
