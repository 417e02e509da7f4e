"""VoiceBank+DEMAND manifests (own implementation).

Writes ``train.csv``, ``valid.csv``, ``test.csv`` with columns
``ID,duration,noisy_wav,clean_wav,spk_id,noise,snr,labels``:

* ``ID`` is the file stem (``p232_001``), ``spk_id`` its prefix before ``_``.
* ``duration`` in seconds (rate-independent; the real corpus is 48 kHz and the
  loaders, :func:`speechbrain_dyncp.data.audio.read_audio`, resample to 16 kHz).
* ``noise``/``snr`` come from the log files (``<utt> <noise> <snr>`` lines),
  empty when a log or a line is missing (logged).
* ``labels`` is ``<data_folder>/labels/<ID>.npz`` when it exists (the embedded
  corpus), else empty.

Accepted folder names: the real ones (``clean_trainset_28spk_wav``,
``noisy_trainset_28spk_wav``, ``clean_testset_wav``, ``noisy_testset_wav``,
logs ``log_trainset_28spk.txt``/``log_testset.txt`` at the top level or under
``logfiles/``) and the embedded corpus' (``clean_trainset_wav``, ``log_trainset.txt``).
The valid split holds whole speakers of the training set.

Bad input: a missing folder raises ``FileNotFoundError``; a clean file without
its noisy partner (or the reverse) raises ``ValueError`` naming the file; a
pair whose lengths differ by more than one sample period (at the lower of its
two rates; up to one is rounding), an unreadable or an empty file drops its pair with a
warning and a line in ``<save_folder>/skipped.txt``.

Authors
 * speechbrain-dyncp contributors
"""

import logging
from pathlib import Path
from typing import Dict, Optional, Sequence

from speechbrain_dyncp.data.audio import AudioError, audio_info
from speechbrain_dyncp.data.manifest import already_done, check_not_inside, report_skipped, save_options, write_csv

logger = logging.getLogger(__name__)

HEADER = ["ID", "duration", "noisy_wav", "clean_wav", "spk_id", "noise", "snr", "labels"]
OPTS_FILE = "opt_prepare_voicebank.json"
TRAIN_NAMES = ("trainset_28spk", "trainset_56spk", "trainset")
REAL_VALID_SPEAKERS = ("p226", "p287")


def _find(folder: Path, kind: str, names: Sequence[str]) -> Optional[tuple]:
    for name in names:
        clean, noisy = folder / f"clean_{name}_wav", folder / f"noisy_{name}_wav"
        if clean.is_dir() or noisy.is_dir():
            return name, clean, noisy
    return None


def _read_log(folder: Path, name: str) -> Dict[str, tuple]:
    for cand in (folder / f"log_{name}.txt", folder / "logfiles" / f"log_{name}.txt"):
        if cand.exists():
            out = {}
            for lineno, line in enumerate(cand.read_text().splitlines(), 1):
                parts = line.split()
                if len(parts) < 3:
                    if parts:
                        logger.warning("%s:%d: ignoring malformed log line %r", cand, lineno, line)
                    continue
                out[parts[0]] = (parts[1], parts[2])
            return out
    logger.warning("No log_%s.txt in %s: noise and snr columns left empty", name, folder)
    return {}


def _pairs(clean_dir: Path, noisy_dir: Path):
    for d in (clean_dir, noisy_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"VoiceBank folder not found: {d}")
    clean = {p.stem: p for p in sorted(clean_dir.glob("*.wav"))}
    noisy = {p.stem: p for p in sorted(noisy_dir.glob("*.wav"))}
    for stem in sorted(set(clean) ^ set(noisy)):
        have, lack = (clean[stem], noisy_dir) if stem in clean else (noisy[stem], clean_dir)
        raise ValueError(f"{have} has no partner {stem}.wav in {lack}")
    return [(stem, clean[stem], noisy[stem]) for stem in sorted(clean)]


def _rows(pairs, log, labels_dir: Path, skipped: list):
    rows = []
    for stem, clean, noisy in pairs:
        try:
            nc, rc, _ = audio_info(clean)
            nn, rn, _ = audio_info(noisy)
            for n, p in ((nc, clean), (nn, noisy)):
                if n == 0:
                    raise AudioError(f"Audio file {p} is empty")
        except AudioError as exc:
            logger.warning("Skipping pair %s: %s", stem, exc)
            skipped.append((clean, str(exc)))
            continue
        # up to one sample period (of the lower rate) is resampling rounding, not a bad pair
        if abs(nc * rn - nn * rc) > max(rc, rn):  # |nc/rc - nn/rn| > 1/min(rc, rn), in exact integers
            why = (f"{noisy} ({nn / rn:.5f} s) and its clean partner {clean} ({nc / rc:.5f} s) differ in length "
                   "by more than one sample period")
            logger.warning("Skipping pair %s: %s", stem, why)
            skipped.append((noisy, why))
            continue
        noise, snr = log.get(stem, ("", ""))
        lab = labels_dir / f"{stem}.npz"
        rows.append((stem, f"{nc / rc:.5f}", str(noisy.resolve()), str(clean.resolve()), stem.split("_")[0],
                     noise, snr, str(lab.resolve()) if lab.exists() else ""))
    return rows


