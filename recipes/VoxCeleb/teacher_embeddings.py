#!/usr/bin/env python3
"""Per-utterance embeddings of a pretrained teacher speaker encoder, for ``--teacher_embeddings``.

Usage::

    python recipes/VoxCeleb/teacher_embeddings.py --data_folder <VoxCeleb-layout folder> --out teacher.pt

Teacher: Resemblyzer's GE2E encoder (Apache-2.0; 3-layer LSTM, 256-dim, trained on
LibriSpeech, VoxCeleb 1 and 2 by its authors), run by the package's own
``lobes/ge2e.py`` (equal to Resemblyzer's ``embed_utterance(preprocess_wav(x))``
within 1e-5; tests/unit/test_ge2e.py), so Resemblyzer need not be installed. Its
weights: the GE2E member of the bundled ``speaker_real_fusion`` folder (Resemblyzer's
published weights, unchanged), or ``--teacher_weights`` (a Resemblyzer
``pretrained.pt``). Nothing is downloaded. Each ``wav/<spk>/<session>/<utt>.wav``
is read at 16 kHz, its level raised and long pauses trimmed (Resemblyzer's
preprocessing) and embedded whole; the seconds left after trimming are stored too
(``--distill_min_seconds`` of training reads them). Unreadable files are
listed (one line each, naming the file) and left out; the output is written
once, at the end, through a temporary file. Training then reads it with
``speechbrain_dyncp.verification.distillation.TeacherEmbeddings``.

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np
import torch

from speechbrain_dyncp.data.audio import read_audio
from speechbrain_dyncp.inference.speaker_folders import published_ge2e
from speechbrain_dyncp.verification.distillation import utterance_key

logger = logging.getLogger(__name__)

def ge2e_teacher(weights=None):
    """``wav (float32 numpy, 16 kHz) -> (unit-norm embedding [256], seconds it heard)`` of Resemblyzer's GE2E:
    ``weights`` a Resemblyzer ``pretrained.pt``, or None for the bundled ``speaker_real_fusion`` member."""
    encoder = published_ge2e(weights)

    def embed(wav: np.ndarray):
        with torch.no_grad():
            vector, heard_s = encoder.embed_heard(torch.from_numpy(wav))
        return vector.numpy(), heard_s

    return embed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_folder", required=True, help="VoxCeleb layout: wav/<spk>/<session>/<utt>.wav")
    parser.add_argument("--out", required=True, help="output .pt (a dict; see TeacherEmbeddings)")
    parser.add_argument("--teacher_weights", default=None,
                        help="a Resemblyzer pretrained.pt (default: the bundled speaker_real_fusion's GE2E member)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    files = sorted((Path(args.data_folder) / "wav").rglob("*.wav"))
    if not files:
        raise SystemExit(f"{args.data_folder}: no wav/<spk>/<session>/<utt>.wav files")
    embed = ge2e_teacher(args.teacher_weights)
    table, seconds, failed = {}, {}, []
    for i, path in enumerate(files):
        try:
            wav = read_audio(path, sample_rate=16000).numpy()
            vector, heard_s = embed(wav)
            if not np.all(np.isfinite(vector)):
                raise ValueError("non-finite embedding")
        except Exception as err:  # one bad file must not cost the other thousands
            failed.append(path)
            logger.warning("%s: skipped (%s)", path, err)
            continue
        key = utterance_key(path)
        table[key] = torch.from_numpy(np.asarray(vector, dtype=np.float32))
        seconds[key] = float(heard_s)
        if (i + 1) % 500 == 0:
            logger.info("%d / %d files", i + 1, len(files))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    torch.save({"teacher": "resemblyzer-ge2e", "embeddings": table, "seconds": seconds}, tmp)
    os.replace(tmp, out)
    logger.info("%d embeddings -> %s (%d files skipped)", len(table), out, len(failed))
    return 0 if table else 1


if __name__ == "__main__":
    sys.exit(main())
