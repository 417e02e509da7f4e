"""Synthetic noise classes and room impulse responses for the embedded corpus.

Eight noise classes of distinct character (:data:`NOISE_CLASSES`): white,
pink (1/f), brown (1/f^2), babble (several synthetic talkers), mains hum with
harmonics, machinery (modulated band noise plus a rotating tone), impulsive
clicks and music-like tones. Every generator returns unit-RMS float32.
RIRs are exponentially decaying Gaussian noise with a chosen RT60 behind a
direct-path impulse (the largest sample, so alignment by argmax finds it).

Authors
 * speechbrain-dyncp contributors
"""

from typing import Callable, Dict, Optional, Sequence

import numpy as np
from scipy import fft as sp_fft

SAMPLE_RATE = 16000
NOISE_CLASSES = ["white", "pink", "brown", "babble", "hum", "machinery", "clicks", "music"]


def _unit(x: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def _coloured(n: int, rng: np.random.Generator, exponent: float, sr: int) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f^exponent (flat below 20 Hz)."""
    m = sp_fft.next_fast_len(n, real=True)  # odd lengths make pocketfft slow
    spec = sp_fft.rfft(rng.standard_normal(m))
    f = np.maximum(sp_fft.rfftfreq(m, 1.0 / sr), 20.0)
    spec *= f ** (-exponent / 2)
    spec[0] = 0.0
    return sp_fft.irfft(spec, m)[:n]


def white(n, rng, sr=SAMPLE_RATE, talkers=None):
    """Flat-spectrum Gaussian noise."""
    return _unit(rng.standard_normal(n))


def pink(n, rng, sr=SAMPLE_RATE, talkers=None):
    """1/f noise."""
    return _unit(_coloured(n, rng, 1.0, sr))


def brown(n, rng, sr=SAMPLE_RATE, talkers=None):
    """1/f^2 (Brownian) noise."""
    return _unit(_coloured(n, rng, 2.0, sr))


def babble(n, rng, sr=SAMPLE_RATE, talkers: Optional[Sequence[np.ndarray]] = None):
    """Sum of 3-6 talkers: random crops of distinct talker tracks at equal level."""
    if not talkers:
        raise ValueError("babble noise needs talker tracks (talkers=[...])")
    k = min(len(talkers), int(rng.integers(3, 7)))
    out = np.zeros(n)
    for i in rng.choice(len(talkers), size=k, replace=False):
        tr = talkers[i]
        reps = int(np.ceil((n + len(tr)) / len(tr)))
        tiled = np.tile(tr, reps)
        off = int(rng.integers(len(tr)))
        seg = tiled[off : off + n]
        out += seg / (np.sqrt(np.mean(seg**2)) + 1e-12)
    return _unit(out)


def hum(n, rng, sr=SAMPLE_RATE, talkers=None):
    """Mains hum: 50/60 Hz and harmonics (odd ones stronger), slow wobble, faint floor."""
    t = np.arange(n) / sr
    f0 = (50.0 if rng.random() < 0.5 else 60.0) * (1 + rng.normal(0, 0.002))
    h = np.arange(1, 16)
    amps = h ** -rng.uniform(0.5, 1.2) * np.where(h % 2 == 1, 1.0, rng.uniform(0.2, 0.6))
    phases = rng.uniform(0, 2 * np.pi, len(h))
    x = (amps[:, None] * np.sin(2 * np.pi * f0 * h[:, None] * t[None, :] + phases[:, None])).sum(0)
    x *= 1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t)
    return _unit(x + 0.03 * np.std(x) * rng.standard_normal(n))


def machinery(n, rng, sr=SAMPLE_RATE, talkers=None):
    """Band noise amplitude-modulated at 4-30 Hz, plus a rotating tone and a pink floor."""
    t = np.arange(n) / sr
    lo = rng.uniform(100, 800)
    hi = lo * rng.uniform(2, 5)
    m = sp_fft.next_fast_len(n, real=True)
    spec = sp_fft.rfft(rng.standard_normal(m))
    f = sp_fft.rfftfreq(m, 1.0 / sr)
    spec *= (f > lo) & (f < hi)
    band = sp_fft.irfft(spec, m)[:n]
    band /= np.std(band) + 1e-12
    depth = rng.uniform(0.5, 0.9)
    band *= 1 + depth * np.sin(2 * np.pi * rng.uniform(4, 30) * t)
    rot = rng.uniform(80, 400) * (1 + 0.01 * np.sin(2 * np.pi * 0.3 * t))
    phase = 2 * np.pi * np.cumsum(rot) / sr
    tone = sum(np.sin(k * phase) / k for k in (1, 2, 3))
    floor = _coloured(n, rng, 1.0, sr)
    return _unit(band + rng.uniform(0.3, 1.0) * tone + 0.3 * floor / (np.std(floor) + 1e-12))


def clicks(n, rng, sr=SAMPLE_RATE, talkers=None):
    """Poisson impulses (3-15 /s), decaying 0.5-5 ms, lognormal amplitudes, faint floor."""
    x = 0.01 * rng.standard_normal(n)
    rate = rng.uniform(3, 15)
    count = max(1, rng.poisson(rate * n / sr))
    tau = rng.uniform(0.0005, 0.005) * sr
    kern = np.exp(-np.arange(int(6 * tau) + 1) / tau) * rng.standard_normal(int(6 * tau) + 1)
    imp = np.zeros(n)
    imp[rng.integers(0, n, count)] = np.exp(rng.normal(0, 0.7, count)) * rng.choice([-1, 1], count)
    x += np.convolve(imp, kern)[:n]
    return _unit(x)


def music(n, rng, sr=SAMPLE_RATE, talkers=None):
    """Notes of a pentatonic scale with harmonics and ADSR envelopes (1-3 voices)."""
    t_total = n / sr
    base = 220.0 * 2 ** (rng.integers(-5, 6) / 12)
    scale = np.array([0, 2, 4, 7, 9, 12, 14, 16])
    beat = 60.0 / rng.uniform(80, 160)
    out = np.zeros(n)
    for voice in range(int(rng.integers(1, 4))):
        t, octave = 0.0, 2.0 ** (voice - 1)
        while t < t_total:
            dur = beat * rng.choice([0.5, 1.0, 2.0])
            a, b = int(t * sr), min(int((t + dur) * sr), n)
            if b > a:
                f = base * octave * 2 ** (rng.choice(scale) / 12)
                tt = np.arange(b - a) / sr
                tone = sum(np.sin(2 * np.pi * f * k * tt) / k**1.5 for k in range(1, 6) if f * k < sr / 2)
                env = np.minimum(1, tt / 0.01) * np.exp(-tt / rng.uniform(0.2, 1.0))
                out[a:b] += tone * env
            t += dur
    return _unit(out + 1e-3 * rng.standard_normal(n))


GENERATORS: Dict[str, Callable] = {
    "white": white,
    "pink": pink,
    "brown": brown,
    "babble": babble,
    "hum": hum,
    "machinery": machinery,
    "clicks": clicks,
    "music": music,
}


def make_noise(kind: str, n: int, rng: np.random.Generator, sr: int = SAMPLE_RATE, talkers=None) -> np.ndarray:
    """Unit-RMS noise of one class.

    Arguments
    ---------
    kind : str
        One of :data:`NOISE_CLASSES`.
    n : int
        Samples.
    rng : numpy.random.Generator
        Randomness.
    sr : int
        Sampling rate.
    talkers : list of numpy.ndarray, optional
        Talker tracks, needed by ``"babble"``.

    Example
    -------
    >>> x = make_noise("pink", 16000, np.random.default_rng(0))
    >>> round(float(np.sqrt(np.mean(x ** 2))), 3)
    1.0
    """
    if kind not in GENERATORS:
        raise ValueError(f"Unknown noise class {kind!r}; choose from {NOISE_CLASSES}")
    return GENERATORS[kind](n, rng, sr, talkers)


def make_rir(rt60: float, rng: np.random.Generator, sr: int = SAMPLE_RATE, drr_db: float = 3.0) -> np.ndarray:
    """Synthetic RIR: direct impulse then exponentially decaying noise.

    The tail starts 2-8 ms after the direct path (at index 16), decays 60 dB in
    ``rt60`` seconds and carries ``drr_db`` less energy than the direct path's
    (direct-to-reverberant ratio), capped so the direct path stays the peak.

    Example
    -------
    >>> h = make_rir(0.5, np.random.default_rng(0))
    >>> int(np.argmax(np.abs(h))), len(h) / 16000 >= 0.5
    (16, True)
    """
    n = int(min(max(1.2 * rt60, 0.1), 2.0) * sr)
    d = 16
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-np.log(1000.0) * t / rt60)
    tail[: d + int(rng.uniform(0.002, 0.008) * sr)] = 0.0
    tail *= np.sqrt(10 ** (-drr_db / 10) / (np.sum(tail**2) + 1e-12))
    peak = np.max(np.abs(tail))
    if peak >= 0.9:
        tail *= 0.9 / peak
    h = tail
    h[d] = 1.0
    return (0.9 * h / np.max(np.abs(h))).astype(np.float32)
