"""Kill-and-resume equals an uninterrupted run; two seeded runs are identical.

All runs use the same command: 3 epochs of 8 steps, an intra-epoch checkpoint
every 3 steps, Gaussian-noise augmentation drawn from the global torch RNG and
a shuffled sampler, so an exact match needs the RNG state, the sampler
position and the optimizer in the checkpoint (``DynCPBrain``).
"""

import signal
import subprocess
import sys
import time

import pytest
from assets.tiny_recipe.runner import (
    ENV,
    REPO,
    assert_same_state,
    checkpoints,
    load_ckpt_dir,
    recipe_cmd,
    run_recipe,
)

pytestmark = pytest.mark.slow

ARGS = ("--ckpt_interval_steps=3", "--step_sleep=0.1", "--sorting=random", "--aug_noise=0.1")
INTRA = "brain_intra_epoch_ckpt"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: (data folder, output folder)."""
    root = tmp_path_factory.mktemp("resume")
    run_recipe(recipe_cmd(root / "data", root / "ref", *ARGS))
    return root / "data", root / "ref"


def _final_state(out):
    last, meta = checkpoints(out / "save")[-1]
    assert meta["end-of-epoch"]
    return load_ckpt_dir(last)


def test_two_seeded_runs_give_identical_checkpoints(reference, tmp_path):
    data, ref = reference
    run_recipe(recipe_cmd(data, tmp_path / "again", *ARGS))
    assert_same_state(_final_state(ref), _final_state(tmp_path / "again"))
    assert (ref / "train_log.txt").read_text() == (tmp_path / "again" / "train_log.txt").read_text()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_mid_epoch_and_rerun_equals_uninterrupted(reference, tmp_path, sig):
    data, ref = reference
    cmd = recipe_cmd(data, tmp_path / "run", *ARGS)
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not checkpoints(tmp_path / "run" / "save") and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == -sig, "the run ended before it could be killed mid-epoch"
    at_kill = checkpoints(tmp_path / "run" / "save")
    assert at_kill and at_kill[-1][1].get(INTRA) and not at_kill[-1][1]["end-of-epoch"]

    resumed = run_recipe(cmd)  # the very same command
    assert f"Loading a checkpoint from {tmp_path / 'run' / 'save'}" in resumed.stdout + resumed.stderr
    assert_same_state(_final_state(ref), _final_state(tmp_path / "run"))
    assert (ref / "train_log.txt").read_text() == (tmp_path / "run" / "train_log.txt").read_text()


DYNCP = ["--residual_channels=32", "--hidden_channels=64", "--n_stacks=1", "--gate_hidden=16", "--batch_size=2",
         "--crop_seconds=0.5", "--use_pesq=False", "--use_stoi=False", "--save_enhanced=False",
         "--number_of_epochs=2", "--ckpt_interval_minutes=0", "--ckpt_interval_steps=2"]


def test_dyncp_recipe_killed_and_rerun_equals_uninterrupted(tiny_corpus, tmp_path):
    """The real recipe (random crops from python's RNG, Adam, NewBob): SIGKILL, rerun, same checkpoint."""

    def cmd(out):
        return [sys.executable, "recipes/DynCP/train.py", "hparams/DynCP/train.yaml", "--device=cpu",
                "--noprogressbar", f"--data_folder={tiny_corpus.voicebank}", f"--output_folder={out}", *DYNCP]

    run_recipe(cmd(tmp_path / "ref"))
    proc = subprocess.Popen(cmd(tmp_path / "run"), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not checkpoints(tmp_path / "run" / "save") and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    resumed = run_recipe(cmd(tmp_path / "run"))
    assert "Loading a checkpoint from" in resumed.stdout + resumed.stderr
    # Model, optimizer, scheduler, counter, RNG and loader position: bit for bit. (The recipe's own
    # per-epoch train statistics are not checkpointed, so train_log.txt may differ for the resumed epoch.)
    ref_state, run_state = _final_state(tmp_path / "ref"), _final_state(tmp_path / "run")
    assert_same_state(ref_state, run_state)
    assert "enhancer.ckpt" in ref_state and "rng_state.ckpt" in ref_state
