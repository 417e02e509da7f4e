"""Model folders that do not fit their model, and user errors of the CLI (issue 18)."""

import numpy as np
import pytest
import soundfile as sf
import torch
from tiny_speaker import write_tiny_speaker_folder

from speechbrain_dyncp.cli import load_enhancer, main
from speechbrain_dyncp.export import write_model_folder
from speechbrain_dyncp.inference.speaker import load_speaker_model
from speechbrain_dyncp.inference.strict import ModelFolderError
from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer

SR = 16000
CFG = dict(channels=8, hidden=8, n_stacks=1, n_blocks=2, gate_hidden=4)


@pytest.fixture()
def enhancer_dir(tmp_path):
    torch.manual_seed(0)
    state = DynCPEnhancer(**CFG).state_dict()
    return write_model_folder(tmp_path / "model", CFG, state), state


@pytest.fixture()
def speaker_dir(tmp_path):
    d = tmp_path / "spk"
    return d, write_tiny_speaker_folder(d)


def _tone(path, f0=200.0, n=SR):
    sf.write(path, 0.3 * np.sin(2 * np.pi * f0 * np.arange(n) / SR), SR)
    return path


@pytest.mark.parametrize("damage", ["empty", "module_prefix", "partial"])
def test_enhancer_checkpoint_that_does_not_fit_refuses_to_load(enhancer_dir, damage, caplog):
    folder, state = enhancer_dir
    bad = {"empty": {}, "module_prefix": {f"module.{k}": v for k, v in state.items()},
           "partial": dict(list(state.items())[: len(state) // 2])}[damage]
    torch.save(bad, folder / "enhancer.ckpt")
    with pytest.raises(ModelFolderError, match=r"enhancer\.ckpt: checkpoint does not match") as info:
        load_enhancer(str(folder))
    msg = str(info.value)
    assert "missing keys" in msg and sorted(state)[0] in msg
    assert ("unexpected keys module." in msg) == (damage == "module_prefix")
    assert len(caplog.records) < 10  # one error, not one warning per key


def test_speaker_checkpoint_that_does_not_fit_refuses_to_load(speaker_dir, tmp_path, capsys):
    d, state = speaker_dir
    torch.save({f"module.{k}": v for k, v in state.items()}, d / "embedding_model.ckpt")
    with pytest.raises(ModelFolderError, match=r"embedding_model\.ckpt: checkpoint does not match"):
        load_speaker_model(d)
    a, b = _tone(tmp_path / "a.wav"), _tone(tmp_path / "b.wav", 300)
    assert main(["verify", str(a), str(b), "--model", str(d)]) == 2
    out, err = capsys.readouterr()
    assert "score" not in out
    assert len(err.strip().splitlines()) == 1 and "embedding_model.ckpt" in err and "Traceback" not in err


def test_truncated_speaker_checkpoint_is_one_line(speaker_dir, tmp_path, capsys):
    d, _ = speaker_dir
    data = (d / "embedding_model.ckpt").read_bytes()
    (d / "embedding_model.ckpt").write_bytes(data[: len(data) // 3])
    a = _tone(tmp_path / "a.wav")
    assert main(["verify", str(a), str(a), "--model", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot load its checkpoint (embedding_model.ckpt)" in err


MALICIOUS = {
    "apply": "x: !apply:os.system [\"touch {marker}\"]\n",
    "python_object": "x: !!python/object/apply:os.system [\"touch {marker}\"]\n",
    "reexport": "x: !apply:torch.os.system [\"touch {marker}\"]\n",
    "superpowers": "x: !apply:speechbrain.utils.superpowers.run_shell [\"touch {marker}\"]\n",
    "unknown_package": "x: !new:subprocess.Popen [[\"touch\", \"{marker}\"]]\n",
}


@pytest.mark.parametrize("kind", sorted(MALICIOUS))
def test_model_folder_that_runs_code_is_refused_and_nothing_runs(enhancer_dir, tmp_path, kind, capsys):
    folder, _ = enhancer_dir
    marker = tmp_path / "pwned"
    hp = folder / "hyperparams.yaml"
    hp.write_text(MALICIOUS[kind].format(marker=marker) + hp.read_text())
    wav = _tone(tmp_path / "a.wav")
    assert main(["enhance", str(wav), "-o", str(tmp_path / "out"), "--model", str(folder), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hyperparams.yaml: tag" in err and "--trust-model-code" in err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_trust_model_code_is_an_explicit_opt_out(enhancer_dir, tmp_path, capsys):
    folder, _ = enhancer_dir
    marker = tmp_path / "ran"
    hp = folder / "hyperparams.yaml"
    hp.write_text(MALICIOUS["apply"].format(marker=marker) + hp.read_text())
    wav = _tone(tmp_path / "a.wav")
    assert main(["enhance", str(wav), "-o", str(tmp_path / "out"), "--model", str(folder), "-q",
                 "--trust-model-code"]) == 0
    assert marker.exists()  # the folder's code ran because the user said it may


def test_help_says_a_model_folder_is_code(capsys):
    with pytest.raises(SystemExit):
        main(["enhance", "--help"])
    assert "hyperparams.yaml is code" in " ".join(capsys.readouterr().out.split())


def test_bundled_and_exported_folders_pass_safe_mode(enhancer_dir):
    assert load_enhancer(None).enhancer is not None
    assert load_enhancer(str(enhancer_dir[0])).enhancer is not None


@pytest.mark.parametrize("trust", [False, True])
def test_malformed_hyperparams_is_one_line(enhancer_dir, tmp_path, capsys, trust):
    folder, _ = enhancer_dir
    (folder / "hyperparams.yaml").write_text("sample_rate: [16000\nenhancer: {\n")
    wav = _tone(tmp_path / "a.wav")
    args = ["enhance", str(wav), "-o", str(tmp_path / "out"), "--model", str(folder), "-q"]
    assert main(args + ["--trust-model-code"] * trust) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hyperparams.yaml" in err and "Traceback" not in err


def test_corrupt_enhancer_checkpoint_is_one_line_and_traceback_only_with_verbose(enhancer_dir, tmp_path, capsys):
    folder, _ = enhancer_dir
    data = (folder / "enhancer.ckpt").read_bytes()
    (folder / "enhancer.ckpt").write_bytes(data[: len(data) // 2])
    wav = _tone(tmp_path / "a.wav")
    args = ["enhance", str(wav), "-o", str(tmp_path / "out"), "--model", str(folder), "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot load its checkpoint (enhancer.ckpt)" in err
    assert main(["-v", *args]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_export_into_an_existing_model_folder_is_one_line(enhancer_dir, tmp_path, capsys):
    folder, _ = enhancer_dir
    before = (folder / "enhancer.ckpt").read_bytes()
    assert main(["export", str(tmp_path / "no_experiment"), "-o", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{folder} already holds a model" in err
    assert (folder / "enhancer.ckpt").read_bytes() == before


def _write_float(path, samples):
    sf.write(path, np.asarray(samples, np.float32), SR, subtype="FLOAT")
    return path


@pytest.mark.parametrize("n_samples", [1, 160])
def test_verify_short_file_is_one_line(speaker_dir, tmp_path, capsys, n_samples):
    d, _ = speaker_dir
    short = _write_float(tmp_path / "short.wav", 0.1 * np.ones(n_samples))
    assert main(["verify", str(_tone(tmp_path / "a.wav")), str(short), "--model", str(d)]) == 1
    out, err = capsys.readouterr()
    assert "score" not in out
    assert len(err.strip().splitlines()) == 1 and "short.wav" in err and "too short" in err


def test_verify_overflowing_file_gives_no_score(speaker_dir, tmp_path, capsys):
    d, _ = speaker_dir
    huge = _write_float(tmp_path / "huge.wav", np.full(SR, 3e38))
    assert main(["verify", str(_tone(tmp_path / "a.wav")), str(huge), "--model", str(d)]) == 1
    out, err = capsys.readouterr()
    assert "nan" not in out and "score" not in out
    assert "huge.wav" in err and "overflows" in err


def test_embed_lists_bad_files_as_failed_and_stores_no_nan(speaker_dir, tmp_path, capsys):
    d, _ = speaker_dir
    src = tmp_path / "in"
    src.mkdir()
    _tone(src / "good.wav")
    _write_float(src / "one.wav", [0.1])
    _write_float(src / "ten_ms.wav", 0.1 * np.ones(160))
    _write_float(src / "huge.wav", np.full(SR, 3e38))
    out = tmp_path / "emb.npz"
    assert main(["embed", str(src), "-o", str(out), "--model", str(d)]) == 1
    stdout, err = capsys.readouterr()
    assert "embedded 1 files, failed 3" in stdout
    for name in ("one.wav", "ten_ms.wav", "huge.wav"):
        assert name in err
    stored = np.load(out)
    assert list(stored) == ["good.wav"] and np.isfinite(stored["good.wav"]).all()


def test_embed_output_is_never_silently_replaced_and_reported_as_written(speaker_dir, tmp_path, capsys):
    d, _ = speaker_dir
    src = tmp_path / "in"
    src.mkdir()
    _tone(src / "good.wav")
    assert main(["embed", str(src), "-o", str(tmp_path / "out" / "mydata"), "--model", str(d)]) == 0
    written = tmp_path / "out" / "mydata.npz"
    assert capsys.readouterr().out.strip().endswith(f"-> {written}")
    before = written.read_bytes()
    assert main(["embed", str(src), "-o", str(written), "--model", str(d)]) == 2
    err = capsys.readouterr().err
    assert "Refusing to overwrite" in err and str(written) in err and written.read_bytes() == before
    assert main(["embed", str(src), "-o", str(written), "--model", str(d), "--overwrite"]) == 0
    assert list(np.load(written)) == ["good.wav"] and not list((tmp_path / "out").glob("*.part"))


def test_embed_unwritable_output_fails_before_the_work(speaker_dir, tmp_path, capsys, monkeypatch):
    import speechbrain_dyncp.inference.speaker as speaker

    d, _ = speaker_dir
    _tone(tmp_path / "a.wav")
    (tmp_path / "blocker").write_text("a file where the output folder should be")

    def no_work(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(speaker, "load_speaker_model", no_work)
    assert main(["embed", str(tmp_path / "a.wav"), "-o", str(tmp_path / "blocker" / "e.npz"), "--model", str(d)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "blocker" in err


def test_text_files_beside_the_checkpoints_still_load(speaker_dir):
    d, state = speaker_dir
    (d / "label_encoder.ckpt").write_text("'id1' => 0\n'id2' => 1\n================\n'starting_index' => 0\n")
    model = load_speaker_model(d)  # the weights-only pre-read skips what torch.save did not write
    assert all(torch.equal(model.mods.embedding_model.state_dict()[k], v) for k, v in state.items())


def _experiment(root):
    """A recipe output folder: hyperparams.yaml + save/CKPT+*/enhancer.ckpt."""
    from speechbrain.utils.checkpoints import Checkpointer

    root.mkdir()
    (root / "hyperparams.yaml").write_text("enhancer: !new:speechbrain_dyncp.lobes.enhancer.DynCPEnhancer\n"
                                           + "".join(f"    {k}: {v}\n" for k, v in CFG.items()))
    return Checkpointer(root / "save", {"enhancer": DynCPEnhancer(**CFG)}).save_checkpoint().path


@pytest.mark.parametrize("damage", ["yaml", "ckpt"])
def test_export_of_a_damaged_experiment_is_one_line(tmp_path, capsys, damage):
    ckpt_dir = _experiment(tmp_path / "exp")
    if damage == "yaml":
        (tmp_path / "exp" / "hyperparams.yaml").write_text("enhancer: !new:x.Y\n    channels: [8\n")
    else:
        data = (ckpt_dir / "enhancer.ckpt").read_bytes()
        (ckpt_dir / "enhancer.ckpt").write_bytes(data[: len(data) // 2])
    assert main(["export", str(tmp_path / "exp"), "-o", str(tmp_path / "model")]) == 2
    err = capsys.readouterr().err.strip()
    named = "hyperparams.yaml" if damage == "yaml" else "enhancer.ckpt"
    assert len(err.splitlines()) == 1 and named in err and "Traceback" not in err
    assert not (tmp_path / "model").exists()


def test_export_of_an_intact_experiment_still_works(tmp_path, capsys):
    _experiment(tmp_path / "exp")
    assert main(["export", str(tmp_path / "exp"), "-o", str(tmp_path / "model")]) == 0
    assert load_enhancer(str(tmp_path / "model")).enhancer is not None


def test_from_hparams_takes_a_bundled_name_offline_and_a_same_named_folder_wins(tmp_path, monkeypatch):
    """The README's ``from_hparams``: a bundled name is that folder (no hub fetch, HF_HUB_OFFLINE=1 here);
    a folder of that name in the working directory is the user's and is loaded instead."""
    from speechbrain_dyncp.inference.enhancement import DynCPEnhancement
    from speechbrain_dyncp.inference.loading import bundled_model_dir

    x = torch.randn(1, 16000, generator=torch.Generator().manual_seed(0))
    by_name = DynCPEnhancement.from_hparams(source="dyncp_real_small", savedir=None)
    by_path = DynCPEnhancement.from_hparams(source=str(bundled_model_dir("dyncp_real_small")), savedir=None)
    assert torch.equal(by_name.enhance_batch(x), by_path.enhance_batch(x))
    torch.manual_seed(1)
    write_model_folder(tmp_path / "dyncp_real_small", dict(channels=8, hidden=16, n_stacks=2, n_blocks=3,
                                                              gate_hidden=4), DynCPEnhancer(channels=8, hidden=16,
                       n_stacks=2, n_blocks=3, gate_hidden=4).state_dict())
    monkeypatch.chdir(tmp_path)
    own = DynCPEnhancement.from_hparams(source="dyncp_real_small", savedir=None)
    count = lambda m: sum(p.numel() for p in m.enhancer.parameters())  # noqa: E731
    assert count(own) < count(by_name)  # the tiny folder here, not the bundled model
    with pytest.raises(Exception):  # not ours and not a folder: SpeechBrain's hub reading, offline here
        DynCPEnhancement.from_hparams(source="no_such_model_anywhere", savedir=str(tmp_path / "sd"))
