"""Optional real recordings added to the embedded corpus (``build_corpus(shared_data=...)``).

From the development folder (../shared/data, see its README), as 16 kHz mono
copies in the corpus layouts (the sources are only read):

* speech: ``speech_commands_subset`` (60 speakers x 8 one-second clips;
  session ``speechcmd``), ``fsdd`` (6 speakers, 8 kHz, upsampled; session =
  repetition ``take<r>``), ``cmu_arctic`` (speakers with a known id) into
  ``voxceleb/wav/<spk>/<session>/<utt>.wav``, with a separate trial list
  ``voxceleb/meta/veri_real.txt`` over the fsdd speakers (targets across
  takes, as many non-targets). These speakers are not in ``veri_test2.txt``,
  so they join the training pool unless ``veri_real.txt`` is the trial list.
* noises: ``noise/`` into ``musan/noise/real/<class>.wav``.
* RIRs: ``rirs/`` (channel 0) into ``rirs/real_<name>.wav``, appended to
  ``rirs.csv``/``rt60.csv`` (RT60 = the README's rough T20-based estimate).

Folders that are absent are skipped. Nothing here is needed by the rest of the package.

Authors
 * speechbrain-dyncp contributors
"""

import csv
import logging
from pathlib import Path

import numpy as np
import soundfile as sf

from speechbrain_dyncp.data.audio import resample_array
from speechbrain_dyncp.data.corpus_files import make_trials, write_pcm16

logger = logging.getLogger(__name__)
SR = 16000


def _copy(src: Path, dst: Path, first_channel: bool = False) -> int:
    """16 kHz mono copy (channel mean, or channel 0 for RIRs); an existing copy is kept."""
    if dst.exists():
        return 1
    data, rate = sf.read(str(src), dtype="float64", always_2d=True)
    wav = data[:, 0] if first_channel else data.mean(axis=1)
    wav = resample_array(wav, rate, SR)  # expected here: no warning per file
    peak = float(np.max(np.abs(wav)))
    write_pcm16(dst, wav * (0.95 / peak) if peak > 0.95 else wav)
    return 1


def _rows(path: Path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _speech(corpus, shared: Path) -> dict:
    wav_dir, n = corpus.voxceleb / "wav", 0
    sc = shared / "speech_commands_subset"
    if (sc / "utt2spk.csv").exists():
        count = {}
        for r in _rows(sc / "utt2spk.csv"):
            spk = f"sc{r['speaker_hash']}"
            count[spk] = count.get(spk, 0) + 1
            n += _copy(sc / r["path"], wav_dir / spk / "speechcmd" / f"{count[spk]:05d}.wav")
    fsdd = shared / "fsdd"
    takes = {}
    if (fsdd / "utt2spk.csv").exists():
        for r in _rows(fsdd / "utt2spk.csv"):
            rel = f"fsdd{r['speaker']}/take{int(r['repetition']):02d}/{int(r['digit']) + 1:05d}.wav"
            n += _copy(fsdd / r["path"], wav_dir / rel)
            takes.setdefault(f"fsdd{r['speaker']}", []).append((r["repetition"], rel))
    arctic = shared / "cmu_arctic"
    if (arctic / "files.csv").exists():
        count = {}
        for r in _rows(arctic / "files.csv"):
            if r["speaker"] == "unknown":
                continue
            spk = f"arctic{r['speaker']}"
            count[spk] = count.get(spk, 0) + 1
            n += _copy(arctic / r["file"], wav_dir / spk / "arctic" / f"{count[spk]:05d}.wav")
    if takes:
        trials = make_trials(takes, np.random.default_rng([corpus.seed, 11]))[:600]
        (corpus.voxceleb / "meta" / "veri_real.txt").write_text("".join(f"{a} {b} {c}\n" for a, b, c in trials))
    return {"real_speech_files": n}


def _noises_rirs(corpus, shared: Path) -> dict:
    n_noise = n_rir = 0
    if (shared / "noise" / "labels.csv").exists():
        for r in _rows(shared / "noise" / "labels.csv"):
            n_noise += _copy(shared / "noise" / r["path"], corpus.musan / "noise" / "real" / f"{r['class']}.wav")
    if (shared / "rirs" / "rirs.csv").exists():
        csv_lines = (corpus.rirs / "rirs.csv").read_text().splitlines()
        info_lines = (corpus.rirs / "rt60.csv").read_text().splitlines()
        for r in _rows(shared / "rirs" / "rirs.csv"):
            uid = f"real_{Path(r['file']).stem}"
            dst = corpus.rirs / f"{uid}.wav"
            _copy(shared / "rirs" / r["file"], dst, first_channel=True)
            dur = sf.info(str(dst)).frames / SR
            if not any(line.startswith(uid + ",") for line in csv_lines):
                csv_lines.append(f"{uid},{dur:.4f},{dst.resolve()},wav,")
                info_lines.append(f"{uid},{float(r['T20x3_s_rough']):.3f},")
            n_rir += 1
        (corpus.rirs / "rirs.csv").write_text("\n".join(csv_lines) + "\n")
        (corpus.rirs / "rt60.csv").write_text("\n".join(info_lines) + "\n")
    return {"real_noises": n_noise, "real_rirs": n_rir}


def add_shared_data(corpus, shared_data: Path) -> dict:

    """Copy the real recordings into the corpus layouts; returns counts."""
    shared = Path(shared_data)
    if not shared.is_dir():
        raise FileNotFoundError(f"shared_data folder not found: {shared}")
    stats = _speech(corpus, shared)
    stats.update(_noises_rirs(corpus, shared))
    return stats
