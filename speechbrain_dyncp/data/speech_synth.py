"""Source-filter speech synthesiser with exact VAD and F0 ground truth.

Speech-like utterances: a Rosenberg glottal-pulse train (known F0 contour with
declination, pitch accents, jitter and shimmer) plus aspiration noise, shaped
by a time-varying cascade of formant resonators (applied in the STFT domain,
which vectorises the time variation), with fricative and plosive noise
segments and pauses. Speakers differ in vocal-tract length (formant scaling),
F0 register and range, breathiness, glottal open quotient, speaking rate and
their own vowel targets, so identity is not carried by F0 alone.

Ground truth is exact by construction. Per sample: ``vad`` is 1 inside words
(first phone onset to last phone end, plosive closures included), ``f0`` is
the instantaneous frequency of the glottal phase inside voiced segments (vowels
and sonorants) and 0 elsewhere. Frame labels (:func:`frame_labels`) sample
these at the frame centres ``t * hop`` of the ``torch.stft(center=True)`` grid.

Authors
 * speechbrain-dyncp contributors
"""

from dataclasses import dataclass
from typing import Tuple

import numpy as np
from scipy.ndimage import uniform_filter1d

from speechbrain_dyncp.data.source_filter import band_noise, resonances, rosenberg_derivative, stft_filter

SAMPLE_RATE = 16000
HOP_LENGTH = 256

# Adult-male vowel formants F1..F4 (Hz), Peterson & Barney-like targets.
VOWELS = np.array(
    [
        [270, 2290, 3010, 3600],  # i
        [390, 1990, 2550, 3600],  # I
        [530, 1840, 2480, 3600],  # E
        [660, 1720, 2410, 3600],  # ae
        [730, 1090, 2440, 3600],  # a
        [570, 840, 2410, 3600],  # O
        [440, 1020, 2240, 3600],  # U
        [300, 870, 2240, 3600],  # u
        [640, 1190, 2390, 3600],  # V
        [490, 1350, 1690, 3600],  # 3r
    ],
    dtype=np.float64,
)
# Sonorant consonants (voiced): m, n, l; formants and relative level.
SONORANTS = np.array([[250, 1100, 2300, 3600], [250, 1700, 2500, 3600], [360, 1300, 2700, 3600]])
SONORANT_LEVEL = np.array([0.3, 0.3, 0.6])
# Fricatives: (low Hz, high Hz, relative level) for s, sh, f.
FRICATIVES = ((4000.0, 7800.0, 0.35), (2000.0, 5000.0, 0.4), (900.0, 7800.0, 0.12))
BANDWIDTHS = np.array([60.0, 80.0, 110.0, 160.0])


@dataclass(frozen=True)
class Speaker:
    """Voice parameters of one synthetic talker.

    Arguments
    ---------
    name : str
        Speaker id.
    vtl : float
        Formant scale factor (1 / relative vocal-tract length).
    f0_mean : float
        Register (Hz).
    f0_range : float
        Intonation range (semitones).
    breathiness : float
        Aspiration-noise share of the voiced source.
    open_quotient : float
        Glottal open phase fraction (spectral tilt).
    rate : float
        Speaking-rate factor (>1 faster).
    vowel_offsets : numpy.ndarray
        ``[n_vowels, 4]`` multiplicative offsets of the speaker's vowel targets.
    jitter : float
        Relative cycle-to-cycle F0 perturbation.
    shimmer : float
        Relative cycle-to-cycle amplitude perturbation.
    """

    name: str
    vtl: float
    f0_mean: float
    f0_range: float
    breathiness: float
    open_quotient: float
    rate: float
    vowel_offsets: np.ndarray
    jitter: float
    shimmer: float


def random_speaker(name: str, rng: np.random.Generator) -> Speaker:
    """Draw a speaker; register and vocal-tract length overlap across talkers.

    Example
    -------
    >>> spk = random_speaker("id00001", np.random.default_rng(0))
    >>> 60 < spk.f0_mean < 320 and 0.8 < spk.vtl < 1.25
    True
    """
    low = rng.random() < 0.5  # loosely "male"/"female": the ranges overlap
    f0 = float(np.exp(rng.normal(np.log(115 if low else 200), 0.18)))
    vtl = float(np.clip(rng.normal(0.93 if low else 1.1, 0.06), 0.8, 1.24))
    return Speaker(
        name=name,
        vtl=vtl,
        f0_mean=float(np.clip(f0, 70, 300)),
        f0_range=float(rng.uniform(1.5, 4.5)),
        breathiness=float(rng.uniform(0.02, 0.3)),
        open_quotient=float(rng.uniform(0.4, 0.75)),
        rate=float(rng.uniform(0.8, 1.25)),
        vowel_offsets=np.exp(rng.normal(0.0, 0.07, size=(len(VOWELS), 4))),
        jitter=float(rng.uniform(0.003, 0.015)),
        shimmer=float(rng.uniform(0.02, 0.07)),
    )


