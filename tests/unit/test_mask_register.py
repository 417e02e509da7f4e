"""The T-F mask register read-out (probes/mask_register.py): what it finds, what it refuses, who uses it."""

import torch

from speechbrain_dyncp.inference.enhancement import DynCPEnhancement, EnhancementAnalysis
from speechbrain_dyncp.lobes.enhancer import dyncp_small
from speechbrain_dyncp.probes.mask_register import (MaskRegisterSettings, masked_autocorrelation_f0,
                                                    register_from_track)

SR, N_FFT, HOP = 16000, 512, 256
WIN = torch.hann_window(N_FFT)


def harmonic(f0, seconds=1.0, amps=(1.0, 1.5, 0.8, 0.5, 0.4, 0.3, 0.2), vibrato=0.0):
    """A voiced-speech-like harmonic complex (second harmonic strongest, as often in speech)."""
    t = torch.arange(int(seconds * SR)) / SR
    phase = 2 * torch.pi * torch.cumsum(f0 * (1 + vibrato * torch.sin(2 * torch.pi * 5 * t)), 0) / SR
    return sum(a * torch.sin(k * phase) for k, a in enumerate(amps, start=1))


def spec_of(wav):
    return torch.stft(wav[None], N_FFT, HOP, window=WIN, center=True, return_complex=True)


def ones_mask(spec):
    return torch.ones(1, spec.shape[-1], spec.shape[1])


def register(wav, mask=None):
    spec = spec_of(wav)
    f0, per = masked_autocorrelation_f0(spec, ones_mask(spec) if mask is None else mask, WIN, SR)
    return register_from_track(f0, per, torch.ones_like(f0, dtype=torch.bool))[0]


def test_low_and_high_voices_are_found_without_octave_errors():
    """A low male voice, a woman's and a child's: each within 3 %, none halved or doubled."""
    for f0 in (95.0, 210.0, 330.0):
        est = register(harmonic(f0, vibrato=0.03))
        assert est is not None and abs(est - f0) / f0 < 0.03, (f0, est)


def test_noise_gets_no_register():
    torch.manual_seed(0)
    assert register(torch.randn(SR)) is None
    f0, per = masked_autocorrelation_f0(spec_of(torch.randn(SR)), ones_mask(spec_of(torch.randn(SR))), WIN, SR)
    assert float(per.median()) < MaskRegisterSettings().voicing_threshold


def test_the_mask_decides_which_voice_is_read():
    """A voice at 120 Hz under a louder periodic interferer at 300 Hz: unmasked, the read-out
    follows the interferer; with a mask that keeps the voice's harmonic bins, it reads the voice."""
    voice, hum = harmonic(120.0), 2.0 * harmonic(300.0, amps=(1.0, 0.6, 0.4))
    spec = spec_of(voice + hum)
    assert abs(register(voice + hum) - 300.0) < 15.0
    freqs = torch.arange(spec.shape[1]) * SR / N_FFT
    near_voice = torch.stack([(freqs - k * 120.0).abs() < 20 for k in range(1, 8)]).any(0)
    near_hum = torch.stack([(freqs - k * 300.0).abs() < 20 for k in range(1, 4)]).any(0)
    keep = (near_voice & ~near_hum).float() * 0.95 + 0.05
    mask = keep[None, None, :].expand(1, spec.shape[-1], -1)
    assert abs(register(voice + hum, mask) - 120.0) < 5.0


def test_too_few_voiced_frames_give_none_not_a_number():
    f0 = torch.full((2, 20), 150.0)
    per = torch.zeros(2, 20)
    per[0, :12] = 0.9  # 12 voiced frames
    per[1, :9] = 0.9  # 9: under min_frames
    assert register_from_track(f0, per, torch.ones(2, 20, dtype=torch.bool)) == [150.0, None]
    speech = torch.zeros(2, 20, dtype=torch.bool)  # no speech frames: none may vote
    assert register_from_track(f0, per, speech) == [None, None]


def test_analysis_prefers_the_mask_register_and_needs_a_vad_for_it():
    torch.manual_seed(0)
    enhancer = dyncp_small(channels=8, hidden=16, gate_hidden=4).eval()
    bare = DynCPEnhancement(modules={"enhancer": enhancer}, hparams={"sample_rate": SR})
    result = bare.analyze_batch(harmonic(150.0)[None])
    assert result.register_from_mask_hz is None and result.register_hz(0) is None  # no VAD: no read-out
    analysis = EnhancementAnalysis(wav=torch.zeros(1, 10), frame_mask=torch.ones(1, 30, dtype=torch.bool),
                                   gates=torch.ones(1, 1, 30, 2), realised_ratio=[1.0], macs_saved_pct=[0.0])
    analysis.outputs.update(vad=torch.ones(1, 30), f0=torch.full((1, 30), 100.0))
    assert analysis.register_hz(0) == 100.0  # the gate probe's read-out
    analysis.register_from_mask_hz = [212.0]
    assert analysis.register_hz(0) == 212.0
