"""The C-kernel cache is private: a library another user could have planted is never loaded (issue 18)."""

import os
import shutil
import stat

import pytest

from speechbrain_dyncp import fastpath

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the kernel")


@pytest.fixture()
def fresh(monkeypatch, tmp_path):
    """An empty kernel cache under tmp_path and no kernel loaded in this process yet."""
    monkeypatch.setattr(fastpath, "_LIBS", {})
    cache = tmp_path / "cache"
    monkeypatch.setenv("DYNCP_KERNEL_CACHE", str(cache))
    return cache


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_default_cache_is_per_user_not_a_shared_temp_path(monkeypatch, tmp_path):
    monkeypatch.delenv("DYNCP_KERNEL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = fastpath.kernel_cache_dir()
    assert cache == tmp_path / "xdg" / "speechbrain_dyncp"
    assert _mode(cache) == 0o700


def test_built_kernel_and_its_folder_are_private(fresh):
    assert fastpath._compile("float") is not None
    (so,) = fresh.glob("dyncp_frame_float_*.so")
    assert _mode(fresh) == 0o700 and _mode(so) & 0o077 == 0


def _assert_refused(monkeypatch, match):
    """A fresh load attempt warns with ``match`` and never hands the library to the loader."""
    monkeypatch.setattr(fastpath, "_LIBS", {})
    loaded = []
    monkeypatch.setattr(fastpath.ctypes, "CDLL", lambda path: loaded.append(path))
    with pytest.warns(RuntimeWarning, match=match):
        assert fastpath._compile("float") is None
    assert loaded == []


def test_library_in_a_world_writable_folder_is_not_loaded(fresh, monkeypatch):
    assert fastpath._compile("float") is not None  # a genuine kernel, then the folder is opened up
    os.chmod(fresh, 0o777)
    _assert_refused(monkeypatch, r"not loading the C kernel: .*cache can be written by other users")


def test_planted_library_of_another_owner_is_not_loaded(fresh, monkeypatch):
    if os.getuid() != 0:
        pytest.skip("changing a file's owner needs root")
    assert fastpath._compile("float") is not None
    (so,) = fresh.glob("dyncp_frame_float_*.so")
    os.chown(so, 4242, -1)  # as if another user had put it there first
    _assert_refused(monkeypatch, r"dyncp_frame_float_.*\.so is owned by uid 4242")
