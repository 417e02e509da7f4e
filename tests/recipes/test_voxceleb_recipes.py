"""VoxCeleb recipes on the embedded corpus: train ECAPA, resume, verify, bad trial lists.

Training uses the "small" preset (18 training speakers, 6 held-out trial
speakers, 576 trials; ~11 s CPU to build): the "tiny" one has 5 training
speakers, too few for embeddings that generalise (EER stays at chance there).
Measured on 1 core, small model below: untrained network EER ~40 %, after 10
epochs ~27 %. The recipes run in-process (their ``main(argv)``), which saves
the interpreter and import start-up of a subprocess per run.
"""

import importlib.util
import json
import math

import pytest
import torch

from speechbrain_dyncp.verification.trials import UnknownTrialIdError

TRAIN_ARGS = [
    "--device=cpu", "--noprogressbar", "--num_workers=0", "--batch_size=16", "--sentence_len=1.5",
    "--channels=[64,64,64,64,192]", "--attention_channels=32", "--se_channels=32", "--emb_dim=64",
    "--lr=0.004", "--lr_final=0.0005",
]
EPOCHS = 10


def _load(repo_root, name):
    spec = importlib.util.spec_from_file_location(f"vox_{name}", repo_root / "recipes" / "VoxCeleb" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train(repo_root, corpus, out, epochs):
    _load(repo_root, "train_speaker").main([
        str(repo_root / "hparams/VoxCeleb/train_ecapa.yaml"), f"--data_folder={corpus.voxceleb}",
        f"--output_folder={out}", f"--number_of_epochs={epochs}", *TRAIN_ARGS])


def _verify(repo_root, corpus, model_dir, out, *extra):
    return _load(repo_root, "verify").main([
        str(repo_root / "hparams/VoxCeleb/verify_ecapa.yaml"), f"--data_folder={corpus.voxceleb}",
        f"--model_dir={model_dir}", f"--output_folder={out}", "--device=cpu", "--cohort_top_k=10", *extra])


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    from speechbrain_dyncp.data.synth import build_corpus

    return build_corpus(tmp_path_factory.mktemp("small_corpus"), preset="small", seed=0)


@pytest.fixture(scope="module")
def trained(repo_root, small_corpus, tmp_path_factory):
    """ECAPA trained for EPOCHS epochs on the small corpus (shared by the tests below)."""
    out = tmp_path_factory.mktemp("ecapa_small")
    _train(repo_root, small_corpus, out, epochs=EPOCHS)
    return out


@pytest.mark.slow
def test_train_then_verify_beats_chance(repo_root, small_corpus, trained, tmp_path):
    """A few epochs give a finite EER well below chance (50 %) and the untrained ~40 %, and every output file."""
    log = (trained / "train_log.txt").read_text()
    assert f"epoch: {EPOCHS}," in log
    assert list((trained / "save").glob("CKPT+*/embedding_model.ckpt"))
    results = _verify(repo_root, small_corpus, trained / "model", tmp_path)
    eer = results["none"]["EER"]
    print({k: (round(v["EER"], 2), round(v["minDCF@0.05"], 3)) for k, v in results.items()})  # shown with -s
    assert math.isfinite(eer) and eer < 34.0, results
    for norm in ("none", "s-norm", "as-norm"):
        assert 0.0 <= results[norm]["minDCF@0.05"] <= 1.0
    lines = (tmp_path / "scores.txt").read_text().splitlines()
    assert len(lines) == results["none"]["n_trials"] > 0
    assert json.loads((tmp_path / "metrics.json").read_text())["EER"] == pytest.approx(eer)


@pytest.mark.slow
def test_resume_continues_from_checkpoint(repo_root, small_corpus, trained, tmp_path):
    """Asking for one more epoch trains only that epoch (the others come from the checkpoint)."""
    import shutil

    out = tmp_path / "resume"
    shutil.copytree(trained, out, ignore=shutil.ignore_patterns("corpus"))
    before = (out / "train_log.txt").read_text()
    _train(repo_root, small_corpus, out, epochs=EPOCHS + 1)
    added = (out / "train_log.txt").read_text()[len(before):]
    assert f"epoch: {EPOCHS + 1}," in added and "epoch: 1," not in added


@pytest.mark.slow
def test_unknown_trial_id_is_named(repo_root, small_corpus, trained, tmp_path):
    """A trial list naming an utterance that does not exist fails with the documented error."""
    trials = (small_corpus.voxceleb / "meta" / "veri_test2.txt").read_text().splitlines()
    bad = tmp_path / "trials.txt"
    first = trials[0].split()
    bad.write_text("\n".join(trials[:3] + [f"0 {first[1]} id99999/nosession/00001.wav"]) + "\n")
    # prepare_voxceleb refuses the line (ValueError naming file:line and the id) before any scoring
    with pytest.raises(ValueError, match=r"trials\.txt:4: unknown file 'id99999/nosession/00001\.wav'"):
        _verify(repo_root, small_corpus, trained / "model", tmp_path / "v", f"--verification_file={bad}",
                "--score_norms=[none]")


def test_pipeline_names_ids_missing_from_manifests(tiny_corpus, tmp_path):
    """run_verification with manifests that lack a trial id raises UnknownTrialIdError naming it."""
    from speechbrain_dyncp.data.voxceleb import prepare_voxceleb
    from speechbrain_dyncp.verification.pipeline import run_verification
    from speechbrain_dyncp.verification.trials import Trials

    csvs = prepare_voxceleb(tiny_corpus.voxceleb, tmp_path / "csv", splits=["test"])
    trials = Trials(["id_missing/s/1"], [csvs["test"].read_text().splitlines()[1].split(",")[0]], [1])

    def embed(wavs, lens):  # any callable works; this one is a 2-d "embedding"
        return torch.stack([wavs.mean(1), wavs.std(1)], 1)

    with pytest.raises(UnknownTrialIdError, match="id_missing/s/1"):
        run_verification(embed, trials, [csvs["enrol"], csvs["test"]])


@pytest.mark.slow
def test_exported_model_folder_round_trip(trained, tmp_path, small_corpus):
    """The exported folder loads in SpeechBrain's EncoderClassifier and in load_speaker_embedder, identically,
    with the best checkpoint's weights (strict)."""
    from speechbrain.inference.speaker import EncoderClassifier
    from speechbrain.utils.checkpoints import Checkpointer

    from speechbrain_dyncp.data.audio import read_audio
    from speechbrain_dyncp.verification.embedding import load_speaker_embedder

    model_dir = trained / "model"
    # the best checkpoint, as the export picks it (not whichever CKPT+* the folder lists first)
    best = Checkpointer(trained / "save").find_checkpoint(min_key="ErrorRate")
    ckpt = best.path / "embedding_model.ckpt"
    ours = load_speaker_embedder(model_dir)
    for key, value in torch.load(ckpt).items():
        torch.testing.assert_close(ours.embedding_model.state_dict()[key], value)
    sb_model = EncoderClassifier.from_hparams(source=str(model_dir.resolve()), savedir=str(tmp_path / "sb"),
                                              run_opts={"device": "cpu"})
    wav = read_audio(next(small_corpus.voxceleb.glob("wav/*/*/*.wav"))).unsqueeze(0)
    with torch.no_grad():
        torch.testing.assert_close(sb_model.encode_batch(wav, torch.ones(1)).reshape(1, -1), ours(wav))
        assert sb_model.classify_batch(wav)[3][0] in set(sb_model.hparams.label_encoder.lab2ind)


@pytest.mark.slow
def test_verify_stores_cohort_and_threshold_for_the_interface(repo_root, small_corpus, trained, tmp_path):
    """--store_backend=as-norm writes cohort + EER threshold; the interface then reproduces the recipe's scores."""
    import shutil

    from speechbrain_dyncp.inference.speaker import load_speaker_model

    model_dir = tmp_path / "model"
    shutil.copytree(trained / "model", model_dir)
    results = _verify(repo_root, small_corpus, model_dir, tmp_path / "v", "--score_norms=[as-norm]",
                      "--store_backend=as-norm")
    sv = load_speaker_model(model_dir)
    assert sv.threshold == pytest.approx(results["as-norm"]["EER_threshold"])
    assert sv.normalizer is not None and sv.normalizer.method == "as-norm" and sv.normalizer.top_k == 10
    wav = small_corpus.voxceleb / "wav"
    for line in (tmp_path / "v" / "scores.txt").read_text().splitlines()[:3]:
        enrol, test, label, score = line.split()
        got, decision = sv.verify_files(wav / f"{enrol}.wav", wav / f"{test}.wav")
        assert float(got) == pytest.approx(float(score), abs=1e-3)
        assert bool(decision) == (float(score) > sv.threshold)


@pytest.mark.slow
def test_distillation_pulls_the_student_into_the_teachers_space(repo_root, small_corpus, tmp_path):
    """Trained with a teacher, the student's mapped embeddings point where the teacher's do."""
    import csv
    from pathlib import Path

    from hyperpyyaml import load_hyperpyyaml

    from speechbrain_dyncp.data.audio import read_audio
    from speechbrain_dyncp.verification.distillation import EmbeddingDistillationLoss, utterance_key

    wavs = sorted((small_corpus.voxceleb / "wav").rglob("*.wav"))
    gen = torch.Generator().manual_seed(0)
    speaker_dirs = sorted({w.parts[-3] for w in wavs})
    direction = {s: torch.nn.functional.normalize(torch.randn(16, generator=gen), dim=0) for s in speaker_dirs}
    table = {utterance_key(w): direction[w.parts[-3]] for w in wavs}  # a teacher that knows each speaker
    torch.save({"teacher": "toy", "embeddings": table}, tmp_path / "teacher.pt")

    out = tmp_path / "distilled"
    _load(repo_root, "train_speaker").main([
        str(repo_root / "hparams/VoxCeleb/train_ecapa.yaml"), f"--data_folder={small_corpus.voxceleb}",
        f"--output_folder={out}", "--number_of_epochs=4", *TRAIN_ARGS,
        f"--teacher_embeddings={tmp_path / 'teacher.pt'}", "--distill_weight=5.0"])

    ckpt = max((out / "save").glob("CKPT+*"), key=lambda p: p.stat().st_mtime)
    with open(out / "model" / "hyperparams.yaml") as fh:
        model = load_hyperpyyaml(fh)
    model["embedding_model"].load_state_dict(torch.load(ckpt / "embedding_model.ckpt", weights_only=True))
    model["embedding_model"].eval()
    distill = EmbeddingDistillationLoss(64, 16)
    distill.load_state_dict(torch.load(ckpt / "distill.ckpt", weights_only=True))
    with open(out / "save" / "train.csv") as fh:
        train_wavs = sorted({Path(row["wav"]) for row in csv.DictReader(fh)})
    untrained_head = EmbeddingDistillationLoss(64, 16)
    with torch.no_grad():
        losses, chance = [], []
        for w in train_wavs[::7][:40]:
            sig = read_audio(w)[None]
            feats = model["compute_features"](sig)
            feats = feats - feats.mean(dim=1, keepdim=True)  # sentence mean normalisation, as the model's
            emb = model["embedding_model"](feats)
            losses.append(float(distill(emb, table[utterance_key(w)][None])))
            chance.append(float(untrained_head(emb, table[utterance_key(w)][None])))
    distance, untrained = sum(losses) / len(losses), sum(chance) / len(chance)
    assert train_wavs and distance < 0.75 and untrained > 0.9, (distance, untrained)  # cosine distance: 1 is chance
    # the shipped folder is the plain ECAPA: the head stays in the checkpoint
    assert not (out / "model" / "distill.ckpt").exists()


def test_resnet_recipe_exports_its_own_network(repo_root, small_corpus, tmp_path):
    """train_resnet.yaml (Grad-W's 2-D E) through the same recipe: the exported folder defines a ResNetSpeaker
    with the run's sizes (not ECAPA), loads strictly with the checkpoint's weights, and exposes the
    (frequency, time) layer Grad-W taps."""
    from speechbrain.utils.checkpoints import Checkpointer

    from speechbrain_dyncp.inference.speaker import load_speaker_model
    from speechbrain_dyncp.lobes.resnet import ResNetSpeaker

    out = tmp_path / "resnet"
    _load(repo_root, "train_speaker").main([
        str(repo_root / "hparams/VoxCeleb/train_resnet.yaml"), f"--data_folder={small_corpus.voxceleb}",
        f"--output_folder={out}", "--number_of_epochs=1", "--device=cpu", "--noprogressbar", "--num_workers=0",
        "--batch_size=16", "--sentence_len=1.0", "--base_width=4", "--num_blocks=[1,1,1,1]", "--emb_dim=32"])
    model = load_speaker_model(out / "model")
    net = model.mods.embedding_model
    assert isinstance(net, ResNetSpeaker) and net.fc.out_features == 32 and net.trunk.channels[0] == 4
    best = Checkpointer(out / "save").find_checkpoint(min_key="ErrorRate")
    for key, value in torch.load(best.path / "embedding_model.ckpt").items():
        torch.testing.assert_close(net.state_dict()[key], value)
    assert dict(net.named_modules())["trunk.layer4"] is not None
