"""Low-SNR MUSAN mixtures for Grad-W: random ones for training, seeded fixed-SNR ones for tests.

Training follows the Grad-W code's final "LSNR" setting: every utterance gets
noise (p = 1), the type following a randomly drawn MUSAN category:

* ``noise``: one file, SNR ~ U(-10, 0) dB;
* ``music``: one file, SNR ~ U(-10, 0) dB;
* ``speech`` (babble): 5-7 talkers, each at an SNR drawn from {5, 8, 10, 13, 15} dB.

Noise is randomly cropped, or tiled when shorter than the speech. No reverb
(the official code loads RIRs but never applies them).

Evaluation mixes at a fixed overall SNR (babble talkers are summed at equal
power, then the sum is scaled), with a generator seeded from
``(seed, utterance id, snr)``, so every condition and every run sees the same
test mixtures.

MUSAN files can be split into disjoint train / test pools by a stable hash of
their relative path, so test noises are unseen in training.

Authors
 * speechbrain-dyncp contributors
"""

import logging
import os
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from speechbrain_dyncp.data.audio import audio_info, list_audio_files, read_audio

logger = logging.getLogger(__name__)

MUSAN_TYPES = ("noise", "music", "speech")


def stable_seed(*parts) -> int:
    """A 31-bit seed from strings / numbers, identical across runs and processes.

    Example
    -------
    >>> stable_seed(0, "id1/a/1", -5) == stable_seed(0, "id1/a/1", -5)
    True
    """
    return zlib.crc32("|".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


def in_test_pool(rel_path: str, test_fraction: float = 0.2) -> bool:
    """Whether a noise file belongs to the held-out test pool (stable hash).

    Example
    -------
    >>> in_test_pool("noise/free-sound/a.wav") in (True, False)
    True
    """
    return (zlib.crc32(rel_path.encode()) % 1000) < 1000 * test_fraction


class MusanMixer:
    """Adds MUSAN noise, music or babble to clean speech at low SNR.

    Arguments
    ---------
    musan_folder : str or path-like
        Folder with ``noise/``, ``music/`` and ``speech/`` sub-folders of wavs.
    pool : {"train", "test", "all"}
        Which hash-split pool of files to use (a type whose pool would be
        empty falls back to all its files, with a warning).
    noise_snr, music_snr : (float, float)
        Uniform SNR ranges in dB for the training mixtures.
    babble_snrs : sequence of float
        Per-talker SNR choices for babble.
    babble_talkers : (int, int)
        Inclusive range of talkers per babble mixture.
    sample_rate : int
        Rate of the speech (noise files are resampled on read).

    Example
    -------
    >>> import numpy as np, soundfile as sf
    >>> root = getfixture("tmp_path")
    >>> for t in MUSAN_TYPES:
    ...     (root / t / "x").mkdir(parents=True)
    ...     sf.write(root / t / "x" / "a.wav", np.random.randn(8000) * 0.1, 16000)
    >>> mixer = MusanMixer(root, pool="all")
    >>> clean = torch.randn(12000)
    >>> noisy, info = mixer.mix_fixed(clean, snr_db=-5.0, seed=stable_seed(0, "u1", -5))
    >>> noise = noisy - clean
    >>> round(float(10 * torch.log10(clean.pow(2).mean() / noise.pow(2).mean())), 3)
    -5.0
    """

    def __init__(
        self,
        musan_folder: Union[str, os.PathLike],
        pool: str = "train",
        noise_snr: Tuple[float, float] = (-10.0, 0.0),
        music_snr: Tuple[float, float] = (-10.0, 0.0),
        babble_snrs: Sequence[float] = (5.0, 8.0, 10.0, 13.0, 15.0),
        babble_talkers: Tuple[int, int] = (5, 7),
        sample_rate: int = 16000,
    ):
        if pool not in ("train", "test", "all"):
            raise ValueError(f"pool must be 'train', 'test' or 'all', got {pool!r}")
        root = Path(musan_folder)
        self.files: Dict[str, List[Tuple[Path, int]]] = {}
        for kind in MUSAN_TYPES:
            folder = root / kind
            if not folder.is_dir():
                raise FileNotFoundError(f"MUSAN folder {root} has no {kind}/ sub-folder (expected noise/, music/, speech/)")
            found = list_audio_files(folder)
            if not found:
                raise FileNotFoundError(f"No audio files under {folder}")
            chosen = found
            if pool != "all":
                chosen = [p for p in found if in_test_pool(str(p.relative_to(root))) == (pool == "test")]
                if not chosen:
                    logger.warning("MUSAN %s: no files in the %s pool; using all %d files", kind, pool, len(found))
                    chosen = found
            self.files[kind] = [(p, audio_info(p)[0]) for p in chosen]
        self.noise_snr, self.music_snr = noise_snr, music_snr
        self.babble_snrs = list(babble_snrs)
        self.babble_talkers = babble_talkers
        self.sample_rate = sample_rate

    def _crop(self, kind: str, n: int, gen: torch.Generator, tries: int = 5) -> Tensor:
        """A random non-silent crop (or tiling) of ``n`` samples from a file of ``kind``."""
        for _ in range(tries):
            wav = self._crop_once(kind, n, gen)
            if float(wav.pow(2).mean()) > 1e-10:
                return wav
        raise ValueError(f"MUSAN {kind}: {tries} random crops of {n} samples were all silent; check the files")

    def _crop_once(self, kind: str, n: int, gen: torch.Generator) -> Tensor:
        path, total = self.files[kind][int(torch.randint(len(self.files[kind]), (1,), generator=gen))]
        # Lengths in file samples may differ from ours after resampling; read all if short.
        if total > 2 * n:
            start = int(torch.randint(total - 2 * n, (1,), generator=gen))
            wav = read_audio(path, self.sample_rate, start=start, stop=start + 2 * n)
        else:
            wav = read_audio(path, self.sample_rate)
        if wav.numel() < n:
            wav = wav.repeat(n // wav.numel() + 1)
        off = int(torch.randint(wav.numel() - n + 1, (1,), generator=gen))
        return wav[off:off + n]

    @staticmethod
    def _scaled(clean: Tensor, noise: Tensor, snr_db: float) -> Tensor:
        """``noise`` scaled so that ``10 log10(P_clean / P_noise) = snr_db`` (mean-square power)."""
        from speechbrain_dyncp.data.mixing import mix_at_snr

        return mix_at_snr(clean, noise, snr_db) - clean

    def _draw_kind(self, gen: torch.Generator) -> str:
        return MUSAN_TYPES[int(torch.randint(len(MUSAN_TYPES), (1,), generator=gen))]

    def _babble(self, n: int, gen: torch.Generator) -> List[Tensor]:
        lo, hi = self.babble_talkers
        k = int(torch.randint(lo, hi + 1, (1,), generator=gen))
        return [self._crop("speech", n, gen) for _ in range(k)]

    def mix_train(self, clean: Tensor, gen: Optional[torch.Generator] = None) -> Tuple[Tensor, dict]:
        """A training mixture of ``clean [T]`` drawn from the Grad-W LSNR distribution."""
        gen = gen if gen is not None else torch.default_generator
        kind, n = self._draw_kind(gen), clean.numel()
        if kind == "speech":
            noise = torch.zeros_like(clean)
            snrs = []
            for talker in self._babble(n, gen):
                snrs.append(self.babble_snrs[int(torch.randint(len(self.babble_snrs), (1,), generator=gen))])
                noise = noise + self._scaled(clean, talker, snrs[-1])
            return clean + noise, {"type": kind, "snr": snrs}
        lo, hi = self.noise_snr if kind == "noise" else self.music_snr
        snr = float(lo + (hi - lo) * torch.rand((), generator=gen))
        return clean + self._scaled(clean, self._crop(kind, n, gen), snr), {"type": kind, "snr": snr}

    def mix_fixed(self, clean: Tensor, snr_db: float, seed: int) -> Tuple[Tensor, dict]:
        """A reproducible mixture of ``clean [T]`` at exactly ``snr_db`` overall."""
        gen = torch.Generator().manual_seed(seed)
        kind, n = self._draw_kind(gen), clean.numel()
        if kind == "speech":
            talkers = self._babble(n, gen)
            # Equal-power talkers: the sum is a babble whose total level we then set.
            noise = sum(t / t.pow(2).mean().clamp(min=1e-10).sqrt() for t in talkers)
        else:
            noise = self._crop(kind, n, gen)
        return clean + self._scaled(clean, noise, snr_db), {"type": kind, "snr": snr_db}
