"""lobes/ge2e.py: Resemblyzer's GE2E speaker encoder re-implemented, held to Resemblyzer's own output."""
from pathlib import Path

import numpy as np
import pytest
import torch

from speechbrain_dyncp.inference.speaker_folders import published_ge2e
from speechbrain_dyncp.lobes.ge2e import GE2EEncoder, trim_long_silences

REFERENCE = Path(__file__).parent / "data" / "ge2e_resemblyzer_reference.npz"


def voice_like(seed: int = 0) -> np.ndarray:
    """Four harmonic bursts (0.6 s, F0 110-170 Hz) between quiet noise pauses, one of them 1.2 s long."""
    g, sr = np.random.default_rng(seed), 16000
    t = np.arange(int(0.6 * sr)) / sr
    parts = []
    for i in range(4):
        f0 = 110 + 20 * i
        burst = sum(np.sin(2 * np.pi * k * f0 * t + g.uniform(0, 2 * np.pi)) / k for k in range(1, 20))
        parts += [0.1 * burst * np.hanning(t.size), 0.001 * g.standard_normal(int((1.2 if i == 1 else 0.3) * sr))]
    return np.concatenate(parts).astype(np.float32)


def bundled_ge2e(trim_silence: bool = True) -> GE2EEncoder:
    """The package's default teacher (``published_ge2e()``: the default speaker folder's GE2E member,
    loaded strictly the way the package loads the folder)."""
    enc = published_ge2e()
    enc.trim_silence = trim_silence
    return enc


def test_equals_resemblyzer_on_a_stored_reference():
    """Resemblyzer's embed_utterance(preprocess_wav(x)) of voice_like(), stored once
    (tests/unit/data/ge2e_resemblyzer_reference.npz), against our encoder with the bundled weights."""
    ref = np.load(REFERENCE)
    x = torch.from_numpy(voice_like())
    assert trim_long_silences(GE2EEncoder()._raise_level(x)).numel() == int(ref["trimmed_samples"])
    assert int(ref["trimmed_samples"]) < x.numel() - 8000  # the long pause really was cut
    with torch.no_grad():
        emb = bundled_ge2e()(x[None])[0].numpy()
    assert np.abs(emb - ref["embedding"]).max() < 1e-5


def test_equals_resemblyzer_live_when_installed():
    """The same against an installed Resemblyzer, on another signal and without the stored file."""
    resemblyzer = pytest.importorskip("resemblyzer")
    x = voice_like(seed=3)
    ref = resemblyzer.VoiceEncoder("cpu", verbose=False).embed_utterance(resemblyzer.preprocess_wav(x, source_sr=16000))
    with torch.no_grad():
        emb = GE2EEncoder().load_resemblyzer().eval()(torch.from_numpy(x)[None])[0].numpy()
    assert np.abs(emb - ref).max() < 1e-5


def test_embeddings_tell_voices_apart_and_padding_changes_nothing():
    enc = bundled_ge2e()
    a, b, c = (torch.from_numpy(voice_like(s)) for s in (0, 1, 2))
    low = torch.from_numpy(voice_like(0))
    low = torch.nn.functional.interpolate(low[None, None], scale_factor=1.5, mode="linear")[0, 0][: a.numel()]
    with torch.no_grad():
        ea, eb, el = (enc(w[None])[0] for w in (a, b, low))
        batch = enc(torch.stack([a, torch.nn.functional.pad(c, (0, a.numel() - c.numel()))]),
                    torch.tensor([1.0, c.numel() / a.numel()]))
        ec = enc(c[None])[0]
    # same F0 pattern (other phases, noise) is closer than the same signal lowered by a fifth
    assert float(ea @ eb) > float(ea @ el)
    assert torch.allclose(batch[0], ea, atol=1e-5) and torch.allclose(batch[1], ec, atol=1e-5)


def test_silence_trimming_keeps_speech_and_a_silent_file_still_embeds():
    x = torch.from_numpy(voice_like())
    kept = trim_long_silences(GE2EEncoder()._raise_level(x))
    assert 4 * 0.6 * 16000 * 0.8 < kept.numel() < x.numel()
    with torch.no_grad():
        emb = bundled_ge2e()(torch.zeros(1, 16000))  # all pause: embedded untrimmed, no NaN
    assert bool(torch.isfinite(emb).all())


def test_other_rates_and_weight_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="16000 Hz"):
        GE2EEncoder(sample_rate=8000)
    bad = tmp_path / "pretrained.pt"
    torch.save({"model_state": {"lstm.weight_ih_l0": torch.zeros(3, 3)}}, bad)
    with pytest.raises(RuntimeError):
        GE2EEncoder().load_resemblyzer(bad)


def test_a_weight_file_given_replaces_the_bundled_default(tmp_path):
    torch.manual_seed(0)
    other = GE2EEncoder()
    torch.save({"model_state": other.state_dict()}, tmp_path / "pretrained.pt")  # Resemblyzer's file layout
    loaded, default = published_ge2e(tmp_path / "pretrained.pt"), published_ge2e()
    assert not loaded.training and not default.training
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert not torch.equal(loaded.linear.weight, default.linear.weight)
