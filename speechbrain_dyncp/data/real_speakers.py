"""Speaker-verification corpus from the real speech of ``../shared/data``.

:func:`prepare_real_speakers` writes, into ``out`` only (sources are never written):

* ``train/wav/<spk>/<corpus>/<utt>.wav``: 16 kHz copies of every utterance of the
  speakers that :func:`~speechbrain_dyncp.data.real_speech.split_speakers` (seed 0,
  the enhancer corpus' split) puts in ``train``; ``train/meta/none.txt`` is an empty
  trial list, so ``recipes/VoxCeleb/train_speaker.py`` trains on this folder alone;
* ``{dev,test}/wav/<spk>/<corpus>/<utt>.wav``: the ``valid`` (dev) and ``test`` speakers,
  clean, plus ``{dev,test}/wav/<spk>/<corpus>_snr<tag>/<utt>.wav``: the same utterances mixed at
  5 / 0 / -5 dB with noises of the same split only (``noise_valid.csv`` /
  ``noise_test.csv`` of the enhancer corpus: the noise recordings are cut in time,
  so no test noise sample is heard in training);
* ``trials/{dev,test}_{clean,snr5,snr0,snrm5,mixed}.txt``: ``<0|1> <enrol> <test>``
  trial lists, enrol side clean, test side at that SNR (``mixed``: cycled over
  clean / 5 / 0 / -5 dB). ``dev_*`` use the ``valid`` speakers, ``test_*`` the
  ``test`` speakers (recipes get ``--data_folder=<out>/train,<out>/test``: the cohort /
  training pool is then the training speakers only). Trials stay inside one corpus (a cross-corpus impostor is
  told apart by the channel alone) and include same- and cross-gender impostors
  where gender is known (speechocean762); ``trials/info.json`` counts them.

Only speechocean762 (5 read sentences per speaker) and Speech Commands (one-second
words) give trials; FSDD (6 speakers, 8 kHz) only trains; CMU ARCTIC / FDA are left out.
Files are hard links to the enhancer corpus' 16 kHz copies when that folder is
given and on the same file system, else fresh copies.

Authors
 * speechbrain-dyncp contributors
"""

import itertools
import json
import logging
import os
import zlib
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from speechbrain_dyncp.data.audio import AudioError, read_audio, write_audio
from speechbrain_dyncp.data.manifest import check_not_inside, report_skipped
from speechbrain_dyncp.data.real_speech import find_utterances, split_speakers

logger = logging.getLogger(__name__)
SR = 16000
CORPORA = ("so762", "sc", "fsdd")  # corpora used; fsdd trains only
TRIAL_CORPORA = ("so762", "sc")
SNRS = {"snr5": 5.0, "snr0": 0.0, "snrm5": -5.0}
MIXED_CYCLE = ("clean", "snr5", "snr0", "snrm5")
MAX_PER_SPEAKER = {"sc": 8}  # one-second words: enough for targets, not thousands of pairs
MAX_NONTARGET = 4000  # per corpus and list


def _link_or_copy(utt: dict, dest: Path, clean_root: Optional[Path]) -> bool:
    if dest.exists():
        return True
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = clean_root / utt["corpus"] / f"{utt['id']}.wav" if clean_root else None
    if src is not None and src.exists():
        try:
            os.link(src, dest)
            return True
        except OSError:
            pass
    write_audio(dest, read_audio(utt["path"], sample_rate=SR), SR)
    return True


def make_trials(utts: List[dict], rng: np.random.Generator, max_nontarget: int = MAX_NONTARGET) -> List[tuple]:
    """Every target pair and up to ``max_nontarget`` impostor pairs of ``utts`` (one corpus).

    Impostors are drawn half same-gender, half cross-gender where genders are known.
    Returns ``(label, enrol_utt, test_utt)`` tuples of the utterance dicts.

    Example
    -------
    >>> utts = [{"id": f"{s}{i}", "spk": s, "gender": g} for s, g in (("a", "f"), ("b", "f"), ("c", "m"))
    ...         for i in range(2)]
    >>> trials = make_trials(utts, np.random.default_rng(0), max_nontarget=4)
    >>> sum(t[0] for t in trials), sum(1 - t[0] for t in trials)
    (3, 4)
    """
    pairs = list(itertools.combinations(utts, 2))
    targets = [(1, a, b) for a, b in pairs if a["spk"] == b["spk"]]
    non = [(a, b) for a, b in pairs if a["spk"] != b["spk"]]
    same = [p for p in non if p[0]["gender"] and p[0]["gender"] == p[1]["gender"]]
    cross = [p for p in non if p[0]["gender"] and p[1]["gender"] and p[0]["gender"] != p[1]["gender"]]
    other = [p for p in non if not (p[0]["gender"] and p[1]["gender"])]
    chosen = []
    groups = [g for g in (same, cross, other) if g]
    for i, group in enumerate(groups):
        quota = (max_nontarget - len(chosen)) // (len(groups) - i)
        idx = rng.permutation(len(group))[: min(quota, len(group))]
        chosen += [group[j] for j in sorted(idx)]
    return targets + [(0, a, b) for a, b in chosen]


def _rel(utt: dict, session: str = "") -> str:
    return f"{utt['spk']}/{utt['corpus']}{'_' + session if session else ''}/{utt['id']}.wav"


