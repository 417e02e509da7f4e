"""The DynCP recipe trains, hits its channel budget, improves SI-SDR, and resumes."""

import csv
import json
import os
import re
import subprocess
import sys

import pytest

# dyncp_small-sized model; settings found by a sweep on the tiny corpus (lr, crop, epochs).
SMALL_MODEL = ["--residual_channels=64", "--hidden_channels=128", "--n_stacks=2", "--gate_hidden=32"]


def _tiny(tmp_path, *extra):
    """The embedded tiny corpus (built once under ``tmp_path``), short crops, no PESQ / STOI / wav output."""
    return ["--data_folder=embedded", "--corpus_preset=tiny", f"--corpus_folder={tmp_path / 'corpus'}",
            "--batch_size=8", "--crop_seconds=0.5", "--use_pesq=False", "--use_stoi=False",
            "--save_enhanced=False", *extra]


FROZEN = ("--number_of_epochs=1", "--lr=1e-12")  # one epoch at lr ~0: the weights stay what they started as


def _run(repo_root, out, *args, timeout=600, model=SMALL_MODEL):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "recipes/DynCP/train.py", "hparams/DynCP/train.yaml", f"--output_folder={out}",
           "--device=cpu", "--noprogressbar", *model, *args]
    proc = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_gated_training_improves_si_sdr_at_target_ratio(repo_root, tiny_corpus, tmp_path):
    """30 short epochs at phi_target=0.25: held-out test SI-SDR rises >= 2 dB, ratio within 3 points."""
    out = tmp_path / "run"
    _run(repo_root, out, f"--data_folder={tiny_corpus.voicebank}", "--phi_target=0.25", "--lambda_dcp=1.0",
         "--number_of_epochs=30", "--lr=0.003", "--batch_size=4", "--crop_seconds=1.0",
         "--lr_annealing_factor=1.0")
    summary = json.loads((out / "test" / "summary.json").read_text())
    rows = list(csv.DictReader(open(out / "test" / "per_utterance.csv")))
    assert summary["n_utterances"] == len(rows) == 16  # the tiny test speakers, unseen in training
    assert summary["si_sdr_enhanced"] - summary["si_sdr_noisy"] >= 2.0, summary
    assert abs(summary["ratio"] - 0.25) <= 0.03, summary
    assert 20.0 <= summary["macs_saved_pct"] <= 40.0, summary  # gates' own MACs included
    assert summary["pesq_enhanced"] > summary["pesq_noisy"], summary
    assert len(list((out / "test" / "enhanced").glob("*.wav"))) == 16
    log = (out / "train_log.txt").read_text()
    assert "valid ratio" in log and "epoch: 30" in log


@pytest.mark.slow
def test_recipe_builds_embedded_corpus_and_resumes(repo_root, tmp_path):
    """A second call with more epochs continues from the checkpoint instead of restarting."""
    out = tmp_path / "run"
    common = _tiny(tmp_path)
    _run(repo_root, out, *common, "--number_of_epochs=2")
    first = (out / "train_log.txt").read_text()
    assert re.findall(r"^epoch: (\d+)", first, re.M) == ["1", "2"]
    _run(repo_root, out, *common, "--number_of_epochs=3")
    epochs = re.findall(r"^epoch: (\d+)", (out / "train_log.txt").read_text(), re.M)
    assert epochs == ["1", "2", "3"]  # epochs 1-2 were not trained again
    assert len(list((out / "save").glob("CKPT+*"))) == 1
    assert (tmp_path / "corpus" / "voicebank" / "log_testset.txt").exists()


