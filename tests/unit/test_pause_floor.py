"""Pause floor (lobes/pause_floor.py): the VAD probe's decision picks a deeper floor in pauses, the
same in every inference path (offline, PyTorch streaming, NumPy, C, ONNX)."""

import numpy as np
import pytest
import torch

from speechbrain_dyncp.lobes.enhancer import dyncp_small
from speechbrain_dyncp.lobes.probes import MaskProbes
from speechbrain_dyncp.probes.features import ProbeSpec, frame_features
from speechbrain_dyncp.probes.fit import fit_probe
from speechbrain_dyncp.streaming.fast import FastStreamer
from speechbrain_dyncp.streaming.kernel import c_available

SMALL = dict(channels=8, hidden=16, gate_hidden=4, attenuation_limit_db=20.0)


def _signal(seed=0, n=12000):
    """Noise whose level comes and goes: some frames the head calls speech, some not."""
    g = torch.Generator().manual_seed(seed)
    env = (torch.sin(torch.linspace(0, 12, n)) > 0.3).double() * 0.5 + 0.02
    return (torch.randn(1, n, generator=g, dtype=torch.double) * env)


def _pair(dtype=torch.double, hangover=2):
    """The same weights with and without a pause floor; the head's bias puts the threshold mid-way."""
    torch.manual_seed(0)
    with_pause = dyncp_small(**SMALL, pause_attenuation_limit_db=40.0, pause_hangover_frames=hangover).eval().to(dtype)
    with_pause.pause_floor.weight.normal_()
    plain = dyncp_small(**SMALL).eval().to(dtype)
    plain.load_state_dict({k: v for k, v in with_pause.state_dict().items() if not k.startswith("pause_floor.")})
    with torch.no_grad():
        logits = with_pause.pause_floor.speech_logits(plain(_signal().to(dtype)).gates)
        with_pause.pause_floor.bias.fill_(with_pause.pause_floor.threshold_logit - float(logits.median()))
    return with_pause, plain


def test_speech_frames_keep_the_mask_and_pauses_get_the_deeper_floor():
    model, plain = _pair()
    x = _signal()
    with torch.no_grad():
        out, ref = model(x), plain(x)
    speech = model.pause_floor.speech_frames(out.gates)[0]
    assert 0.2 < speech.double().mean() < 0.95  # both kinds of frames occur
    assert torch.equal(out.gates, ref.gates)  # the floor does not touch the network
    assert torch.equal(out.mask[0, speech], ref.mask[0, speech])
    # pause frames: the same sigmoid under the 40 dB floor (0.01) instead of the 20 dB one (0.1)
    sig = (ref.mask[0, ~speech] - 0.1) / 0.9
    assert torch.allclose(out.mask[0, ~speech], 0.01 + 0.99 * sig, atol=1e-12)
    assert out.mask[0, ~speech].min() < 0.1 and out.mask.min() >= 0.01 - 1e-12


def test_hangover_is_causal_and_counts_frames():
    model, _ = _pair(hangover=3)
    gates = torch.zeros(1, 6, 12, 16, dtype=torch.double)
    pf = model.pause_floor
    pf.weight.zero_(); pf.weight[2, 5] = 10.0; pf.bias.fill_(-5.0)
    gates[0, 2, 4, 5] = 1.0  # speech at frame 4 only
    assert pf.speech_frames(gates)[0].nonzero().flatten().tolist() == [4, 5, 6, 7]


