"""train_gradw.py with --g_init: G starts as a shipped enhancer model folder and ends as one."""

import os
import subprocess
import sys

import pytest
import torch
from test_gradw_recipe import _write_speaker_model  # the random small E of the Grad-W recipe test

from speechbrain_dyncp.inference.loading import bundled_model_dir, load_enhancer


@pytest.mark.slow
def test_g_init_fine_tune_writes_model_folder(tmp_path, tiny_corpus, repo_root):
    e_dir = tmp_path / "ecapa" / "model"
    _write_speaker_model(e_dir, tiny_corpus)
    init = bundled_model_dir()
    run = tmp_path / "gradw"
    subprocess.run([sys.executable, "recipes/VoxCeleb/train_gradw.py", "hparams/VoxCeleb/train_gradw.yaml",
                    "--corpus_preset=tiny", f"--speaker_model={e_dir}", f"--corpus_folder={tiny_corpus.root}",
                    "--device=cpu", f"--g_init={init}", f"--output_folder={run}", "--number_of_epochs=1",
                    "--epoch_steps=2", "--batch_size=2", "--valid_max_items=4", "--clean_prob=0.5",
                    "--sentence_len=1.0", "--lambda_dcp=0.1", "--noprogressbar"],
                   cwd=repo_root, env=dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1"), check=True, timeout=300)
    log = (run / "train_log.txt").read_text()
    assert "train gate_ratio" in log and "valid gate_ratio" in log
    g = load_enhancer(str(run / "model")).mods.enhancer  # loads strictly, probes included
    shipped = torch.load(init / "enhancer.ckpt", map_location="cpu", weights_only=True)
    assert g.causal and set(g.state_dict()) == set(shipped)
    assert any(not torch.equal(v, shipped[k]) for k, v in g.state_dict().items())  # it trained
    assert (run / "model" / "probes.ckpt").read_bytes() == (init / "probes.ckpt").read_bytes()
