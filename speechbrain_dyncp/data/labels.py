"""Frame labels: loading the corpus' exact labels, estimating them on real audio.

All labels live on the STFT frame grid of the enhancer: frame ``t`` is centred
on sample ``t * hop`` and a signal of ``T`` samples has ``N = 1 + T // hop``
frames (``torch.stft(center=True, hop_length=hop)``).

For real recordings, which carry no ground truth, :func:`energy_vad` and
:func:`autocorr_f0` give documented estimates on the same grid:

* ``energy_vad``: frame energy (``n_fft`` Hann window) above
  ``max(frame energies) + threshold_db`` (default -35 dB) and above an absolute
  floor, then a median filter removes isolated flips.
* ``autocorr_f0``: YIN (de Cheveigne & Kawahara 2002) at each frame centre, 25 ms
  window, lag in ``[sr/fmax, sr/fmin]``, parabolic interpolation; voiced where
  YIN's aperiodicity (the dip of ``d'``) is below ``voicing_threshold`` and the
  frame is active by ``energy_vad``. Measured on the embedded corpus by
  ``tests/unit/test_synth.py`` (median error vs. the exact labels). Not
  ``librosa.yin``: it returns no aperiodicity, which the voicing decision needs
  (``librosa.pyin``'s HMM is another, slower estimator), and the labels of
  prepared corpora would change.
* ``speech_vad``: ``energy_vad`` with a hangover (the real-speech corpus' VAD);
  ``hts_vad`` / ``fda_f0``: phone timings and laryngograph F0 references where a
  recording has them.

Authors
 * speechbrain-dyncp contributors
"""

import os
from pathlib import Path
from typing import Dict, Tuple, Union

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import median_filter

HOP_LENGTH = 256


def n_frames(n_samples: int, hop: int = HOP_LENGTH) -> int:
    """Frames of ``torch.stft(center=True)``: ``1 + n_samples // hop``.

    Example
    -------
    >>> n_frames(16000)
    63
    """
    return 1 + n_samples // hop


