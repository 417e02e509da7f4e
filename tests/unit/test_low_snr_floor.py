"""The pause floor's low-SNR part (lobes/pause_floor.py, ``low_snr_db``): speech frames whose running
kept/removed energy ratio is low get the deeper floor too; checked against a by-hand reference and
the same in every inference path (offline, PyTorch streaming, NumPy, C, ONNX)."""

import numpy as np
import pytest
import torch

from speechbrain_dyncp.lobes.enhancer import dyncp_small
from speechbrain_dyncp.probes.mask_snr import enhancer_mask_ratio_db
from speechbrain_dyncp.streaming.fast import FastStreamer
from speechbrain_dyncp.streaming.kernel import c_available

SMALL = dict(channels=8, hidden=16, gate_hidden=4, attenuation_limit_db=20.0, feature="compressed",
             gate_init_bias=0.0)  # compressed features: the power is undone from them; gates that vary
WIN, MIN_FRAMES = 6, 3


def _signal(seed=0, n=16000):
    """Noise whose level comes and goes, with a loud tone in some bursts: ratios spread both ways."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.double)
    env = (torch.sin(t / 1000) > 0.2).double() * 0.5 + 0.02
    tone = torch.sin(t * 0.3) * (torch.sin(t / 1500) > 0.5).double()
    return (torch.randn(1, n, generator=g, dtype=torch.double) * env + tone[None])


def _reference_floors(model, plain, x):
    """Floors by hand: sums over the last WIN frames, in a Python loop over frames."""
    with torch.no_grad():
        ref = plain(x)
        spec = plain.spectrum(x)
        power = plain.features(spec).pow(2.0 / plain.compression)[0].double()  # N, F
        raw = ((ref.mask[0] - 0.1) / 0.9).double()  # plain: 20 dB floor everywhere
        speech = model.pause_floor.speech_frames(ref.gates)[0]
    kept = (raw * raw * power).sum(-1) * speech
    removed = ((1 - raw) ** 2 * power).sum(-1) * speech
    floors, ratios = [], []
    for t in range(len(speech)):
        lo = max(0, t - WIN + 1)
        k, r, c = kept[lo:t + 1].sum(), removed[lo:t + 1].sum(), speech[lo:t + 1].sum()
        ratios.append(float(10 * torch.log10(k / r)) if c >= MIN_FRAMES else float("nan"))
        low = bool(speech[t]) and c >= MIN_FRAMES and k < r * 10 ** (model.pause_floor.low_snr_db / 10)
        floors.append(0.1 if bool(speech[t]) and not low else 0.01)
    return torch.tensor(floors, dtype=torch.double), np.array(ratios), speech


def _between(values):
    """A threshold half-way between the two middle distinct values: no frame sits on it (a frame on a
    threshold would flip on rounding, and paths sum in different orders)."""
    u = np.unique(values)
    return float(u[len(u) // 2 - 1] + u[len(u) // 2]) / 2


def _models(dtype=torch.double, low_snr_db=None):
    """A model with the low-SNR floor, the same without it (pause floor only), and one with neither;
    the VAD head's bias puts its threshold mid-way and ``low_snr_db`` splits the speech frames."""
    torch.manual_seed(0)
    kw = dict(SMALL, pause_attenuation_limit_db=40.0, pause_hangover_frames=2)
    low = dyncp_small(**kw, pause_low_snr_db=0.0, pause_low_snr_window=WIN,
                      pause_low_snr_min_frames=MIN_FRAMES).eval().to(dtype)
    low.pause_floor.weight.normal_()
    pause_only, plain = dyncp_small(**kw).eval().to(dtype), dyncp_small(**SMALL).eval().to(dtype)
    plain.load_state_dict({k: v for k, v in low.state_dict().items() if not k.startswith("pause_floor.")})
    with torch.no_grad():
        logits = low.pause_floor.speech_logits(plain(_signal().to(dtype)).gates)
        low.pause_floor.bias.fill_(low.pause_floor.threshold_logit - _between(logits.flatten().numpy()))
    pause_only.load_state_dict(low.state_dict())
    if low_snr_db is None:
        _, ratios, _ = _reference_floors(low, plain, _signal().to(dtype))
        low_snr_db = _between(ratios[~np.isnan(ratios)])
    low.pause_floor.low_snr_db = low_snr_db
    return low, pause_only, plain


def test_floors_equal_a_by_hand_reference_and_both_speech_kinds_occur():
    model, pause_only, plain = _models()
    x = _signal()
    ref_floors, _, speech = _reference_floors(model, plain, x)
    with torch.no_grad():
        out, only = model(x), pause_only(x)
    assert torch.equal(out.floors[0, :, 0], ref_floors)
    low = speech & (ref_floors == 0.01)
    assert low.sum() >= 5 and (speech & ~low).sum() >= 5  # both kinds of speech frames
    # low-SNR speech frames get the deeper floor; other frames are the pause floor's exactly
    assert torch.equal(out.mask[0, ~low], only.mask[0, ~low])
    assert (out.mask[0, low] <= only.mask[0, low]).all() and (out.mask[0, low] < only.mask[0, low]).any()


