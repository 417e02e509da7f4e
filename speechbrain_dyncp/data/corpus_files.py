"""Files of the embedded corpus shared by the synthetic builder and its real-recording add-on.

Authors
 * speechbrain-dyncp contributors
"""

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def write_pcm16(path: Path, wav: np.ndarray) -> None:
    """16-bit wav, atomically; an existing file (interrupted build) is kept.

    Not ``audio.write_audio``: soundfile's close() fsyncs every file, which
    dominates the build time on a busy disk; temp file + rename is enough here.
    """
    if path.exists():
        return
    buf = io.BytesIO()
    sf.write(buf, np.clip(wav, -1.0, 1.0), SR, subtype="PCM_16", format="WAV")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def make_trials(trial_utts: dict, rng: np.random.Generator):
    """Targets: all cross-session pairs of a speaker; as many random non-targets."""
    targets, everything = [], []
    for spk, utts in sorted(trial_utts.items()):
        everything += [(spk, rel) for _, rel in utts]
        targets += [(1, a, b) for i, (sa, a) in enumerate(utts) for sb, b in utts[i + 1 :] if sa != sb]
    nontargets = set()
    while len(nontargets) < len(targets):
        for i, j in rng.integers(0, len(everything), size=(2 * len(targets), 2)):
            if everything[i][0] != everything[j][0] and len(nontargets) < len(targets):
                nontargets.add((0, everything[i][1], everything[j][1]))
    trials = targets + sorted(nontargets)
    return [trials[i] for i in rng.permutation(len(trials))]
