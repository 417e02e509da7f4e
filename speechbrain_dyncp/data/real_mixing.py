"""Mixing real speech with real noise and rooms: dynamic (training) and fixed (valid/test).

One recipe for both, so the training items and the held-out mixtures differ
only in which noise segments and rooms they draw from and in the randomness:

1. a noise-only lead-in and tail (a whole number of hops, so frame labels shift
   exactly) around the utterance;
2. optionally a measured room, aligned to its direct path
   (:func:`~speechbrain_dyncp.data.mixing.reverberate`); the reverberant speech
   is then the target (denoising, not dereverberation);
3. a fresh excerpt of a real noise at an exact SNR measured over the speech
   span only (pauses do not dilute it), or no noise (``clean`` items, so the
   model learns to leave clean speech alone);
4. a random presentation level (speech RMS in dBFS), scaled down where the
   mixture would clip.

Authors
 * speechbrain-dyncp contributors
"""

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from speechbrain_dyncp.data.audio import read_audio, write_audio
from speechbrain_dyncp.data.labels import load_frame_labels, n_frames
from speechbrain_dyncp.data.manifest import read_csv
from speechbrain_dyncp.data.mixing import fit_length, reverberate

SR, HOP = 16000, 256
PEAK = 0.99
# Held-out conditions: SNR in dB ("clean" = speech alone), each dry and reverberant.
CONDITIONS = ("clean", 20.0, 10.0, 5.0, 0.0, -5.0)


