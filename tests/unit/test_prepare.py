"""Data preparation: exact rows on known trees, every documented bad input, idempotence,
sources never modified, manifests readable by SpeechBrain."""

import csv
import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbrain_dyncp.data.audio import read_audio
from speechbrain_dyncp.data.noise import prepare_musan, prepare_noise_csv, prepare_rir_csv
from speechbrain_dyncp.data.voicebank import prepare_voicebank
from speechbrain_dyncp.data.voxceleb import prepare_voxceleb


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _tree_hash(root: Path):
    return {p: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def _tone(sec, sr=16000, amp=0.1):
    return amp * np.sin(2 * np.pi * 220 * np.arange(int(sec * sr)) / sr)


@pytest.fixture
def vox_tree(tmp_path):
    """A VoxCeleb-shaped tree with known durations and every kind of bad file."""
    wav = tmp_path / "vox" / "wav"
    files = {
        "a1/s1/00001.wav": (_tone(7.0), 16000),  # two 3 s chunks, 1 s remainder dropped
        "a1/s1/00002.wav": (_tone(2.0), 16000),  # shorter than seg_dur: one whole-file row
        "a1/s2/00001.wav": (np.r_[_tone(3.0), np.zeros(48000)], 16000),  # silent 2nd chunk dropped
        "a2/s1/00001.wav": (_tone(4.0, sr=8000), 8000),  # 8 kHz: file-rate samples, warning
        "a2/s1/00002.wav": (np.stack([_tone(3.0), 0.5 * _tone(3.0)], 1), 16000),  # stereo
        "a3/s1/00001.wav": (_tone(3.5), 16000),
        "t1/x/00001.wav": (_tone(1.5), 16000),
        "t1/y/00001.wav": (_tone(1.5), 16000),
        "t2/x/00001.wav": (_tone(1.5), 16000),
    }
    for rel, (x, sr) in files.items():
        (wav / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(wav / rel, x, sr)
    (wav / "a2/s2").mkdir(parents=True)
    (wav / "a2/s2/00001.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage")  # corrupt
    sf.write(wav / "a2/s2/00002.wav", np.zeros(0), 16000)  # empty
    (tmp_path / "vox" / "meta").mkdir()
    (tmp_path / "vox" / "meta" / "veri_test2.txt").write_text(
        "1 t1/x/00001.wav t1/y/00001.wav\n0 t1/x/00001.wav t2/x/00001.wav\n")
    return tmp_path / "vox"


def test_voxceleb_exact_rows_and_bad_files(vox_tree, tmp_path, caplog):
    """Known tree -> exactly the expected rows; corrupt/empty skipped and reported; 8 kHz warned."""
    before = _tree_hash(vox_tree)
    with caplog.at_level(logging.WARNING):
        out = prepare_voxceleb(vox_tree, tmp_path / "csv", split_ratio=(100, 0))
    got = [(r["ID"], r["duration"], r["start"], r["stop"], r["spk_id"]) for r in _rows(out["train"])]
    assert got == [
        ("a1--s1--00001_0.0_3.0", "7.00000", "0", "48000", "a1"),
        ("a1--s1--00001_3.0_6.0", "7.00000", "48000", "96000", "a1"),
        ("a1--s1--00002_0.0_2.0", "2.00000", "0", "32000", "a1"),
        ("a1--s2--00001_0.0_3.0", "6.00000", "0", "48000", "a1"),
        ("a2--s1--00001_0.0_3.0", "4.00000", "0", "24000", "a2"),
        ("a2--s1--00002_0.0_3.0", "3.00000", "0", "48000", "a2"),
        ("a3--s1--00001_0.0_3.0", "3.50000", "0", "48000", "a3"),  # 0.5 s remainder dropped
    ]
    assert _rows(out["dev"]) == []
    assert [(r["ID"], r["stop"]) for r in _rows(out["enrol"])] == [("t1/x/00001", "24000")]
    assert [r["ID"] for r in _rows(out["test"])] == ["t1/y/00001", "t2/x/00001"]
    skipped = (tmp_path / "csv" / "skipped.txt").read_text()
    assert "a2/s2/00001.wav" in skipped and "a2/s2/00002.wav" in skipped and "empty" in skipped
    assert "a2/s2/00001.wav" in caplog.text and "8000 Hz" in caplog.text
    assert _tree_hash(vox_tree) == before  # never writes into the data folder
    # the loader reads exactly the recorded range, downmixed and resampled to 16 kHz
    row = _rows(out["train"])[5]
    assert len(read_audio(row["wav"], start=int(row["start"]), stop=int(row["stop"]))) == 48000
    stereo = sf.read(row["wav"])[0].mean(axis=1)
    np.testing.assert_allclose(read_audio(row["wav"]).numpy(), stereo, atol=1e-6)


def test_voxceleb_splits_speaker_disjoint_and_trial_speakers_excluded(tiny_corpus, tmp_path):
    """Embedded corpus: every pool file exactly once across train/dev, dev speakers unseen, no trial speaker."""
    out = prepare_voxceleb(tiny_corpus.voxceleb, tmp_path / "csv")
    train, dev = _rows(out["train"]), _rows(out["dev"])
    trials = [line.split() for line in (tiny_corpus.voxceleb / "meta/veri_test2.txt").read_text().splitlines()]
    trial_spk = {p.split("/")[0] for t in trials for p in t[1:]}
    pool = [p for p in sorted((tiny_corpus.voxceleb / "wav").glob("*/*/*.wav")) if p.parts[-3] not in trial_spk]
    assert sorted(r["wav"] for r in train + dev) == sorted(str(p.resolve()) for p in pool)  # all < 3 s: 1 row each
    assert {r["spk_id"] for r in train}.isdisjoint({r["spk_id"] for r in dev}) and dev
    assert trial_spk.isdisjoint({r["spk_id"] for r in train + dev})
    assert {r["ID"] for r in _rows(out["enrol"])} == {t[1][:-4] for t in trials}
    assert {r["ID"] for r in _rows(out["test"])} == {t[2][:-4] for t in trials}
    by_file = prepare_voxceleb(tiny_corpus.voxceleb, tmp_path / "csv2", split_speaker=False)
    assert {r["spk_id"] for r in _rows(by_file["dev"])} <= {r["spk_id"] for r in _rows(by_file["train"])}


def test_voxceleb_manifest_round_trips_through_speechbrain(tiny_corpus, tmp_path):
    from speechbrain.dataio.dataset import DynamicItemDataset

    out = prepare_voxceleb(tiny_corpus.voxceleb, tmp_path / "csv")
    ds = DynamicItemDataset.from_csv(str(out["train"]))

    def _sig(wav, start, stop):
        return read_audio(wav, start=int(start), stop=int(stop))

    ds.add_dynamic_item(_sig, takes=["wav", "start", "stop"], provides="sig")
    ds.set_output_keys(["id", "sig", "spk_id", "start", "stop"])
    rows = _rows(out["train"])
    assert len(ds) == len(rows)
    for item, row in zip(ds, rows):
        assert item["id"] == row["ID"] and item["spk_id"] == row["spk_id"]
        assert len(item["sig"]) == int(row["stop"]) - int(row["start"])


def test_voxceleb_bad_inputs(vox_tree, tmp_path):
    """Missing folder, unknown/malformed trial lines, rate refusal, save_folder inside data."""
    with pytest.raises(FileNotFoundError, match="nowhere"):
        prepare_voxceleb(tmp_path / "nowhere", tmp_path / "o1")
    bad = tmp_path / "bad_trials.txt"
    bad.write_text("1 t1/x/00001.wav t1/y/00001.wav\n0 t1/x/00001.wav t9/q/00042.wav\n")
    with pytest.raises(ValueError, match=r"bad_trials.txt:2: unknown file 't9/q/00042.wav'"):
        prepare_voxceleb(vox_tree, tmp_path / "o2", verification_pairs_file=bad)
    bad.write_text("yes t1/x/00001.wav t1/y/00001.wav\n")
    with pytest.raises(ValueError, match=r"bad_trials.txt:1: expected"):
        prepare_voxceleb(vox_tree, tmp_path / "o3", verification_pairs_file=bad)
    with pytest.raises(ValueError, match=r"a2/s1/00001.wav is at 8000 Hz"):
        prepare_voxceleb(vox_tree, tmp_path / "o4", on_rate_mismatch="error")
    out = prepare_voxceleb(vox_tree, tmp_path / "o5", on_rate_mismatch="skip", split_ratio=(100, 0))
    assert not any(r["ID"].startswith("a2--s1--00001") for r in _rows(out["train"]))
    assert "8000 Hz" in (tmp_path / "o5" / "skipped.txt").read_text()
    with pytest.raises(ValueError, match="inside the data folder"):
        prepare_voxceleb(vox_tree, vox_tree / "csv")
    (vox_tree / "wav/t2/x/00001.wav").write_bytes(b"not audio")  # a trial file that cannot be read
    with pytest.raises(ValueError, match=r"veri_test2.txt:2: trial file t2/x/00001.wav is unusable"):
        prepare_voxceleb(vox_tree, tmp_path / "o6")


def test_voxceleb_idempotent(vox_tree, tmp_path):
    """Same options: nothing rewritten; another option: redone."""
    out = prepare_voxceleb(vox_tree, tmp_path / "csv")
    stamp = {k: p.stat().st_mtime_ns for k, p in out.items()}
    prepare_voxceleb(vox_tree, tmp_path / "csv")
    assert stamp == {k: p.stat().st_mtime_ns for k, p in out.items()}
    prepare_voxceleb(vox_tree, tmp_path / "csv", seg_dur=1.0, split_ratio=(100, 0))
    assert len(_rows(out["train"])) > 7


def test_voicebank_on_embedded_corpus(tiny_corpus, tmp_path):
    """Every pair once; valid speakers disjoint from train; noise/snr from the logs; labels found; SB loads it."""
    from speechbrain.dataio.dataset import DynamicItemDataset

    out = prepare_voicebank(tiny_corpus.voicebank, tmp_path / "vb")
    train, valid, test = (_rows(out[s]) for s in ("train", "valid", "test"))
    log = dict(line.split(maxsplit=1) for line in (tiny_corpus.voicebank / "log_trainset.txt").read_text().splitlines())
    assert sorted(r["ID"] for r in train + valid) == sorted(log)
    assert {r["spk_id"] for r in train}.isdisjoint({r["spk_id"] for r in valid}) and valid
    for r in train + valid:
        assert f"{r['noise']} {r['snr']}" == log[r["ID"]]
        assert Path(r["labels"]).is_file() and Path(r["noisy_wav"]).name == Path(r["clean_wav"]).name
        assert abs(float(r["duration"]) - sf.info(r["clean_wav"]).duration) < 1e-4
    assert len(test) == len((tiny_corpus.voicebank / "log_testset.txt").read_text().splitlines())
    ds = DynamicItemDataset.from_csv(str(out["test"]))
    ds.set_output_keys(["id", "noisy_wav", "snr", "duration"])
    first = ds[0]
    assert first["id"] == test[0]["ID"] and first["duration"] == float(test[0]["duration"])


@pytest.fixture
def vb_real_names(tmp_path):
    """Real VoiceBank names (28spk, logfiles/), 48 kHz."""
    root = tmp_path / "vbreal"
    splits = (("trainset_28spk", ["p226_001", "p226_002", "p287_001", "p300_001"]), ("testset", ["p232_001"]))
    for split, utts in splits:
        for k, utt in enumerate(utts):
            for kind in ("clean", "noisy"):
                (root / f"{kind}_{split}_wav").mkdir(parents=True, exist_ok=True)
                sf.write(root / f"{kind}_{split}_wav" / f"{utt}.wav", _tone(1.0 + k, sr=48000), 48000)
    (root / "logfiles").mkdir()
    (root / "logfiles" / "log_trainset_28spk.txt").write_text("p226_001 bus 5\np226_002 cafe 0\np287_001 babble 10\n")
    (root / "log_testset.txt").write_text("p232_001 living 2.5\n")
    return root


def test_voicebank_real_names_and_bad_inputs(vb_real_names, tmp_path, caplog):
    before = _tree_hash(vb_real_names)
    out = prepare_voicebank(vb_real_names, tmp_path / "o")
    assert [(r["ID"], r["duration"]) for r in _rows(out["train"])] == [("p300_001", "4.00000")]
    assert [(r["ID"], r["noise"], r["snr"]) for r in _rows(out["valid"])] == [
        ("p226_001", "bus", "5"), ("p226_002", "cafe", "0"), ("p287_001", "babble", "10")]
    test_rows = [(r["ID"], r["noise"], r["snr"], r["labels"]) for r in _rows(out["test"])]
    assert test_rows == [("p232_001", "living", "2.5", "")]
    assert _tree_hash(vb_real_names) == before
    with pytest.raises(FileNotFoundError, match="nowhere"):
        prepare_voicebank(tmp_path / "nowhere", tmp_path / "o2")
    with pytest.raises(ValueError, match="not among the training speakers"):
        prepare_voicebank(vb_real_names, tmp_path / "o3", valid_speakers=["p999"])
    sf.write(vb_real_names / "noisy_testset_wav" / "p232_001.wav", _tone(1.5, sr=48000), 48000)
    out = prepare_voicebank(vb_real_names, tmp_path / "o4")  # the bad pair is reported, the rest kept
    assert _rows(out["test"]) == [] and len(_rows(out["train"])) == 1
    assert "differ in length" in (tmp_path / "o4" / "skipped.txt").read_text()
    sf.write(vb_real_names / "noisy_testset_wav" / "p232_001.wav", _tone(1.0, sr=48000), 48000)
    (vb_real_names / "clean_trainset_28spk_wav" / "p300_001.wav").write_bytes(b"junk")
    with caplog.at_level(logging.WARNING):
        out = prepare_voicebank(vb_real_names, tmp_path / "o5")
    assert _rows(out["train"]) == [] and "p300_001" in (tmp_path / "o5" / "skipped.txt").read_text()
    (vb_real_names / "noisy_trainset_28spk_wav" / "p226_002.wav").unlink()
    with pytest.raises(ValueError, match=r"clean_trainset_28spk_wav/p226_002.wav has no partner"):
        prepare_voicebank(vb_real_names, tmp_path / "o6")


def test_noise_and_rir_csvs_load_in_speechbrain_augment(tiny_corpus, tmp_path):
    """AddNoise/AddReverb read our CSVs (MUSAN prep and the corpus' rirs.csv)."""
    from speechbrain.augment.time_domain import AddNoise, AddReverb

    csvs = prepare_musan(tiny_corpus.musan, tmp_path / "musan")
    assert set(csvs) == {"noise", "music", "speech"}
    n_files = len(list((tiny_corpus.musan / "noise").rglob("*.wav")))
    assert len(_rows(csvs["noise"])) == n_files
    torch.manual_seed(0)
    clean = 0.1 * torch.randn(2, 16000)
    noisy = AddNoise(csv_file=str(csvs["noise"]), snr_low=0, snr_high=0)(clean, torch.ones(2))
    assert torch.isfinite(noisy).all() and not torch.allclose(noisy, clean)
    for rir_csv in (tiny_corpus.rirs / "rirs.csv", prepare_rir_csv(tiny_corpus.rirs, tmp_path / "r" / "rirs.csv")):
        wet = AddReverb(csv_file=str(rir_csv))(clean)
        assert wet.shape == clean.shape and torch.isfinite(wet).all() and not torch.allclose(wet, clean)


def test_noise_csv_converts_copies_and_skips_bad_files(tmp_path):
    """48 kHz stereo -> 16 kHz mono copy (source untouched); corrupt/silent files skipped and listed."""
    src = tmp_path / "src"
    src.mkdir()
    sf.write(src / "stereo48k.wav", np.stack([_tone(1.0, 48000), _tone(1.0, 48000)], 1), 48000)
    sf.write(src / "ok.wav", _tone(0.5), 16000)
    sf.write(src / "silent.wav", np.zeros(1600), 16000)
    (src / "broken.wav").write_bytes(b"RIFFxxxx")
    before = _tree_hash(src)
    out = prepare_noise_csv(src, tmp_path / "out" / "noise.csv")
    rows = {r["ID"]: r for r in _rows(out)}
    assert set(rows) == {"stereo48k", "ok"}
    info = sf.info(rows["stereo48k"]["wav"])
    assert (info.samplerate, info.channels, info.frames) == (16000, 1, 16000)
    assert rows["ok"]["wav"] == str((src / "ok.wav").resolve())  # already fine: listed in place
    assert "broken.wav" in (tmp_path / "out" / "skipped_noise.txt").read_text()
    assert _tree_hash(src) == before
    with pytest.raises(FileNotFoundError):
        prepare_noise_csv(tmp_path / "nowhere", tmp_path / "x.csv")
    with pytest.raises(ValueError, match="inside the data folder"):
        prepare_noise_csv(src, src / "noise.csv")


@pytest.mark.shared_data
def test_real_rirs_become_16k_mono_copies(shared_data, tmp_path):
    """The measured RIRs (44.1-96 kHz, some stereo) are listed as 16 kHz mono copies keeping duration."""
    src = sorted((shared_data / "rirs").glob("*.wav"))
    before = {p: hashlib.sha1(p.read_bytes()).hexdigest() for p in src}
    out = prepare_rir_csv(shared_data / "rirs", tmp_path / "rirs.csv")
    rows = _rows(out)
    assert len(rows) == len(src)
    for r in rows:
        info = sf.info(r["wav"])
        assert (info.samplerate, info.channels) == (16000, 1)
        orig = sf.info(str(shared_data / "rirs" / f"{r['ID']}.wav"))
        assert abs(info.duration - orig.duration) < 1e-3
    assert before == {p: hashlib.sha1(p.read_bytes()).hexdigest() for p in src}


def test_voxceleb_several_data_folders(vox_tree, tmp_path):
    """A comma-separated data_folder (Vox1 + Vox2) lists both trees; trials resolve in either."""
    other = tmp_path / "vox2" / "wav" / "b1" / "s9"
    other.mkdir(parents=True)
    sf.write(other / "00001.wav", _tone(3.0), 16000)
    out = prepare_voxceleb(f"{vox_tree},{tmp_path / 'vox2'}", tmp_path / "csv", split_ratio=(100, 0))
    ids = [r["ID"] for r in _rows(out["train"])]
    assert "b1--s9--00001_0.0_3.0" in ids and "a1--s1--00001_0.0_3.0" in ids
    with pytest.raises(FileNotFoundError, match="missing"):
        prepare_voxceleb(f"{vox_tree},{tmp_path / 'missing'}", tmp_path / "csv2")
