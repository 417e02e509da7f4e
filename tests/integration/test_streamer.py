"""``model.streamer()``: live chunks give the offline enhancement and probe estimates."""

import numpy as np
import torch

from speechbrain_dyncp.efficiency import plant_gate_ratio
from speechbrain_dyncp.inference.enhancement import DynCPEnhancement
from speechbrain_dyncp.lobes.enhancer import dyncp_small
from speechbrain_dyncp.lobes.probes import MaskProbes
from speechbrain_dyncp.probes.features import get_spec, spec_features
from speechbrain_dyncp.probes.fit import fit_probe


def _model_with_probes():
    torch.manual_seed(0)
    enhancer = dyncp_small().eval()
    calib = torch.randn(2, 16000)
    plant_gate_ratio(enhancer, calib, 0.4)
    with torch.no_grad():
        out = enhancer(torch.randn(4, 16000) * torch.tensor([[0.1], [0.3], [1.0], [3.0]]))
    rng = np.random.default_rng(0)
    fitted = {}
    for name, n_ch in (("vad", 20), ("f0", 20), ("snr", 20), ("noise", 20)):
        spec = get_spec(name, n_channels=n_ch)
        X, idx = spec_features(spec, out.gates, out.frame_mask)
        X = X.numpy()
        if name == "vad":
            y = (X[:, :5].sum(1) > 2).astype(int)
        elif name == "noise":
            y = np.array(["hum", "white", "babble", "hum"])[: len(X)]
        elif name == "f0":
            y = 100 + 50 * X[:, :3].sum(1)
        else:
            y = rng.normal(5, 3, len(X))
        fitted[name] = fit_probe(spec, X, y)
    probes = MaskProbes.from_sklearn(fitted, n_blocks=enhancer.tcn.n_gated, n_channels=enhancer.tcn.hidden)
    return DynCPEnhancement(modules={"enhancer": enhancer, "probes": probes}, hparams={"sample_rate": 16000})


def test_streamer_equals_offline_audio_and_probes():
    model = _model_with_probes()
    x = 0.5 * torch.randn(1, 12345)
    offline = model.analyze_batch(x)
    stream = model.streamer()
    outs = [stream.process(c) for c in x[0].split(997)]
    tail = stream.finish()
    outs.append(stream.last)
    wav = torch.cat([o.wav for o in outs[:-1]] + [tail])
    torch.testing.assert_close(wav[stream.latency:], offline.wav[0], atol=1e-4, rtol=1e-4)
    n = int(offline.frame_mask[0].sum())
    vad = np.concatenate([o.vad_prob for o in outs])
    f0 = np.concatenate([o.f0_hz for o in outs])
    snr = np.concatenate([o.snr_db for o in outs])
    assert len(vad) == n
    np.testing.assert_allclose(vad, offline.vad_prob[0, :n].numpy(), atol=1e-4)
    np.testing.assert_allclose(f0, offline.f0_hz[0, :n].numpy(), rtol=1e-4)
    np.testing.assert_allclose(snr, offline.snr_db[0, :n].numpy(), atol=1e-3)
    label, prob = offline.noise_class(0)
    assert outs[-1].noise_class == label and abs(outs[-1].noise_prob - prob) < 1e-4
    # Executed MACs: pruned channels are really skipped, so the saving matches the offline count.
    assert abs(stream.macs_saved_pct - offline.macs_saved_pct[0]) < 2.0
    assert stream.macs_saved_pct > 5.0  # 40% planted channels; dyncp_small gates cost ~37% of a block


def test_streamer_rejects_nan_and_resets():
    model = _model_with_probes()
    stream = model.streamer()
    try:
        stream.process(torch.tensor([0.0, float("nan")]))
    except ValueError as exc:
        assert "NaN" in str(exc)
    else:
        raise AssertionError("NaN chunk accepted")
    stream.reset()
    assert stream.ctx.frames_done == 0 and stream.process(torch.zeros(600)).frames == 2


def test_streamer_register_follows_the_offline_t_f_mask_read_out():
    """The running register after the last frame is the offline analysis' register_hz (same masks)."""
    model = _model_with_probes()
    t = torch.arange(24000) / 16000
    voiced = sum(torch.sin(2 * torch.pi * 140 * k * t) / k for k in range(1, 9))[None]
    offline = model.analyze_batch(voiced)
    stream = model.streamer()
    first = stream.process(voiced[0, :1000])
    assert first.register_hz is None  # too few voiced frames yet: no number
    outs = [stream.process(c) for c in voiced[0, 1000:].split(1500)]
    stream.finish()
    assert offline.register_hz(0) is not None and abs(offline.register_hz(0) - 140.0) < 7.0
    assert abs(stream.last.register_hz - offline.register_hz(0)) < 0.5
    assert outs[-1].register_hz is not None
    stream.reset()
    assert stream.register_hz is None
