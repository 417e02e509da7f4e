"""benchmarks/dnsmos_ceiling.py: the ideal magnitude mask is what it says (reference where it can be, the floor
where the reference is absent)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture()
def ceiling(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the script imports bench_real as its neighbour
    spec = importlib.util.spec_from_file_location("dnsmos_ceiling", BENCHMARKS / "dnsmos_ceiling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ideal_mask_passes_clean_speech_and_floors_pure_noise(ceiling):
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    clean = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    # a clean input is given back (mask 1 everywhere)
    np.testing.assert_allclose(ceiling.ideal_mask(clean, clean, 0.1), clean, atol=1e-9)
    # noise where the reference is silent is cut to the floor: -20 dB for 0.1, nothing without a floor
    noise = 0.1 * rng.standard_normal(16000)
    silent = np.zeros(16000)
    out = ceiling.ideal_mask(noise, silent, 0.1)
    ratio_db = 10 * np.log10((out[512:-512] ** 2).sum() / (noise[512:-512] ** 2).sum())
    assert ratio_db == pytest.approx(-20.0, abs=0.01)
    assert np.abs(ceiling.ideal_mask(noise, silent, 0.0)).max() < 1e-9


def test_ideal_mask_beats_the_noisy_input_and_its_floored_twin(ceiling):
    rng = np.random.default_rng(1)
    t = np.arange(32000) / 16000
    clean = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    noisy = clean + 0.1 * rng.standard_normal(len(t))

    def sdr(x):
        return 10 * np.log10((clean**2).sum() / ((x - clean) ** 2).sum())

    free, floored = ceiling.ideal_mask(noisy, clean, 0.0), ceiling.ideal_mask(noisy, clean, 0.1)
    assert sdr(free) > sdr(floored) + 3 > sdr(noisy) + 3


def test_ideal_mask_uses_the_enhancers_own_stft(ceiling):
    """The ceiling is of the shipped model's transform: same frames, window and (zero) edge padding."""
    import torch

    from speechbrain_dyncp.lobes.enhancer import dyncp_small

    x = np.random.default_rng(2).standard_normal(5000)
    ours = ceiling.enhancer_stft(x)
    theirs = dyncp_small().spectrum(torch.from_numpy(x).float()[None])[0]
    assert ours.shape == theirs.shape
    assert torch.allclose(ours.to(torch.complex64), theirs, atol=1e-4)
