"""fit_probes recipe end to end on the tiny embedded corpus (gate densities planted)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch


@pytest.mark.slow
def test_fit_probes_recipe_runs_and_exports_the_reported_probes(tmp_path, tiny_corpus, repo_root):
    """The recipe writes report + probes.ckpt; the reloaded lobe reproduces the reported test
    scores from the cached masks, and no speaker is on both sides of the split."""
    from speechbrain_dyncp.data.audio import read_audio
    from speechbrain_dyncp.efficiency import plant_gate_ratio
    from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer
    from speechbrain_dyncp.lobes.probes import MaskProbes

    arch = dict(residual_channels=16, hidden_channels=16, n_stacks=1, n_blocks=3, gate_hidden=8)
    torch.manual_seed(0)
    model = DynCPEnhancer(channels=16, hidden=16, n_stacks=1, n_blocks=3, gate_hidden=8).eval()
    wavs = sorted((tiny_corpus.voicebank / "noisy_trainset_wav").glob("*.wav"))[:4]
    calib = torch.stack([read_audio(w)[:32000] for w in wavs])
    plant_gate_ratio(model, calib, 0.3)  # input-dependent gates with a realistic density
    torch.save(model.state_dict(), tmp_path / "enhancer.ckpt")

    out = tmp_path / "out"
    cmd = [sys.executable, str(repo_root / "recipes/DynCP/fit_probes.py"), str(repo_root / "hparams/DynCP/fit_probes.yaml"),
           f"--data_folder={tiny_corpus.voicebank}", f"--output_folder={out}", f"--enhancer_ckpt={tmp_path / 'enhancer.ckpt'}",
           "--n_channels=12", "--max_train_samples=2000", "--curve_sizes=[2,12]", "--n_timeline_plots=1"]
    cmd += [f"--{k}={v}" for k, v in arch.items()]
    subprocess.run(cmd, check=True, timeout=600, cwd=tmp_path, capture_output=True)

    report = json.loads((out / "probes" / "report.json").read_text())
    assert set(report["test_scores_mask_probes"]) == {"vad", "noise", "snr", "f0"}
    assert not set(report["train_speakers"]) & set(report["test_speakers"])
    for png in ("weights.png", "channel_curve.png"):
        assert (out / "probes" / png).stat().st_size > 1000
    assert 0 < report["probe_cost_per_frame"]["expected_fraction_of_enhancer_effective_macs"] < 1

    probes = MaskProbes()
    probes.load_state_dict(torch.load(out / "probes" / "probes.ckpt", weights_only=True))
    assert probes.heads["vad"]["n_selected"] == 12
    utts = torch.load(out / "save" / "masks.pt", weights_only=False)["utts"]
    test = [u for u in utts if u["split"] == "test"]
    prob = np.concatenate([probes(torch.from_numpy(u["gates"]).float()[None])["vad"][0].numpy() for u in test])
    truth = np.concatenate([u["vad"] for u in test])
    acc = float(((prob >= 0.5) == truth).mean())
    assert acc == pytest.approx(report["test_scores_mask_probes"]["vad"]["accuracy"], abs=1e-9)


def test_rate_level_f0_head_takes_frame_labels_and_is_scored_per_frame(repo_root, recipe_module):
    """An F0 head on sliding-window firing rates: each training row is labelled with the F0 of
    its window's last frame (unvoiced rows dropped), and the exported lobe is scored on every
    voiced frame, reproducing the sklearn predictions."""

    from speechbrain_dyncp.lobes.probes import MaskProbes
    from speechbrain_dyncp.probes.features import ProbeSpec
    from speechbrain_dyncp.probes.fit import fit_probe

    fp = recipe_module("recipes/DynCP/fit_probes.py")
    rng = np.random.default_rng(0)
    utts = []
    for i in range(6):
        gates = (rng.random((2, 40, 4)) < 0.5).astype(np.uint8)
        f0 = np.where(rng.random(40) < 0.7, 100.0 + 50.0 * gates[0, :, 1], 0.0).astype(np.float32)
        utts.append({"gates": gates, "f0": f0, "vad": (f0 > 0).astype(np.uint8)})
    spec = ProbeSpec("f0", task="regress", level="rate", window=3, stride=1, target="log", voiced_only=True,
                     reg=1e-3, n_channels=None)
    X, y = fp.head_rows(spec, utts, None, rng, fitting=True)
    voiced = np.concatenate([u["f0"] for u in utts])
    assert len(y) == int((voiced > 0).sum()) and np.array_equal(y, voiced[voiced > 0])
    u0 = utts[0]
    t = int(np.flatnonzero(u0["f0"] > 0)[-1])  # last voiced frame of utterance 0
    n0 = int((u0["f0"] > 0).sum())
    expect = u0["gates"][:, t - 2 : t + 1].mean(1).reshape(-1)  # mean of the last 3 frames
    np.testing.assert_allclose(X[n0 - 1], expect, atol=1e-6)
    probe = fit_probe(spec, X, y, max_samples=None)
    lobe = MaskProbes.from_sklearn({"f0": probe}, n_blocks=2, n_channels=4)
    scores = fp.evaluate_lobe(lobe, utts)["f0"]
    assert scores["n_frames"] == len(y)
    pred = probe.predict(X)
    assert scores["r2"] == pytest.approx(1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum(), abs=1e-5)


def test_speed_perturbed_fitting_copies_carry_scaled_labels_and_their_own_gates(tiny_corpus, recipe_module):
    """fit_speed_factors: a copy of a fitting item holds the gates of the sped-up audio and the
    corpus labels of the matching original frames, F0 times the factor; its id names the speed."""
    from speechbrain_dyncp.data.audio import read_audio
    from speechbrain_dyncp.data.labels import load_frame_labels
    from speechbrain_dyncp.data.speed import perturb_speed
    from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer

    collect = recipe_module("recipes/DynCP/fit_probes.py").collect
    torch.manual_seed(0)
    model = DynCPEnhancer(channels=16, hidden=16, n_stacks=1, n_blocks=2, gate_hidden=8, gate_init_bias=0.0).eval()
    vb = tiny_corpus.voicebank
    uid = sorted(p.stem for p in (vb / "noisy_trainset_wav").glob("*.wav"))[0]
    row = {"ID": uid, "spk_id": uid.split("_")[0], "split": "train", "noise": "white", "snr": "5.0",
           "noisy_wav": str(vb / "noisy_trainset_wav" / f"{uid}.wav"), "clean_wav": str(vb / "clean_trainset_wav" / f"{uid}.wav"),
           "labels": str(vb / "labels" / f"{uid}.npz"), "duration": "2.0"}
    (plain,) = collect(model, [row], {"batch_size": 1, "label_source": "corpus"})
    (fast,) = collect(model, [row], {"batch_size": 1, "label_source": "corpus"}, speed=1.25)
    assert plain["id"] == uid and fast["id"] == f"{uid}@x1.25" and fast["src"] == uid and fast["split"] == "train"
    lab = load_frame_labels(vb / "labels" / f"{uid}.npz")
    src = np.minimum(np.round(np.arange(len(fast["f0"])) * 1.25).astype(int), len(lab["f0"]) - 1)
    np.testing.assert_allclose(fast["f0"], lab["f0"][src] * 1.25, rtol=1e-6)
    np.testing.assert_array_equal(plain["f0"], lab["f0"])
    with torch.no_grad():
        gates = model(perturb_speed(read_audio(row["noisy_wav"]), 1.25)[None]).gates[0].to(torch.uint8).numpy()
    np.testing.assert_array_equal(fast["gates"], gates)
    assert fast["gates"].shape[1] == len(fast["f0"]) and 0 < fast["gates"].mean() < 1
