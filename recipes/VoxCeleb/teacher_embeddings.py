#!/usr/bin/env python3
"""Per-utterance embeddings of a pretrained teacher speaker encoder, for ``--teacher_embeddings``.

Usage::

    pip install --no-deps resemblyzer   # its librosa and webrtcvad-wheels come with the [bench] extra
    python recipes/VoxCeleb/teacher_embeddings.py --data_folder <VoxCeleb-layout folder> --out teacher.pt

Teacher: Resemblyzer's GE2E encoder (Apache-2.0; 3-layer LSTM, 256-dim, trained on
LibriSpeech, VoxCeleb 1 and 2 by its authors; the weights ship inside the PyPI
package, nothing is downloaded at run time). Each ``wav/<spk>/<session>/<utt>.wav``
is read at 16 kHz, passed through Resemblyzer's own ``preprocess_wav`` (level
normalisation, long-silence trimming) and embedded whole; the seconds left after
trimming are stored too (``--distill_min_seconds`` of training reads them). Unreadable files are
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
from speechbrain_dyncp.verification.distillation import utterance_key

logger = logging.getLogger(__name__)


def resemblyzer_teacher():
    """``wav (float32 numpy, 16 kHz) -> (unit-norm embedding [256], seconds it heard)`` from the installed Resemblyzer."""
    try:
        from resemblyzer import VoiceEncoder, preprocess_wav
    except ImportError as err:
        raise SystemExit(f"the teacher needs Resemblyzer: pip install --no-deps resemblyzer ({err})") from err
    encoder = VoiceEncoder("cpu", verbose=False)

    def embed(wav: np.ndarray):
        heard = preprocess_wav(wav, source_sr=16000)  # Resemblyzer's own trimming, at 16 kHz
        return encoder.embed_utterance(heard), len(heard) / 16000.0

    return embed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_folder", required=True, help="VoxCeleb layout: wav/<spk>/<session>/<utt>.wav")
    parser.add_argument("--out", required=True, help="output .pt (a dict; see TeacherEmbeddings)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    files = sorted((Path(args.data_folder) / "wav").rglob("*.wav"))
    if not files:
        raise SystemExit(f"{args.data_folder}: no wav/<spk>/<session>/<utt>.wav files")
    embed = resemblyzer_teacher()
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
