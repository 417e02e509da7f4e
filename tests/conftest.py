"""Shared pytest fixtures.

* ``shared_data``: the real development recordings in ../shared/data (or
  ``$DYNCP_SHARED_DATA``); tests that need them skip with a reason where absent.
* ``tiny_corpus``: the embedded synthetic corpus, built once per session.
* ``mini_shared``: a read-only miniature of ../shared/data (real files, real layout,
  one corrupt file) for the real-speech preparation and recipe; ``digest`` hashes a folder.
"""

import csv
import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    # The tests run many small tensor ops, where intra-op threads cost more than they
    # give (measured 5-10x CPU on a busy 2-core machine); recipe subprocesses keep
    # their own defaults.
    torch.set_num_threads(1)


def load_recipe(relative_path: str):
    """Import a recipe script (e.g. ``recipes/DynCP/train.py``) under a name unique to its path.

    Recipes share file names (``train.py``), so importing them through ``sys.path``
    would hand a test whichever one was imported first.
    """
    import importlib.util

    path = REPO_ROOT / relative_path
    name = "recipe_" + relative_path.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def recipe_module():
    """:func:`load_recipe` as a fixture: ``recipe_module("recipes/DynCP/train.py")``."""
    return load_recipe


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (recipes/ and hparams/ live there)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test where it is absent."""
    path = Path(os.environ.get("DYNCP_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"real development recordings not found at {path} (set DYNCP_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """The embedded corpus at its smallest preset, built once per test session."""
    from speechbrain_dyncp.data.synth import build_corpus

    root = tmp_path_factory.mktemp("tiny_corpus")
    return build_corpus(root, preset="tiny", seed=0)


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def tree_digest(root: Path) -> str:
    """Names, sizes and contents of every file under ``root``."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="session")
def digest():
    """:func:`tree_digest` as a fixture: ``digest(folder)`` changes when anything under it does."""
    return tree_digest


@pytest.fixture(scope="session")
def mini_shared(shared_data, tmp_path_factory) -> Path:
    """24 speechocean762 speakers (2 sentences each), 3 noises, 3 rooms, one corrupt file."""
    root = tmp_path_factory.mktemp("mini_shared")
    so_rows = _csv_rows(shared_data / "speechocean762" / "utt2spk.csv")
    speakers = sorted({r["speaker"] for r in so_rows})[:24]
    kept = [r for r in so_rows if r["speaker"] in speakers]
    kept = [r for i, r in enumerate(kept) if sum(k["speaker"] == r["speaker"] for k in kept[:i]) < 2]
    for r in kept:
        (root / "speechocean762" / r["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_data / "speechocean762" / r["path"], root / "speechocean762" / r["path"])
    corrupt = dict(kept[0], path=kept[0]["path"].replace(".flac", "_bad.flac"))
    (root / "speechocean762" / corrupt["path"]).write_bytes(b"not audio at all")
    with open(root / "speechocean762" / "utt2spk.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(so_rows[0]))
        writer.writeheader()
        writer.writerows(kept + [corrupt])
    (root / "noise").mkdir()
    noise_rows = _csv_rows(shared_data / "noise" / "labels.csv")[:3]
    for r in noise_rows:
        (root / "noise" / r["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_data / "noise" / r["path"], root / "noise" / r["path"])
    with open(root / "noise" / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(noise_rows[0]))
        writer.writeheader()
        writer.writerows(noise_rows)
    (root / "rirs").mkdir()
    for name in ("seminar_room_clap.wav", "openair_large_church.wav", "openair_pymixconsole_small_room.wav"):
        shutil.copy(shared_data / "rirs" / name, root / "rirs" / name)
    for p in root.rglob("*"):
        p.chmod(0o555 if p.is_dir() else 0o444)  # written into = a test failure, not a silent change
    return root
