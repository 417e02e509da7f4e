"""A probe head is one registry entry (probes/heads.py) plus a YAML line: a toy head runs
through fitting, the analysis result, frame-by-frame streaming, the CLI files and the figure
without any other module naming it."""

import csv
import json

import numpy as np
import pytest
import torch

from speechbrain_dyncp.inference.enhancement import DynCPEnhancement
from speechbrain_dyncp.lobes.enhancer import dyncp_small
from speechbrain_dyncp.lobes.probes import MaskProbes
from speechbrain_dyncp.probes.features import frame_features, get_spec
from speechbrain_dyncp.probes.fit import fit_probe
from speechbrain_dyncp.probes.heads import HEADS, Head, register_head
from speechbrain_dyncp.probes.metrics import vad_scores
from speechbrain_dyncp.probes.outputs import write_probe_outputs

HOP = 256


@pytest.fixture
def loud_head():
    """A frame head predicting "loud frame" (input level above -30 dBFS), registered for one test."""
    h = register_head(Head("loud", dict(task="classify", level="frame", reg=1.0), vad_scores, "accuracy",
                           unit="probability", output="loud_prob", display="loud",
                           summary=lambda a, i: {"loud_fraction": float((a.loud_prob[i] > 0.5).float().mean())}))
    yield h
    HEADS.pop("loud")


