"""recipes/DynCP/grow_enhancer.py: a deepened model computes exactly what the trained one does."""

import subprocess
import sys

import pytest
import torch

from speechbrain_dyncp.export import load_weights, read_module_definition
from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer

SOURCE = "speechbrain_dyncp/pretrained/dyncp_synthetic_small"


def _load(folder):
    _, kwargs = read_module_definition(folder / "hyperparams.yaml")
    model = DynCPEnhancer(**kwargs)
    model.load_state_dict(load_weights(folder / "enhancer.ckpt"))
    return model.eval()


def test_grown_model_is_the_same_function_with_trainable_new_blocks(repo_root, tmp_path, recipe_module):
    source = _load(repo_root / SOURCE)
    out = recipe_module("recipes/DynCP/grow_enhancer.py").grow_enhancer(repo_root / SOURCE, tmp_path / "grown", add_stacks=2)
    grown = _load(out)
    old = len(source.tcn.blocks)
    per_stack = read_module_definition(repo_root / SOURCE / "hyperparams.yaml")[1].get("n_blocks", 3)
    assert len(grown.tcn.blocks) == old + 2 * per_stack
    x = 0.1 * torch.randn(2, 8000, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([1.0, 0.6])
    with torch.no_grad():
        a, b = source(x, lengths), grown(x, lengths)
        assert torch.equal(a.wav, b.wav) and torch.equal(a.mask, b.mask)
        assert torch.equal(a.gates, b.gates[:, :old])
        # the new blocks are in the signal path: a non-zero output projection changes the output
        grown.tcn.blocks[-1].out_conv.weight.normal_()
        assert not torch.allclose(grown(x, lengths).wav, a.wav)
    # and they learn: the zero projection gets a gradient from the first step on
    grown = _load(out).train()
    grown(x, lengths).wav.pow(2).sum().backward()
    assert grown.tcn.blocks[-1].out_conv.weight.grad.abs().max() > 0


def test_refusals_name_the_problem(repo_root, tmp_path):
    cmd = [sys.executable, str(repo_root / "recipes/DynCP/grow_enhancer.py"), "--model", str(repo_root / SOURCE)]
    bad = subprocess.run(cmd + ["--add_stacks", "0", "--out", str(tmp_path / "g")], capture_output=True, text=True)
    assert bad.returncode != 0 and "add_stacks must be >= 1" in bad.stderr
    ok = subprocess.run(cmd + ["--out", str(tmp_path / "g")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    again = subprocess.run(cmd + ["--out", str(tmp_path / "g")], capture_output=True, text=True)
    assert again.returncode != 0 and "already holds a model" in again.stderr
    missing = subprocess.run([sys.executable, str(repo_root / "recipes/DynCP/grow_enhancer.py"), "--model",
                              str(tmp_path / "nope"), "--out", str(tmp_path / "h")], capture_output=True, text=True)
    assert missing.returncode != 0 and str(tmp_path / "nope") in missing.stderr


def test_a_pause_floor_is_dropped_not_carried_onto_new_blocks(repo_root, tmp_path, recipe_module):
    """The pause floor's VAD head reads every block's gates; the grown folder has none, and computes what
    the source computes without it."""
    real = repo_root / "speechbrain_dyncp/pretrained/dyncp_real_small"  # has probes and a 20 dB limit
    paused = recipe_module("recipes/DynCP/set_pause_floor.py").set_pause_floor(real, tmp_path / "p")
    grown = _load(recipe_module("recipes/DynCP/grow_enhancer.py").grow_enhancer(paused, tmp_path / "g"))
    assert grown.pause_floor is None
    x = 0.1 * torch.randn(1, 8000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(grown(x).wav, _load(real)(x).wav)