def test_on_the_fly_mixing_keeps_clean_target(repo_root, tiny_corpus, tmp_path, recipe_module):
    """With noise and RIR CSVs, training items are reverberated then re-mixed at an SNR in range."""
    import torch

    from speechbrain_dyncp.data.noise import prepare_noise_csv
    from speechbrain_dyncp.data.voicebank import prepare_voicebank

    dataio_prep = recipe_module("recipes/DynCP/train.py").dataio_prep
    prepare_voicebank(tiny_corpus.voicebank, tmp_path)
    noise_csv = prepare_noise_csv(tiny_corpus.musan / "noise", tmp_path / "noise.csv")
    hparams = {"sample_rate": 16000, "hop_length": 256, "crop_seconds": 0.5, "noise_csv": str(noise_csv),
               "rir_csv": str(tiny_corpus.rirs / "rirs.csv"), "mix_prob": 1.0, "reverb_prob": 1.0, "snr_low": 3.0, "snr_high": 6.0,
               "data_folder": str(tiny_corpus.voicebank)}
    for split in ("train", "valid", "test"):
        hparams[f"{split}_annotation"] = str(tmp_path / f"{split}.csv")
    data = dataio_prep(hparams)
    item = data["train"][0]
    noisy, clean = item["noisy_sig"], item["clean_sig"]
    assert noisy.shape == clean.shape == (8000,)
    snr = 10 * torch.log10(clean.pow(2).sum() / (noisy - clean).pow(2).sum())
    assert 3.0 - 1e-3 <= snr.item() <= 6.0 + 1e-3
    test_item = data["test"][0]  # evaluation items: whole files, as written
    assert test_item["noisy_sig"].shape == test_item["clean_sig"].shape
    assert test_item["noisy_sig"].numel() > 8000


def test_joint_probe_labels_follow_the_training_crop(tiny_corpus, tmp_path, recipe_module):
    """With joint_probes, a training crop starts on the hop grid and carries the corpus labels of
    exactly its frames (crop frame t = utterance frame start / hop + t)."""
    import numpy as np

    from speechbrain_dyncp.data.audio import read_audio
    from speechbrain_dyncp.data.labels import load_frame_labels
    from speechbrain_dyncp.data.voicebank import prepare_voicebank

    dataio_prep = recipe_module("recipes/DynCP/train.py").dataio_prep
    prepare_voicebank(tiny_corpus.voicebank, tmp_path)
    hparams = {"sample_rate": 16000, "hop_length": 256, "crop_seconds": 0.5, "joint_probes": True,
               "data_folder": str(tiny_corpus.voicebank)}
    for split in ("train", "valid", "test"):
        hparams[f"{split}_annotation"] = str(tmp_path / f"{split}.csv")
    data = dataio_prep(hparams)
    for i in range(3):
        item = data["train"][i]
        uid = item["id"]
        full = read_audio(tiny_corpus.voicebank / "clean_trainset_wav" / f"{uid}.wav").numpy()
        crop = item["clean_sig"].numpy()
        starts = [s for s in range(len(full) - len(crop) + 1) if np.array_equal(full[s : s + len(crop)], crop)]
        assert starts and starts[0] % 256 == 0
        lab = load_frame_labels(tiny_corpus.voicebank / "labels" / f"{uid}.npz")
        first, n = starts[0] // 256, 1 + len(crop) // 256
        assert np.array_equal(item["vad"].numpy(), lab["vad"][first : first + n])
        assert np.array_equal(item["f0"].numpy(), lab["f0"][first : first + n])
    test_item = data["test"][0]  # evaluation items: whole-utterance labels
    assert len(test_item["vad"]) == 1 + len(test_item["clean_sig"]) // 256


