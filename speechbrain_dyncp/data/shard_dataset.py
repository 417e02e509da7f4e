"""Reading WebDataset shards of :mod:`speechbrain_dyncp.data.shards`: :class:`ShardDataset`.

Each sample's file columns become in-memory files (``io.BytesIO`` named after
shard, row and original path) and the recipe's own SpeechBrain
``DataPipeline`` runs on the row, so one set of dynamic items serves CSV
manifests and shards.

Authors
 * speechbrain-dyncp contributors
"""

import io
import json
import math
import os
import random
from pathlib import Path
from typing import Iterable

import webdataset as wds
from speechbrain.utils.data_pipeline import DataPipeline
from torch.utils.data import IterableDataset, get_worker_info

INDEX_NAME = "index.json"


def _in_memory_file(data: bytes, name: str) -> io.BytesIO:
    buf = io.BytesIO(data)
    buf.name = name  # read_audio / error messages name the shard and row
    return buf


class ShardDataset(IterableDataset):
    """Manifest rows from shards, run through a SpeechBrain ``DataPipeline``.

    Under DDP (``RANK``/``WORLD_SIZE`` set) and with DataLoader workers, rank
    r of W takes global items r, r+W, ... of the stream padded by repeating its
    first items to a multiple of W: the same assignment as
    ``DistributedSampler(shuffle=False)``, so every rank yields the same number
    of items (unequal counts hang DDP).

    Arguments
    ---------
    shard_dir : path-like
        Folder written by :func:`write_shards`.
    dynamic_items : list
        SpeechBrain dynamic items (``@takes/@provides`` functions), as for
        ``DynamicItemDataset``.
    output_keys : list of str
        Keys each item returns (``"id"`` is the row ID).
    shuffle : bool
        Shuffle shard order and samples (buffer of ``shuffle_buffer``), seeded
        by ``seed + epoch``; the epoch advances at every pass.
    seed : int
        Base seed of the shuffling.
    shuffle_buffer : int
        Samples held for the shuffle.
    """

    def __init__(self, shard_dir, dynamic_items=(), output_keys=("id",), shuffle=False, seed=0, shuffle_buffer=1000):
        super().__init__()
        self.shard_dir = Path(shard_dir)
        index_path = self.shard_dir / INDEX_NAME
        if not index_path.is_file():
            raise FileNotFoundError(f"No shard index {index_path}; write shards with write_shards() first")
        self.index = json.loads(index_path.read_text(encoding="utf-8"))
        missing = [s["file"] for s in self.index["shards"] if not (self.shard_dir / s["file"]).is_file()]
        if missing:
            raise FileNotFoundError(f"Shard folder {self.shard_dir} misses {missing}")
        # The pipeline DynamicItemDataset would build over the same columns.
        self.pipeline = DataPipeline(["id", *self.index["columns"]], list(dynamic_items), list(output_keys))
        self.shuffle, self.seed, self.shuffle_buffer, self.epoch = shuffle, seed, shuffle_buffer, 0

    def __len__(self):
        """Items this rank yields per pass."""
        world = int(os.environ.get("WORLD_SIZE", 1))
        return math.ceil(self.index["num_samples"] / world)

    def set_epoch(self, epoch: int):
        """Select the shuffle of ``epoch`` (DistributedSampler-style)."""
        self.epoch = epoch

    def _rows(self) -> Iterable[dict]:
        files = [s["file"] for s in self.index["shards"]]
        rng = random.Random(self.seed + self.epoch)
        if self.shuffle:
            rng.shuffle(files)
        urls = [{"url": str(self.shard_dir / f)} for f in files]
        buffer = []
        for sample in wds.tarfile_samples(urls):
            row = json.loads(sample["row.json"])
            where = f"{Path(sample['__url__']).name}:{row['ID']}"
            for col in self.index["file_columns"]:
                key = next((k for k in sample if k.startswith(col + ".")), None)
                if key is not None:
                    row[col] = _in_memory_file(sample[key], f"{where}:{col} ({row[col]})")
            if not self.shuffle:
                yield row
                continue
            buffer.append(row)
            if len(buffer) >= self.shuffle_buffer:
                yield buffer.pop(rng.randrange(len(buffer)))
        rng.shuffle(buffer)
        yield from buffer

    def __iter__(self):
        world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
        info = get_worker_info()
        n_workers, worker = (info.num_workers, info.id) if info else (1, 0)
        n = self.index["num_samples"]
        total = math.ceil(n / world) * world
        head = []  # the first (total - n) items pad the end, as DistributedSampler does
        g = 0
        for g, row in enumerate(self._rows()):
            if g < total - n:
                head.append(row)
            if g % world == rank and (g // world) % n_workers == worker:
                yield self._compute(row)
        for k, row in enumerate(head, start=n):
            if k % world == rank and (k // world) % n_workers == worker:
                yield self._compute(row)
        self.epoch += 1

    def _compute(self, row: dict) -> dict:
        data = {k: v for k, v in row.items() if k != "ID"}
        for v in data.values():
            if isinstance(v, io.BytesIO):
                v.seek(0)
        return self.pipeline.compute_outputs({"id": row["ID"], **data})
