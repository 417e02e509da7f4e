"""Real-speech corpus for the DynCP enhancer: speaker-disjoint splits, held-apart noises and rooms.

:func:`prepare_real_speech` reads the real recordings of a development folder
laid out like ``../shared/data`` (see its README) and writes, into
``save_folder`` only (the sources are never written):

* ``clean/<corpus>/<utt>.wav``: 16 kHz mono copies of every utterance, and
  ``labels/<utt>.npz`` (``vad``, ``f0`` on the 256-sample STFT grid): VAD from
  :func:`~speechbrain_dyncp.data.labels.energy_vad` with a hangover (phone
  timings where a ``*_phone.lab`` exists), F0 pseudo-labels from YIN
  (:func:`~speechbrain_dyncp.data.labels.autocorr_f0`) on the clean signal, the
  laryngograph reference for the FDA speaker;
* ``noise_{train,valid,test}.csv`` + ``noise/<split>/*.wav``: every real noise
  recording cut in time (first 70 % train, next 10 % valid, last 20 % test), so
  no noise sample of the test split is ever heard in training; each row carries
  the recording's class mapped to :data:`NOISE_VOCAB`;
* ``rir_{train,valid,test}.csv`` + ``rir/<split>/*.wav``: whole measured rooms
  per split (:data:`ROOM_SPLIT`), channel 0;
* ``train.csv``: clean utterances of the training speakers (``noisy_wav`` =
  ``clean_wav``): the recipe mixes them on the fly (dynamic mixing);
* ``valid.csv``, ``test.csv``: fixed, seeded mixtures of the held-apart speakers
  (``mixtures.py``): each utterance once dry and once in a held-apart room, at
  SNRs cycled over :data:`CONDITIONS` (``clean`` = no noise), with 0.3-1 s
  noise-only lead-in and tail and a random level.

Speakers are split per corpus and stratified by gender and child/adult, so the
splits are speaker-disjoint by construction (tested). FSDD (8 kHz digits) only
trains; CMU ARCTIC (native English) and FDA (laryngograph F0; research use
only) only test. Files that cannot be read are listed in ``skipped.txt`` and
left out; the run goes on.

Authors
 * speechbrain-dyncp contributors
"""

import csv
import logging
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import soundfile as sf

from speechbrain_dyncp.data.audio import AudioError, read_audio, resample_array, write_audio
from speechbrain_dyncp.data.labels import autocorr_f0, fda_f0, hts_vad, n_frames, speech_vad
from speechbrain_dyncp.data.real_mixing import write_fixed_mixtures
from speechbrain_dyncp.data.manifest import (
    already_done,
    check_not_inside,
    read_csv,
    report_skipped,
    save_options,
    write_csv,
)

logger = logging.getLogger(__name__)
SR, HOP = 16000, 256
OPTS_FILE = "real_speech_opts.json"

# Fine noise classes of the development folder -> a small real-world vocabulary.
NOISE_VOCAB = {
    "cafe_babble": "babble_crowd", "crowd_cheering": "babble_crowd", "applause_crowd": "babble_crowd",
    "street_traffic": "traffic_vehicle", "train_passing": "traffic_vehicle", "car_engine": "traffic_vehicle",
    "kitchen_dishes": "household_office", "keyboard_typing_office": "household_office",
    "cat_meowing_domestic": "household_office", "snoring": "household_office",
    "fridge_hum": "machine_hum", "exercise_bike_machine": "machine_hum",
    "running_tap_water": "water_nature", "rain": "water_nature", "birds_outdoor": "water_nature",
    "thunder": "water_nature",
}
NOISE_SPLIT = {"train": (0.0, 0.7), "valid": (0.7, 0.8), "test": (0.8, 1.0)}
ROOM_SPLIT = {
    "valid": ("openair_st_margarets_church_york",),
    "test": ("openair_large_church", "openair_ir_arthur_s1r4_ch1"),
}  # every other room trains
SPLIT_FRACTIONS = {"valid": 0.06, "test": 0.10}
TRAIN_ONLY, TEST_ONLY = ("fsdd",), ("cmu_arctic", "fda")
# Held-out utterances kept per speaker (one-second words would otherwise swamp the
# sentences, and the FDA corpus is one speaker).
HELDOUT_CAP = {"sc": 2, "fda": 12}
HEADER = ["ID", "duration", "noisy_wav", "clean_wav", "spk_id", "noise", "snr", "labels",
          "corpus", "gender", "age", "condition", "room", "fine_noise"]