def test_speed_perturbed_training_items_carry_scaled_labels(tiny_corpus, tmp_path, recipe_module):
    """With speed_perturb, a training item is the file played faster (both signals) and its F0
    labels are the corpus labels of the matching original frames, times the factor."""
    import numpy as np
    import torch

    from speechbrain_dyncp.data.audio import read_audio
    from speechbrain_dyncp.data.labels import load_frame_labels
    from speechbrain_dyncp.data.speed import perturb_speed
    from speechbrain_dyncp.data.voicebank import prepare_voicebank

    dataio_prep = recipe_module("recipes/DynCP/train.py").dataio_prep
    prepare_voicebank(tiny_corpus.voicebank, tmp_path)
    hparams = {"sample_rate": 16000, "hop_length": 256, "crop_seconds": 0, "joint_probes": True,
               "speed_perturb": True, "speed_factors": [1.25], "speed_prob": 1.0,
               "data_folder": str(tiny_corpus.voicebank)}
    for split in ("train", "valid", "test"):
        hparams[f"{split}_annotation"] = str(tmp_path / f"{split}.csv")
    item = dataio_prep(hparams)["train"][0]
    full = read_audio(tiny_corpus.voicebank / "clean_trainset_wav" / f"{item['id']}.wav")
    assert item["clean_sig"].numel() == int(np.ceil(full.numel() / 1.25))
    lab = load_frame_labels(tiny_corpus.voicebank / "labels" / f"{item['id']}.npz")
    src = np.minimum(np.round(np.arange(len(item["f0"])) * 1.25).astype(int), len(lab["f0"]) - 1)
    assert len(item["f0"]) == 1 + item["clean_sig"].numel() // 256
    np.testing.assert_allclose(item["f0"].numpy(), lab["f0"][src] * 1.25, rtol=1e-6)
    assert np.array_equal(item["vad"].numpy(), lab["vad"][src])
    # noisy - clean is still the file's noise, sped up the same way
    noise = read_audio(tiny_corpus.voicebank / "noisy_trainset_wav" / f"{item['id']}.wav") - full
    torch.testing.assert_close(item["noisy_sig"] - item["clean_sig"], perturb_speed(noise, 1.25), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="1.0001"):  # a bad factor fails at setup, not in the loader
        dataio_prep({**hparams, "speed_factors": [1.0001]})


def test_joint_probe_labels_from_shards_equal_those_from_the_csv(tiny_corpus, tmp_path, recipe_module):
    """data_format=shards: the labels npz travels inside the shard and is read from the in-memory
    file; every item's vad / f0 (train and test pipelines) equals the CSV path's."""
    import torch

    from speechbrain_dyncp.data.voicebank import prepare_voicebank

    train_py = recipe_module("recipes/DynCP/train.py")
    prepare_voicebank(tiny_corpus.voicebank, tmp_path)
    hparams = {"sample_rate": 16000, "hop_length": 256, "crop_seconds": 0, "joint_probes": True,
               "data_folder": str(tiny_corpus.voicebank), "shard_folder": str(tmp_path / "shards")}
    for split in ("train", "valid", "test"):
        hparams[f"{split}_annotation"] = str(tmp_path / f"{split}.csv")
        train_py.write_shards(tmp_path / f"{split}.csv", tmp_path / "shards" / split, max_count=4)
    from_csv = train_py.dataio_prep(hparams)
    from_shards = train_py.dataio_prep({**hparams, "data_format": "shards"})
    for split in ("train", "test"):
        csv_items = {from_csv[split][i]["id"]: from_csv[split][i] for i in range(len(from_csv[split]))}
        shard_items = list(from_shards[split])
        assert sorted(it["id"] for it in shard_items) == sorted(csv_items)
        for item in shard_items:
            ref = csv_items[item["id"]]
            assert ref["f0"].max() > 0 and ref["vad"].sum() > 0  # real labels, not zeros
            for key in ("vad", "f0", "clean_sig"):
                assert torch.equal(item[key], ref[key]), (item["id"], key)


def test_joint_probe_heads_train_and_are_checkpointed(repo_root, tiny_corpus, tmp_path):
    """--joint_probes=True logs the head losses and saves the heads with the enhancer."""
    out = tmp_path / "run"
    _run(repo_root, out, f"--data_folder={tiny_corpus.voicebank}", "--joint_probes=True", "--number_of_epochs=1",
         "--batch_size=8", "--crop_seconds=0.5", "--use_pesq=False", "--use_stoi=False", "--save_enhanced=False")
    log = (out / "train_log.txt").read_text()
    assert "train probe_f0" in log and "valid probe_vad" in log
    (ckpt,) = (out / "save").glob("CKPT+*")
    state = torch_load(ckpt / "gate_probes.ckpt")
    assert set(state) == {"heads.vad.weight", "heads.vad.bias", "heads.f0.weight", "heads.f0.bias"}
    assert state["heads.f0.weight"].shape == (1, 6 * 128)


