"""Shared pytest fixtures.

* ``shared_data``: the real development recordings in ../shared/data (or
  ``$DYNCP_SHARED_DATA``); tests that need them skip with a reason where absent.
* ``tiny_corpus``: the embedded synthetic corpus, built once per session.
"""

import os
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
