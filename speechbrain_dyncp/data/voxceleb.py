"""VoxCeleb manifests in SpeechBrain's CSV format (own implementation).

CSV columns (every split): ``ID,duration,wav,start,stop,spk_id``.

* train/dev rows are ``seg_dur`` chunks: ``ID = <spk>--<session>--<utt>_<t0>_<t1>``
  (t0/t1 in seconds, as SpeechBrain writes them), ``start``/``stop`` in
  samples, ``duration`` = the whole file's duration in seconds. Chunks whose
  mean absolute amplitude is below ``amp_th`` are dropped. Unlike SpeechBrain,
  a file shorter than ``seg_dur`` is not dropped: it gets one whole-file row
  (``start=0``, ``stop=len``), so short real clips still train (recipes that
  crop fixed-length windows must pad or skip them).
* enrol/test rows are whole files named in the trial list:
  ``ID = <spk>/<session>/<utt>`` (relative path without extension, the key
  scoring scripts build from trial lines).
* ``start``/``stop`` count samples *at the file's own rate* (16 kHz for
  VoxCeleb). Preparation only records durations; the loaders
  (:func:`speechbrain_dyncp.data.audio.read_audio`) read that range, downmix to
  mono and resample to 16 kHz. A file at another rate is logged (or refused
  with ``on_rate_mismatch="error"``, skipped with ``"skip"``).

Speakers of the trial list (enrol and test side) never appear in train/dev.
The dev split is speaker-disjoint by default (``split_speaker=True``): dev
speakers are unseen by a speaker classifier, so validate such recipes by EER
or by a closed-set split (``split_speaker=False``, 90/10 by file).

Bad input: a missing data folder raises ``FileNotFoundError``; a trial line
naming an unknown file raises ``ValueError`` with the line number; an
unreadable or empty training file is skipped with a warning and listed in
``<save_folder>/skipped.txt``; an unreadable enrol/test file raises (the trial
list could not be scored). Nothing is ever written into the data folders.

Authors
 * speechbrain-dyncp contributors
"""

import logging
import random
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from speechbrain_dyncp.data.audio import AudioError, audio_info, read_audio
from speechbrain_dyncp.data.manifest import already_done, check_not_inside, report_skipped, save_options, write_csv

logger = logging.getLogger(__name__)

HEADER = ["ID", "duration", "wav", "start", "stop", "spk_id"]
OPTS_FILE = "opt_prepare_voxceleb.json"


def _wav_root(folder: Path) -> Path:
    return folder / "wav" if (folder / "wav").is_dir() else folder


def index_voxceleb(folders: Sequence[Path]) -> Dict[str, Path]:
    """Map ``<spk>/<session>/<utt>.wav`` to the file, over all data folders."""
    index: Dict[str, Path] = {}
    for folder in folders:
        root = _wav_root(folder)
        for path in sorted(root.glob("*/*/*.wav")):
            rel = path.relative_to(root).as_posix()
            if rel in index:
                logger.warning("%s appears in several data folders; using %s", rel, index[rel])
                continue
            index[rel] = path.resolve()
    return index


def read_trials(path: Path, index: Dict[str, Path]) -> List[tuple]:
    """Parse ``<0|1> <enrol> <test>`` lines, checking every file exists."""
    trials = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or parts[0] not in ("0", "1"):
            raise ValueError(f"{path}:{lineno}: expected '<0|1> <enrol.wav> <test.wav>', got {line!r}")
        for rel in parts[1:]:
            if rel not in index:
                raise ValueError(f"{path}:{lineno}: unknown file {rel!r} (not found under the data folders)")
        trials.append((int(parts[0]), parts[1], parts[2]))
    return trials


def _check_rate(path: Path, sample_rate: int, on_rate_mismatch: str) -> None:
    frames, rate, _ = audio_info(path)
    if frames == 0:
        raise AudioError(f"Audio file {path} is empty")
    if rate != sample_rate:
        if on_rate_mismatch == "error":
            raise ValueError(f"{path} is at {rate} Hz, expected {sample_rate} Hz "
                             "(on_rate_mismatch='resample' accepts it; loaders resample)")
        if on_rate_mismatch == "skip":
            raise AudioError(f"{path} is at {rate} Hz, expected {sample_rate} Hz (on_rate_mismatch='skip')")
        logger.warning("%s is at %d Hz, not %d Hz: rows keep file-rate samples, loaders resample",
                       path, rate, sample_rate)


