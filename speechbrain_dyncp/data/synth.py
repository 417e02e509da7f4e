"""The embedded corpus: a seeded synthetic stand-in for VoxCeleb, VoiceBank+DEMAND,
MUSAN and RIR collections, with exact labels.

``build_corpus(root, preset, seed)`` writes (16 kHz mono 16-bit wav)::

    root/corpus.json                          marker: config, complete flag, sizes
    root/voxceleb/wav/<spk>/<session>/<utt>.wav
    root/voxceleb/meta/veri_test2.txt         "<0|1> <enrol rel path> <test rel path>"
    root/voxceleb/meta/speakers.csv           voice parameters of every speaker
    root/voicebank/{clean,noisy}_{trainset,testset}_wav/<spk>_<nnn>.wav
    root/voicebank/log_{trainset,testset}.txt "<utt> <noise_class> <snr_db>"
    root/voicebank/labels/<utt>.npz           vad, f0 [N], hop_length, sample_rate, noise, snr
    root/musan/{noise/<class>,music/synthetic,speech/synthetic}/*.wav
    root/rirs/*.wav, rirs.csv (SpeechBrain extended CSV), rt60.csv

VoxCeleb: speakers ``id1xxxx``; each session has its own channel (EQ curve,
optional reverberation, faint background noise, level) and a small register
and rate shift, so sessions differ like videos do. The last ``trial_spk``
speakers only appear in the trial list (VoxCeleb1-O style: targets across
sessions, as many random non-targets). VoiceBank: the clean utterance is dry;
noisy = clean + noise at an exact SNR ``10 log10(sum clean^2 / sum noise^2)``
over the whole utterance (noise classes balanced across utterances); both
are scaled together if the mixture would clip. Frame labels: see
:mod:`speechbrain_dyncp.data.speech_synth`.

Idempotent and non-destructive: a finished build (``corpus.json`` with the
same config and ``complete: true``) returns at once; an interrupted one resumes (existing files are
kept, which is safe because every file is a deterministic function of
``(seed, preset, index)``); a folder built with another config raises.

Authors
 * speechbrain-dyncp contributors
"""

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
from scipy import fft as sp_fft

from speechbrain_dyncp.data import noise_synth, speech_synth
from speechbrain_dyncp.data.mixing import mix_at_snr, reverberate
from speechbrain_dyncp.data.corpus_files import make_trials, write_pcm16

logger = logging.getLogger(__name__)

SR = speech_synth.SAMPLE_RATE
VERSION = 2  # 2: small preset with VoiceBank's 28 training speakers and 8 test speakers
PRESETS = {
    # spk = speakers in the training pool, trial_spk = held-out trial speakers.
    "tiny": dict(spk=5, trial_spk=3, sessions=2, utts=3, dur=(2.0, 3.0), vb_spk=4, vb_utts=10,
                 vb_test_spk=2, vb_test_utts=8, vb_dur=(2.0, 3.0), noise_files=2, noise_dur=4.0,
                 talkers=4, talker_dur=8.0, rirs=4),
    "demo": dict(spk=9, trial_spk=3, sessions=2, utts=4, dur=(2.0, 3.5), vb_spk=6, vb_utts=16,
                 vb_test_spk=2, vb_test_utts=12, vb_dur=(2.0, 3.5), noise_files=2, noise_dur=8.0,
                 talkers=6, talker_dur=12.0, rirs=8),
    "small": dict(spk=18, trial_spk=6, sessions=3, utts=4, dur=(2.0, 4.0), vb_spk=28, vb_utts=10,
                  vb_test_spk=8, vb_test_utts=10, vb_dur=(2.0, 4.0), noise_files=3, noise_dur=10.0,
                  talkers=8, talker_dur=15.0, rirs=12),
}


@dataclass
class Corpus:
    """Paths of a built corpus (see the module docstring for the layout)."""

    root: Path
    voxceleb: Path
    voicebank: Path
    musan: Path
    rirs: Path
    noise_classes: List[str] = field(default_factory=lambda: list(noise_synth.NOISE_CLASSES))
    preset: str = "tiny"
    seed: int = 0


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def _session_id(rng: np.random.Generator) -> str:
    chars = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"))
    return "".join(rng.choice(chars, 11))