def _loud_audio(seed: int, n_frames: int = 60):
    """Noise whose level alternates between loud and quiet blocks of 10 frames, and its frame labels."""
    g = torch.Generator().manual_seed(seed)
    level = torch.tensor([0.5 if (k // 10) % 2 == 0 else 0.002 for k in range(n_frames)])
    wav = torch.randn(n_frames * HOP, generator=g) * level.repeat_interleave(HOP)
    frames = torch.nn.functional.pad(wav, (HOP // 2, HOP)).unfold(0, HOP, HOP)[: n_frames + 1]
    loud = (10 * torch.log10(frames.pow(2).mean(1) + 1e-12) > -30).numpy().astype(int)
    return wav, loud


def test_a_registered_toy_head_runs_through_fit_analysis_streaming_and_cli(loud_head, tmp_path, recipe_module):
    torch.manual_seed(0)
    enhancer = dyncp_small(channels=8, hidden=16, gate_hidden=4, gate_init_bias=0.0).eval()
    fp = recipe_module("recipes/DynCP/fit_probes.py")
    utts = []
    for seed in range(4):  # the recipe's utterance records: gates + the head's label
        wav, loud = _loud_audio(seed)
        with torch.no_grad():
            gates = enhancer(wav[None]).gates[0].to(torch.uint8).numpy()
        utts.append({"gates": gates, "loud": loud[: gates.shape[1]]})

    # fitting: the YAML's `heads: {loud: {n_channels: 16}}` -> the recipe's rows -> sklearn -> the lobe
    spec = get_spec("loud", n_channels=16)
    X, y = fp.head_rows(spec, utts, None, np.random.default_rng(0), fitting=True)
    L, _, H = utts[0]["gates"].shape
    probes = MaskProbes.from_sklearn({"loud": fit_probe(spec, X, y)}, L, H)
    scores = fp.evaluate_lobe(probes, utts)["loud"]
    assert set(scores) >= {"accuracy", "roc_auc"} and scores["n_frames"] == len(y)

    # analysis: the head's output is an attribute named by its spec
    model = DynCPEnhancement(modules={"enhancer": enhancer, "probes": probes}, hparams={"sample_rate": 16000})
    wav, _ = _loud_audio(7)
    res = model.analyze_batch(wav[None])
    assert torch.equal(res.loud_prob, res.outputs["loud"]) and res.loud_prob.shape == res.frame_mask.shape

    # streaming: frame by frame on the gates equals the offline output
    state, streamed = probes.init_state(1), []
    for t in range(res.gates.shape[2]):
        out, state = probes.forward_frame(res.gates[:, :, t], state)
        streamed.append(float(out["loud"][0]))
    np.testing.assert_allclose(streamed, res.loud_prob[0].numpy(), atol=1e-5)

    # CLI files and the figure
    write_probe_outputs(tmp_path / "x", res)
    rows = list(csv.DictReader(open(tmp_path / "x.probes.csv")))
    assert list(rows[0]) == ["frame", "time_s", "loud_prob", "active_ratio"]
    assert [float(r["loud_prob"]) for r in rows] == pytest.approx(res.loud_prob[0].tolist(), abs=1e-4)
    summary = json.loads((tmp_path / "x.json").read_text())
    assert summary["loud_fraction"] == pytest.approx(float((res.loud_prob[0] > 0.5).float().mean()))
    from speechbrain_dyncp.plots import plot_analysis

    assert plot_analysis(tmp_path / "x.png", wav, res).stat().st_size > 1000


def test_every_default_head_has_an_identifier_name_and_a_spec():
    for name, h in HEADS.items():
        assert name == h.name and name.isidentifier()
        assert get_spec(name).task in ("classify", "regress")
    with pytest.raises(ValueError, match="identifier"):
        register_head(Head("not a name", {}, vad_scores, "accuracy"))


def test_toy_head_streams_like_offline(loud_head):
    """The live streamer (inference/streaming.py) iterates over the registry too: the toy head's
    per-chunk outputs equal the offline analysis."""
    torch.manual_seed(0)
    enhancer = dyncp_small(channels=8, hidden=16, gate_hidden=4, gate_init_bias=0.0).eval()
    wav, loud = _loud_audio(0)
    with torch.no_grad():
        g = enhancer(wav[None]).gates
    X, idx = frame_features(g)
    probes = MaskProbes.from_sklearn({"loud": fit_probe(get_spec("loud", n_channels=16), X.numpy(), loud[: X.shape[0]])},
                                     g.shape[1], g.shape[3])
    model = DynCPEnhancement(modules={"enhancer": enhancer, "probes": probes}, hparams={"sample_rate": 16000})
    res = model.analyze_batch(wav[None])
    s = model.streamer()
    outs = [s.process(c) for c in wav.split(333)]
    s.finish()
    outs.append(s.last)
    streamed = np.concatenate([o.loud_prob for o in outs])
    n = len(streamed)
    np.testing.assert_allclose(streamed, res.loud_prob[0, :n].numpy(), atol=1e-4)
    assert n >= res.frame_mask.shape[1] - 2
    assert outs[0].vad_prob == [] and outs[0].noise_class is None


def test_the_figure_draws_the_register_not_a_pitch_track_and_the_snr_the_json_gives(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from speechbrain_dyncp.inference.loading import load_enhancer
    from speechbrain_dyncp.plots import plot_analysis
    from tests.unit.test_ge2e import voice_like

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at
    model = load_enhancer("dyncp_real_base")
    wav = torch.from_numpy(voice_like())
    res = model.analyze_batch(wav[None])
    register = res.register_hz(0)
    assert register is not None and 100 < register < 180  # bursts at 110-170 Hz
    plot_analysis(tmp_path / "user.png", wav, res)
    plot_analysis(tmp_path / "diag.png", wav, res, ref_f0=np.full(res.frame_mask.shape[1], 140.0))
    user, diag = ([ax for ax in f.axes if ax.get_ylabel() == "F0 Hz"][0] for f in figures)
    drawn = [np.asarray(line.get_ydata(), float) for line in user.lines]
    assert len(drawn) == 1 and np.allclose(drawn[0][np.isfinite(drawn[0])], register)  # one value, no track
    assert len(diag.lines) == 3  # beside a reference: the probe's frames and the reference too
    assert f"SNR est. {res.utterance_snr_text(0)}" in figures[0]._suptitle.get_text()