def _plan(dur: int, spk: Speaker, rng: np.random.Generator, sr: int):
    """Segment plan: list of (kind, start, stop, info) covering ``dur`` samples."""
    ms = sr / 1000.0
    segs, words = [], []
    t = int(rng.uniform(80, 350) * ms)  # leading silence
    tail = int(rng.uniform(80, 300) * ms)
    while t < dur - tail - 300 * ms:
        w0 = t
        for _ in range(rng.integers(1, 4)):  # syllables per word
            if rng.random() < 0.75:  # onset consonant
                kind = rng.choice(["fric", "plos", "son"], p=[0.35, 0.35, 0.3])
                t = _consonant(segs, kind, t, spk, rng, ms)
            vlen = int(rng.uniform(70, 200) * ms / spk.rate)
            v = int(rng.integers(len(VOWELS)))
            v2 = int(rng.integers(len(VOWELS))) if rng.random() < 0.3 else v  # diphthong
            segs.append(("vowel", t, t + vlen, (v, v2, float(rng.uniform(0.6, 1.0)))))
            t += vlen
            if rng.random() < 0.25:  # coda
                t = _consonant(segs, rng.choice(["fric", "son"]), t, spk, rng, ms)
        words.append((w0, t))
        if rng.random() < 0.4:  # pause between words
            t += int(rng.uniform(150, 450) * ms)
    return segs, words


def _consonant(segs, kind, t, spk, rng, ms) -> int:
    if kind == "fric":
        n = int(rng.uniform(60, 140) * ms / spk.rate)
        segs.append(("fric", t, t + n, int(rng.integers(len(FRICATIVES)))))
    elif kind == "son":
        n = int(rng.uniform(40, 90) * ms / spk.rate)
        segs.append(("son", t, t + n, int(rng.integers(len(SONORANTS)))))
    else:  # closure (silent but inside the word), burst, aspiration
        n = int(rng.uniform(30, 60) * ms)
        b = int(rng.uniform(15, 40) * ms)
        segs.append(("burst", t + n, t + n + b, None))
        n += b
    return t + n


