"""WebDataset shards give the same batches as the CSV manifests they come from."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.utils.data_pipeline import provides, takes
from torch.utils.data import DistributedSampler

from speechbrain_dyncp.data.audio import AudioError, read_audio
from speechbrain_dyncp.data.shards import ShardDataset, loader_kwargs_for, main, make_dataset, write_shards


@takes("noisy_wav", "clean_wav")
@provides("noisy_sig", "clean_sig")
def audio_pipeline(noisy_wav, clean_wav):
    yield read_audio(noisy_wav, sample_rate=16000)
    yield read_audio(clean_wav, sample_rate=16000)


@takes("labels", "snr")
@provides("vad", "snr_t")
def label_pipeline(labels, snr):
    yield torch.from_numpy(np.load(labels)["vad"]) if labels else torch.zeros(1, dtype=torch.uint8)
    yield torch.tensor([float(snr)])


ITEMS = dict(dynamic_items=[audio_pipeline, label_pipeline], output_keys=["id", "noisy_sig", "clean_sig", "vad", "snr_t"])


@pytest.fixture
def manifest(tmp_path):
    """Seven rows: 16 kHz wav, 8 kHz stereo flac (resampled and downmixed on read), npz labels, one empty label."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(7):
        n = int(rng.integers(400, 1600))
        noisy, clean = tmp_path / "a" / f"n{i}.wav", tmp_path / "a" / f"c{i}.flac"
        noisy.parent.mkdir(exist_ok=True)
        sf.write(noisy, rng.uniform(-0.5, 0.5, n), 16000)
        sf.write(clean, rng.uniform(-0.5, 0.5, (n // 2, 2)), 8000)
        labels = ""
        if i != 3:
            labels = str(tmp_path / "a" / f"l{i}.npz")
            np.savez(labels, vad=rng.integers(0, 2, 1 + n // 256).astype(np.uint8))
        rows.append({"ID": f"utt.{i}/x", "duration": n / 16000, "noisy_wav": str(noisy), "clean_wav": str(clean),
                     "snr": f"{rng.normal():.3f}", "labels": labels})
    path = tmp_path / "train.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _batches(dataset, batch_size=3):
    return list(make_dataloader(dataset, **loader_kwargs_for(dataset, {"batch_size": batch_size, "num_workers": 0})))


def _assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.id == y.id
        for key in ("noisy_sig", "clean_sig", "vad", "snr_t"):
            assert torch.equal(getattr(x, key).data, getattr(y, key).data), key
            assert torch.equal(getattr(x, key).lengths, getattr(y, key).lengths), key


def test_shards_and_csv_give_the_same_batches(manifest, tmp_path):
    write_shards(manifest, tmp_path / "sh", max_count=3)
    index = json.loads((tmp_path / "sh" / "index.json").read_text())
    assert [s["count"] for s in index["shards"]] == [3, 3, 1]
    assert sorted(index["file_columns"]) == ["clean_wav", "labels", "noisy_wav"]
    from_csv = _batches(make_dataset("csv", csv_path=manifest, **ITEMS))
    from_shards = _batches(make_dataset("shards", shard_dir=tmp_path / "sh", **ITEMS))
    _assert_same_batches(from_csv, from_shards)
    assert from_csv[0].id == ["utt.0/x", "utt.1/x", "utt.2/x"]  # manifest order, dotted IDs intact
    assert from_shards[1].clean_sig.data.abs().sum() > 0


@pytest.mark.parametrize("world", [2, 3])
def test_ddp_split_matches_distributed_sampler(manifest, tmp_path, monkeypatch, world):
    """Each rank gets DistributedSampler(shuffle=False)'s items, padded to equal counts."""
    write_shards(manifest, tmp_path / "sh", max_count=2)
    csv_ds = make_dataset("csv", csv_path=manifest, **ITEMS)
    for rank in range(world):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world))
        shard_ids = [item["id"] for item in make_dataset("shards", shard_dir=tmp_path / "sh", **ITEMS)]
        sampler = DistributedSampler(csv_ds, num_replicas=world, rank=rank, shuffle=False)
        assert shard_ids == [csv_ds[i]["id"] for i in sampler]


def test_shuffled_shards_cover_every_row_once_and_change_per_epoch(manifest, tmp_path):
    write_shards(manifest, tmp_path / "sh", max_count=2)
    ds = ShardDataset(tmp_path / "sh", **ITEMS, shuffle=True, seed=5, shuffle_buffer=3)
    first, second = [x["id"] for x in ds], [x["id"] for x in ds]
    assert sorted(first) == sorted(second) == [f"utt.{i}/x" for i in range(7)]
    assert first != second


def test_write_is_idempotent_and_never_overwrites(manifest, tmp_path):
    out = tmp_path / "sh"
    idx = write_shards(manifest, out, max_count=4)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(["--csv", str(manifest), "--out", str(out), "--max-count", "4"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    other = tmp_path / "other.csv"
    other.write_text(manifest.read_text().replace("utt.6", "utt.9"))
    with pytest.raises(FileExistsError, match="already holds shards"):
        write_shards(other, out, max_count=4)
    assert idx.exists() and manifest.exists() and all(p.exists() for p in (tmp_path / "a").iterdir())


def test_missing_file_names_the_row(manifest, tmp_path):
    (tmp_path / "a" / "c4.flac").unlink()
    with pytest.raises(FileNotFoundError, match=r"'utt.4/x'.*clean_wav.*c4.flac"):
        write_shards(manifest, tmp_path / "sh")
    assert not (tmp_path / "sh" / "index.json").exists()
    write_shards(manifest, tmp_path / "sh2", on_missing="skip")
    ids = [x["id"] for x in make_dataset("shards", shard_dir=tmp_path / "sh2", **ITEMS)]
    assert "utt.4/x" not in ids and len(ids) == 6
    assert json.loads((tmp_path / "sh2" / "index.json").read_text())["skipped"][0]["ID"] == "utt.4/x"


def test_corrupt_audio_in_a_shard_names_shard_and_row(manifest, tmp_path):
    (tmp_path / "a" / "n2.wav").write_bytes(b"RIFF\x00\x00garbage")
    write_shards(manifest, tmp_path / "sh", max_count=3)
    items = iter(make_dataset("shards", shard_dir=tmp_path / "sh", **ITEMS))
    next(items), next(items)
    with pytest.raises(AudioError, match=r"shard-000000.tar:utt.2/x:noisy_wav"):
        next(items)
