"""``dyncp enhance`` never loses data: output names, re-runs and half-done outputs (issue 18)."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbrain_dyncp.cli import main
from speechbrain_dyncp.export import write_model_folder
from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer

SR = 16000
CFG = dict(channels=8, hidden=8, n_stacks=1, n_blocks=2, gate_hidden=4)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    return write_model_folder(tmp_path_factory.mktemp("m") / "model", CFG, DynCPEnhancer(**CFG).state_dict())


def _noise(path, seed, n=8000, **kw):
    sf.write(path, 0.1 * np.random.default_rng(seed).standard_normal(n), SR, **kw)
    return path


def _enhance(model_dir, *args):
    return main(["enhance", *map(str, args), "--model", str(model_dir), "-q"])


def test_same_stem_inputs_in_place_never_overwrite_each_other(model_dir, tmp_path, capsys):
    coll = tmp_path / "coll"
    coll.mkdir()
    _noise(coll / "a.wav", 0)
    _noise(coll / "a.flac", 1, format="FLAC")
    before = {p.name: p.read_bytes() for p in coll.iterdir()}
    status = _enhance(model_dir, coll, "-o", coll, "--overwrite")
    err = capsys.readouterr().err
    assert status == 1 and "a.wav" in err and "overwrite" in err
    for name, data in before.items():  # no input was touched
        assert (coll / name).read_bytes() == data, name
    assert (coll / "a.flac.wav").is_file()  # the flac was enhanced beside it, under its own name


def test_same_stem_inputs_both_enhanced_and_none_skipped(model_dir, tmp_path, capsys):
    coll = tmp_path / "coll"
    coll.mkdir()
    _noise(coll / "a.wav", 0)
    _noise(coll / "a.flac", 1, format="FLAC")
    _noise(coll / "good.wav", 2)
    _noise(coll / "good.ogg", 3, format="OGG")
    out = tmp_path / "out"
    assert _enhance(model_dir, coll, "-o", out) == 0
    assert "enhanced 4, skipped 0" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["a.flac.wav", "a.wav", "good.ogg.wav", "good.wav"]
    enhanced_wav, _ = sf.read(out / "a.wav")
    enhanced_flac, _ = sf.read(out / "a.flac.wav")
    assert not np.array_equal(enhanced_wav, enhanced_flac)  # two inputs, two results
    assert _enhance(model_dir, coll, "-o", out) == 0  # re-run: all four are done
    assert "enhanced 0, skipped 4" in capsys.readouterr().out


def test_two_inputs_mapping_to_one_output_are_refused_before_any_work(model_dir, tmp_path, capsys):
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    _noise(tmp_path / "d1" / "x.wav", 0)
    _noise(tmp_path / "d2" / "x.wav", 1)
    out = tmp_path / "out"
    assert _enhance(model_dir, tmp_path / "d1", tmp_path / "d2", "-o", out) == 2
    err = capsys.readouterr().err
    assert "d1/x.wav" in err and "d2/x.wav" in err and "same output" in err
    assert not out.exists()  # nothing was written


def test_output_folder_inside_the_input_tree_is_not_re_enhanced(model_dir, tmp_path, capsys):
    coll = tmp_path / "coll"
    coll.mkdir()
    _noise(coll / "a.wav", 0)
    assert _enhance(model_dir, coll, "-o", coll / "enh") == 0
    assert _enhance(model_dir, coll, "-o", coll / "enh") == 0
    assert "enhanced 0, skipped 1" in capsys.readouterr().out.splitlines()[-1]
    assert not (coll / "enh" / "enh").exists()


def test_failed_plot_leaves_no_output_that_a_rerun_would_skip(model_dir, tmp_path, capsys, monkeypatch):
    import speechbrain_dyncp.plots as plots

    _noise(tmp_path / "a.wav", 0)
    out = tmp_path / "out"

    def broken_plot(*args, **kwargs):
        raise RuntimeError("plot backend failed")

    monkeypatch.setattr(plots, "plot_analysis", broken_plot)
    assert _enhance(model_dir, tmp_path / "a.wav", "-o", out, "--plot") == 1
    assert "plot backend failed" in capsys.readouterr().err
    assert not (out / "a.wav").exists()
    monkeypatch.undo()
    assert _enhance(model_dir, tmp_path / "a.wav", "-o", out, "--plot") == 0  # the rerun redoes it
    assert "enhanced 1, skipped 0" in capsys.readouterr().out
    assert (out / "a.wav").is_file() and (out / "a.png").is_file()


def test_probe_outputs_of_same_stem_inputs_are_distinct(model_dir, tmp_path):
    coll = tmp_path / "coll"
    coll.mkdir()
    _noise(coll / "a.wav", 0)
    _noise(coll / "a.flac", 1, format="FLAC")
    out = tmp_path / "out"
    assert _enhance(model_dir, coll, "-o", out, "--probes") == 0
    assert json.loads((out / "a.json").read_text())["frames"] > 0
    assert json.loads((out / "a.flac.json").read_text())["frames"] > 0
    assert (out / "a.probes.csv").is_file() and (out / "a.flac.probes.csv").is_file()


def test_float_input_over_full_scale_is_scaled_and_said_so(model_dir, tmp_path, capsys):
    t = np.arange(SR) / SR
    sf.write(tmp_path / "loud.wav", (5000 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR, subtype="FLOAT")
    out = tmp_path / "out"
    assert _enhance(model_dir, tmp_path / "loud.wav", "-o", out, "--probes") == 0
    assert "peaks at 5000, over full scale" in capsys.readouterr().err
    assert "over_full_scale" in json.loads((out / "loud.json").read_text())["warnings"]
    enhanced, _ = sf.read(out / "loud.wav")
    assert np.mean(np.abs(enhanced) >= 0.999) < 0.05  # was 99.4% clipped


def test_digital_silence_gives_no_noise_class_or_snr(tmp_path, capsys):
    sf.write(tmp_path / "silence.wav", np.zeros(SR, np.int16), SR)
    out = tmp_path / "out"
    assert main(["enhance", str(tmp_path / "silence.wav"), "-o", str(out), "--probes", "-q"]) == 0  # bundled model
    assert "digital silence" in capsys.readouterr().err
    summary = json.loads((out / "silence.json").read_text())
    assert "silence" in summary["warnings"]
    assert "noise_class" not in summary and "snr_db" not in summary
    assert "snr_db" not in (out / "silence.probes.csv").read_text().splitlines()[0]


def test_too_short_for_a_figure_fails_before_any_output(model_dir, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "one.wav", np.array([0.1], np.float32), SR, subtype="FLOAT")
    sf.write(src / "ten_ms.wav", np.full(160, 0.1, np.float32), SR, subtype="FLOAT")
    _noise(src / "ok.wav", 0)
    out = tmp_path / "out"
    assert _enhance(model_dir, src, "-o", out, "--plot", "--probes") == 1
    err = capsys.readouterr().err
    assert "one.wav is 0 ms long: too short for --plot" in err and "ten_ms.wav is 10 ms long" in err
    assert sorted(p.name for p in out.iterdir()) == ["ok.json", "ok.png", "ok.probes.csv", "ok.wav"]


def test_long_float_input_over_full_scale_is_reported_as_clipped(model_dir, tmp_path, capsys):
    t = np.arange(3 * SR) / SR
    sf.write(tmp_path / "loud.wav", (5000 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR, subtype="FLOAT")
    assert _enhance(model_dir, tmp_path / "loud.wav", "-o", tmp_path / "out", "--chunk-over", "1") == 0
    assert "output samples were beyond full scale and written clipped" in capsys.readouterr().err
