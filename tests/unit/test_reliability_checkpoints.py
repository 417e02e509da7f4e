"""Resume from a checkpoint that is complete but damaged (issue 18)."""

import logging

import pytest
import torch

from speechbrain_dyncp.checkpoints import COMPLETE_MARKER, AtomicCheckpointer


def _saved_twice(tmp_path):
    model = torch.nn.Linear(3, 2)
    ckpt = AtomicCheckpointer(tmp_path / "save", {"model": model})
    with torch.no_grad():
        model.weight.fill_(1.0)
    first = ckpt.save_checkpoint(name="CKPT+first")
    with torch.no_grad():
        model.weight.fill_(2.0)
    newest = ckpt.save_checkpoint(name="CKPT+newest")
    return first, newest


def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    first, newest = _saved_twice(tmp_path)
    damaged = newest.path / "model.ckpt"
    damaged.write_bytes(damaged.read_bytes()[:40])  # truncated after the COMPLETE marker was written
    assert (newest.path / COMPLETE_MARKER).exists()
    model = torch.nn.Linear(3, 2)
    with caplog.at_level(logging.WARNING):
        loaded = AtomicCheckpointer(tmp_path / "save", {"model": model}).recover_if_possible()
    assert loaded.path == first.path
    assert torch.all(model.weight == 1.0)
    assert str(damaged) in caplog.text and "falling back" in caplog.text


def test_all_checkpoints_damaged_is_an_error_naming_the_file(tmp_path):
    first, newest = _saved_twice(tmp_path)
    for c in (first, newest):
        (c.path / "model.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match=r"newest/model\.ckpt"):
        AtomicCheckpointer(tmp_path / "save", {"model": torch.nn.Linear(3, 2)}).recover_if_possible()
