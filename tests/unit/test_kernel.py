"""The C kernel is built at install time and only loaded at run time; without it the NumPy path serves.

(The kernel used to be compiled on first use into a per-user cache; the checks of that cache's
permissions left with the run-time compiler: the kernel now lives in the installed package,
as trusted as its Python files.)
"""

from pathlib import Path

import numpy as np
import pytest

from speechbrain_dyncp.lobes.enhancer import dyncp_small
from speechbrain_dyncp.streaming import FastStreamer, kernel

STREAMING = Path(kernel.__file__).parent


@pytest.fixture()
def fresh(monkeypatch):
    """No kernel loaded in this process yet."""
    monkeypatch.setattr(kernel, "_LIBS", {})


@pytest.fixture(scope="module")
def model():
    return dyncp_small(channels=8, hidden=16, gate_hidden=4).eval()


def test_nothing_compiles_at_run_time():
    """No streaming module starts a compiler (or any process)."""
    for path in STREAMING.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "subprocess" not in text and "gcc" not in text, path.name


def test_kernels_load_from_the_installed_package(fresh):
    if kernel.library_path("float") is None:
        pytest.skip("the C kernel was not built at install (no compiler)")
    for real in ("float", "double"):
        path = kernel.library_path(real)
        assert path.parent == STREAMING and path.name.startswith(f"_dyncp_frame_{real}")
        assert kernel.load(real) is not None
    assert kernel.c_available()


def test_without_a_built_kernel_the_numpy_path_serves(fresh, monkeypatch, model):
    monkeypatch.setattr(kernel, "library_path", lambda real: None)
    assert not kernel.c_available()
    with pytest.raises(RuntimeError, match="not built at install time"):
        FastStreamer(model, backend="c")
    x = np.random.default_rng(0).standard_normal(2000).astype(np.float32)
    fs = FastStreamer(model, backend="numpy")
    assert len(np.concatenate([fs.process(x), fs.finish()])) == len(x) + fs.latency


def test_a_kernel_of_another_source_version_is_refused(fresh, monkeypatch, tmp_path):
    """An editable install whose dyncp_frame.c changed since the build: its structs may differ."""
    if kernel.library_path("float") is None:
        pytest.skip("the C kernel was not built at install (no compiler)")
    changed = tmp_path / "dyncp_frame.c"
    changed.write_text("/* another version */\n")
    monkeypatch.setattr(kernel, "_SRC", changed)
    with pytest.warns(RuntimeWarning, match="built from another version of dyncp_frame.c"):
        assert kernel.load("float") is None