@pytest.mark.parametrize("group_frames", [1, 3])
def test_pytorch_streaming_equals_offline(group_frames):
    model, _ = _pair()
    x = _signal(1)
    with torch.no_grad():
        ref = model(x).wav
    ctx = model.make_streaming_context(group_frames=group_frames)
    y = torch.cat([model.forward_streaming(c, ctx) for c in x.split(777, 1)] + [model.finish_streaming(ctx)], 1)
    assert (y[:, ctx.latency:] - ref).abs().max() < 1e-12


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_per_frame_streamers_equal_offline(backend):
    if backend == "c" and not c_available():
        pytest.skip("C kernel not built")
    model, plain = _pair()
    x = _signal(2)
    with torch.no_grad():
        ref, no_pause = model(x).wav[0].numpy(), plain(x).wav[0].numpy()
    fs = FastStreamer(model, backend=backend, dtype=np.float64)
    y = np.concatenate([fs.process(c) for c in np.array_split(x[0].numpy(), 7)] + [fs.finish()])[fs.latency:]
    assert np.abs(y - ref).max() < 1e-10
    assert np.abs(y - no_pause).max() > 1e-3  # the floor really acts in this path
    fork = fs.fork()  # a new stream starts in a pause, as offline
    z = np.concatenate([fork.process(x[0].numpy()), fork.finish()])[fork.latency:]
    assert np.abs(z - ref).max() < 1e-10


def test_onnx_paths_equal_pytorch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from speechbrain_dyncp.onnx_export import export_enhancer_onnx
    from speechbrain_dyncp.streaming.onnx_step import OnnxStreamingEnhancer

    model, _ = _pair(torch.float32)
    offline, step = export_enhancer_onnx(model, tmp_path)
    x = _signal(3).float()
    with torch.no_grad():
        ref = model(x)
        feats = model.features(model.spectrum(x))
        ref_mask, _ = model.masker(feats)
    mask, _ = ort.InferenceSession(str(offline)).run(None, {"feats": feats.numpy()})
    np.testing.assert_allclose(mask, ref_mask.numpy(), atol=1e-5)
    np.testing.assert_allclose(OnnxStreamingEnhancer(step).enhance(x[0].numpy()), ref.wav[0].numpy(), atol=2e-4)


def test_the_head_is_the_fitted_vad_probe():
    model, _ = _pair(torch.float32)
    with torch.no_grad():
        gates = model(_signal(4).float()).gates
    X, idx = frame_features(gates)
    y = (np.arange(len(X)) % 3 == 0).astype(int)  # any two-class labels: the read-out is what is compared
    fitted = fit_probe(ProbeSpec("vad", n_channels=30), X.numpy(), y)
    probes = MaskProbes.from_sklearn({"vad": fitted}, n_blocks=6, n_channels=16)
    model.pause_floor.load_vad_head(probes)
    prob = torch.sigmoid(model.pause_floor.speech_logits(gates)).float()
    assert torch.allclose(prob, probes(gates)["vad"], atol=1e-5)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="deeper than"):
        dyncp_small(**dict(SMALL, attenuation_limit_db=40.0), pause_attenuation_limit_db=30.0)
    with pytest.raises(ValueError, match="deeper than"):
        dyncp_small(channels=8, hidden=16, gate_hidden=4, pause_attenuation_limit_db=40.0)  # no speech limit
    with pytest.raises(ValueError, match="gated"):
        dyncp_small(**SMALL, gated=False, pause_attenuation_limit_db=40.0)
    with pytest.raises(ValueError, match="threshold"):
        dyncp_small(**SMALL, pause_attenuation_limit_db=40.0, pause_vad_threshold=1.0)
    model, _ = _pair(torch.float32)
    with pytest.raises(ValueError, match="no 'vad' head"):
        model.pause_floor.load_vad_head(MaskProbes(6, 16))


def test_removing_the_models_limit_removes_the_pause_floor_too():
    """``dyncp enhance --attenuation-limit-db 0`` means no limit: pauses must not keep a floor."""
    model, plain = _pair()
    model.attenuation_limit_db = plain.attenuation_limit_db = None
    x = _signal(5)
    with torch.no_grad():
        assert torch.equal(model(x).mask, plain(x).mask)
    fs = FastStreamer(model, backend="numpy", dtype=np.float64)
    y = np.concatenate([fs.process(x[0].numpy()), fs.finish()])[fs.latency:]
    with torch.no_grad():
        assert np.abs(y - plain(x).wav[0].numpy()).max() < 1e-10
