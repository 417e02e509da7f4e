"""WebDataset tar shards from prepared CSV manifests, and a loader for them.

A shard sample holds one manifest row: ``row.json`` (every column, ``ID``
included) plus the raw bytes of every file the row points at (``noisy_wav``,
``clean_wav``, ``labels`` npz, ...), stored as-is (never re-encoded, so a
sample decodes to exactly the samples the CSV path reads). Reading replaces
each file column by an in-memory file (``io.BytesIO`` with a ``name`` naming
shard, row and original path) and runs the *recipe's own* SpeechBrain
``DataPipeline`` on it: ``read_audio`` and ``np.load`` take a path or a file
object, so the same dynamic items serve both formats and a YAML switch
``data_format: csv|shards`` selects the source (:func:`make_dataset`).

Command::

    python -m speechbrain_dyncp.data.shards --csv train.csv --out shards/train \\
        --max-count 2000 --max-size 1e9

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
import webdataset as wds
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataio import load_data_csv
from speechbrain.dataio.dataset import DynamicItemDataset
from torch.utils.data import IterableDataset

from speechbrain_dyncp.data.audio import AUDIO_EXTENSIONS
from speechbrain_dyncp.data.shard_dataset import INDEX_NAME, ShardDataset  # noqa: F401 (ShardDataset re-exported)

logger = logging.getLogger(__name__)

FILE_EXTENSIONS = AUDIO_EXTENSIONS + (".npz", ".npy")
FORMAT_VERSION = 1


def _file_columns(rows: Dict[str, dict]) -> List[str]:
    """Columns whose non-empty values are all file paths with a known extension."""
    first = next(iter(rows.values()))
    cols = []
    for col in first:
        values = [str(r[col]) for r in rows.values() if str(r[col]).strip()]
        if values and all(Path(v).suffix.lower() in FILE_EXTENSIONS for v in values):
            cols.append(col)
    return cols


def _fingerprint(csv_path: Path, params: dict) -> str:
    digest = hashlib.sha256(csv_path.read_bytes())
    digest.update(json.dumps(params, sort_keys=True).encode())
    return digest.hexdigest()


def write_shards(
    csv_path,
    out_dir,
    max_count: int = 1000,
    max_size: float = 1e9,
    file_columns: Optional[Sequence[str]] = None,
    replacements: Optional[dict] = None,
    on_missing: str = "error",
) -> Path:
    """Write the rows of a manifest as WebDataset tar shards, in manifest order.

    Arguments
    ---------
    csv_path : path-like
        A SpeechBrain CSV manifest (``ID`` column first).
    out_dir : path-like
        Output folder: ``shard-000000.tar``, ... and ``index.json``.
    max_count : int
        Most samples per shard.
    max_size : float
        Most bytes per shard (a single larger sample still gets its own shard).
    file_columns : list of str, optional
        Columns holding file paths to embed; default: every column whose
        non-empty values end in an audio / ``.npz`` / ``.npy`` extension.
    replacements : dict, optional
        ``$key`` substitutions for the CSV (as in ``DynamicItemDataset.from_csv``).
    on_missing : {"error", "skip"}
        A row pointing at a missing file raises ``FileNotFoundError`` naming the
        row and file, or is left out and listed under ``skipped`` in the index.

    Returns
    -------
    pathlib.Path
        ``index.json``. Calling again with the same inputs writes nothing;
        a folder holding shards of other inputs raises ``FileExistsError``.
        Inputs are only read.

    Example
    -------
    >>> import soundfile as sf, numpy as np
    >>> d = getfixture("tmp_path")
    >>> sf.write(d / "a.wav", np.zeros(160), 16000)
    >>> _ = (d / "m.csv").write_text("ID,duration,wav,spk\\nu.1,0.01,$root/a.wav,s1\\n")
    >>> idx = write_shards(d / "m.csv", d / "sh", replacements={"root": str(d)})
    >>> json.loads(idx.read_text())["num_samples"]
    1
    """
    if on_missing not in ("error", "skip"):
        raise ValueError(f"on_missing must be 'error' or 'skip', got {on_missing!r}")
    csv_path, out_dir = Path(csv_path), Path(out_dir)
    if not csv_path.is_file():
        raise FileNotFoundError(f"Manifest not found: {csv_path}")
    rows = load_data_csv(str(csv_path), replacements=replacements or {})
    if not rows:
        raise ValueError(f"Manifest {csv_path} has no rows")
    cols = list(file_columns) if file_columns is not None else _file_columns(rows)
    params = {"max_count": max_count, "max_size": max_size, "file_columns": cols,
              "replacements": replacements or {}, "on_missing": on_missing, "version": FORMAT_VERSION}
    fingerprint = _fingerprint(csv_path, params)
    index_path = out_dir / INDEX_NAME
    if index_path.exists():
        old = json.loads(index_path.read_text(encoding="utf-8"))
        if old.get("fingerprint") == fingerprint and all((out_dir / s["file"]).exists() for s in old["shards"]):
            logger.info("Shards in %s are up to date; nothing written", out_dir)
            return index_path
        raise FileExistsError(
            f"{out_dir} already holds shards of other inputs ({old.get('source_csv')}); "
            "choose another --out folder or remove it yourself"
        )
    if out_dir.exists() and any(out_dir.glob("shard-*.tar")):
        raise FileExistsError(f"{out_dir} holds shard files but no {INDEX_NAME}; refusing to overwrite them")
    out_dir.mkdir(parents=True, exist_ok=True)

    shards, skipped, writer, count, size = [], [], None, 0, 0
    for n, (row_id, row) in enumerate(rows.items()):
        sample = {"__key__": f"{n:09d}", "row.json": json.dumps({"ID": row_id, **row}).encode()}
        try:
            for col in cols:
                if str(row[col]).strip():
                    sample[f"{col}{Path(row[col]).suffix.lower()}"] = _read_bytes(row[col], row_id, col)
        except FileNotFoundError as exc:
            if on_missing == "error":
                raise
            logger.warning("%s; row left out of the shards", exc)
            skipped.append({"ID": row_id, "reason": str(exc)})
            continue
        nbytes = sum(len(v) for k, v in sample.items() if k != "__key__")
        if writer is None or count >= max_count or (count > 0 and size + nbytes > max_size):
            if writer is not None:
                writer.close()
            name = f"shard-{len(shards):06d}.tar"
            # mtime fixed: the same inputs give byte-identical shards.
            writer = wds.TarWriter(str(out_dir / (name + ".part")), encoder=False, mtime=0.0)
            shards.append({"file": name, "count": 0})
            count, size = 0, 0
        writer.write(sample)
        count, size = count + 1, size + nbytes
        shards[-1]["count"] = count
    if writer is not None:
        writer.close()
    for s in shards:  # publish only complete shards
        os.replace(out_dir / (s["file"] + ".part"), out_dir / s["file"])
    index = {"source_csv": str(csv_path.resolve()), "fingerprint": fingerprint, "file_columns": cols,
             "columns": list(next(iter(rows.values()))),
             "num_samples": sum(s["count"] for s in shards), "shards": shards, "skipped": skipped}
    tmp = index_path.with_name(INDEX_NAME + ".part")
    tmp.write_text(json.dumps(index, indent=1), encoding="utf-8")
    os.replace(tmp, index_path)
    return index_path


def _read_bytes(path: str, row_id: str, col: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise FileNotFoundError(f"Row {row_id!r}: column {col!r} points at a missing file {path}") from None


def make_dataset(
    data_format: str,
    csv_path=None,
    shard_dir=None,
    dynamic_items=(),
    output_keys=("id",),
    replacements=None,
    shuffle: bool = False,
    seed: int = 0,
):
    """The one switch between CSV manifests and shards (``data_format: csv|shards``).

    Arguments
    ---------
    data_format : {"csv", "shards"}
        Source of the rows.
    csv_path : path-like
        Manifest (``csv``).
    shard_dir : path-like
        Shard folder (``shards``).
    dynamic_items, output_keys
        The recipe's pipeline; identical for both formats.
    replacements : dict, optional
        ``$key`` substitutions in the CSV.
    shuffle, seed
        Shards only: shuffling happens in the dataset (an ``IterableDataset``
        takes no sampler); pass ``shuffle=False`` to the DataLoader
        (:func:`loader_kwargs_for` does).

    Returns
    -------
    DynamicItemDataset or ShardDataset

    Example
    -------
    >>> make_dataset("tfrecord")
    Traceback (most recent call last):
    ...
    ValueError: data_format must be 'csv' or 'shards', got 'tfrecord'
    """
    if data_format == "csv":
        if csv_path is None or not Path(csv_path).is_file():
            raise FileNotFoundError(f"data_format=csv needs an existing manifest, got {csv_path}")
        return DynamicItemDataset.from_csv(
            str(csv_path), replacements=replacements or {}, dynamic_items=list(dynamic_items),
            output_keys=list(output_keys),
        )
    if data_format == "shards":
        if shard_dir is None:
            raise FileNotFoundError("data_format=shards needs a shard folder (shard_dir)")
        return ShardDataset(shard_dir, dynamic_items, output_keys, shuffle=shuffle, seed=seed)
    raise ValueError(f"data_format must be 'csv' or 'shards', got {data_format!r}")


def loader_kwargs_for(dataset, loader_kwargs: dict) -> dict:
    """DataLoader options valid for ``dataset``.

    For shards: no ``shuffle`` (the dataset shuffles) and ``PaddedBatch``
    collation, which SpeechBrain sets only for ``DynamicItemDataset``.

    Example
    -------
    >>> loader_kwargs_for(torch.utils.data.TensorDataset(torch.zeros(1)), {"shuffle": True})
    {'shuffle': True}
    """
    kwargs = dict(loader_kwargs)
    if isinstance(dataset, IterableDataset):
        kwargs.pop("shuffle", None)
        kwargs.setdefault("collate_fn", PaddedBatch)
    return kwargs


def main(argv=None) -> int:
    """``python -m speechbrain_dyncp.data.shards --csv M.csv --out DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", required=True, help="prepared SpeechBrain CSV manifest")
    parser.add_argument("--out", required=True, help="output folder for shard-*.tar + index.json")
    parser.add_argument("--max-count", type=int, default=1000, help="most samples per shard")
    parser.add_argument("--max-size", type=float, default=1e9, help="most bytes per shard")
    parser.add_argument("--file-columns", nargs="*", default=None, help="columns to embed (default: detected)")
    parser.add_argument("--replace", nargs="*", default=[], metavar="KEY=VALUE", help="$KEY substitutions")
    parser.add_argument("--skip-missing", action="store_true", help="leave out rows with missing files")
    args = parser.parse_args(argv)
    repl = dict(kv.split("=", 1) for kv in args.replace)
    idx = write_shards(args.csv, args.out, args.max_count, args.max_size, args.file_columns, repl,
                       "skip" if args.skip_missing else "error")
    info = json.loads(idx.read_text(encoding="utf-8"))
    print(f"{info['num_samples']} samples in {len(info['shards'])} shards -> {idx.parent}"
          f" ({len(info['skipped'])} rows skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
