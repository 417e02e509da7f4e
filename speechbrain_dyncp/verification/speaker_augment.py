"""Speaker augmentation: a speed-perturbed voice counts as a new speaker.

Changing the playback speed by a factor ``f`` scales every formant and the F0 by
``f``: at 0.9 or 1.1 the result no longer sounds like the same person, so training
it under the original label teaches the embedding to ignore the cues that make
voices differ. Yamamoto et al. (Interspeech 2019, "Speaker augmentation and
bandwidth extension for deep speaker embedding") instead give each speed its own
speaker class, which multiplies the number of training identities; the 3D-Speaker
and WeSpeaker recipes do the same. This matters most where speakers are few (our
real corpus has about 400 training speakers, VoxCeleb2 has 5994).

SpeechBrain's ``SpeedPerturb`` draws one speed per batch and does not say which,
so the label cannot follow; here the speed is drawn per item inside the data
pipeline, next to the crop, and resampling is torchaudio's.

Authors
 * speechbrain-dyncp contributors
"""

import random
from typing import Iterable, List, Sequence

import torch
import torchaudio


def speed_label(spk_id: str, factor: float) -> str:
    """The class of ``spk_id`` spoken ``factor`` times faster (``spk_id`` itself at 1.0).

    Example
    -------
    >>> speed_label("id10001", 1.1), speed_label("id10001", 1.0)
    ('id10001_sp1.1', 'id10001')
    """
    return spk_id if factor == 1.0 else f"{spk_id}_sp{factor:g}"


def speed_labels(spk_ids: Iterable[str], factors: Sequence[float]) -> List[str]:
    """Every new class the ``factors`` make of ``spk_ids`` (sorted, originals left out).

    Example
    -------
    >>> speed_labels(["b", "a", "a"], [0.9, 1.0, 1.1])
    ['a_sp0.9', 'a_sp1.1', 'b_sp0.9', 'b_sp1.1']
    """
    return sorted({speed_label(s, f) for s in set(spk_ids) for f in factors if f != 1.0})


def draw_speed(factors: Sequence[float], prob: float, rng: random.Random = random) -> float:
    """1.0 with probability ``1 - prob``, else one of ``factors`` (uniformly).

    Example
    -------
    >>> draw_speed([0.9, 1.1], 0.0), draw_speed([], 1.0), draw_speed([1.1], 1.0)
    (1.0, 1.0, 1.1)
    """
    if not factors or rng.random() >= prob:
        return 1.0
    return float(rng.choice(list(factors)))


def change_speed(sig: torch.Tensor, factor: float) -> torch.Tensor:
    """``sig`` ``[..., time]`` played ``factor`` times faster: ``len / factor`` samples, pitch times ``factor``.

    Example
    -------
    >>> import math
    >>> t = torch.arange(16000) / 16000
    >>> out = change_speed(torch.sin(2 * math.pi * 200 * t), 1.25)
    >>> out.shape[-1], int(torch.fft.rfft(out).abs().argmax()) * 16000 // out.shape[-1]
    (12800, 250)
    """
    if factor == 1.0:
        return sig
    # resample by 100f : 100 (integer rates, as SpeechBrain's SpeedPerturb)
    return torchaudio.functional.resample(sig, orig_freq=round(100 * factor), new_freq=100)