def torch_load(path):
    import torch

    return torch.load(path, weights_only=True)


@pytest.mark.slow
def test_short_training_on_real_speech(repo_root, mini_shared, digest, tmp_path):
    """data_folder=real_speech: prepares the corpus, mixes training items on the fly with the
    speech/pause budget and joint heads, tests on held-out speakers; the source stays untouched."""
    before = digest(mini_shared)
    out, corpus = tmp_path / "run", tmp_path / "corpus"
    _run(repo_root, out, "--data_folder=real_speech", f"--shared_data={mini_shared}", f"--real_corpus_folder={corpus}",
         "--number_of_epochs=2", "--batch_size=4", "--crop_seconds=1.0", "--phi_pause=0.1", "--joint_probes=True",
         "--mix_prob=0.85", "--snr_low=-5", "--snr_high=25", "--reverb_prob=0.25", "--select_metric=se",
         "--use_pesq=False", "--use_stoi=False", "--save_enhanced=False")
    summary = json.loads((out / "test" / "summary.json").read_text())
    rows = list(csv.DictReader(open(out / "test" / "per_utterance.csv")))
    test_rows = list(csv.DictReader(open(corpus / "test.csv")))
    assert summary["n_utterances"] == len(rows) == len(test_rows) > 0
    train_spk = {r["spk_id"] for r in csv.DictReader(open(corpus / "train.csv"))}
    assert not train_spk & {r["spk_id"] for r in test_rows}
    log = (out / "train_log.txt").read_text()
    assert "train ratio_speech" in log and "train probe_vad" in log and "epoch: 2" in log
    assert {r["noise"] for r in rows} - {"none"}  # real noise classes, not the synthetic ones
    assert digest(mini_shared) == before


@pytest.mark.slow
def test_fine_tuning_starts_from_a_model_folder(repo_root, tmp_path):
    """--init_enhancer_from loads a shipped folder's weights into a new run (lr ~0: they are still there after
    an epoch, where a fresh initialisation differs); a folder without weights is named in the error."""
    import torch

    folder = repo_root / "speechbrain_dyncp" / "pretrained" / "dyncp_synthetic_small"
    common = _tiny(tmp_path, *FROZEN)
    shipped = torch.load(folder / "enhancer.ckpt", map_location="cpu", weights_only=True)

    def max_diff(out):
        (ckpt,) = (out / "save").glob("CKPT+*/enhancer.ckpt")
        trained = torch.load(ckpt, map_location="cpu", weights_only=True)
        keys = [k for k, v in shipped.items() if v.is_floating_point() and "running_" not in k]
        return max(float((trained[k] - shipped[k]).abs().max()) for k in keys)

    _run(repo_root, tmp_path / "tuned", *common, f"--init_enhancer_from={folder}")
    _run(repo_root, tmp_path / "fresh", *common)
    assert max_diff(tmp_path / "tuned") < 1e-6 < 1e-2 < max_diff(tmp_path / "fresh")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "recipes/DynCP/train.py", "hparams/DynCP/train.yaml", *SMALL_MODEL,
                           f"--output_folder={tmp_path / 'bad'}", "--device=cpu", *common,
                           f"--init_enhancer_from={tmp_path}"], cwd=repo_root, env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and f"checkpoint not found: {tmp_path / 'enhancer.ckpt'}" in proc.stdout + proc.stderr


def test_low_snr_boost_reaches_the_waveform_term(repo_root, tmp_path):
    """With lr ~0 the weights stay put, so a boost that covers every item (pivot 200 dB: weight 1 + 9)
    must multiply the logged validation waveform term by exactly 10."""
    common = _tiny(tmp_path, *FROZEN, "--lambda_si_sdr=0.1")
    terms = []
    for name, extra in (("plain", []), ("boost", ["--si_sdr_low_snr_boost=9.0", "--si_sdr_low_snr_db=200.0"])):
        _run(repo_root, tmp_path / name, *common, *extra)
        log = (tmp_path / name / "train_log.txt").read_text()
        terms.append(float(re.search(r"valid neg_si_sdr: ([-0-9.e+]+)", log).group(1)))
    assert terms[0] != 0.0 and terms[1] == pytest.approx(10 * terms[0], rel=1e-2)


