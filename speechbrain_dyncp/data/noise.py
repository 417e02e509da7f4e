"""Noise and RIR manifests for ``speechbrain.augment.AddNoise`` / ``AddReverb``.

They read SpeechBrain's extended CSV (``ID,duration,wav,wav_format,wav_opts``)
through ``audio_io.load`` with no resampling or downmixing, so every listed
file must already be 16 kHz mono. Files that are not (real RIRs are often
44.1-96 kHz and stereo) are converted into 16 kHz mono *copies* under
``<save_folder>/converted/``; the source is never modified. Noises are
downmixed by averaging the channels; RIRs keep channel 0 (averaging two
microphones would smear the direct path). Unreadable, empty or all-silent
files are skipped with a warning and listed in ``<save_folder>/skipped_<csv>.txt``.

Authors
 * speechbrain-dyncp contributors
"""

import logging
from pathlib import Path
from typing import Dict, Sequence, Union

import numpy as np
import soundfile as sf
import torch

from speechbrain_dyncp.data.audio import AudioError, audio_info, list_audio_files, resample_array, write_audio
from speechbrain_dyncp.data.manifest import already_done, check_not_inside, report_skipped, save_options, write_csv

logger = logging.getLogger(__name__)

HEADER = ["ID", "duration", "wav", "wav_format", "wav_opts"]


def _load_mono(path: Path, channel: str) -> tuple:
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types on corrupt input
        raise AudioError(f"Cannot read audio file {path}: {exc}") from exc
    if data.shape[0] == 0:
        raise AudioError(f"Audio file {path} is empty")
    wav = data[:, 0] if channel == "first" else data.mean(axis=1)
    if not np.isfinite(wav).all():
        raise AudioError(f"Audio file {path} contains NaN or infinite samples")
    if not np.any(wav != 0):
        raise AudioError(f"Audio file {path} is all silence")
    return torch.from_numpy(np.ascontiguousarray(wav)), rate, data.shape[1]


def prepare_noise_csv(
    folders: Union[str, Path, Sequence],
    csv_file,
    save_folder=None,
    sample_rate: int = 16000,
    channel: str = "mean",
) -> Path:
    """List every audio file under ``folders`` in an AddNoise/AddReverb CSV.

    Arguments
    ---------
    folders : path or sequence of paths
        Folders (searched recursively) or single files; comma-separated string allowed.
    csv_file : path
        Output CSV (not inside a source folder).
    save_folder : path, optional
        Where converted copies and reports go; default: the CSV's folder.
    sample_rate : int
        Rate of the listed files.
    channel : {"mean", "first"}
        How multichannel files are made mono.

    Returns
    -------
    pathlib.Path
        ``csv_file``.

    Example
    -------
    >>> import soundfile as sf
    >>> d = getfixture("tmp_path"); (d / "src").mkdir()
    >>> sf.write(d / "src" / "n.wav", np.random.randn(4800, 2) * 0.1, 48000)  # stereo, 48 kHz
    >>> csv = prepare_noise_csv(d / "src", d / "out" / "noise.csv")
    >>> row = csv.read_text().splitlines()[1].split(",")
    >>> row[0], row[1], sf.info(row[2]).samplerate, sf.info(row[2]).channels
    ('n', '0.10000', 16000, 1)
    """
    if channel not in ("mean", "first"):
        raise ValueError(f"channel must be 'mean' or 'first', got {channel!r}")
    if isinstance(folders, (str, Path)):
        folders = [p.strip() for p in str(folders).split(",") if p.strip()]
    folders = [Path(f) for f in folders]
    for f in folders:
        if not f.exists():
            raise FileNotFoundError(f"Noise/RIR folder not found: {f}")
    csv_file = Path(csv_file)
    save_folder = Path(save_folder) if save_folder else csv_file.parent
    check_not_inside(save_folder, [f for f in folders if f.is_dir()])
    check_not_inside(csv_file.parent, [f for f in folders if f.is_dir()])
    options = {"folders": [str(f.resolve()) for f in folders], "sample_rate": sample_rate, "channel": channel}
    opts_name = f"opt_{csv_file.stem}.json"
    if already_done(csv_file.parent, opts_name, options, [csv_file]):
        return csv_file
    save_folder.mkdir(parents=True, exist_ok=True)
    rows, skipped, seen = [], [], set()
    for k, folder in enumerate(folders):
        base = folder if folder.is_dir() else folder.parent
        for path in list_audio_files(folder):
            rel = path.relative_to(base).with_suffix("")
            uid = rel.as_posix() if rel.as_posix() not in seen else f"{k}/{rel.as_posix()}"
            seen.add(uid)
            try:
                wav, rate, chans = _load_mono(path, channel)
            except AudioError as exc:
                logger.warning("Skipping %s: %s", path, exc)
                skipped.append((path, str(exc)))
                continue
            target = path.resolve()
            if rate != sample_rate or chans != 1 or path.suffix.lower() != ".wav":
                target = (save_folder / "converted" / f"{k}_{base.name}" / rel).with_suffix(".wav").resolve()
                if rate != sample_rate:
                    wav = torch.from_numpy(resample_array(wav.numpy(), rate, sample_rate).astype(np.float32))
                peak = float(wav.abs().max())
                if not target.exists():  # an earlier run's copy of the same source
                    write_audio(target, wav / peak * 0.99 if peak > 0.99 else wav, sample_rate)
                n = audio_info(target)[0]
            else:
                n = len(wav)
            rows.append((uid, f"{n / sample_rate:.5f}", str(target), "wav", ""))
    write_csv(csv_file, HEADER, rows)
    report_skipped(save_folder, skipped, name=f"skipped_{csv_file.stem}.txt")
    save_options(csv_file.parent, opts_name, options)
    return csv_file


def prepare_rir_csv(rir_folder, csv_file, save_folder=None, sample_rate: int = 16000) -> Path:
    """RIR CSV for ``AddReverb``: 16 kHz mono (channel 0) copies where needed.

    Example
    -------
    >>> import soundfile as sf
    >>> d = getfixture("tmp_path"); (d / "r").mkdir()
    >>> h = np.zeros((4410, 2)); h[10] = 1.0
    >>> sf.write(d / "r" / "room.wav", h, 44100)
    >>> prepare_rir_csv(d / "r", d / "o" / "rirs.csv").read_text().splitlines()[1].split(",")[:2]
    ['room', '0.10000']
    """
    return prepare_noise_csv(rir_folder, csv_file, save_folder, sample_rate, channel="first")


def prepare_musan(musan_folder, save_folder, sample_rate: int = 16000) -> Dict[str, Path]:
    """``noise.csv``, ``music.csv``, ``speech.csv`` from a MUSAN-style tree.

    Arguments
    ---------
    musan_folder : path
        Holds ``noise/``, ``music/``, ``speech/`` (missing ones are skipped with a warning).
    save_folder : path
        Output folder.
    sample_rate : int
        Rate of the listed files.

    Returns
    -------
    dict
        Type -> CSV path, for the types found.
    """
    musan_folder = Path(musan_folder)
    if not musan_folder.is_dir():
        raise FileNotFoundError(f"MUSAN folder not found: {musan_folder}")
    out = {}
    for kind in ("noise", "music", "speech"):
        sub = musan_folder / kind
        if not sub.is_dir():
            logger.warning("No %s/ folder in %s", kind, musan_folder)
            continue
        out[kind] = prepare_noise_csv(sub, Path(save_folder) / f"{kind}.csv", save_folder, sample_rate)
    if not out:
        raise FileNotFoundError(f"{musan_folder} has none of noise/, music/, speech/")
    return out