def noise_class(fine: str) -> str:
    """Real-world class of a fine noise label (music of any kind is ``music``).

    Example
    -------
    >>> noise_class("cafe_babble"), noise_class("music_piano"), noise_class("hair_dryer")
    ('babble_crowd', 'music', 'other')
    """
    if fine.startswith("music"):
        return "music"
    return NOISE_VOCAB.get(fine, "other")


def find_utterances(shared: Path) -> List[dict]:
    """Every utterance found under ``shared``: ``{id, path, corpus, spk, gender, age, f0ref, phones}``."""
    utts = []

    def add(corpus, uid, path, spk, gender="", age="", **extra):
        utts.append({"id": f"{corpus}_{uid}", "path": Path(path), "corpus": corpus, "spk": f"{corpus}_{spk}",
                     "gender": gender, "age": age, **extra})

    so = shared / "speechocean762"
    if (so / "utt2spk.csv").exists():
        for r in read_csv(so / "utt2spk.csv"):
            add("so762", Path(r["path"]).stem, so / r["path"], r["speaker"], r["gender"], r["age"])
    for name, spk_col in (("speech_commands_more", "speaker"), ("speech_commands_subset", "speaker_hash")):
        folder = shared / name
        if (folder / "utt2spk.csv").exists():
            for r in read_csv(folder / "utt2spk.csv"):
                add("sc", Path(r["path"]).stem, folder / r["path"], r[spk_col])
    fsdd = shared / "fsdd"
    if (fsdd / "utt2spk.csv").exists():
        genders = {r["speaker"]: r["gender"][:1] for r in read_csv(fsdd / "speakers.csv")}
        for r in read_csv(fsdd / "utt2spk.csv"):
            add("fsdd", Path(r["path"]).stem, fsdd / r["path"], r["speaker"], genders.get(r["speaker"], ""))
    arctic = shared / "cmu_arctic"
    if (arctic / "files.csv").exists():
        for r in read_csv(arctic / "files.csv"):
            wav = arctic / r["file"]
            lab = wav.with_name(wav.stem + "_phone.lab")
            add("cmu_arctic", wav.stem, wav, r["speaker"], phones=lab if lab.exists() else None)
    for wav in sorted((shared / "fda_pitch_rl").glob("rl*.wav")):
        add("fda", wav.stem, wav, "rl", "m", f0ref=wav.with_suffix(".f0ref"))
    return utts


def split_speakers(utts: List[dict], seed: int = 0) -> Dict[str, str]:
    """Speaker -> split, per corpus, stratified by gender and child (< 13 years) / adult.

    Example
    -------
    >>> utts = [{"corpus": "c", "spk": f"s{i}", "gender": "fm"[i % 2], "age": ""} for i in range(40)]
    >>> split = split_speakers(utts)
    >>> sorted(set(split.values())), sum(v == "test" for v in split.values())
    (['test', 'train', 'valid'], 4)
    """
    rng = np.random.default_rng(seed)
    groups: Dict[tuple, list] = {}
    for u in utts:
        child = u["age"].isdigit() and int(u["age"]) < 13
        groups.setdefault((u["corpus"], u["gender"], child), set()).add(u["spk"])
    split = {}
    for (corpus, _, _), spks in sorted(groups.items()):
        spks = sorted(spks)
        rng.shuffle(spks)
        if corpus in TRAIN_ONLY or corpus in TEST_ONLY:
            split.update({s: "train" if corpus in TRAIN_ONLY else "test" for s in spks})
            continue
        n_test = int(round(SPLIT_FRACTIONS["test"] * len(spks)))
        n_valid = int(round(SPLIT_FRACTIONS["valid"] * len(spks)))
        for i, s in enumerate(spks):
            split[s] = "test" if i < n_test else "valid" if i < n_test + n_valid else "train"
    return split


