"""Grad-W recipes end to end on the tiny embedded corpus: train G against a frozen E, then score per SNR."""

import csv
import hashlib
import os
import subprocess
import sys

import pytest
from tiny_speaker import write_tiny_speaker_folder


def _write_speaker_model(folder, corpus):
    """A randomly initialised small ECAPA E in the folder format train_speaker.py exports."""
    trial = {p.split("/")[0] for line in (corpus.voxceleb / "meta" / "veri_test2.txt").read_text().split("\n")
             for p in line.split()[1:]}
    speakers = sorted(p.name for p in (corpus.voxceleb / "wav").iterdir() if p.name not in trial)
    write_tiny_speaker_folder(folder, lin_neurons=16, speakers=speakers)


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_train_gradw_then_eval_snr(tmp_path, tiny_corpus, repo_root):
    """G trains (valid Grad-W loss below the unenhanced input's), E's files stay untouched, eval writes a table."""
    e_dir = tmp_path / "ecapa" / "model"
    _write_speaker_model(e_dir, tiny_corpus)
    before = _digest(e_dir)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    common = [f"--corpus_preset=tiny", f"--speaker_model={e_dir}", f"--corpus_folder={tiny_corpus.root}",
              "--device=cpu"]
    run = tmp_path / "gradw"
    subprocess.run([sys.executable, "recipes/VoxCeleb/train_gradw.py", "hparams/VoxCeleb/train_gradw.yaml", *common,
                    f"--output_folder={run}", "--number_of_epochs=2", "--batch_size=4", "--lr=0.002",
                    "--sentence_len=1.5", "--noprogressbar"],
                   cwd=repo_root, env=env, check=True, timeout=300)
    log = (run / "train_log.txt").read_text().strip().splitlines()
    assert len(log) == 2
    last = dict(kv.split(": ") for kv in log[-1].split(" - ")[-1].replace("valid ", "").split(", "))
    assert float(last["gradw_enh"]) < float(last["gradw_noisy"])
    assert _digest(e_dir) == before

    out = tmp_path / "eval"
    subprocess.run([sys.executable, "recipes/VoxCeleb/eval_snr.py", "hparams/VoxCeleb/eval_snr.yaml", *common,
                    f"--output_folder={out}", "--snrs=[clean,-5]",
                    f"--systems={{noisy: null, equal_w: null, grad_w: {run}}}"],
                   cwd=repo_root, env=env, check=True, timeout=300)
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["snr"], r["system"]) for r in rows] == [(s, n) for s in ("clean", "-5")
                                                       for n in ("noisy", "equal_w", "grad_w")]
    assert all(0.0 <= float(r["EER"]) <= 100.0 for r in rows)
    # no enhancement twice = the same embeddings: identical metrics (the mixtures are seeded)
    assert rows[0]["EER"] == rows[1]["EER"] and rows[3]["EER"] == rows[4]["EER"]
    assert (out / "eer_vs_snr.png").stat().st_size > 0 and "| clean |" in (out / "results.md").read_text()
