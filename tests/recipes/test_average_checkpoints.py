"""recipes/DynCP/average_checkpoints.py: checkpoints of one init average into a run folder dyncp export reads."""

import importlib.util
import re
import subprocess
import sys

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml


def _recipe(repo_root):
    spec = importlib.util.spec_from_file_location("avg_ckpts", repo_root / "recipes/DynCP/average_checkpoints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_folder(root, name, enhancer, seed):
    """A run folder as train.py leaves it: hyperparams.yaml and save/CKPT+*/ with enhancer.ckpt."""
    torch.manual_seed(seed)
    for p in enhancer.parameters():
        p.data.normal_()
    for m in enhancer.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_()
            m.num_batches_tracked.fill_(seed + 10)
    ckpt = root / name / "save" / f"CKPT+{name}"
    ckpt.mkdir(parents=True)
    torch.save(enhancer.state_dict(), ckpt / "enhancer.ckpt")
    (ckpt / "CKPT.yaml").write_text(f"end-of-epoch: true\nunixtime: {1e9 + seed}\nrun: {name}\n")
    return ckpt


def test_average_is_the_mean_and_exports(repo_root, tmp_path):
    text = (repo_root / "speechbrain_dyncp/pretrained/dyncp_synthetic_small/hyperparams.yaml").read_text()
    enhancer = load_hyperpyyaml(text)["enhancer"]
    ckpts = [_run_folder(tmp_path, n, enhancer, s) for n, s in (("a", 1), ("b", 2))]
    for c in ckpts:
        (c.parent.parent / "hyperparams.yaml").write_text(text)
    states = [torch.load(c / "enhancer.ckpt", weights_only=True) for c in ckpts]
    out = tmp_path / "soup"
    target = _recipe(repo_root).average_run_checkpoints(ckpts, out)
    avg = torch.load(target / "enhancer.ckpt", weights_only=True)
    for key, value in avg.items():
        if value.is_floating_point():
            assert torch.allclose(value, (states[0][key] + states[1][key]) / 2, atol=1e-6), key
        else:  # counters are not averaged
            assert value.dtype == states[0][key].dtype and torch.equal(value, states[0][key]), key
    assert (target / "CKPT.yaml").read_text() == (ckpts[0] / "CKPT.yaml").read_text()
    # the averaged run exports like any run, and the exported weights are the average
    proc = subprocess.run([sys.executable, "-m", "speechbrain_dyncp.cli", "export", str(out), "-o", str(tmp_path / "m")],
                          capture_output=True, text=True, cwd=repo_root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    exported = torch.load(tmp_path / "m" / "enhancer.ckpt", weights_only=True)
    key = next(k for k, v in avg.items() if v.is_floating_point())
    assert torch.allclose(exported[key], avg[key])


def test_other_shapes_and_non_checkpoints_are_refused_by_name(repo_root, tmp_path):
    lin = torch.nn.Linear(4, 4)
    a = tmp_path / "a" / "save" / "CKPT+a"
    b = tmp_path / "b" / "save" / "CKPT+b"
    for c, m in ((a, lin), (b, torch.nn.Linear(4, 5))):
        c.mkdir(parents=True)
        torch.save(m.state_dict(), c / "enhancer.ckpt")
        (c.parent.parent / "hyperparams.yaml").write_text("x: 1\n")
    with pytest.raises(ValueError, match=re.escape(f"{b}: its enhancer.ckpt has other weights or shapes")):
        _recipe(repo_root).average_run_checkpoints([a, b], tmp_path / "out")
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: not a DynCP training checkpoint"):
        _recipe(repo_root).average_run_checkpoints([a, tmp_path], tmp_path / "out2")
