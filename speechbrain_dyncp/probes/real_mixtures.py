"""Noisy mixtures of real recordings with frame labels, for probing on real audio.

Builds, from the development recordings (``shared/data``), speech + real noise
(+ optionally a measured room response) mixtures with the same label files as
the embedded corpus (``labels/<utt>.npz``: ``vad``, ``f0``, ``noise``, ``snr``
on the 256-sample STFT grid), and one manifest ``mixtures.csv`` with columns
``ID,duration,noisy_wav,clean_wav,spk_id,noise,snr,labels,split,f0_source,vad_source``.

Speech: FDA speaker ``rl`` (laryngograph F0), CMU ARCTIC sentences, Speech
Commands speakers (8 one-second words concatenated), FSDD digit strings.
Labels: F0 from the laryngograph for ``rl`` (15 ms grid interpolated onto the
16 ms grid; unvoiced where either neighbour is), otherwise
:func:`speechbrain_dyncp.data.labels.autocorr_f0` on the dry clean signal; VAD
from the HTS phone timings where present, otherwise
:func:`speechbrain_dyncp.data.labels.energy_vad` on the clean signal.
Noise class = the recording's class in ``noise/labels.csv``; train mixtures use
the first 70 % of each noise file and test mixtures the rest, so no noise
sample is shared. The split is speaker-disjoint; ``rl`` is in the test split
by default so that F0 is scored against the laryngograph on an unseen speaker.

Authors
 * speechbrain-dyncp contributors
"""

import csv
from pathlib import Path
from typing import List, Sequence

import numpy as np
import torch

from speechbrain_dyncp.data.audio import read_audio, write_audio
from speechbrain_dyncp.data.labels import autocorr_f0, energy_vad, n_frames
from speechbrain_dyncp.data.mixing import mix_at_snr, reverberate
from speechbrain_dyncp.data.labels import fda_f0, hts_vad

SR, HOP = 16000, 256


def _concat(paths: Sequence[Path], gap_s: float = 0.2) -> torch.Tensor:
    gap = torch.zeros(int(gap_s * SR))
    parts = []
    for p in paths:
        parts += [read_audio(p, SR), gap]
    return torch.cat(parts)


def speech_items(shared: Path) -> List[dict]:
    """``{"id", "spk", "wav", "f0", "vad", ...}`` for every speech unit found under ``shared``."""
    items = []
    fda = shared / "fda_pitch_rl"
    for wav in sorted(fda.glob("rl*.wav")):
        x = read_audio(wav, SR)
        items.append({"id": f"fda_{wav.stem}", "spk": "rl", "wav": x, "f0": fda_f0(wav.with_suffix(".f0ref"), n_frames(len(x))), "f0_source": "laryngograph"})
    arctic = shared / "cmu_arctic"
    if (arctic / "files.csv").exists():
        for row in csv.DictReader(open(arctic / "files.csv")):
            wav = arctic / row["file"]
            x = read_audio(wav, SR)
            item = {"id": f"arctic_{wav.stem}", "spk": f"arctic_{row['speaker']}", "wav": x}
            lab = wav.with_name(wav.stem + "_phone.lab")
            if lab.exists():
                item.update(vad=hts_vad(lab, n_frames(len(x))), vad_source="phone_timings")
            items.append(item)
    sc = shared / "speech_commands_subset"
    if (sc / "utt2spk.csv").exists():
        by_spk = {}
        for row in csv.DictReader(open(sc / "utt2spk.csv")):
            by_spk.setdefault(row["speaker_hash"], []).append(sc / row["path"])
        for spk, paths in sorted(by_spk.items()):
            items.append({"id": f"sc_{spk}", "spk": f"sc_{spk}", "wav": _concat(sorted(paths), 0.1)})
    fsdd = shared / "fsdd"
    if (fsdd / "utt2spk.csv").exists():
        by = {}
        for row in csv.DictReader(open(fsdd / "utt2spk.csv")):
            by.setdefault((row["speaker"], row["repetition"]), []).append(fsdd / row["path"])
        for (spk, rep), paths in sorted(by.items()):
            items.append({"id": f"fsdd_{spk}_{rep}", "spk": f"fsdd_{spk}", "wav": _concat(sorted(paths))})
    if not items:
        raise FileNotFoundError(f"No speech recordings found under {shared}")
    return items