def cap_per_speaker(rows: List[list]) -> List[list]:
    """The first :data:`HELDOUT_CAP` rows of each speaker of a capped corpus (manifest rows).

    Example
    -------
    >>> rows = [[f"u{i}", "", "", "", "sc_a", "", "", "", "sc"] for i in range(5)]
    >>> [r[0] for r in cap_per_speaker(rows)]
    ['u0', 'u1']
    """
    seen: Dict[str, int] = {}
    kept = []
    for row in rows:
        seen[row[4]] = seen.get(row[4], 0) + 1
        if seen[row[4]] <= HELDOUT_CAP.get(row[8], len(rows)):
            kept.append(row)
    return kept


def _clean_copy(utt: dict, out: Path, skipped: list) -> Optional[tuple]:
    """16 kHz copy + label file of one utterance: (wav path, label path, n samples), or None."""
    wav_out = out / "clean" / utt["corpus"] / f"{utt['id']}.wav"
    lab_out = out / "labels" / f"{utt['id']}.npz"
    try:
        wav = read_audio(utt["path"], SR, allow_silent=False).double().numpy()
    except (AudioError, OSError, RuntimeError) as err:
        skipped.append((str(utt["path"]), str(err)))
        return None
    if not wav_out.exists():
        write_audio(wav_out, wav, SR, overwrite=True)
    if not lab_out.exists():
        n = n_frames(len(wav))
        vad = hts_vad(utt["phones"], n) if utt.get("phones") else speech_vad(wav)
        f0 = fda_f0(utt["f0ref"], n) if utt.get("f0ref") else autocorr_f0(wav, SR) * vad
        lab_out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(lab_out, vad=vad.astype(np.uint8), f0=np.asarray(f0, np.float32), hop_length=HOP,
                 sample_rate=SR, noise="none", snr=np.inf)
    return wav_out, lab_out, len(wav)


def prepare_noises_rirs(shared: Path, out: Path, skipped: list) -> Dict[str, Path]:
    """Noise segments and rooms per split, with SpeechBrain ``ID,duration,wav,...`` CSVs."""
    csvs = {}
    noise_rows = {s: [] for s in NOISE_SPLIT}
    for folder in ("noise", "noise_more"):
        if not (shared / folder / "labels.csv").exists():
            continue
        for r in read_csv(shared / folder / "labels.csv"):
            try:
                wav = read_audio(shared / folder / r["path"], SR, allow_silent=False)
            except (AudioError, OSError, RuntimeError) as err:
                skipped.append((r["path"], str(err)))
                continue
            for split, (a, b) in NOISE_SPLIT.items():
                seg = wav[int(a * len(wav)) : int(b * len(wav))]
                name = f"{Path(r['path']).stem}_{split}"
                path = write_audio(out / "noise" / split / f"{name}.wav", seg, SR, overwrite=True)
                noise_rows[split].append([name, f"{len(seg) / SR:.3f}", str(path), "wav", "",
                                          noise_class(r["class"]), r["class"]])
    for split, rows in noise_rows.items():
        csvs[f"noise_{split}"] = out / f"noise_{split}.csv"
        write_csv(csvs[f"noise_{split}"], ["ID", "duration", "wav", "wav_format", "wav_opts", "noise_class",
                                           "fine_class"], rows)
    # rooms: not noise.prepare_rir_csv (whole folders listed as they are): split by ROOM_SPLIT, first 2 s, peak 0.99
    rir_rows = {s: [] for s in NOISE_SPLIT}
    rooms = sorted((shared / "rirs").glob("*.wav")) + sorted((shared / "rirs_more").glob("*.flac"))
    for path in rooms:
        split = next((s for s, names in ROOM_SPLIT.items() if path.stem in names), "train")
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # channel 0, not the mean
        tmp = out / "rir" / split / f"{path.stem}.wav"
        rir = resample_array(data[: int(2.0 * rate), 0], rate, SR)
        rir = rir / max(np.abs(rir).max(), 1e-8)
        write_audio(tmp, rir * 0.99, SR, overwrite=True)
        rir_rows[split].append([path.stem, f"{len(rir) / SR:.3f}", str(tmp), "wav", ""])
    for split, rows in rir_rows.items():
        csvs[f"rir_{split}"] = out / f"rir_{split}.csv"
        write_csv(csvs[f"rir_{split}"], ["ID", "duration", "wav", "wav_format", "wav_opts"], rows)
    return csvs