class RealMixer:
    """Draws one noisy/clean training pair from a clean utterance (see the module doc).

    Arguments
    ---------
    noise_csv, rir_csv : str or path-like
        ``ID,duration,wav,...`` CSVs (``noise_class`` column optional); noises and
        rooms are read once, at the first call.
    snr_range : (float, float)
        Uniform SNR range in dB.
    clean_prob : float
        Share of items without noise.
    reverb_prob : float
        Share of items in a room.
    pause_range : (float, float)
        Seconds of noise-only lead-in and tail, drawn separately.
    level_range : (float, float)
        Speech RMS in dBFS.
    noise_mix_prob : float
        Share of noisy items whose noise is the sum of two different recordings (the
        second 0-10 dB weaker): noise scenes the recordings do not hold alone.
    noise_eq_prob : float
        Share of noisy items whose noise is coloured by :func:`random_eq` (other
        microphones and rooms than the recording's), before the SNR is set.

    Example
    -------
    >>> mixer = RealMixer(None, None, clean_prob=1.0, pause_range=(0.0, 0.0), level_range=(-20.0, -20.0))
    >>> item = mixer(0.1 * torch.randn(8000), rng=np.random.default_rng(0))
    >>> bool(torch.equal(item["noisy"], item["clean"])), item["snr"], round(20 * math.log10(float(item["clean"].pow(2).mean().sqrt())), 1)
    (True, inf, -20.0)
    """

    def __init__(self, noise_csv, rir_csv, snr_range=(-5.0, 25.0), clean_prob: float = 0.15,
                 reverb_prob: float = 0.25, pause_range=(0.0, 1.0), level_range=(-42.0, -16.0),
                 noise_mix_prob: float = 0.0, noise_eq_prob: float = 0.0):
        self.noise_rows = read_csv(noise_csv) if noise_csv else []
        self.rir_rows = read_csv(rir_csv) if rir_csv else []
        self.snr_range, self.clean_prob, self.reverb_prob = tuple(snr_range), clean_prob, reverb_prob
        self.pause_range, self.level_range = tuple(pause_range), tuple(level_range)
        self.noise_mix_prob, self.noise_eq_prob = noise_mix_prob, noise_eq_prob
        self._noises: Optional[list] = None
        self._rirs: Optional[list] = None
        if clean_prob < 1.0 and not self.noise_rows:
            raise ValueError(f"RealMixer: no noises in {noise_csv!r} but clean_prob={clean_prob} < 1")

    def _load(self):
        if self._noises is None:
            self._noises = [(r.get("noise_class", "noise"), read_audio(r["wav"], SR)) for r in self.noise_rows]
            self._rirs = [read_audio(r["wav"], SR) for r in self.rir_rows]

    def __call__(self, clean: torch.Tensor, vad=None, f0=None, rng: Optional[np.random.Generator] = None,
                 snr=None, reverb: Optional[bool] = None, noise_index: Optional[int] = None,
                 rir_index: Optional[int] = None) -> Dict[str, object]:
        """Mix ``clean`` ``[T]``; ``vad``/``f0`` frame labels follow the pauses.

        ``snr`` (dB, or ``"clean"``), ``reverb``, ``noise_index``, ``rir_index``
        fix a condition (the held-out mixtures); left None they are drawn.
        Returns ``noisy``, ``clean``, ``vad``, ``f0``, ``snr``, ``noise`` (class),
        ``fine_noise``, ``room``, ``lead`` (samples).
        """
        rng = rng if rng is not None else np.random.default_rng()
        self._load()
        lead, tail = (int(rng.uniform(*self.pause_range) * SR) // HOP * HOP for _ in range(2))
        speech = torch.cat([torch.zeros(lead), clean.float(), torch.zeros(tail)])
        span = slice(lead, lead + clean.numel())
        room = ""
        if reverb is None:
            reverb = bool(self._rirs) and rng.random() < self.reverb_prob
        if reverb and self._rirs:
            k = int(rng.integers(len(self._rirs))) if rir_index is None else rir_index
            speech, room = reverberate(speech, self._rirs[k]), self.rir_rows[k]["ID"]
        if snr is None:
            snr = "clean" if rng.random() < self.clean_prob else float(rng.uniform(*self.snr_range))
        noisy, noise_name, noise_id = speech.clone(), "none", ""
        if snr != "clean":
            k = int(rng.integers(len(self._noises))) if noise_index is None else noise_index
            (noise_name, wav), noise_id = self._noises[k], self.noise_rows[k].get("fine_class", "")
            noise = fit_length(wav, speech.numel(), rng).double()
            # each draw only when its option is on: with both at 0 the stream is the one the fixed
            # valid/test mixtures were made with before these options existed (one generator runs through
            # all of them, so one extra draw here shifts every later mixture)
            if self.noise_mix_prob > 0 and noise_index is None and len(self._noises) > 1 \
                    and rng.random() < self.noise_mix_prob:
                other = int(rng.choice([j for j in range(len(self._noises)) if j != k]))
                extra = fit_length(self._noises[other][1], speech.numel(), rng).double()
                # not mix_at_snr: an excerpt may be digital silence, which it refuses (a crash mid-epoch)
                ratio = float(noise.pow(2).mean().sqrt() / extra.pow(2).mean().sqrt().clamp(min=1e-10))
                noise = noise + extra * ratio * 10 ** (-rng.uniform(0.0, 10.0) / 20)
            if self.noise_eq_prob > 0 and noise_index is None and rng.random() < self.noise_eq_prob:
                noise = random_eq(noise, rng)
            e_speech = speech[span].double().pow(2).mean()
            e_noise = noise[span].pow(2).mean().clamp(min=1e-20)
            # not mix_at_snr / torchaudio add_noise: the SNR is over the speech span, the noise covers the pauses too
            noisy = speech + (noise * torch.sqrt(e_speech / (e_noise * 10 ** (float(snr) / 10)))).float()
        rms = float(speech[span].pow(2).mean().sqrt().clamp(min=1e-8))
        gain = 10 ** (rng.uniform(*self.level_range) / 20) / rms
        gain = min(gain, PEAK / max(float(noisy.abs().max()), 1e-8))
        labels = {}
        for name, lab in (("vad", vad), ("f0", f0)):
            if lab is not None:
                lab = torch.as_tensor(lab)
                labels[name] = torch.cat([torch.zeros(lead // HOP, dtype=lab.dtype), lab,
                                          torch.zeros(n_frames(speech.numel()), dtype=lab.dtype)])[
                    : n_frames(speech.numel())]
        return {"noisy": noisy * gain, "clean": speech * gain, "snr": math.inf if snr == "clean" else float(snr),
                "noise": noise_name, "fine_noise": noise_id, "room": room, "lead": lead, **labels}


def random_eq(wav: torch.Tensor, rng: np.random.Generator, n_bands: int = 2, max_gain_db: float = 12.0) -> torch.Tensor:
    """``wav`` through ``n_bands`` peaking filters (torchaudio's biquad) at random centres
    (100 Hz-6 kHz, log-uniform), gains (+-``max_gain_db``) and Q (0.5-2).

    Example
    -------
    >>> x = torch.randn(16000, dtype=torch.float64)
    >>> y = random_eq(x, np.random.default_rng(0))
    >>> y.shape == x.shape and not torch.allclose(x, y)
    True
    """
    import torchaudio

    for _ in range(n_bands):
        centre = float(np.exp(rng.uniform(np.log(100.0), np.log(6000.0))))
        wav = torchaudio.functional.equalizer_biquad(wav, SR, centre, float(rng.uniform(-max_gain_db, max_gain_db)),
                                                     float(rng.uniform(0.5, 2.0)))
    return wav


def write_fixed_mixtures(rows: Sequence[list], noise_csv, rir_csv, out_dir, seed: int = 0,
                         rooms: Sequence[bool] = (False, True)) -> List[list]:
    """Seeded held-out mixtures of manifest ``rows`` (``real_speech.HEADER`` order).

    Each utterance is mixed once per entry of ``rooms`` (dry, in a room), at conditions cycled over
    ``CONDITIONS`` (a seeded shuffle), so every SNR has about the
    same number of dry and reverberant items. Writes ``noisy/``, ``clean/`` and
    ``labels/`` under ``out_dir``; returns the new manifest rows.
    """
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    mixer = RealMixer(noise_csv, rir_csv, pause_range=(0.3, 1.0))
    mixer._load()
    mixed = []
    for reverb in rooms:
        if reverb and not mixer._rirs:
            break
        order = rng.permutation(len(rows))
        for rank, i in enumerate(order):
            row = rows[i]
            cond = CONDITIONS[rank % len(CONDITIONS)]
            lab = load_frame_labels(row[7])
            item = mixer(read_audio(row[2], SR), lab["vad"], lab["f0"], rng=rng, snr=cond, reverb=reverb)
            uid = f"{row[0]}_{'rev' if reverb else 'dry'}_{cond}"
            noisy = write_audio(out / "noisy" / f"{uid}.wav", item["noisy"], SR, overwrite=True)
            clean = write_audio(out / "clean" / f"{uid}.wav", item["clean"], SR, overwrite=True)
            lab_path = out / "labels" / f"{uid}.npz"
            lab_path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(lab_path, vad=item["vad"].numpy().astype(np.uint8), f0=item["f0"].numpy().astype(np.float32),
                     hop_length=HOP, sample_rate=SR, noise=item["noise"], snr=item["snr"])
            mixed.append([uid, f"{item['clean'].numel() / SR:.3f}", str(noisy), str(clean), row[4], item["noise"],
                          item["snr"], str(lab_path), row[8], row[9], row[10],
                          f"{'rev' if reverb else 'dry'}_{cond}", item["room"], item["fine_noise"]])
    return mixed