def test_a_word_onset_keeps_the_models_floor():
    """Fewer than ``low_snr_min_frames`` speech frames in the window: never low, however low the ratio."""
    model, _, plain = _models(low_snr_db=100.0)  # every ratio is "low"
    x = _signal()
    floors, _, speech = _reference_floors(model, plain, x)
    with torch.no_grad():
        out = model(x)
    assert torch.equal(out.floors[0, :, 0], floors)
    s = speech.tolist()
    count = [sum(s[max(0, t - WIN + 1):t + 1]) for t in range(len(s))]
    young = [t for t in range(len(s)) if s[t] and count[t] < MIN_FRAMES]  # onsets: too few speech frames yet
    assert young and [t for t in range(len(s)) if s[t] and count[t] >= MIN_FRAMES]
    for t in range(len(s)):
        assert float(out.floors[0, t, 0]) == (0.1 if t in young else 0.01)


@pytest.mark.parametrize("group_frames", [1, 4])
def test_pytorch_streaming_equals_offline(group_frames):
    model, pause_only, _ = _models()
    x = _signal(1)
    with torch.no_grad():
        ref, only = model(x).wav, pause_only(x).wav
    ctx = model.make_streaming_context(group_frames=group_frames)
    y = torch.cat([model.forward_streaming(c, ctx) for c in x.split(999, 1)] + [model.finish_streaming(ctx)], 1)
    assert (y[:, ctx.latency:] - ref).abs().max() < 1e-12
    assert (ref - only).abs().max() > 1e-3  # the low-SNR floor acts on this signal


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_per_frame_streamers_equal_offline(backend):
    if backend == "c" and not c_available():
        pytest.skip("C kernel not built")
    model, pause_only, _ = _models()
    x = _signal(2)
    with torch.no_grad():
        ref, only = model(x).wav[0].numpy(), pause_only(x).wav[0].numpy()
    fs = FastStreamer(model, backend=backend, dtype=np.float64)
    y = np.concatenate([fs.process(c) for c in np.array_split(x[0].numpy(), 5)] + [fs.finish()])[fs.latency:]
    assert np.abs(y - ref).max() < 1e-10
    assert np.abs(ref - only).max() > 1e-3
    fork = fs.fork()  # a new stream starts with an empty window, as offline
    z = np.concatenate([fork.process(x[0].numpy()), fork.finish()])[fork.latency:]
    assert np.abs(z - ref).max() < 1e-10


def test_onnx_paths_equal_pytorch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from speechbrain_dyncp.onnx_export import export_enhancer_onnx
    from speechbrain_dyncp.streaming.onnx_step import OnnxStreamingEnhancer

    model, pause_only, _ = _models(torch.float32)
    offline, step = export_enhancer_onnx(model, tmp_path)
    x = _signal(3).float()
    with torch.no_grad():
        ref, only = model(x), pause_only(x)
        ref_mask, _ = model.masker(model.features(model.spectrum(x)))
    mask, _ = ort.InferenceSession(str(offline)).run(None, {"feats": model.features(model.spectrum(x)).numpy()})
    np.testing.assert_allclose(mask, ref_mask.numpy(), atol=1e-5)
    y = OnnxStreamingEnhancer(step, feature="compressed").enhance(x[0].numpy())
    np.testing.assert_allclose(y, ref.wav[0].numpy(), atol=2e-4)
    assert np.abs(y - only.wav[0].numpy()).max() > 1e-3


def test_the_mask_snr_read_out_does_not_depend_on_the_floor():
    """probes/mask_snr.py undoes the floors each frame got (EnhancerOutput.floors)."""
    model, pause_only, plain = _models()
    x = _signal(4)
    with torch.no_grad():
        ratios = [float(enhancer_mask_ratio_db(m, x, m(x))[0]) for m in (model, pause_only, plain)]
    assert max(ratios) - min(ratios) < 1e-9


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="min frames"):
        dyncp_small(**SMALL, pause_attenuation_limit_db=40.0, pause_low_snr_db=0.0, pause_low_snr_window=4,
                    pause_low_snr_min_frames=5)
    with pytest.raises(ValueError, match="needs pause_attenuation_limit_db"):
        dyncp_small(**SMALL, pause_low_snr_db=0.0)
    model, _, _ = _models()
    with torch.no_grad():
        out = model.tcn(torch.relu(model.front(torch.rand(1, 5, 257, dtype=torch.double))))
        with pytest.raises(ValueError, match="energies"):
            model.pause_floor.frame_floors(out.gates, 0.1)


def test_the_register_reads_the_mask_with_the_models_own_floor():
    """probes/mask_register.py: the pause / low-SNR floors are undone before the register reads the masked
    spectrum, offline and in the streaming engine's record of it; the register is that of the model without them."""
    from speechbrain_dyncp.probes.mask_register import constant_floor_mask, enhancer_mask_register_hz

    model, _, plain = _models()
    t = torch.arange(16000, dtype=torch.double) / 16000
    x = _signal(6) + 0.5 * sum(torch.sin(2 * torch.pi * 150 * k * t) / k for k in range(1, 8))[None]
    with torch.no_grad():
        out, ref = model(x), plain(x)
    assert (out.floors < 0.1).any()  # the floors act on this input
    assert torch.allclose(constant_floor_mask(model, out), ref.mask, atol=1e-12)
    assert enhancer_mask_register_hz(model, x, out) == enhancer_mask_register_hz(plain, x, ref)
    ctx = model.make_streaming_context(keep_gates=True)
    model.forward_streaming(x, ctx)
    model.finish_streaming(ctx)
    streamed = torch.cat(ctx.masked_spectra, 2)[0]  # bins, frames
    offline = (plain.spectrum(x) * ref.mask.transpose(1, 2))[0, :, : streamed.shape[1]]
    assert torch.allclose(streamed, offline, atol=1e-10)