def test_residual_noise_term_reaches_the_loss(repo_root, tmp_path):
    """With lr ~0 the weights stay put, so switching the residual-noise term on (weight 1) must add
    exactly the logged residual-noise level to the validation loss; a sigmoid mask (< 1 everywhere)
    lets through less noise than there is, so that level is negative."""
    common = _tiny(tmp_path, *FROZEN)
    logs = {}
    for name, extra in (("plain", []), ("residual", ["--lambda_residual_noise=1.0"])):
        _run(repo_root, tmp_path / name, *common, *extra)
        logs[name] = (tmp_path / name / "train_log.txt").read_text()
    loss = {k: float(re.search(r"valid loss: ([-0-9.e+]+)", v).group(1)) for k, v in logs.items()}
    residual_db = float(re.search(r"valid residual_noise_db: ([-0-9.e+]+)", logs["residual"]).group(1))
    assert "residual_noise_db" not in logs["plain"]
    assert residual_db < -1.0
    assert loss["residual"] - loss["plain"] == pytest.approx(residual_db, rel=2e-2, abs=2e-2)


def test_dnsmos_term_reaches_the_training_loss(repo_root, tmp_path):
    """With lr ~0 both runs see the same weights and batches, so switching the DNSMOS term on (weight 1)
    must lower the logged training loss by exactly the logged mean OVRL of the scored items, a MOS in
    (1, 5); the validation loss (the term is training-only) stays the same."""
    common = _tiny(tmp_path, *FROZEN)
    logs = {}
    for name, extra in (("plain", []), ("dnsmos", ["--lambda_dnsmos=1.0", "--dnsmos_items=2"])):
        _run(repo_root, tmp_path / name, *common, *extra)
        logs[name] = (tmp_path / name / "train_log.txt").read_text()
    train = {k: float(re.search(r"train loss: ([-0-9.e+]+)", v).group(1)) for k, v in logs.items()}
    valid = {k: float(re.search(r"valid loss: ([-0-9.e+]+)", v).group(1)) for k, v in logs.items()}
    ovrl = float(re.search(r"train dnsmos_ovrl: ([-0-9.e+]+)", logs["dnsmos"]).group(1))
    assert "dnsmos" not in logs["plain"] and 1.0 < ovrl < 5.0
    assert train["plain"] - train["dnsmos"] == pytest.approx(ovrl, rel=2e-2)
    assert valid["dnsmos"] == pytest.approx(valid["plain"], rel=1e-6)


@pytest.mark.slow
def test_fine_tuning_starts_from_the_shipped_default(repo_root, tmp_path):
    """The bundled default carries a pause floor (an inference setting, a copy of its VAD probe) that a
    training enhancer has not: --init_enhancer_from leaves it out, says so, and loads the network exactly."""
    import torch

    folder = repo_root / "speechbrain_dyncp" / "pretrained" / "dyncp_real_base"
    shipped = torch.load(folder / "enhancer.ckpt", map_location="cpu", weights_only=True)
    assert any(k.startswith("pause_floor.") for k in shipped)
    out = tmp_path / "tuned"
    proc = _run(repo_root, out, *_tiny(tmp_path, *FROZEN, f"--init_enhancer_from={folder}"),
                model=["--residual_channels=128", "--hidden_channels=256", "--n_stacks=3", "--gate_hidden=16"])
    assert "pause floor left out" in proc.stdout + proc.stderr + (out / "log.txt").read_text()
    (ckpt,) = (out / "save").glob("CKPT+*/enhancer.ckpt")
    trained = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert not any(k.startswith("pause_floor.") for k in trained)
    keys = [k for k, v in trained.items() if v.is_floating_point() and "running_" not in k]
    assert max(float((trained[k] - shipped[k]).abs().max()) for k in keys) < 1e-6