def _chunk_rows(path: Path, rel: str, seg_dur: float, amp_th: float, random_segment: bool):
    wav = read_audio(path, sample_rate=None)  # file rate; mono
    rate = audio_info(path)[1]
    n = len(wav)
    dur = n / rate
    spk, sess, utt = rel[:-4].split("/")
    seg = int(round(seg_dur * rate))
    if random_segment or n < seg:
        spans = [(0, n)]
    else:
        spans = [(i * seg, (i + 1) * seg) for i in range(n // seg)]
    rows = []
    for a, b in spans:
        if float(wav[a:b].abs().mean()) < amp_th:
            continue
        cid = f"{spk}--{sess}--{utt}_{round(a / rate, 3)}_{round(b / rate, 3)}"
        rows.append((cid, f"{dur:.5f}", str(path), a, b, spk))
    return rows


def _split(files: List[str], ratio, split_speaker: bool, seed: int):
    rng = random.Random(seed)
    frac = ratio[1] / float(sum(ratio))
    if split_speaker:
        speakers = sorted({f.split("/")[0] for f in files})
        rng.shuffle(speakers)
        n_dev = min(max(1, round(frac * len(speakers))), len(speakers) - 1) if frac > 0 and len(speakers) > 1 else 0
        dev_spk = set(speakers[:n_dev])
        return [f for f in files if f.split("/")[0] not in dev_spk], [f for f in files if f.split("/")[0] in dev_spk]
    shuffled = list(files)
    rng.shuffle(shuffled)
    n_dev = round(frac * len(shuffled))
    dev = set(shuffled[:n_dev])
    return [f for f in files if f not in dev], [f for f in files if f in dev]


def prepare_voxceleb(
    data_folder,
    save_folder,
    verification_pairs_file: Optional[str] = None,
    splits: Sequence[str] = ("train", "dev", "test"),
    split_ratio: Sequence[int] = (90, 10),
    seg_dur: float = 3.0,
    amp_th: float = 5e-4,
    split_speaker: bool = True,
    random_segment: bool = False,
    skip_prep: bool = False,
    on_rate_mismatch: str = "resample",
    sample_rate: int = 16000,
    seed: int = 1234,
) -> Dict[str, Path]:
    """Write ``train.csv``, ``dev.csv``, ``enrol.csv``, ``test.csv`` (see the module doc).

    Arguments
    ---------
    data_folder : str or path-like
        VoxCeleb root(s) holding ``wav/<spk>/<session>/<utt>.wav``;
        comma-separated for several (e.g. Vox1 + Vox2).
    save_folder : str or path-like
        Where the CSVs go (must not be inside a data folder).
    verification_pairs_file : str, optional
        Trial list; default ``<first data folder>/meta/veri_test2.txt``.
    splits : sequence of str
        Any of "train", "dev", "test".
    split_ratio : (int, int)
        Train/dev proportions (of speakers or of files).
    seg_dur : float
        Chunk length in seconds.
    amp_th : float
        Minimum mean absolute amplitude of a kept chunk.
    split_speaker : bool
        Speaker-disjoint dev split (default) or split by file.
    random_segment : bool
        One whole-file row per file instead of chunks.
    skip_prep : bool
        Do nothing.
    on_rate_mismatch : {"resample", "error", "skip"}
        Files not at ``sample_rate``: log and keep, raise, or skip (trial
        files are never skipped: "skip" keeps them with a warning).
    sample_rate : int
        Expected rate.
    seed : int
        Seed of the train/dev split.

    Returns
    -------
    dict
        ``train``, ``dev``, ``enrol``, ``test`` (those of ``splits``) -> CSV path.

    Example
    -------
    >>> import numpy as np, soundfile as sf
    >>> root = getfixture("tmp_path") / "vox"
    >>> for rel, sec in [("id1/v1/00001", 7.0), ("id1/v1/00002", 2.0), ("id2/v1/00001", 3.0), ("id3/v2/00001", 3.0)]:
    ...     (root / "wav" / rel).parent.mkdir(parents=True, exist_ok=True)
    ...     sf.write(root / "wav" / f"{rel}.wav", 0.1 * np.random.randn(int(sec * 16000)), 16000)
    >>> (root / "trials.txt").write_text("0 id2/v1/00001.wav id3/v2/00001.wav\\n") and None
    >>> out = prepare_voxceleb(root, getfixture("tmp_path") / "csv", root / "trials.txt", splits=["train", "test"])
    >>> print(out["train"].read_text())
    ID,duration,wav,start,stop,spk_id
    id1--v1--00001_0.0_3.0,7.00000,.../id1/v1/00001.wav,0,48000,id1
    id1--v1--00001_3.0_6.0,7.00000,.../id1/v1/00001.wav,48000,96000,id1
    id1--v1--00002_0.0_2.0,2.00000,.../id1/v1/00002.wav,0,32000,id1
    <BLANKLINE>
    """
    if on_rate_mismatch not in ("resample", "error", "skip"):
        raise ValueError(f"on_rate_mismatch must be 'resample', 'error' or 'skip', got {on_rate_mismatch!r}")
    save_folder = Path(save_folder)
    names = {"train": ["train"], "dev": ["dev"], "test": ["enrol", "test"]}
    unknown = set(splits) - set(names)
    if unknown:
        raise ValueError(f"Unknown split(s) {sorted(unknown)}; choose from {sorted(names)}")
    outputs = {n: save_folder / f"{n}.csv" for s in splits for n in names[s]}
    if skip_prep:
        return outputs
    folders = [Path(p.strip()) for p in str(data_folder).split(",") if p.strip()]
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"VoxCeleb data folder not found: {folder}")
    check_not_inside(save_folder, folders)
    if verification_pairs_file is None and (folders[0] / "meta" / "veri_test2.txt").exists():
        verification_pairs_file = folders[0] / "meta" / "veri_test2.txt"
    if verification_pairs_file is None and "test" in splits:
        raise FileNotFoundError(
            f"No trial list: pass verification_pairs_file (none at {folders[0]}/meta/veri_test2.txt)")
    trial_path = str(Path(verification_pairs_file).resolve()) if verification_pairs_file else None
    options = dict(data_folder=[str(f.resolve()) for f in folders], splits=sorted(splits),
                   verification_pairs_file=trial_path,
                   split_ratio=list(split_ratio), seg_dur=seg_dur, amp_th=amp_th, split_speaker=split_speaker,
                   random_segment=random_segment, on_rate_mismatch=on_rate_mismatch,
                   sample_rate=sample_rate, seed=seed)
    if already_done(save_folder, OPTS_FILE, options, outputs.values()):
        logger.info("VoxCeleb manifests in %s are up to date; skipping preparation", save_folder)
        return outputs
    save_folder.mkdir(parents=True, exist_ok=True)

    index = index_voxceleb(folders)
    if not index:
        raise FileNotFoundError(f"No <spk>/<session>/<utt>.wav files under {[str(_wav_root(f)) for f in folders]}")
    trials = read_trials(verification_pairs_file, index) if verification_pairs_file else []
    trial_spk = {rel.split("/")[0] for _, a, b in trials for rel in (a, b)}
    pool = [rel for rel in index if rel.split("/")[0] not in trial_spk]
    train, dev = _split(pool, split_ratio, split_speaker, seed)
    skipped = []
    for split, files in (("train", train), ("dev", dev)):
        if split not in splits:
            continue
        rows = []
        for rel in files:
            path = index[rel]
            try:
                _check_rate(path, sample_rate, on_rate_mismatch)
                new = _chunk_rows(path, rel, seg_dur, amp_th, random_segment)
            except AudioError as exc:
                logger.warning("Skipping %s: %s", path, exc)
                skipped.append((path, str(exc)))
                continue
            if not new:
                skipped.append((path, f"every chunk below amp_th={amp_th}"))
            rows += new
        write_csv(outputs[split], HEADER, rows)
    if "test" in splits:
        for side, col in (("enrol", 1), ("test", 2)):
            first_line = {}  # unique files of that column, in trial order
            for lineno, trial in enumerate(trials, 1):
                first_line.setdefault(trial[col], lineno)
            rows = [_whole_file_row(index[rel], rel, sample_rate, on_rate_mismatch, verification_pairs_file, ln)
                    for rel, ln in first_line.items()]
            write_csv(outputs[side], HEADER, rows)
    report_skipped(save_folder, skipped)
    save_options(save_folder, OPTS_FILE, options)
    return outputs


def _whole_file_row(path: Path, rel: str, sample_rate: int, on_rate_mismatch: str, trial_file, lineno: int):
    try:
        _check_rate(path, sample_rate, "resample" if on_rate_mismatch == "skip" else on_rate_mismatch)
        n = len(read_audio(path, sample_rate=None))
        rate = audio_info(path)[1]
    except AudioError as exc:
        raise ValueError(f"{trial_file}:{lineno}: trial file {rel} is unusable ({exc}); "
                         "the trial list cannot be scored without it") from exc
    return (rel[:-4], f"{n / rate:.5f}", str(path), 0, n, rel.split("/")[0])