def load_frame_labels(npz_path: Union[str, os.PathLike]) -> Dict[str, object]:
    """Read a corpus label file.

    Returns
    -------
    dict
        ``vad`` (uint8 [N]), ``f0`` (float32 [N], Hz, 0 = unvoiced),
        ``hop_length``, ``sample_rate`` (int), ``noise`` (str), ``snr`` (float).

    Example
    -------
    >>> p = getfixture("tmp_path") / "u.npz"
    >>> np.savez(p, vad=np.ones(3, np.uint8), f0=np.zeros(3, np.float32), hop_length=256,
    ...          sample_rate=16000, noise="white", snr=5.0)
    >>> lab = load_frame_labels(p)
    >>> lab["noise"], lab["snr"], lab["vad"].tolist()
    ('white', 5.0, [1, 1, 1])
    """
    with np.load(npz_path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    for key in ("hop_length", "sample_rate"):
        if key in out:
            out[key] = int(out[key])
    if "noise" in out:
        out["noise"] = str(out["noise"])
    if "snr" in out:
        out["snr"] = float(out["snr"])
    return out


def _frames(wav: np.ndarray, win: int, hop: int) -> np.ndarray:
    """``[N, win]`` windows centred on ``t * hop`` (zero padded at the edges)."""
    half = win // 2
    padded = np.pad(np.asarray(wav, dtype=np.float64), (half, half))
    return sliding_window_view(padded, win)[::hop][: n_frames(len(wav), hop)]


def energy_vad(
    wav: np.ndarray,
    hop: int = HOP_LENGTH,
    n_fft: int = 512,
    threshold_db: float = -35.0,
    floor_db: float = -70.0,
    smooth: int = 3,
) -> np.ndarray:
    """Energy voice-activity estimate ``[N]`` (uint8) on the label grid.

    Example
    -------
    >>> x = np.concatenate([np.zeros(4096), 0.1 * np.random.default_rng(0).standard_normal(4096)])
    >>> v = energy_vad(x)
    >>> int(v[:12].sum()), int(v[20:].min())
    (0, 1)
    """
    fr = _frames(wav, n_fft, hop) * np.hanning(n_fft)
    e_db = 10 * np.log10(np.mean(fr**2, axis=1) + 1e-12)
    active = (e_db > e_db.max() + threshold_db) & (e_db > floor_db)
    if smooth > 1:
        active = median_filter(active.astype(np.uint8), size=smooth, mode="nearest") > 0
    return active.astype(np.uint8)


def autocorr_f0(
    wav: np.ndarray,
    sample_rate: int = 16000,
    hop: int = HOP_LENGTH,
    fmin: float = 60.0,
    fmax: float = 400.0,
    win_s: float = 0.025,
    threshold: float = 0.15,
    voicing_threshold: float = 0.35,
) -> np.ndarray:
    """YIN F0 estimate ``[N]`` (Hz, 0 = unvoiced) on the label grid (why not ``librosa.yin``: module docstring).

    YIN's cumulative-mean-normalised difference ``d'(tau)`` (de Cheveigne &
    Kawahara 2002), computed for all frames at once with FFT
    cross-correlations: the first lag in ``[sr/fmax, sr/fmin]`` whose ``d'``
    dips below ``threshold`` (else the global minimum), refined by parabolic
    interpolation. Voiced where that minimum is below ``voicing_threshold``
    and :func:`energy_vad` marks the frame active.

    Example
    -------
    >>> t = np.arange(16000) / 16000
    >>> f0 = autocorr_f0(0.3 * np.sign(np.sin(2 * np.pi * 150 * t)))
    >>> bool(np.all(np.abs(f0[5:-5] - 150) < 1))
    True
    """
    win = int(win_s * sample_rate)
    lo, hi = int(sample_rate / fmax), int(np.ceil(sample_rate / fmin))
    span = win + hi + 1
    x = np.asarray(wav, dtype=np.float64)
    padded = np.pad(x, (span // 2, span - span // 2))
    fr = sliding_window_view(padded, span)[::hop][: n_frames(len(x), hop)]  # [N, span]: from t * hop - span / 2
    nfft = 1 << int(np.ceil(np.log2(2 * span)))
    head = np.fft.rfft(fr[:, :win], nfft, axis=1)
    full = np.fft.rfft(fr, nfft, axis=1)
    r = np.fft.irfft(np.conj(head) * full, nfft, axis=1)[:, : hi + 1]  # sum_j x_j x_{j+tau}
    csum = np.concatenate([np.zeros((len(fr), 1)), np.cumsum(fr**2, axis=1)], axis=1)
    taus = np.arange(hi + 1)
    energy_tau = csum[:, taus + win] - csum[:, taus]
    d = np.maximum(energy_tau[:, :1] + energy_tau - 2 * r, 0.0)
    cum = np.cumsum(d[:, 1:], axis=1)
    dn = np.ones_like(d)
    dn[:, 1:] = d[:, 1:] * taus[1:] / np.maximum(cum, 1e-12)
    seg = dn[:, lo : hi + 1]
    below = seg < threshold
    first = np.where(below.any(axis=1), below.argmax(axis=1), seg.argmin(axis=1))
    # the local minimum that follows the first threshold crossing
    rising = np.ones_like(seg, dtype=bool)
    rising[:, :-1] = seg[:, 1:] >= seg[:, :-1]
    rising &= np.arange(seg.shape[1])[None, :] >= first[:, None]
    k = rising.argmax(axis=1) + lo
    rows = np.arange(len(k))
    y0, y1, y2 = dn[rows, k - 1], dn[rows, k], dn[rows, np.minimum(k + 1, hi)]
    denom = y0 - 2 * y1 + y2
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (y0 - y2) / np.where(denom == 0, 1.0, denom), 0.0)
    lag = k + np.clip(shift, -0.5, 0.5)
    voiced = (y1 < voicing_threshold) & (energy_vad(x, hop) > 0)
    return np.where(voiced, sample_rate / lag, 0.0).astype(np.float32)


def item_frame_labels(
    labels_path, clean_wav, n: int, source: str = "auto", item: str = "", sample_rate: int = 16000
) -> Tuple[np.ndarray, np.ndarray]:
    """``vad`` (uint8) and ``f0`` (Hz, 0 = unvoiced) ``[n]`` of one manifest item.

    ``source="auto"`` reads the corpus label file where the item has one and
    otherwise estimates both on the clean reference (:func:`energy_vad`,
    :func:`autocorr_f0`); ``"corpus"`` requires the file, ``"estimate"``
    always estimates. A label grid one frame off ``n`` (rounding of the
    length) is padded or cut; anything else raises, naming ``item``.

    Arguments
    ---------
    labels_path : str, path-like or file-like
        The manifest's ``labels`` column (may be empty).
    clean_wav : str or path-like
        The clean reference, read only when estimating.
    n : int
        Frames the enhancer gives for the item.
    source : str
        ``"auto"``, ``"corpus"`` or ``"estimate"``.
    item : str
        Item id for error messages.
    sample_rate : int
        Rate the clean reference is read at.

    Example
    -------
    >>> p = getfixture("tmp_path") / "u.npz"
    >>> np.savez(p, vad=np.array([0, 1, 1], np.uint8), f0=np.array([0, 100, 110], np.float32))
    >>> vad, f0 = item_frame_labels(str(p), None, 4)
    >>> vad.tolist(), f0.tolist()
    ([0, 1, 1, 0], [0.0, 100.0, 110.0, 0.0])
    """
    has_file = bool(labels_path) and (not isinstance(labels_path, (str, os.PathLike)) or Path(labels_path).exists())
    if source != "estimate" and has_file:
        lab = load_frame_labels(labels_path)
        vad, f0 = lab["vad"].astype(np.uint8), lab["f0"].astype(np.float32)
    elif source == "corpus":
        raise FileNotFoundError(f"label_source=corpus but {item} has no label file ({labels_path!r})")
    else:
        from speechbrain_dyncp.data.audio import read_audio

        clean = read_audio(clean_wav, sample_rate).double().numpy()
        vad = energy_vad(clean)
        f0 = (autocorr_f0(clean, sample_rate) * vad).astype(np.float32)
    if abs(len(vad) - n) > 1:
        raise ValueError(f"{item}: {len(vad)} label frames but the enhancer gives {n}")
    pad = max(0, n - len(vad))
    return np.pad(vad, (0, pad))[:n], np.pad(f0, (0, pad))[:n]


def fda_f0(path, n: int) -> np.ndarray:
    """Laryngograph F0 (15 ms frames) on the 16 ms label grid; unvoiced where either neighbour is."""
    ref = np.loadtxt(path, ndmin=1)
    pos = np.arange(n) * HOP_LENGTH / 16000 / 0.015
    lo = np.clip(np.floor(pos).astype(int), 0, len(ref) - 1)
    hi = np.clip(lo + 1, 0, len(ref) - 1)
    frac = pos - np.floor(pos)
    f0 = (1 - frac) * ref[lo] + frac * ref[hi]
    f0[(ref[lo] <= 0) | (ref[hi] <= 0) | (pos > len(ref) - 1)] = 0.0
    return f0.astype(np.float32)


def hts_vad(path, n: int) -> np.ndarray:
    """Speech = frames whose centre falls in a non-silence phone (HTS times in 100 ns)."""
    vad = np.zeros(n, np.uint8)
    centres = np.arange(n) * HOP_LENGTH / 16000
    for line in Path(path).read_text().splitlines():
        start, end, lab = line.split(maxsplit=2)
        phone = lab.split("-")[1].split("+")[0]
        if phone not in ("sil", "pau"):
            vad[(centres >= int(start) * 1e-7) & (centres < int(end) * 1e-7)] = 1
    return vad


def speech_vad(wav: np.ndarray, hangover: int = 3) -> np.ndarray:
    """Energy VAD with a hangover: a speech frame keeps the next ``hangover`` frames speech.

    Example
    -------
    >>> x = np.zeros(16000); x[4000:6000] = 0.1 * np.random.default_rng(0).standard_normal(2000)
    >>> v = speech_vad(x, hangover=3)
    >>> int(v[:14].sum()), int(v[24:26].sum()), int(v[30:].sum())
    (0, 2, 0)
    """
    vad = energy_vad(wav)
    out = vad.copy()
    for k in range(1, hangover + 1):
        out[k:] |= vad[:-k]
    return out
