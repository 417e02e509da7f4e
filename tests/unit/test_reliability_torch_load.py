"""Checkpoints are read weights-only: a planted pickle runs no code (issue 18).

torch >= 2.6 defaults to ``weights_only=True``, but ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``
flips that default for every call that does not pass it: the tests set it, so only
explicit ``weights_only=True`` passes them.
"""

import os
import pickle

import numpy as np
import pytest
import torch
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_dyncp.checkpoints import load_with_arrays
from speechbrain_dyncp.export import export_experiment, write_model_folder
from speechbrain_dyncp.inference.strict import ModelFolderError
from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer
from speechbrain_dyncp.losses.aam import MarginScheduler

CFG = dict(channels=8, hidden=8, n_stacks=1, n_blocks=2, gate_hidden=4)


class Planted:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(autouse=True)
def unsafe_default(monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


def _planted(path, marker, **extra):
    torch.save({"x": Planted(marker), **extra}, path)
    return path


def test_masks_cache_loads_arrays_but_runs_no_code(tmp_path):
    good = tmp_path / "masks.pt"
    torch.save({"key": {"ids": ["a"]}, "utts": [{"gates": np.ones((2, 3), np.uint8), "snr": 5.0}]}, good)
    assert load_with_arrays(good)["utts"][0]["gates"].sum() == 6
    marker = tmp_path / "ran"
    with pytest.raises(pickle.UnpicklingError):
        load_with_arrays(_planted(tmp_path / "evil.pt", marker))
    assert not marker.exists()


def test_margin_scheduler_state_runs_no_code(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(pickle.UnpicklingError):
        MarginScheduler.__new__(MarginScheduler)._load(_planted(tmp_path / "s.ckpt", marker), False)
    assert not marker.exists()


def test_export_of_a_planted_checkpoint_runs_no_code(tmp_path, repo_root):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "hyperparams.yaml").write_text(
        "enhancer: !new:speechbrain_dyncp.lobes.enhancer.DynCPEnhancer\n"
        + "".join(f"    {k}: {v}\n" for k, v in CFG.items()))
    ckpt = Checkpointer(exp / "save", {"enhancer": DynCPEnhancer(**CFG)}).save_checkpoint()
    marker = tmp_path / "ran"
    _planted(ckpt.path / "enhancer.ckpt", marker)
    with pytest.raises(ModelFolderError, match=r"enhancer\.ckpt: cannot load it"):
        export_experiment(exp, tmp_path / "model")
    assert not marker.exists() and not (tmp_path / "model").exists()


def test_cli_keeps_torchs_reason_for_refusing_a_checkpoint(tmp_path, capsys):
    from speechbrain_dyncp.cli import main

    folder = write_model_folder(tmp_path / "model", CFG, DynCPEnhancer(**CFG).state_dict())
    marker = tmp_path / "ran"
    _planted(folder / "enhancer.ckpt", marker)
    (tmp_path / "a.wav").write_bytes(b"")  # never read: the model fails first
    assert main(["enhance", str(tmp_path / "a.wav"), "-o", str(tmp_path / "o"), "--model", str(folder), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "enhancer.ckpt" in err
    assert "could run as code" in err
    assert "unsupported GLOBAL posix.system" in err  # torch's reason, not only its advice
    assert not marker.exists()
