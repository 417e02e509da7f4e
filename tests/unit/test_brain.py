"""DynCPBrain: CPU DDP wrapping without SyncBatchNorm, atomic checkpoints, RNG resume."""

import os
import random

import numpy as np
import pytest
import speechbrain as sb
import torch
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_dyncp.brain import DynCPBrain, ddp_mean
from speechbrain_dyncp.checkpoints import COMPLETE_MARKER, AtomicCheckpointer, RNGState


def _bn_model():
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))


@pytest.fixture
def gloo_world_of_one(tmp_path, monkeypatch):
    """A real one-process gloo group, with the env torchrun sets."""
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(key, value)
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    torch.distributed.destroy_process_group()


def test_stock_brain_fails_on_cpu_ddp_with_batchnorm(gloo_world_of_one):
    """The failure DynCPBrain exists for: SpeechBrain converts BN to SyncBatchNorm."""
    brain = sb.Brain(modules={"m": _bn_model()}, run_opts={"device": "cpu", "distributed_backend": "gloo"})
    with pytest.raises(ValueError, match="SyncBatchNorm layers only work with GPU"):
        brain._wrap_distributed()


def test_dyncp_brain_wraps_cpu_ddp_keeping_batchnorm(gloo_world_of_one):
    model = _bn_model()
    x = torch.randn(5, 3)
    expected = model(x)
    brain = DynCPBrain(modules={"m": model}, run_opts={"device": "cpu", "distributed_backend": "gloo"})
    brain._wrap_distributed()
    wrapped = brain.modules["m"]
    assert isinstance(wrapped, torch.nn.parallel.DistributedDataParallel)
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in wrapped.modules())
    torch.testing.assert_close(wrapped(x), expected)
    # world of one: the mean over ranks is the value itself, weights included
    assert ddp_mean(torch.tensor(2.5), weight=3) == torch.tensor(2.5)


def test_ddp_mean_without_ddp_is_identity():
    assert ddp_mean(1.5) == 1.5
    t = torch.tensor([1.0, -2.0])
    assert ddp_mean(t) is t


def test_checkpoint_killed_while_saving_is_skipped(tmp_path):
    """A save that dies after CKPT.yaml (SpeechBrain writes it first) leaves the previous one in charge."""
    model = torch.nn.Linear(2, 2)
    ckpt = AtomicCheckpointer(tmp_path, {"model": model})
    good = ckpt.save_checkpoint(name="good")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)

    def die(obj, path):
        raise KeyboardInterrupt("killed while saving")

    ckpt.add_recoverable("extra", torch.nn.Linear(1, 1), custom_save_hook=die)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(name="partial")
    assert (tmp_path / "CKPT+partial" / "CKPT.yaml").exists()  # looks like a checkpoint to stock SB
    assert not (tmp_path / "CKPT+partial" / COMPLETE_MARKER).exists()

    fresh = AtomicCheckpointer(tmp_path, {"model": model})
    assert fresh.find_checkpoint().path == good.path
    fresh.recover_if_possible()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_truncated_meta_is_skipped(tmp_path):
    ckpt = AtomicCheckpointer(tmp_path, {"model": torch.nn.Linear(2, 2)})
    good = ckpt.save_checkpoint(name="a")
    bad = tmp_path / "CKPT+b"
    bad.mkdir()
    (bad / "CKPT.yaml").write_text("end-of-epoch: tr\x00", encoding="utf-8")
    assert [c.path for c in ckpt.list_checkpoints()] == [good.path]


def test_stock_checkpoints_still_load(tmp_path):
    """Checkpoints of a plain Checkpointer (no marker in their meta) are accepted."""
    model = torch.nn.Linear(2, 2)
    saved = Checkpointer(tmp_path, {"model": model}).save_checkpoint()
    assert AtomicCheckpointer(tmp_path, {"model": model}).find_checkpoint().path == saved.path


def test_rng_state_round_trip_all_generators(tmp_path):
    rng = RNGState()
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.randn()  # a cached gaussian in numpy's state
    rng.save(tmp_path / "rng.ckpt")
    draws = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.randn())
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    rng.load(tmp_path / "rng.ckpt", end_of_epoch=False)
    again = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.randn())
    assert torch.equal(draws[0], again[0])
    assert np.array_equal(draws[1], again[1]) and draws[2] == again[2] and draws[3] == again[3]


def test_train_loader_does_not_draw_from_global_rng(tmp_path):
    """Creating the epoch iterator must not shift the global RNG (exact mid-epoch resume)."""
    brain = DynCPBrain(modules={"m": torch.nn.Linear(1, 1)}, run_opts={"device": "cpu"},
                       checkpointer=Checkpointer(tmp_path))
    loader = brain.make_dataloader(list(range(8)), sb.Stage.TRAIN, batch_size=2)
    torch.manual_seed(0)
    iter(loader)
    after_iter = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), after_iter)
    assert os.environ.get("RANK") is None  # no DDP leaked from other tests


def test_ddp_group_is_destroyed_at_exit(tmp_path):
    """A rank leaving with its gloo group alive can abort in thread destructors after a good run."""
    import socket
    import subprocess
    import sys

    script = tmp_path / "rank.py"
    script.write_text(
        "import atexit, torch\n"
        "from speechbrain_dyncp.brain import start_ddp_group\n"
        # atexit runs last-registered first: this check runs after the package's teardown
        "atexit.register(lambda: print('alive at exit:', torch.distributed.is_initialized()))\n"
        "start_ddp_group({'distributed_backend': 'gloo', 'device': 'cpu'})\n"
        "print('alive in run:', torch.distributed.is_initialized())\n")
    with socket.socket() as probe:  # a free port for the group's store
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "alive in run: True" in proc.stdout and "alive at exit: False" in proc.stdout