def prepare_real_speakers(shared_data, out, real_speech_folder=None, seed: int = 0,
                          corpora=CORPORA) -> Dict[str, Path]:
    """Write the speaker corpus and trial lists (see the module doc); returns name -> path.

    ``real_speech_folder`` is the enhancer corpus (``prepare_real_speech`` output):
    its ``clean/`` copies are hard-linked and its ``noise_{valid,test}.csv`` mixed in
    (without it the noisy copies are not written). ``corpora`` restricts the corpora used.
    Re-running skips files that exist (resumable).
    """
    from speechbrain_dyncp.data.real_mixing import RealMixer

    shared, out = Path(shared_data), Path(out)
    if not shared.is_dir():
        raise FileNotFoundError(f"Data folder not found: {shared}")
    check_not_inside(out, [shared])
    rs = Path(real_speech_folder) if real_speech_folder else None
    utts = [u for u in find_utterances(shared) if u["corpus"] in corpora]
    split = split_speakers(find_utterances(shared), seed=0)  # the enhancer corpus' split, whatever ``seed``
    rng = np.random.default_rng(seed)
    skipped, lists, info = [], {}, {}
    by_split: Dict[str, List[dict]] = {"train": [], "valid": [], "test": []}
    for u in utts:
        by_split[split[u["spk"]]].append(u)
    for u in by_split["train"]:
        try:
            _link_or_copy(u, out / "train" / "wav" / _rel(u), rs / "clean" if rs else None)
        except AudioError as exc:
            skipped.append((u["path"], str(exc)))
    (out / "train" / "meta").mkdir(parents=True, exist_ok=True)
    (out / "train" / "meta" / "none.txt").write_text("")
    (out / "trials").mkdir(parents=True, exist_ok=True)
    for part, name in (("valid", "dev"), ("test", "test")):
        kept, counts = [], {}
        for u in sorted(by_split[part], key=lambda u: u["id"]):
            if u["corpus"] not in TRIAL_CORPORA:
                continue
            counts[u["spk"]] = counts.get(u["spk"], 0) + 1
            if counts[u["spk"]] <= MAX_PER_SPEAKER.get(u["corpus"], 10 ** 9):
                kept.append(u)
        mixer = RealMixer(rs / f"noise_{part}.csv", None, clean_prob=0.0, pause_range=(0.0, 0.0),
                          level_range=(-26.0, -26.0)) if rs else None
        usable = []
        for u in kept:
            try:
                clean_path = out / name / "wav" / _rel(u)
                _link_or_copy(u, clean_path, rs / "clean" if rs else None)
                wav = read_audio(clean_path, sample_rate=SR)
                for tag, snr in SNRS.items() if mixer else ():
                    dest = out / name / "wav" / _rel(u, tag)
                    if not dest.exists():  # per-file seed: the same mixture whatever was written before
                        rng_u = np.random.default_rng([seed, zlib.crc32(f"{u['id']}/{tag}".encode())])
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        write_audio(dest, mixer(wav, rng=rng_u, snr=snr, reverb=False)["noisy"], SR)
                usable.append(u)
            except AudioError as exc:
                skipped.append((u["path"], str(exc)))
        trials = []
        for corpus in (c for c in TRIAL_CORPORA if c in corpora):
            trials += make_trials([u for u in usable if u["corpus"] == corpus], rng)
        info[name] = {"speakers": len({u["spk"] for u in usable}), "utterances": len(usable),
                      "targets": sum(t[0] for t in trials), "nontargets": sum(1 - t[0] for t in trials),
                      "cross_gender": sum(1 for t in trials if not t[0] and t[1]["gender"] and t[2]["gender"]
                                          and t[1]["gender"] != t[2]["gender"])}
        for tag in ("clean", *SNRS, "mixed") if mixer else ("clean",):
            lines = []
            for i, (lab, a, b) in enumerate(trials):
                t = MIXED_CYCLE[i % len(MIXED_CYCLE)] if tag == "mixed" else tag
                lines.append(f"{lab} {_rel(a)} {_rel(b, '' if t == 'clean' else t)}")
            path = out / "trials" / f"{name}_{tag}.txt"
            path.write_text("\n".join(lines) + "\n")
            lists[f"{name}_{tag}"] = path
    (out / "trials" / "info.json").write_text(json.dumps(info, indent=1))
    report_skipped(out, skipped)
    return lists


def musan_from_real_noises(noise_csv, speech_folder, out, max_speech: int = 300, seed: int = 0) -> Path:
    """A MUSAN-layout folder (``noise/``, ``music/``, ``speech/``) of symlinks to real recordings.

    For :class:`~speechbrain_dyncp.data.lowsnr.MusanMixer` (Grad-W's low-SNR mixtures) on
    real data: every row of ``noise_csv`` (the enhancer corpus' ``noise_train.csv``,
    columns ``ID, wav, noise_class``) goes to ``music/`` when its class is ``music`` and
    to ``noise/`` otherwise (real babble recordings included); ``speech/`` gets up to
    ``max_speech`` wavs drawn (``seed``) from ``speech_folder`` (e.g. the speaker model's
    ``train/wav``: babble of training speakers only). Links are absolute; existing ones
    are kept, so re-running is harmless. Returns ``out``.
    """
    import csv

    out = Path(out)
    with open(noise_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"No noise rows in {noise_csv}")
    links = [(out / ("music" if r.get("noise_class") == "music" else "noise") / f"{r['ID']}.wav", Path(r["wav"]))
             for r in rows]
    speech = sorted(Path(speech_folder).rglob("*.wav"))
    if not speech:
        raise FileNotFoundError(f"No wavs under {speech_folder}")
    pick = np.random.default_rng(seed).permutation(len(speech))[:max_speech]
    links += [(out / "speech" / "_".join(speech[i].relative_to(speech_folder).parts), speech[i]) for i in sorted(pick)]
    for dest, src in links:
        if not src.is_file():
            raise FileNotFoundError(f"{src} (listed for {dest.name}) does not exist")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.is_symlink() and not dest.exists():
            dest.symlink_to(src.resolve())
    for kind in ("noise", "music", "speech"):
        (out / kind).mkdir(parents=True, exist_ok=True)
    return out
