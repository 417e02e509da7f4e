"""LAP recipe end to end on the tiny corpus with the tiny offline SSL model: phases, verify, plot."""

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow


def _run(repo_root, script, *args, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, script, *args], cwd=repo_root, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _ckpt_files(save):
    ckpts = sorted(save.glob("CKPT+*"))
    assert ckpts, f"no checkpoint in {save}"
    return {p.name for p in ckpts[-1].iterdir()}


def test_frozen_then_finetune_verify_and_plot(repo_root, tiny_corpus, tmp_path, recipe_module):
    """Phase 1 (frozen, margin ramp) -> phase 2 (fine-tune from phase 1) -> EER -> layer-score plot."""
    common = [f"--data_folder={tiny_corpus.voxceleb}", "--device=cpu", "--noprogressbar", "--batch_size=4",
              "--score_norms=[none]", "--max_cohort=20"]
    p1, p2 = tmp_path / "p1", tmp_path / "p2"
    _run(repo_root, "recipes/VoxCeleb/train_lap.py", "hparams/VoxCeleb/train_lap.yaml", *common,
         "--phase=frozen", f"--output_folder={p1}", "--number_of_epochs=2", "--margin_ramp_epochs=2")
    log = (p1 / "train_log.txt").read_text()
    margins = [float(m) for m in re.findall(r"margin: ([0-9.e+-]+)", log)]
    assert len(margins) == 2 and 0 < margins[0] < margins[1] == pytest.approx(0.3)  # ramp, then flat
    files = _ckpt_files(p1 / "save")
    assert {"pooling.ckpt", "backend.ckpt", "classifier.ckpt", "margin_scheduler.ckpt"} <= files
    assert "frontend.ckpt" not in files  # frozen: the public model is not copied into checkpoints
    metrics = json.loads((p1 / "verify" / "metrics_all.json").read_text())
    assert math.isfinite(metrics["none"]["EER"]) and 0 <= metrics["none"]["EER"] <= 100

    proc = _run(repo_root, "recipes/VoxCeleb/train_lap.py", "hparams/VoxCeleb/train_lap.yaml", *common,
                "--phase=finetune", f"--output_folder={p2}", f"--init_from={p1 / 'save'}",
                "--number_of_epochs=1", "--verify=False")
    assert "Initialised from" in proc.stdout + proc.stderr
    assert "frontend.ckpt" in _ckpt_files(p2 / "save")
    tuned = torch.load(sorted((p2 / "save").glob("CKPT+*"))[-1] / "frontend.ckpt")
    from speechbrain_dyncp.lobes.ssl_frontend import SSLFrontEnd

    start = SSLFrontEnd(str(p2 / "tiny_ssl")).state_dict()
    assert any(not torch.equal(tuned[k], v) for k, v in start.items())  # the encoder was fine-tuned

    plot_layer_scores = recipe_module("recipes/VoxCeleb/plot_layer_scores.py")  # in-process: no interpreter start

    assert plot_layer_scores.main([str(p1), "--out", str(tmp_path / "scores.png")]) == 0
    scores = np.load(tmp_path / "scores.npy")
    assert (tmp_path / "scores.png").stat().st_size > 10_000
    assert scores.shape[1:] == (4, 5) and ((scores > 0) & (scores < 1)).all()  # heads x (4 layers + 1)
    assert scores.std(axis=0).max() > 1e-3  # time-dynamic


def test_weighted_sum_switch_uses_ecapa(repo_root, tiny_corpus, tmp_path):
    """`pooling: weighted_sum` trains the SUPERB weights with SpeechBrain's ECAPA-TDNN backend."""
    out = tmp_path / "ws"
    _run(repo_root, "recipes/VoxCeleb/train_lap.py", "hparams/VoxCeleb/train_lap.yaml",
         f"--data_folder={tiny_corpus.voxceleb}", "--device=cpu", "--noprogressbar", "--batch_size=4",
         "--pooling=weighted_sum", f"--output_folder={out}", "--number_of_epochs=1", "--verify=False")
    ckpt = sorted((out / "save").glob("CKPT+*"))[-1]
    pooling = torch.load(ckpt / "pooling.ckpt")
    backend = torch.load(ckpt / "backend.ckpt")
    assert set(pooling) == {"layer_logits"} and pooling["layer_logits"].shape == (5,)
    assert not torch.allclose(pooling["layer_logits"], torch.full((5,), 0.2))  # trained
    assert any(k.startswith("blocks.") for k in backend) and "asp.tdnn.conv.conv.weight" in backend
