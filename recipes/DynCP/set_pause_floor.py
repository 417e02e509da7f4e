#!/usr/bin/env python3
"""Give a DynCP model folder a pause floor: a deeper attenuation limit where its gates hear no speech.

Usage::

    python recipes/DynCP/set_pause_floor.py --model my_model --out my_model_pause40 \
        [--limit_db 40 --threshold 0.3 --hangover 8] [--low_snr_db 2 --low_snr_window 100 --low_snr_min_frames 50]

The folder must have fitted probes (``recipes/DynCP/fit_probes.py``): their VAD head (a linear
read-out of the current frame's gates) is copied into the enhancer's weights as
:class:`~speechbrain_dyncp.lobes.pause_floor.PauseFloor`, so that the offline, streaming, C and
ONNX paths all compute the same per-frame floor from the enhancer alone. Speech frames, and the
``hangover`` frames after each, keep the folder's ``attenuation_limit_db``; the others get
``limit_db``. With ``--low_snr_db``, speech frames get ``limit_db`` too when the running
kept/removed energy ratio of the model's mask over the last ``--low_snr_window`` frames' speech is
below it (after ``--low_snr_min_frames`` speech frames). The new folder is a copy of the old one
(probes, calibrations and comments kept) with the enhancer's definition and weights replaced; the old
folder is not touched. Refit the probes afterwards only if the enhancer changed (it does not here: the
gates are the same).

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import re
import shutil
import sys
from pathlib import Path

import torch

from speechbrain_dyncp.export import (ENHANCER_TAG, check_model_folder, load_weights, read_module_definition,
                                      yaml_block)
from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer
from speechbrain_dyncp.lobes.probes import MaskProbes

PAUSE_KEYS = ("pause_attenuation_limit_db", "pause_vad_threshold", "pause_hangover_frames", "pause_low_snr_db",
              "pause_low_snr_window", "pause_low_snr_min_frames")
ENHANCER_BLOCK = re.compile(r"^enhancer: !new:\S+\n(?:[ \t]+.*\n)*", re.MULTILINE)


def set_pause_floor(model_dir, out, limit_db: float = 40.0, threshold: float = 0.3, hangover: int = 8,
                    low_snr_db=None, low_snr_window: int = 100, low_snr_min_frames: int = 50) -> Path:
    """Write ``out``: ``model_dir`` with a pause floor driven by its own VAD probe (and, with ``low_snr_db``,
    its low-SNR part); returns ``out``."""
    model_dir, out = Path(model_dir), Path(out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose a new folder")
    if not (model_dir / "hyperparams.yaml").is_file():
        raise FileNotFoundError(f"{model_dir}: no hyperparams.yaml (not a DynCP model folder)")
    yaml_text = (model_dir / "hyperparams.yaml").read_text()
    _, kwargs = read_module_definition(model_dir / "hyperparams.yaml", "enhancer")
    probes_state = load_weights(model_dir / "probes.ckpt")  # missing: "checkpoint not found: <path>"
    probes = MaskProbes()
    probes.load_state_dict(probes_state)
    kwargs = {k: v for k, v in kwargs.items() if k not in PAUSE_KEYS}
    kwargs.update(pause_attenuation_limit_db=float(limit_db), pause_vad_threshold=float(threshold),
                  pause_hangover_frames=int(hangover))
    if low_snr_db is not None:
        kwargs.update(pause_low_snr_db=float(low_snr_db), pause_low_snr_window=int(low_snr_window),
                      pause_low_snr_min_frames=int(low_snr_min_frames))
    enhancer = DynCPEnhancer(**kwargs)  # refuses an ungated model or a limit not deeper than the folder's
    state = {k: v for k, v in load_weights(model_dir / "enhancer.ckpt").items() if not k.startswith("pause_floor.")}
    missing, unexpected = enhancer.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("pause_floor.") for k in missing):
        raise ValueError(f"{model_dir}/enhancer.ckpt does not fit its own hyperparams.yaml")
    enhancer.pause_floor.load_vad_head(probes)
    if not ENHANCER_BLOCK.search(yaml_text):
        raise ValueError(f"{model_dir}/hyperparams.yaml: no 'enhancer: !new:...' block to replace")
    shutil.copytree(model_dir, out)
    block = yaml_block("enhancer", ENHANCER_TAG, kwargs)
    note = (f"# pause floor (recipes/DynCP/set_pause_floor.py): {limit_db:g} dB where the VAD probe of {model_dir.name} "
            f"says < {threshold:g}\n# for {hangover} frames\n")
    if low_snr_db is not None:
        note += (f"# and in speech frames whose mask's kept/removed energy over the last {low_snr_window} frames' speech "
                 f"is < {low_snr_db:g} dB\n# (after {low_snr_min_frames} speech frames)\n")
    (out / "hyperparams.yaml").write_text(ENHANCER_BLOCK.sub(lambda _: block, yaml_text, count=1) + note)
    enhancer_state = enhancer.state_dict()
    torch.save(enhancer_state, out / "enhancer.ckpt")
    check_model_folder(out, {"enhancer": enhancer_state, "probes": probes_state})
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a DynCP model folder with fitted probes")
    p.add_argument("--out", required=True, help="new model folder")
    p.add_argument("--limit_db", type=float, default=40.0, help="attenuation limit in pauses (dB, default 40)")
    p.add_argument("--threshold", type=float, default=0.3, help="VAD probability above which a frame is speech")
    p.add_argument("--hangover", type=int, default=8, help="frames after speech that keep the speech limit")
    p.add_argument("--low_snr_db", type=float, default=None,
                   help="also the pause limit in speech whose running mask energy ratio is below this (dB)")
    p.add_argument("--low_snr_window", type=int, default=100, help="frames of the running ratio (default 100)")
    p.add_argument("--low_snr_min_frames", type=int, default=50, help="speech frames it needs (default 50)")
    args = p.parse_args(argv)
    try:
        out = set_pause_floor(args.model, args.out, args.limit_db, args.threshold, args.hangover,
                              args.low_snr_db, args.low_snr_window, args.low_snr_min_frames)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as err:
        sys.exit(f"set_pause_floor: {err}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
