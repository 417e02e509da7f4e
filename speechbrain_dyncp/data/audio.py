"""Audio reading and writing that fails loudly, naming the file.

Everything in the project reads audio through :func:`read_audio` (soundfile
underneath, never ``torchaudio.load``, which needs torchcodec) so that bad
input gets one consistent, clear error and resampling / downmixing happen in
one place.

Authors
 * speechbrain-dyncp contributors
"""

import logging
import math
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import soundfile as sf
import torch
import torchaudio

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".sph")
SILENCE_PEAK = 2.0 ** -15  # below one 16-bit step: digital silence, nothing to enhance, classify or verify


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and why."""


def read_audio(
    path: Union[str, os.PathLike],
    sample_rate: Optional[int] = 16000,
    on_rate_mismatch: str = "resample",
    start: int = 0,
    stop: Optional[int] = None,
    allow_silent: bool = True,
) -> torch.Tensor:
    """Read a file as a mono float32 waveform ``[T]`` at ``sample_rate``.

    Arguments
    ---------
    path : str, path-like or file object
        Audio file (any format libsndfile reads); a file object is named in
        errors by its ``name`` attribute.
    sample_rate : int or None
        Target rate. None keeps the file's rate.
    on_rate_mismatch : {"resample", "error"}
        What to do when the file's rate differs: resample with a logged
        warning, or raise :class:`AudioError`.
    start, stop : int
        Sample range to read, in samples of the *file* rate (``stop=None``
        reads to the end).
    allow_silent : bool
        If False, an all-zero signal raises :class:`AudioError`.

    Returns
    -------
    torch.Tensor
        ``[T]`` float32; multichannel files are averaged to mono.

    Example
    -------
    >>> import soundfile as sf, numpy as np
    >>> p = getfixture("tmp_path") / "x.wav"
    >>> sf.write(p, np.stack([np.ones(800), -np.ones(800)], 1) * 0.5, 8000)
    >>> wav = read_audio(p, sample_rate=16000)
    >>> wav.shape, float(wav.abs().max())
    (torch.Size([1600]), 0.0)
    """
    if on_rate_mismatch not in ("resample", "error"):
        raise ValueError(f"on_rate_mismatch must be 'resample' or 'error', got {on_rate_mismatch!r}")
    if hasattr(path, "read"):  # a file object, e.g. audio bytes from a WebDataset shard
        source, path = path, Path(getattr(path, "name", "<in-memory audio>"))
    else:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"Audio file not found: {path}")
        if path.is_dir():
            raise AudioError(f"Expected an audio file, got a folder: {path}")
        source = str(path)
    try:
        data, file_rate = sf.read(source, start=start, stop=stop, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise AudioError(f"Cannot read audio file {path}: {exc}") from exc
    if data.shape[0] == 0:
        raise AudioError(f"Audio file {path} is empty (0 samples in the requested range)")
    if not np.isfinite(data).all():
        raise AudioError(f"Audio file {path} contains NaN or infinite samples")
    wav = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    if not allow_silent and not bool(wav.abs().max() > 0):
        raise AudioError(f"Audio file {path} is all silence")
    if sample_rate is not None and file_rate != sample_rate:
        if on_rate_mismatch == "error":
            raise AudioError(
                f"Audio file {path} is at {file_rate} Hz, expected {sample_rate} Hz "
                "(pass on_rate_mismatch='resample' to convert)"
            )
        logger.warning("Resampling %s from %d Hz to %d Hz", path, file_rate, sample_rate)
        check_resample_ratio(file_rate, sample_rate, path)
        wav = torchaudio.functional.resample(wav, file_rate, sample_rate)
    return wav.float()


MAX_RESAMPLE_FILTER = 10_000_000  # taps; 44.1k -> 16k needs 70k, an odd rate like 44101 Hz 705M


def check_resample_ratio(file_rate: int, sample_rate: int, path) -> None:
    """Refuse rates whose exact resampling filter would not fit in memory.

    torchaudio's sinc resampler builds a ``new x orig`` filter after dividing
    both rates by their gcd: a corrupt header claiming 2147483647 Hz, or an odd
    rate such as 44101 Hz, would allocate gigabytes.

    Example
    -------
    >>> check_resample_ratio(44100, 16000, "a.wav")
    >>> check_resample_ratio(44101, 16000, "b.wav")
    Traceback (most recent call last):
    ...
    speechbrain_dyncp.data.audio.AudioError: Audio file b.wav is at 44101 Hz: ...
    """
    g = math.gcd(int(file_rate), int(sample_rate))
    if (file_rate // g) * (sample_rate // g) > MAX_RESAMPLE_FILTER:
        raise AudioError(
            f"Audio file {path} is at {file_rate} Hz: exact resampling to {sample_rate} Hz would need a "
            f"{file_rate // g} x {sample_rate // g} filter; convert it first (e.g. sox/ffmpeg)"
        )


def resample_array(wav: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Polyphase resampling of a numpy signal (last axis) from ``orig`` to ``new`` Hz.

    Used for the one-off 16 kHz copies made by data preparation: scipy's polyphase
    filter stays fast on busy shared cores, where torch's conv1d-based resampler
    crawls. Reading for training / inference goes through :func:`read_audio`.

    Example
    -------
    >>> resample_array(np.ones(441), 44100, 16000).shape
    (160,)
    """
    if orig == new:
        return wav
    from scipy.signal import resample_poly

    g = math.gcd(int(orig), int(new))
    return resample_poly(wav, new // g, orig // g)


def audio_info(path: Union[str, os.PathLike]):
    """Return ``(n_samples, sample_rate, channels)`` without reading the samples.

    Arguments
    ---------
    path : str or path-like
        Audio file.

    Returns
    -------
    tuple
        ``(frames, samplerate, channels)``.

    Example
    -------
    >>> import soundfile as sf, numpy as np
    >>> p = getfixture("tmp_path") / "y.wav"
    >>> sf.write(p, np.zeros(320), 16000)
    >>> audio_info(p)
    (320, 16000, 1)
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Audio file not found: {path}")
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise AudioError(f"Cannot read audio file {path}: {exc}") from exc
    return info.frames, info.samplerate, info.channels


def write_audio(
    path: Union[str, os.PathLike],
    wav: Union[torch.Tensor, np.ndarray],
    sample_rate: int,
    overwrite: bool = False,
) -> Path:
    """Write a mono waveform as 16-bit PCM wav, never silently replacing a file.

    Arguments
    ---------
    path : str or path-like
        Destination; parent folders are created.
    wav : torch.Tensor or numpy.ndarray
        ``[T]`` waveform in [-1, 1] (clipped on write).
    sample_rate : int
        Sampling rate in Hz.
    overwrite : bool
        If False (default) an existing file raises ``FileExistsError``.

    Returns
    -------
    pathlib.Path
        The written path.

    Example
    -------
    >>> p = write_audio(getfixture("tmp_path") / "z.wav", torch.zeros(160), 16000)
    >>> write_audio(p, torch.zeros(160), 16000)
    Traceback (most recent call last):
    ...
    FileExistsError: Refusing to overwrite existing file ...
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"Refusing to overwrite existing file {path}")
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().numpy()
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if not np.isfinite(wav).all():
        raise AudioError(f"Refusing to write NaN/inf samples to {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    sf.write(str(tmp), np.clip(wav, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written output
    return path


def list_audio_files(root: Union[str, os.PathLike]):
    """Sorted audio files under ``root`` (recursive); ``root`` may be a file.

    Arguments
    ---------
    root : str or path-like
        A folder or a single file.

    Returns
    -------
    list of pathlib.Path

    Example
    -------
    >>> d = getfixture("tmp_path")
    >>> _ = write_audio(d / "a" / "1.wav", torch.zeros(10), 16000)
    >>> [p.name for p in list_audio_files(d)]
    ['1.wav']
    """
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"No such file or folder: {root}")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
