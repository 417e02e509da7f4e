"""Model folders and the ``dyncp enhance`` command, as a user meets them."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbrain_dyncp.cli import load_enhancer, main
from speechbrain_dyncp.export import check_model_folder, read_module_definition, write_model_folder
from speechbrain_dyncp.lobes.enhancer import dyncp_small

SMALL = dict(channels=64, hidden=128, n_stacks=2, n_blocks=3, gate_hidden=32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = dyncp_small().eval()
    with torch.no_grad():  # non-trivial BN statistics, so a silent partial load would show
        for bn in model.modules():
            if isinstance(bn, torch.nn.BatchNorm1d):
                bn.running_mean.uniform_(-0.1, 0.1)
                bn.running_var.uniform_(0.5, 1.5)
    return write_model_folder(tmp_path_factory.mktemp("m") / "model", SMALL, model.state_dict()), model


def test_from_hparams_offline_round_trip_equal_weights(model_dir, monkeypatch):
    folder, model = model_dir
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_enhancer(str(folder))
    ref = model.state_dict()
    got = loaded.enhancer.state_dict()
    assert set(got) == set(ref)
    for k in ref:
        assert torch.equal(got[k], ref[k]), k
    wav = torch.randn(1, 8000)
    torch.testing.assert_close(loaded.enhance_batch(wav), model(wav).wav)


def test_corrupted_checkpoint_is_caught(model_dir, tmp_path):
    folder, model = model_dir
    state = {k: v.clone() for k, v in model.state_dict().items()}
    bad = tmp_path / "bad"
    write_model_folder(bad, SMALL, state)
    # Truncate the weights file: loading must fail loudly, never run with random weights.
    data = (bad / "enhancer.ckpt").read_bytes()
    (bad / "enhancer.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception):
        check_model_folder(bad, {"enhancer": state})
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        load_enhancer(str(tmp_path / "no_such_model"))


def test_recipe_yaml_definition_is_read_with_refs_resolved(repo_root):
    tag, kwargs = read_module_definition(repo_root / "hparams" / "DynCP" / "train.yaml", "enhancer")
    assert tag.endswith("DynCPEnhancer")
    assert all(not isinstance(v, str) or "<" not in v for v in kwargs.values())


def test_enhance_folder_with_bad_and_odd_files(model_dir, tmp_path, capsys):
    folder, model = model_dir
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    t = np.arange(16000) / 16000
    sf.write(src / "good.wav", 0.3 * np.sin(2 * np.pi * 200 * t), 16000)
    t44 = np.arange(44100) / 44100
    sf.write(src / "sub" / "stereo44k.wav", 0.3 * np.stack([np.sin(2 * np.pi * 300 * t44)] * 2, 1), 44100)
    (src / "corrupt.wav").write_bytes(b"RIFF1234WAVEfmt garbage")
    out = tmp_path / "out"
    status = main(["enhance", str(src), "-o", str(out), "--model", str(folder), "--probes", "-q"])
    err = capsys.readouterr().err
    assert status == 1
    assert "corrupt.wav" in err and "good.wav" not in err
    good = sf.info(str(out / "good.wav"))
    stereo = sf.info(str(out / "sub" / "stereo44k.wav"))
    assert (good.samplerate, good.channels, good.frames) == (16000, 1, 16000)
    assert (stereo.samplerate, stereo.channels) == (16000, 1) and abs(stereo.frames - 16000) <= 1
    summary = json.loads((out / "good.json").read_text())
    assert 0.0 <= summary["realised_channel_ratio"] <= 1.0
    lines = (out / "good.probes.csv").read_text().splitlines()
    assert lines[0].startswith("frame,time_s") and len(lines) == 1 + 1 + 16000 // 256
    # Re-run: finished files are skipped, not redone; inputs are untouched.
    before = (out / "good.wav").stat().st_mtime_ns
    main(["enhance", str(src), "-o", str(out), "--model", str(folder), "-q"])
    assert (out / "good.wav").stat().st_mtime_ns == before
    assert "skipped 2 already done" in capsys.readouterr().out


def test_enhance_refuses_to_overwrite_input(model_dir, tmp_path, capsys):
    folder, _ = model_dir
    sf.write(tmp_path / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(8000), 16000)
    before = (tmp_path / "a.wav").read_bytes()
    status = main(["enhance", str(tmp_path / "a.wav"), "-o", str(tmp_path), "--model", str(folder),
                   "--overwrite", "-q"])
    assert status == 1 and "overwrite the input" in capsys.readouterr().err
    assert (tmp_path / "a.wav").read_bytes() == before


def test_enhance_empty_folder_is_an_error(model_dir, tmp_path, capsys):
    folder, _ = model_dir
    (tmp_path / "empty").mkdir()
    assert main(["enhance", str(tmp_path / "empty"), "-o", str(tmp_path / "o"), "--model", str(folder)]) == 2
    assert "no audio files" in capsys.readouterr().err


def test_long_files_take_the_bounded_memory_path(model_dir, tmp_path, capsys):
    folder, model = model_dir
    rng = np.random.default_rng(1)
    wav = 0.2 * rng.standard_normal(3 * 16000).astype(np.float32)
    sf.write(tmp_path / "long.wav", wav, 16000)
    out = tmp_path / "o"
    assert main(["enhance", str(tmp_path / "long.wav"), "-o", str(out), "--model", str(folder),
                 "--chunk-over", "1", "--probes", "-q"]) == 0
    assert "enhanced in chunks" in capsys.readouterr().err
    chunked, _ = sf.read(out / "long.wav", dtype="float32")
    with torch.no_grad():
        ref = model(torch.from_numpy(wav)[None]).wav[0].numpy()
    assert np.abs(chunked - ref).max() < 2e-3  # 16-bit output quantisation + float tolerance


def test_enhance_without_probes_runs_the_c_kernel_and_matches_the_offline_graph(model_dir, tmp_path, monkeypatch):
    """Audio-only `dyncp enhance` streams through the C kernel where it was built: same output."""
    from speechbrain_dyncp import streaming

    folder, model = model_dir
    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal(12000)).astype(np.float32)
    sf.write(tmp_path / "n.wav", wav, 16000, subtype="FLOAT")
    calls = []
    real = streaming.FastStreamer
    monkeypatch.setattr(streaming, "FastStreamer", lambda *a, **k: calls.append(k) or real(*a, **k))
    assert main(["enhance", str(tmp_path / "n.wav"), "-o", str(tmp_path / "out"), "--model", str(folder), "-q"]) == 0
    got, _ = sf.read(tmp_path / "out" / "n.wav", dtype="float32")
    want = model(torch.from_numpy(wav)[None]).wav[0].detach().numpy()
    assert np.abs(got - want).max() < 1e-4  # float32 kernel vs the offline graph 
    assert calls == ([{"backend": "c"}] if streaming.c_available() else [])