def _reverb(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """:func:`~speechbrain_dyncp.data.mixing.reverberate` (direct path aligned), at the input's RMS."""
    y = reverberate(torch.from_numpy(x), torch.from_numpy(rir)).numpy()
    return y * np.sqrt(np.mean(x**2) / (np.mean(y**2) + 1e-12))


def _add_at_snr(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``x + noise`` at ``snr_db`` over the whole signal (``mixing.mix_at_snr`` in float64)."""
    return mix_at_snr(torch.from_numpy(np.asarray(x, np.float64)), torch.from_numpy(np.asarray(noise, np.float64)),
                      snr_db).numpy()


def _channel(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A recording channel: smooth random EQ, maybe a room, faint noise, level."""
    m = sp_fft.next_fast_len(len(x), real=True)
    f = sp_fft.rfftfreq(m, 1.0 / SR)
    knots = np.geomspace(100, SR / 2, 8)
    gain_db = np.interp(np.log(np.maximum(f, 100)), np.log(knots), rng.normal(0, 3, 8))
    y = sp_fft.irfft(sp_fft.rfft(x, m) * 10 ** (gain_db / 20), m)[: len(x)]
    if rng.random() < 0.5:
        y = _reverb(y, noise_synth.make_rir(rng.uniform(0.15, 0.5), rng, drr_db=rng.uniform(3, 10)))
    kind = "pink" if rng.random() < 0.5 else "white"
    noise = noise_synth.make_noise(kind, len(y), rng)
    y = _add_at_snr(y, noise, rng.uniform(20, 35))
    return y * 10 ** (rng.uniform(-6, 3) / 20)


def _fit_peak(*xs: np.ndarray, peak: float = 0.95):
    m = max(float(np.max(np.abs(x))) for x in xs)
    scale = peak / m if m > peak else 1.0
    return [x * scale for x in xs]


def _build_voxceleb(root: Path, cfg: dict, seed: int) -> dict:
    wav_dir, meta = root / "wav", root / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    n_spk = cfg["spk"] + cfg["trial_spk"]
    rows, trial_utts = ["spk_id,trial,vtl,f0_mean,f0_range,breathiness,open_quotient,rate"], {}
    n_files, n_samples = 0, 0
    for s in range(n_spk):
        spk = speech_synth.random_speaker(f"id1{s + 1:04d}", _rng(seed, 1, s))
        trial = s >= cfg["spk"]
        rows.append(f"{spk.name},{int(trial)},{spk.vtl:.4f},{spk.f0_mean:.2f},{spk.f0_range:.3f},"
                    f"{spk.breathiness:.3f},{spk.open_quotient:.3f},{spk.rate:.3f}")
        for k in range(cfg["sessions"]):
            srng = _rng(seed, 2, s, k)
            sess = _session_id(srng)
            # register shifts (semitones) per session and per utterance keep F0 alone a weak cue
            f0_shift, rate = srng.normal(0, 1.5), srng.uniform(0.92, 1.08)
            ch_seed = int(srng.integers(2**31))
            for u in range(cfg["utts"]):
                urng = _rng(seed, 3, s, k, u)
                dur, shift = urng.uniform(*cfg["dur"]), f0_shift + urng.normal(0, 1.0)
                wav, _, _ = speech_synth.synthesize(spk, dur, urng, SR, shift, rate)
                wav = _channel(wav, np.random.default_rng([ch_seed, u]))
                rel = f"{spk.name}/{sess}/{u + 1:05d}.wav"
                write_pcm16(wav_dir / rel, _fit_peak(wav)[0])
                n_files, n_samples = n_files + 1, n_samples + len(wav)
                if trial:
                    trial_utts.setdefault(spk.name, []).append((sess, rel))
    (meta / "speakers.csv").write_text("\n".join(rows) + "\n")
    trials = make_trials(trial_utts, _rng(seed, 4))
    (meta / "veri_test2.txt").write_text("".join(f"{lab} {a} {b}\n" for lab, a, b in trials))
    return {"voxceleb_files": n_files, "voxceleb_minutes": round(n_samples / SR / 60, 2), "trials": len(trials)}


def _talker_tracks(cfg: dict, seed: int):
    tracks = []
    for t in range(cfg["talkers"]):
        spk = speech_synth.random_speaker(f"talker{t:02d}", _rng(seed, 5, t))
        rng = _rng(seed, 6, t)
        tracks.append((spk.name, speech_synth.synthesize(spk, cfg["talker_dur"], rng, SR)[0]))
    return tracks


def _build_voicebank(root: Path, cfg: dict, seed: int, talkers) -> dict:
    classes = noise_synth.NOISE_CLASSES
    talker_wavs = [w for _, w in talkers]
    n, n_samples = 0, 0
    for split, n_spk, n_utt, snrs, off in (
        ("trainset", cfg["vb_spk"], cfg["vb_utts"], (0.0, 5.0, 10.0, 15.0), 0),
        ("testset", cfg["vb_test_spk"], cfg["vb_test_utts"], (2.5, 7.5, 12.5, 17.5), 100),
    ):
        log = []
        for s in range(n_spk):
            spk = speech_synth.random_speaker(f"p{201 + off + s}", _rng(seed, 7, off + s))
            for u in range(n_utt):
                urng = _rng(seed, 8, off + s, u)
                utt = f"{spk.name}_{u + 1:03d}"
                clean, vad, f0 = speech_synth.synthesize(spk, urng.uniform(*cfg["vb_dur"]), urng, SR)
                kind = classes[(s * n_utt + u) % len(classes)]
                snr = float(snrs[(s * n_utt + u) // len(classes) % len(snrs)])
                noise = noise_synth.make_noise(kind, len(clean), urng, SR, talkers=talker_wavs)
                clean, noisy = _fit_peak(clean, _add_at_snr(clean, noise, snr))
                write_pcm16(root / f"clean_{split}_wav" / f"{utt}.wav", clean)
                write_pcm16(root / f"noisy_{split}_wav" / f"{utt}.wav", noisy)
                fv, ff = speech_synth.frame_labels(vad, f0)
                lab = root / "labels" / f"{utt}.npz"
                if not lab.exists():
                    lab.parent.mkdir(parents=True, exist_ok=True)
                    np.savez(lab, vad=fv, f0=ff, hop_length=speech_synth.HOP_LENGTH, sample_rate=SR,
                             noise=kind, snr=snr)
                log.append(f"{utt} {kind} {snr:g}")
                n, n_samples = n + 1, n_samples + len(clean)
        (root / f"log_{split}.txt").write_text("\n".join(log) + "\n")
    return {"voicebank_pairs": n, "voicebank_minutes": round(n_samples / SR / 60, 2)}


def _build_musan_rirs(musan: Path, rirs: Path, cfg: dict, seed: int, talkers) -> dict:
    n_noise = int(cfg["noise_dur"] * SR)
    talker_wavs = [w for _, w in talkers]
    for c, kind in enumerate(noise_synth.NOISE_CLASSES):
        sub = musan / ("music/synthetic" if kind == "music" else f"noise/{kind}")
        for k in range(cfg["noise_files"]):
            x = noise_synth.make_noise(kind, n_noise, _rng(seed, 9, c, k), SR, talkers=talker_wavs)
            write_pcm16(sub / f"{kind}-{k + 1:04d}.wav", 0.1 * x)
    for name, wav in talkers:
        write_pcm16(musan / "speech" / "synthetic" / f"{name}.wav", _fit_peak(wav)[0])
    rt60s = np.linspace(0.2, 1.0, cfg["rirs"])
    csv_rows, info = ["ID,duration,wav,wav_format,wav_opts"], ["ID,rt60_s,drr_db"]
    for k, rt60 in enumerate(rt60s):
        rng = _rng(seed, 10, k)
        drr = float(rng.uniform(-3, 8))
        h = noise_synth.make_rir(float(rt60), rng, SR, drr_db=drr)
        path = rirs / f"rir-{k + 1:03d}.wav"
        write_pcm16(path, h)
        csv_rows.append(f"rir-{k + 1:03d},{len(h) / SR:.4f},{path.resolve()},wav,")
        info.append(f"rir-{k + 1:03d},{rt60:.3f},{drr:.2f}")
    (rirs / "rirs.csv").write_text("\n".join(csv_rows) + "\n")
    (rirs / "rt60.csv").write_text("\n".join(info) + "\n")
    return {"rirs": len(rt60s)}


def build_corpus(root, preset: str = "tiny", seed: int = 0, shared_data: Optional[str] = None) -> Corpus:
    """Build (or find) the embedded corpus under ``root``.

    Arguments
    ---------
    root : str or path-like
        Output folder (created).
    preset : {"tiny", "small", "demo"}
        Size: "tiny" for unit tests (seconds), "demo" for ``dyncp demo``,
        "small" for short CPU training runs.
    seed : int
        Everything is a deterministic function of the seed.
    shared_data : str or path-like, optional
        The real development recordings (../shared/data); when given, real
        speech, noises and RIRs are added as 16 kHz mono copies (see
        :mod:`speechbrain_dyncp.data.synth_real`).

    Returns
    -------
    Corpus

    Example
    -------
    >>> c = build_corpus(getfixture("tmp_path") / "c", preset="tiny")
    >>> sorted(p.name for p in c.voicebank.iterdir())[:3]
    ['clean_testset_wav', 'clean_trainset_wav', 'labels']
    >>> build_corpus(c.root, preset="tiny").voxceleb == c.voxceleb  # second call: found, not rebuilt
    True
    """
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    root = Path(root).resolve()
    config = {"version": VERSION, "preset": preset, "seed": int(seed),
              "shared_data": str(Path(shared_data).resolve()) if shared_data else None}
    corpus = Corpus(root, root / "voxceleb", root / "voicebank", root / "musan", root / "rirs",
                    preset=preset, seed=int(seed))
    marker = root / "corpus.json"
    if marker.exists():
        found = json.loads(marker.read_text())
        if found.get("config") != config:
            raise ValueError(f"{root} holds a corpus built with {found.get('config')}, not {config}; "
                             "use another folder (nothing is deleted or overwritten).")
        if found.get("complete"):
            return corpus
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"config": config, "complete": False}))
    t0 = time.perf_counter()
    cfg = PRESETS[preset]
    stats = _build_voxceleb(corpus.voxceleb, cfg, seed)
    talkers = _talker_tracks(cfg, seed)
    stats.update(_build_voicebank(corpus.voicebank, cfg, seed, talkers))
    stats.update(_build_musan_rirs(corpus.musan, corpus.rirs, cfg, seed, talkers))
    if shared_data:
        from speechbrain_dyncp.data.synth_real import add_shared_data  # optional

        stats.update(add_shared_data(corpus, Path(shared_data)))
    stats["build_seconds"] = round(time.perf_counter() - t0, 2)
    marker.write_text(json.dumps({"config": config, "complete": True, "stats": stats}, indent=2))
    logger.info("Built the %s corpus in %s: %s", preset, root, stats)
    return corpus
