"""DNSMOS P.835 rebuilt in PyTorch (losses/dnsmos.py) equals the ONNX model and gives useful gradients."""

import numpy as np
import pytest
import torch

from speechbrain_dyncp.losses.dnsmos import DNSMOSP835, dnsmos_loss

FULL = 144160  # the official 9.01 s window


@pytest.fixture(scope="module")
def model():
    return DNSMOSP835().eval()


def _speechlike(seconds, seed, noise=0.02):
    """A voiced, formant-ish tone train plus white noise (real-ish spectra, no files needed)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    voiced = sum(np.sin(k * phase) / k for k in range(1, 30)) * (np.sin(2 * np.pi * 2 * t) > -0.3)
    return (0.1 * voiced + noise * rng.standard_normal(t.size)).astype(np.float32)


def test_scores_equal_the_onnx_model(model):
    """Same SIG / BAK / OVRL as speechmos (onnxruntime) on a full window, for a clean-ish and a noisy clip."""
    from speechmos import dnsmos

    for seed, noise in ((0, 0.002), (1, 0.1)):
        wav = _speechlike(FULL / 16000, seed, noise)
        ref = dnsmos.run(wav, 16000)
        ours = model(torch.from_numpy(wav)[None])[0].tolist()
        assert ours == pytest.approx([ref["sig_mos"], ref["bak_mos"], ref["ovrl_mos"]], abs=2e-3)


def test_less_noise_scores_higher(model):
    """The property the training term relies on: the same voice with less noise gets a higher OVRL and BAK."""
    clean = model(torch.from_numpy(_speechlike(2.0, 3, 0.003))[None])[0]
    noisy = model(torch.from_numpy(_speechlike(2.0, 3, 0.1))[None])[0]
    assert clean[2] > noisy[2] + 0.3 and clean[1] > noisy[1] + 0.5


def test_a_gradient_step_raises_the_score(model):
    """The gradient w.r.t. the waveform is a direction that raises OVRL (the term can steer an enhancer)."""
    wav = torch.from_numpy(_speechlike(2.0, 4, 0.05))[None].requires_grad_()
    loss = dnsmos_loss(model, wav)
    loss.backward()
    with torch.no_grad():
        stepped = wav - 1e-3 * wav.grad / wav.grad.abs().max()
        assert -dnsmos_loss(model, stepped) > -loss + 0.01


def test_lengths_leave_padding_out(model):
    """A zero-padded item scored with its relative length equals the item scored alone."""
    short = torch.from_numpy(_speechlike(1.2, 5, 0.05))
    batch = torch.zeros(2, 32000)
    batch[0, : short.numel()] = short
    batch[1] = torch.from_numpy(_speechlike(2.0, 6, 0.05))
    lens = torch.tensor([short.numel() / 32000, 1.0])
    scored = model(batch, lens)
    assert torch.allclose(scored[0], model(short[None])[0], atol=1e-5)
    assert not torch.allclose(scored[0], model(batch[:1])[0], atol=1e-2)  # the padding would have counted


def test_max_items_and_too_short_input(model):
    wav = torch.from_numpy(np.stack([_speechlike(1.0, s, 0.05) for s in (7, 8)])).requires_grad_()
    dnsmos_loss(model, wav, max_items=1).backward()
    assert wav.grad[0].abs().sum() > 0 and wav.grad[1].abs().sum() == 0
    with pytest.raises(ValueError, match="at least 320 samples"):
        model(torch.zeros(1, 100))


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no DNSMOS ONNX model"):
        DNSMOSP835(str(tmp_path / "nope.onnx"))