def _ramp_env(starts, stops, levels, n, ramp) -> np.ndarray:
    """Piecewise-constant envelope smoothed by a triangular kernel of ``ramp`` samples."""
    env = np.zeros(n)
    for a, b, lev in zip(starts, stops, levels):
        env[a:b] = lev
    if ramp > 1 and env.any():  # two box filters = triangle, O(n) whatever the ramp
        env = uniform_filter1d(uniform_filter1d(env, ramp // 2, mode="constant"), ramp // 2, mode="constant")
    return env


def _f0_contour(n, spk, words, rng, sr, f0_shift) -> np.ndarray:
    """Per-sample F0 (Hz): declination, accents, slow wander and jitter."""
    t = np.arange(n) / sr
    st = -rng.uniform(1.0, 3.0) * t / max(t[-1], 1e-3)  # declination (semitones)
    for w0, w1 in words:  # a pitch accent on some words
        if rng.random() < 0.6:
            c = rng.uniform(w0, w1) / sr
            st += rng.uniform(0.4, 1.0) * spk.f0_range * np.exp(-0.5 * ((t - c) / 0.08) ** 2)
    knots = np.arange(0, t[-1] + 0.25, 0.2)
    st += np.interp(t, knots, rng.normal(0, 0.25 * spk.f0_range, len(knots)))
    f0 = spk.f0_mean * 2.0 ** ((st + f0_shift) / 12.0)
    jk = np.arange(0, t[-1] + 0.01, 0.005)  # ~ one value per glottal cycle
    f0 *= 1.0 + spk.jitter * np.interp(t, jk, rng.standard_normal(len(jk)))
    return np.clip(f0, 50.0, 450.0)


def synthesize(
    spk: Speaker,
    duration: float,
    rng: np.random.Generator,
    sr: int = SAMPLE_RATE,
    f0_shift: float = 0.0,
    rate_scale: float = 1.0,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthesise one utterance with exact per-sample labels.

    Arguments
    ---------
    spk : Speaker
        Voice to use.
    duration : float
        Length in seconds.
    rng : numpy.random.Generator
        Source of all randomness (same state -> same output).
    sr : int
        Sampling rate.
    f0_shift : float
        Register shift in semitones (e.g. per recording session).
    rate_scale : float
        Extra speaking-rate factor.

    Returns
    -------
    wav : numpy.ndarray
        ``[T]`` float32, RMS over speech ~0.05 (about -26 dBFS).
    vad : numpy.ndarray
        ``[T]`` uint8, 1 inside words.
    f0 : numpy.ndarray
        ``[T]`` float32 Hz, 0 where unvoiced.

    Example
    -------
    >>> wav, vad, f0 = synthesize(random_speaker("s", np.random.default_rng(1)), 1.5, np.random.default_rng(2))
    >>> wav.shape == vad.shape == f0.shape == (24000,)
    True
    >>> bool(((f0 > 0) <= (vad > 0)).all())  # voiced implies speech
    True
    """
    n = int(round(duration * sr))
    if rate_scale != 1.0:
        spk = Speaker(**{**spk.__dict__, "rate": spk.rate * rate_scale})
    segs, words = _plan(n, spk, rng, sr)
    segs = [s for s in segs if s[1] < n]
    vad = np.zeros(n, dtype=np.uint8)
    for w0, w1 in words:
        vad[w0 : min(w1, n)] = 1

    # Voiced source: Rosenberg pulses + aspiration, gated by voiced segments.
    voiced = [s for s in segs if s[0] in ("vowel", "son")]
    levels = [s[3][2] if s[0] == "vowel" else SONORANT_LEVEL[s[3]] for s in voiced]
    gate = np.zeros(n, dtype=bool)
    for s in voiced:
        gate[s[1] : s[2]] = True
    ramp = int(0.012 * sr)
    amp = _ramp_env([s[1] for s in voiced], [min(s[2], n) for s in voiced], levels, n, ramp)
    f0_s = _f0_contour(n, spk, words, rng, sr, f0_shift)
    phase = np.cumsum(f0_s / sr)
    frac = phase % 1.0
    cyc = phase.astype(np.int64)
    shim = 1.0 + spk.shimmer * rng.standard_normal(cyc[-1] + 1)[cyc]
    src = rosenberg_derivative(frac, spk.open_quotient) * shim
    asp = rng.standard_normal(n) * np.where(frac < spk.open_quotient, 1.0, 0.35)
    src = (src + spk.breathiness * 1.5 * asp) * amp

    # Formant tracks at STFT-frame rate, interpolated between segment targets.
    n_fft, hop = 512, 128
    anchors_t, anchors_f = [], []
    for s in voiced:
        if s[0] == "vowel":
            v1, v2 = s[3][0], s[3][1]
            f1 = VOWELS[v1] * spk.vowel_offsets[v1]
            f2 = VOWELS[v2] * spk.vowel_offsets[v2]
            anchors_t += [s[1] + 0.3 * (s[2] - s[1]), s[1] + 0.7 * (s[2] - s[1])]
            anchors_f += [f1, f2]
        else:
            anchors_t.append(0.5 * (s[1] + s[2]))
            anchors_f.append(SONORANTS[s[3]])
    if not anchors_t:
        anchors_t, anchors_f = [0.0], [VOWELS[4]]
    anchors_f = np.array(anchors_f) * spk.vtl
    frame_t = np.arange(n // hop + 1) * hop
    formants = np.stack([np.interp(frame_t, anchors_t, anchors_f[:, k]) for k in range(4)], -1)
    bw = BANDWIDTHS * (1.0 + 0.8 * spk.breathiness)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    voiced_wav = stft_filter(src, resonances(freqs, formants, bw), n_fft, hop)
    v_rms = np.sqrt(np.mean(voiced_wav[gate] ** 2)) if gate.any() else 1.0
    wav = voiced_wav / (v_rms + 1e-12)

    # Unvoiced segments: band-limited frication and plosive bursts.
    for kind_idx, (lo, hi, lev) in enumerate(FRICATIVES):
        fr = [s for s in segs if s[0] == "fric" and s[3] == kind_idx]
        if fr:
            e = _ramp_env([s[1] for s in fr], [min(s[2], n) for s in fr], [lev] * len(fr), n, int(0.01 * sr))
            wav += e * band_noise(n, lo, hi, rng, sr)
    bursts = [s for s in segs if s[0] == "burst"]
    if bursts:
        decay = np.zeros(n)
        for s in bursts:
            m = min(s[2], n) - s[1]
            decay[s[1] : s[1] + m] = 0.6 * np.exp(-np.arange(m) / (0.008 * sr))
        wav += decay * band_noise(n, 500.0, 7500.0, rng, sr)

    speech_rms = np.sqrt(np.mean(wav[vad > 0] ** 2)) if vad.any() else 1.0
    wav = 0.05 * wav / (speech_rms + 1e-12)
    f0 = np.where(gate & (vad > 0), f0_s, 0.0).astype(np.float32)
    return wav.astype(np.float32), vad, f0


def frame_labels(vad: np.ndarray, f0: np.ndarray, hop: int = HOP_LENGTH):
    """Per-frame labels on the ``torch.stft(center=True)`` grid.

    Frame ``t`` is centred on sample ``t * hop``; ``N = 1 + T // hop``. Each
    frame takes the per-sample label at its centre.

    Example
    -------
    >>> v, f = frame_labels(np.array([0] * 200 + [1] * 400, np.uint8), np.zeros(600, np.float32))
    >>> v.tolist()  # centres 0, 256, 512
    [0, 1, 1]
    """
    centres = np.minimum(np.arange(1 + len(vad) // hop) * hop, len(vad) - 1)
    return vad[centres].astype(np.uint8), f0[centres].astype(np.float32)
