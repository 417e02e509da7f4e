"""Source-filter building blocks of the speech synthesiser (:mod:`speechbrain_dyncp.data.speech_synth`):
the Rosenberg glottal pulse, formant resonator cascades, time-varying STFT filtering and
band-limited noise.

Authors
 * speechbrain-dyncp contributors
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import fft as sp_fft


def rosenberg_derivative(frac: np.ndarray, oq: float) -> np.ndarray:
    """Derivative of the Rosenberg glottal flow over one period (peak ~1)."""
    tp, tn = 0.6 * oq, 0.4 * oq
    out = np.zeros_like(frac)
    rise = frac < tp
    fall = (frac >= tp) & (frac < tp + tn)
    out[rise] = 0.5 * np.pi / tp * np.sin(np.pi * frac[rise] / tp)
    out[fall] = -0.5 * np.pi / tn * np.sin(0.5 * np.pi * (frac[fall] - tp) / tn)
    return out / (0.5 * np.pi / tn)


def resonances(freqs, formants, bandwidths) -> np.ndarray:
    """Cascade of 2-pole resonators (unit DC gain): ``[frames, bins]`` magnitude."""
    f = freqs[None, :].astype(np.float32)
    mag = np.ones((len(formants), len(freqs)), dtype=np.float32)
    for k in range(formants.shape[1]):
        fk = formants[:, k : k + 1].astype(np.float32)
        bk2 = np.float32(0.25 * bandwidths[k] ** 2)
        mag *= (fk * fk + bk2) / np.sqrt(((f - fk) ** 2 + bk2) * ((f + fk) ** 2 + bk2))
    return mag


def stft_filter(x: np.ndarray, gains: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Time-varying filtering: Hann STFT (centred frames), ``gains [frames, bins]``, overlap-add.

    numpy rather than torch.stft: tiny per-utterance calls run many times
    slower in torch when several intra-op threads compete for busy cores.
    """
    n, half = len(x), n_fft // 2
    win = np.hanning(n_fft + 1)[:-1]  # periodic Hann: sums to a constant at hop = n_fft / 4
    padded = np.pad(x, (half, half + n_fft))
    frames = sliding_window_view(padded, n_fft)[::hop][: len(gains)]
    frames = np.fft.irfft(np.fft.rfft(frames * win, axis=1) * gains, n_fft, axis=1) * win
    out = np.zeros(len(padded))
    norm = np.zeros(len(padded))
    for k in range(n_fft // hop):  # overlap-add, one strided pass per frame phase
        sl = frames[k :: n_fft // hop].reshape(-1)
        start = k * hop
        out[start : start + len(sl)] += sl
        norm[start : start + len(sl)] += np.tile(win**2, len(frames[k :: n_fft // hop]))
    return (out / np.maximum(norm, 1e-8))[half : half + n]


def band_noise(n, lo, hi, rng, sr) -> np.ndarray:
    """Unit-variance white noise band-limited to ``[lo, hi]`` Hz (300 Hz linear edges)."""
    m = sp_fft.next_fast_len(n, real=True)  # odd lengths make pocketfft slow
    spec = sp_fft.rfft(rng.standard_normal(m))
    freqs = sp_fft.rfftfreq(m, 1.0 / sr)
    spec *= np.clip(np.minimum((freqs - lo) / 300.0, (hi - freqs) / 300.0) + 1, 0, 1)
    x = sp_fft.irfft(spec, m)[:n]
    return x / (x.std() + 1e-12)