def _noises(shared: Path) -> List[dict]:
    rows = list(csv.DictReader(open(shared / "noise" / "labels.csv")))
    return [{"cls": r["class"], "wav": read_audio(shared / "noise" / r["path"], SR)} for r in rows]


def _rirs(shared: Path) -> List[torch.Tensor]:
    out = []
    for p in sorted((shared / "rirs").glob("*.wav")):
        out.append(read_audio(p, SR)[:SR])  # the first second holds the useful energy
    return out


def build_real_mixtures(
    shared_data,
    out_dir,
    mixtures_per_item: int = 2,
    snrs: Sequence[float] = (0.0, 5.0, 10.0, 15.0),
    reverb_prob: float = 0.0,
    test_fraction: float = 0.3,
    test_speakers: Sequence[str] = ("rl",),
    seed: int = 0,
) -> Path:
    """Write noisy/clean wavs, label npz files and ``mixtures.csv`` into ``out_dir``; returns the csv.

    Existing outputs are kept (the csv is rewritten only if absent).
    """
    shared, out = Path(shared_data), Path(out_dir)
    manifest = out / "mixtures.csv"
    if manifest.exists():
        return manifest
    rng = np.random.default_rng(seed)
    items, noises = speech_items(shared), _noises(shared)
    rirs = _rirs(shared) if reverb_prob > 0 else []
    speakers = sorted({it["spk"] for it in items} - set(test_speakers))
    n_test = int(round(test_fraction * (len(speakers) + len(test_speakers)))) - len(test_speakers)
    test_spk = set(test_speakers) | set(rng.permutation(speakers)[: max(0, n_test)].tolist())
    rows = []
    for it in items:
        split = "test" if it["spk"] in test_spk else "train"
        clean = it["wav"] / it["wav"].abs().max().clamp(min=1e-8) * 0.5
        n = n_frames(len(clean))
        x = clean.double().numpy()
        vad = it.get("vad", energy_vad(x))
        f0 = it.get("f0")
        if f0 is None:
            f0 = (autocorr_f0(x, SR) * vad).astype(np.float32)
        for m in range(mixtures_per_item):
            nz = noises[(rng.integers(len(noises)))]
            w = nz["wav"]
            cut = int(0.7 * len(w))
            pool = w[:cut] if split == "train" else w[cut:]
            reps = int(np.ceil(len(clean) / len(pool))) + 1
            pool = pool.repeat(reps)
            start = int(rng.integers(0, len(pool) - len(clean)))
            noise = pool[start : start + len(clean)]
            snr = float(rng.choice(snrs))
            src = clean
            if rirs and rng.random() < reverb_prob:
                h = rirs[int(rng.integers(len(rirs)))]
                src = reverberate(clean, h)  # aligned to the direct path: labels stay valid
            noisy = mix_at_snr(src, noise, snr)
            noisy = noisy / noisy.abs().max().clamp(min=1.0)  # avoid clipping, keep level otherwise
            uid = f"{it['id']}_m{m}"
            write_audio(out / "noisy" / f"{uid}.wav", noisy, SR, overwrite=True)
            write_audio(out / "clean" / f"{uid}.wav", clean, SR, overwrite=True)
            lab = out / "labels" / f"{uid}.npz"
            lab.parent.mkdir(parents=True, exist_ok=True)
            np.savez(lab, vad=np.asarray(vad, np.uint8)[:n], f0=np.asarray(f0, np.float32)[:n], hop_length=HOP, sample_rate=SR, noise=nz["cls"], snr=snr)
            rows.append({
                "ID": uid, "duration": f"{len(clean) / SR:.3f}", "noisy_wav": str(out / "noisy" / f"{uid}.wav"),
                "clean_wav": str(out / "clean" / f"{uid}.wav"), "spk_id": it["spk"], "noise": nz["cls"], "snr": snr,
                "labels": str(lab), "split": split, "f0_source": it.get("f0_source", "autocorr"),
                "vad_source": it.get("vad_source", "energy"),
            })
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest
