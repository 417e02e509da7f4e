"""Two-process gloo DDP on CPU (BatchNorm model) reproduces the single-process run.

Without SyncBatchNorm each CPU rank normalises with the statistics of its own
batch (B = 4 here), so the reference is the single-process run with the same
global batch (8) whose BatchNorm uses the statistics of the same two halves
(``bn_groups=2``: items 0,2,4,6 | 1,3,5,7, the DistributedSampler split). Data
split, gradient averaging and the loss averaged over ranks must then agree step
by step up to float summation order. The plain single-process run
(``bn_groups=1``) differs by the per-rank BatchNorm statistics; docs/scaling.md
gives the measured gap.
"""

import numpy as np
import pytest
from assets.tiny_recipe.runner import checkpoints, recipe_cmd, run_recipe

pytestmark = pytest.mark.slow

COMMON = ("--sorting=none", "--aug_noise=0.0", "--number_of_epochs=2")


def test_gloo_ddp_two_processes_match_single_process(tmp_path):
    data = tmp_path / "data"  # prepared by the DDP run, on rank 0 only (run_on_main)
    run_recipe(recipe_cmd(data, tmp_path / "ddp", *COMMON, "--batch_size=4", nproc=2))
    run_recipe(recipe_cmd(data, tmp_path / "single", *COMMON, "--batch_size=8", "--bn_groups=2"))

    ddp = np.loadtxt(tmp_path / "ddp" / "step_losses.txt")
    single = np.loadtxt(tmp_path / "single" / "step_losses.txt")
    assert ddp.shape == single.shape == (16,)  # 64 items / global batch 8 x 2 epochs
    np.testing.assert_allclose(ddp, single, rtol=1e-4)
    assert ddp[-1] < 0.6 * ddp[0]  # it trains

    # prep ran once; the checkpoint holds both ranks' RNG states
    assert len(list((data / "train").glob("*.wav"))) == 64
    last, meta = checkpoints(tmp_path / "ddp" / "save")[-1]
    assert meta["end-of-epoch"] and (last / "rng_state.ckpt").exists() and (last / "rng_state.rank1").exists()


def test_dyncp_recipe_runs_under_two_process_gloo_ddp(tiny_corpus, tmp_path):
    """The real recipe (MaskedBatchNorm, DDP-wrapped enhancer, rank-0 test report) runs end to end on CPU."""
    import json
    import sys

    out = tmp_path / "dyncp"
    run_recipe([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "recipes/DynCP/train.py", "hparams/DynCP/train.yaml", "--device=cpu", "--distributed_backend=gloo",
                "--noprogressbar", f"--data_folder={tiny_corpus.voicebank}", f"--output_folder={out}",
                "--residual_channels=32", "--hidden_channels=64", "--n_stacks=1", "--gate_hidden=16",
                "--batch_size=2", "--crop_seconds=0.5", "--use_pesq=False", "--use_stoi=False",
                "--number_of_epochs=1"])
    summary = json.loads((out / "test" / "summary.json").read_text())
    n_test = sum(1 for _ in open(out / "save" / "test.csv")) - 1
    assert summary["n_utterances"] == n_test  # one report, from rank 0, over the whole test set
    assert len(list((out / "test" / "enhanced").glob("*.wav"))) == n_test
    assert "epoch: 1" in (out / "train_log.txt").read_text()


def test_ecapa_recipe_runs_under_two_process_gloo_ddp(tiny_corpus, tmp_path):
    """ECAPA (plain BatchNorm everywhere: the stock Brain fails on gloo) trains and exports an unwrapped model."""
    import sys

    import torch

    out = tmp_path / "ecapa"
    run_recipe([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "recipes/VoxCeleb/train_speaker.py", "hparams/VoxCeleb/train_ecapa.yaml", "--device=cpu",
                "--distributed_backend=gloo", "--noprogressbar", f"--data_folder={tiny_corpus.voxceleb}",
                f"--output_folder={out}", "--num_workers=0", "--batch_size=8", "--sentence_len=1.5",
                "--channels=[32,32,32,32,96]", "--attention_channels=16", "--se_channels=16", "--emb_dim=32",
                "--number_of_epochs=1"])
    exported = torch.load(out / "model" / "embedding_model.ckpt", weights_only=True)
    assert exported and not any(k.startswith("module.") for k in exported)
    last, _ = checkpoints(out / "save")[-1]
    in_ckpt = torch.load(last / "embedding_model.ckpt", weights_only=True)
    assert exported.keys() == in_ckpt.keys()
    assert all(torch.equal(exported[k], in_ckpt[k]) for k in exported)


def test_teardown_abort_is_repeated_once_from_a_clean_folder(tmp_path):
    """run_recipe's one retry: only for the gloo exit-time abort, with the output folder cleared first."""
    import sys

    from assets.tiny_recipe.runner import TEARDOWN_ABORT

    out, marker = tmp_path / "out", tmp_path / "attempts"
    script = (f"import pathlib, sys; m = pathlib.Path({str(marker)!r}); n = int(m.read_text()) if m.exists() else 0; "
              f"m.write_text(str(n + 1)); o = pathlib.Path({str(out)!r}); "
              f"leftover = (o / 'partial').exists(); o.mkdir(exist_ok=True); (o / 'partial').write_text('x'); "
              f"sys.exit(3 if leftover else 0) if n or sys.argv[2] == 'ok' else "
              f"(sys.stderr.write({TEARDOWN_ABORT!r}), sys.exit(1))")
    run_recipe([sys.executable, "-c", script, "torch.distributed.run", "again", f"--output_folder={out}"])
    assert marker.read_text() == "2"  # aborted once, repeated once, and the repeat found no leftovers
    marker.unlink()
    with pytest.raises(AssertionError):  # any other failure is not repeated
        run_recipe([sys.executable, "-c", "import sys; sys.exit(1)", "torch.distributed.run"])