def prepare_voicebank(
    data_folder,
    save_folder,
    valid_speakers: Optional[Sequence[str]] = None,
    skip_prep: bool = False,
) -> Dict[str, Path]:
    """Write the VoiceBank+DEMAND CSVs (see the module doc).

    Arguments
    ---------
    data_folder : str or path-like
        Folder holding the clean/noisy train/test folders and logs.
    save_folder : str or path-like
        Where ``train.csv``, ``valid.csv``, ``test.csv`` go (not inside data_folder).
    valid_speakers : sequence of str, optional
        Training speakers moved to ``valid.csv``. Default: SpeechBrain's
        ``p226, p287`` when both exist (the real corpus), else the last
        ``max(1, n_speakers // 8)`` speakers in sorted order.
    skip_prep : bool
        Do nothing.

    Returns
    -------
    dict
        Split name -> CSV path.

    Example
    -------
    >>> import numpy as np, soundfile as sf
    >>> root = getfixture("tmp_path") / "vb"
    >>> for split, utt in [("trainset", "p1_001"), ("trainset", "p2_001"), ("testset", "p9_001")]:
    ...     for kind in ("clean", "noisy"):
    ...         (root / f"{kind}_{split}_wav").mkdir(parents=True, exist_ok=True)
    ...         sf.write(root / f"{kind}_{split}_wav" / f"{utt}.wav", np.zeros(24000), 48000)
    >>> (root / "log_trainset.txt").write_text("p1_001 white 5\\np2_001 hum 0\\n") and None
    >>> out = prepare_voicebank(root, getfixture("tmp_path") / "csv")
    >>> print(out["valid"].read_text())
    ID,duration,noisy_wav,clean_wav,spk_id,noise,snr,labels
    p2_001,0.50000,.../noisy_trainset_wav/p2_001.wav,.../clean_trainset_wav/p2_001.wav,p2,hum,0,
    <BLANKLINE>
    """
    save_folder = Path(save_folder)
    outputs = {s: save_folder / f"{s}.csv" for s in ("train", "valid", "test")}
    if skip_prep:
        return outputs
    folder = Path(data_folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"VoiceBank data folder not found: {folder}")
    check_not_inside(save_folder, [folder])
    train = _find(folder, "train", TRAIN_NAMES)
    test = _find(folder, "test", ("testset",))
    if train is None or test is None:
        raise FileNotFoundError(f"{folder} lacks clean_/noisy_ trainset or testset folders "
                                f"(expected e.g. clean_trainset_28spk_wav, clean_testset_wav)")
    options = {"data_folder": str(folder.resolve()), "valid_speakers": list(valid_speakers) if valid_speakers else None}
    if already_done(save_folder, OPTS_FILE, options, outputs.values()):
        logger.info("VoiceBank manifests in %s are up to date; skipping preparation", save_folder)
        return outputs
    save_folder.mkdir(parents=True, exist_ok=True)

    skipped = []
    labels_dir = folder / "labels"
    train_rows = _rows(_pairs(train[1], train[2]), _read_log(folder, train[0]), labels_dir, skipped)
    test_rows = _rows(_pairs(test[1], test[2]), _read_log(folder, test[0]), labels_dir, skipped)
    speakers = sorted({r[4] for r in train_rows})
    if valid_speakers is None:
        if all(s in speakers for s in REAL_VALID_SPEAKERS):
            valid_speakers = REAL_VALID_SPEAKERS
        else:
            valid_speakers = speakers[len(speakers) - max(1, len(speakers) // 8):] if len(speakers) > 1 else []
    missing = set(valid_speakers) - set(speakers)
    if missing:
        raise ValueError(f"valid_speakers {sorted(missing)} not among the training speakers {speakers}")
    valid_set = set(valid_speakers)
    write_csv(outputs["train"], HEADER, [r for r in train_rows if r[4] not in valid_set])
    write_csv(outputs["valid"], HEADER, [r for r in train_rows if r[4] in valid_set])
    write_csv(outputs["test"], HEADER, test_rows)
    report_skipped(save_folder, skipped)
    save_options(save_folder, OPTS_FILE, options)
    return outputs