def prepare_fit_mixtures(save_folder, n_utterances: int = 400, seed: int = 0) -> Path:
    """``fit.csv``: fixed mixtures of ``n_utterances`` training utterances with training noises and rooms.

    The probes are fitted on these (the training manifest itself holds clean
    speech only, mixed on the fly); they never touch a held-out speaker, noise
    segment or room. Written once into ``save_folder`` (after :func:`prepare_real_speech`).
    """
    out = Path(save_folder).resolve()
    fit_csv = out / f"fit{n_utterances}_seed{seed}.csv"
    if fit_csv.exists():
        return fit_csv
    with open(out / "train.csv", newline="", encoding="utf-8") as f:
        rows = [list(r.values()) for r in csv.DictReader(f)]
    rng = np.random.default_rng(seed)
    chosen = [rows[i] for i in sorted(rng.choice(len(rows), min(n_utterances, len(rows)), replace=False))]
    # one mixture per utterance: the first half dry, the second half in a training room
    half = len(chosen) // 2
    mixed = []
    for part, in_room in ((chosen[:half], (False,)), (chosen[half:], (True,))):
        mixed += write_fixed_mixtures(part, out / "noise_train.csv", out / "rir_train.csv", out / "mix" / "fit",
                                      seed=seed + 3 + len(mixed), rooms=in_room)
    write_csv(fit_csv, HEADER, mixed)
    return fit_csv


def prepare_real_speech(shared_data, save_folder, seed: int = 0, skip_prep: bool = False) -> Dict[str, Path]:
    """Write the real-speech corpus (see the module doc) into ``save_folder``.

    Arguments
    ---------
    shared_data : str or path-like
        Folder laid out like ``../shared/data`` (only read).
    save_folder : str or path-like
        Output folder; must not lie inside ``shared_data``.
    seed : int
        Seed of the speaker split and of the fixed valid/test mixtures.
    skip_prep : bool
        Only return the output paths.

    Returns
    -------
    dict
        ``train``, ``valid``, ``test`` manifests, ``noise_<split>``, ``rir_<split>`` CSVs.
    """
    shared, out = Path(shared_data), Path(save_folder).resolve()  # manifests hold absolute paths
    outputs = {s: out / f"{s}.csv" for s in ("train", "valid", "test")}
    outputs.update({f"{k}_{s}": out / f"{k}_{s}.csv" for k in ("noise", "rir") for s in NOISE_SPLIT})
    if skip_prep:
        return outputs
    if not shared.is_dir():
        raise FileNotFoundError(f"Real speech folder not found: {shared}")
    check_not_inside(out, [shared])
    # version 3: the fixed mixtures are again those of version 2 as first written (session 4); a corpus
    # written by the code of sessions 8-12 (noise-diversity draws taken even when off) is rebuilt
    options = {"shared_data": str(shared.resolve()), "seed": seed, "version": 3}
    if already_done(out, OPTS_FILE, options, outputs.values()):
        logger.info("Real-speech corpus in %s is up to date; skipping preparation", out)
        return outputs
    utts = find_utterances(shared)
    if not utts:
        raise FileNotFoundError(f"No speech recordings found under {shared}")
    split = split_speakers(utts, seed)
    skipped: list = []
    outputs.update(prepare_noises_rirs(shared, out, skipped))
    rows = {s: [] for s in ("train", "valid", "test")}
    for utt in utts:
        copy = _clean_copy(utt, out, skipped)
        if copy is None:
            continue
        wav, lab, n = copy
        rows[split[utt["spk"]]].append([utt["id"], f"{n / SR:.3f}", str(wav), str(wav), utt["spk"], "none", "inf",
                                        str(lab), utt["corpus"], utt["gender"], utt["age"], "clean", "", ""])
    write_csv(outputs["train"], HEADER, rows["train"])
    for name in ("valid", "test"):
        rows[name] = cap_per_speaker(rows[name])
        mixed = write_fixed_mixtures(rows[name], outputs[f"noise_{name}"], outputs[f"rir_{name}"],
                                     out / "mix" / name, seed=seed + (1 if name == "valid" else 2))
        write_csv(outputs[name], HEADER, mixed)
    report_skipped(out, skipped)
    save_options(out, OPTS_FILE, options)
    logger.info("Real speech: %s", {k: len(v) for k, v in rows.items()})
    return outputs
