"""recipes/DynCP/set_pause_floor.py: a copy of a model folder whose enhancer carries its own VAD probe."""

import subprocess
import sys

import torch

from speechbrain_dyncp.inference.loading import load_enhancer

SOURCE = "speechbrain_dyncp/pretrained/dyncp_real_small"


def test_new_folder_floors_the_pauses_its_probe_finds(repo_root, tmp_path, recipe_module, digest):
    source = repo_root / SOURCE
    before = digest(source)
    out = recipe_module("recipes/DynCP/set_pause_floor.py").set_pause_floor(source, tmp_path / "p40", 40.0, 0.3, 8)
    assert digest(source) == before  # the source folder is not touched
    assert (out / "probes.ckpt").read_bytes() == (source / "probes.ckpt").read_bytes()
    old, new = load_enhancer(str(source)), load_enhancer(str(out))
    g = torch.Generator().manual_seed(0)
    burst = torch.zeros(1, 32000)
    burst[0, 8000:16000] = torch.sin(torch.arange(8000) * 0.06) * torch.sin(torch.arange(8000) * 0.0015).abs()
    x = 0.3 * burst + 0.01 * torch.randn(1, 32000, generator=g)
    with torch.no_grad():
        a, b = old.mods.enhancer(x), new.mods.enhancer(x)
        vad = new.mods.probes(b.gates, b.frame_mask)["vad"]
        head = torch.sigmoid(new.mods.enhancer.pause_floor.speech_logits(b.gates)).float()
    assert torch.allclose(head, vad, atol=1e-5)  # the enhancer's copy is the folder's VAD probe
    speech = new.mods.enhancer.pause_floor.speech_frames(b.gates)[0]
    assert speech.any() and (~speech).any()
    assert torch.equal(a.mask[0, speech], b.mask[0, speech])
    assert (b.mask[0, ~speech] <= a.mask[0, ~speech]).all() and b.mask[0, ~speech].min() < 0.1
    assert b.wav[0, :6000].pow(2).sum() < a.wav[0, :6000].pow(2).sum()  # less noise before the burst


def test_refusals_name_the_problem(repo_root, tmp_path):
    script = str(repo_root / "recipes/DynCP/set_pause_floor.py")
    run = lambda *a: subprocess.run([sys.executable, script, *a], capture_output=True, text=True)  # noqa: E731
    shallow = run("--model", str(repo_root / SOURCE), "--out", str(tmp_path / "a"), "--limit_db", "10")
    assert shallow.returncode != 0 and "must be deeper than attenuation_limit_db" in shallow.stderr
    no_probes = tmp_path / "no_probes"
    no_probes.mkdir()
    for name in ("hyperparams.yaml", "enhancer.ckpt"):
        (no_probes / name).write_bytes((repo_root / SOURCE / name).read_bytes())
    missing = run("--model", str(no_probes), "--out", str(tmp_path / "b"))
    assert missing.returncode != 0 and str(no_probes / "probes.ckpt") in missing.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_low_snr_option_deepens_speech_frames_after_enough_speech(repo_root, tmp_path, recipe_module):
    """``--low_snr_db``: written to the folder and loaded back; at 60 dB every running ratio is "low", so
    speech frames get the deeper floor, but only once 5 speech frames are in the 20-frame window."""
    set_floor = recipe_module("recipes/DynCP/set_pause_floor.py").set_pause_floor
    source = repo_root / SOURCE
    plain = load_enhancer(str(set_floor(source, tmp_path / "p40", 40.0, 0.3, 8))).mods.enhancer
    low = load_enhancer(str(set_floor(source, tmp_path / "low", 40.0, 0.3, 8, 60.0, 20, 5))).mods.enhancer
    assert "pause_low_snr_db: 60.0" in (tmp_path / "low" / "hyperparams.yaml").read_text()
    assert (low.pause_floor.low_snr_window, low.pause_floor.low_snr_min_frames) == (20, 5)
    burst = torch.zeros(1, 32000)
    burst[0, 4000:28000] = torch.sin(torch.arange(24000) * 0.06) * torch.sin(torch.arange(24000) * 0.0015).abs()
    x = 0.3 * burst + 0.01 * torch.randn(1, 32000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = plain(x), low(x)
    speech = plain.pause_floor.speech_frames(a.gates)[0]
    deeper = (b.floors < a.floors)[0, :, 0]
    assert deeper.any() and not (deeper & ~speech).any()
    first = int(speech.nonzero()[0])
    assert speech[first:first + 5].all() and not deeper[first:first + 4].any() and deeper[first + 4]
    assert torch.equal(b.mask[0, ~deeper], a.mask[0, ~deeper]) and (b.mask[0, deeper] < a.mask[0, deeper]).any()
