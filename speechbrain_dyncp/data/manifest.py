"""Shared plumbing of the data-preparation functions: CSV writing, skip logic,
bad-file reports, the "never write into the source" guard and split fingerprints.

Authors
 * speechbrain-dyncp contributors
"""

import csv
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

logger = logging.getLogger(__name__)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Write a CSV atomically (temp file + rename); returns the row count.

    Example
    -------
    >>> p = getfixture("tmp_path") / "a.csv"
    >>> write_csv(p, ["ID", "x"], [("u1", 1.5)])
    1
    >>> p.read_text().splitlines()
    ['ID,x', 'u1,1.5']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    n = 0
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            n += 1
    os.replace(tmp, path)
    return n


def read_csv(path: Path) -> List[Dict[str, str]]:
    """Rows of a CSV as dicts."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _with_folder(save_folder: Path, options: dict) -> dict:
    # manifests hold absolute paths: a moved or copied folder must be prepared again, not trusted (its rows
    # would point at the old place, or at nothing)
    return {**options, "save_folder": str(Path(save_folder).resolve())}


def already_done(save_folder: Path, opts_name: str, options: dict, outputs: Sequence[Path]) -> bool:
    """True when every output exists and the saved options equal ``options`` (and the folder has not moved)."""
    opts_file = Path(save_folder) / opts_name
    if not opts_file.exists() or not all(Path(p).exists() for p in outputs):
        return False
    try:
        return json.loads(opts_file.read_text()) == json.loads(json.dumps(_with_folder(save_folder, options)))
    except json.JSONDecodeError:
        return False


def save_options(save_folder: Path, opts_name: str, options: dict) -> None:
    """Record the options and the folder's own path (written last, so a crash mid-prep is redone)."""
    (Path(save_folder) / opts_name).write_text(json.dumps(_with_folder(save_folder, options), indent=2,
                                                          sort_keys=True))


def check_not_inside(save_folder: Path, sources: Sequence[Path]) -> None:
    """Refuse a ``save_folder`` inside (or equal to) a source folder: sources stay read-only.

    Example
    -------
    >>> check_not_inside(Path("/data/vox/out"), [Path("/data/vox")])
    Traceback (most recent call last):
    ...
    ValueError: save_folder /data/vox/out is inside the data folder /data/vox; ...
    """
    save = Path(save_folder).resolve()
    for src in sources:
        src = Path(src).resolve()
        if save == src or src in save.parents:
            raise ValueError(f"save_folder {save} is inside the data folder {src}; "
                             "preparation never writes into the data, choose another save_folder.")


def report_skipped(save_folder: Path, skipped: List[tuple], name: str = "skipped.txt") -> Path:
    """Write ``<file>\\t<reason>`` lines for every unusable input (an empty file if none)."""
    path = Path(save_folder) / name
    path.write_text("".join(f"{f}\t{why}\n" for f, why in skipped))
    if skipped:
        logger.warning("%d unusable file(s) skipped; see %s", len(skipped), path)
    return path


def manifest_digest(path: Path, columns: Sequence[str] = ("noisy_wav", "clean_wav")) -> str:
    """Fingerprint of a manifest's audio: SHA-256 (first 16 hex digits) over its IDs and the bytes of the
    files in ``columns``, in ID order. Benchmarks store it beside their figures, so a figure names the exact
    mixtures it was measured on (two preparations of the same split give the same digest).

    Example
    -------
    >>> d = getfixture("tmp_path")
    >>> _ = (d / "a.wav").write_bytes(b"RIFF1"), (d / "b.wav").write_bytes(b"RIFF2")
    >>> _ = write_csv(d / "m.csv", ["ID", "noisy_wav"], [("u2", d / "b.wav"), ("u1", d / "a.wav")])
    >>> before = manifest_digest(d / "m.csv", ("noisy_wav",))
    >>> _ = (d / "a.wav").write_bytes(b"RIFF3")
    >>> len(before), before == manifest_digest(d / "m.csv", ("noisy_wav",))
    (16, False)
    """
    digest = hashlib.sha256()
    for row in sorted(read_csv(Path(path)), key=lambda r: r["ID"]):
        digest.update(row["ID"].encode())
        for column in columns:
            digest.update(Path(row[column]).read_bytes())
    return digest.hexdigest()[:16]
