#!/usr/bin/env python3
"""Fit the T-F-mask SNR calibration of a model folder on the real FITTING mixtures (never the test split).

``speechbrain_dyncp/probes/mask_snr.py`` explains the read-out. This script runs the model over
the fixed fitting mixtures of the real corpus (training speakers, noises and rooms; the same
mixtures ``fit_probes.py`` uses), fits the isotonic map from the mask's energy ratio to the true
SNR, and with ``--write`` stores its knots under ``snr_mask_calibration`` in the folder's
``hyperparams.yaml``; ``DynCPEnhancement.analyze_*().utterance_snr()`` then uses it.
``--eval_split test`` also reports the MAE of both read-outs on that split (measurement only).

Usage::

    python recipes/DynCP/fit_snr_calibration.py --model speechbrain_dyncp/pretrained/dyncp_real_base \\
        --fit_items 1600 --eval_split test --write

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
KEY = "snr_mask_calibration"


def read_outs(model, rows):
    """(mask ratio dB, gate-probe SNR, true SNR) of every noisy mixture in ``rows``."""
    from speechbrain_dyncp.data.audio import read_audio
    from speechbrain_dyncp.probes.mask_snr import enhancer_mask_ratio_db

    out = []
    for row in rows:
        if not math.isfinite(float(row["snr"])):
            continue  # clean items have no SNR to calibrate against
        wav = read_audio(row["noisy_wav"], model.hparams.sample_rate)[None]
        with torch.no_grad():
            res = model.enhancer(wav)
            probe = model.probes(res.gates, res.frame_mask).get("snr") if model.probes is not None else None
        ratio = float(enhancer_mask_ratio_db(model.enhancer, wav, res)[0])
        out.append((ratio, float(probe[0, int(res.frame_mask[0].sum()) - 1]) if probe is not None else math.nan,
                    float(row["snr"])))
    return np.array(out)


def write_calibration(folder: Path, calibration) -> None:
    """Replace (or add) the ``snr_mask_calibration`` block of ``folder/hyperparams.yaml``."""
    path = folder / "hyperparams.yaml"
    text = re.sub(rf"\n# T-F mask SNR calibration.*?\n{KEY}:\n(  .*\n)+", "\n", path.read_text(), flags=re.S)
    d = calibration.to_dict()
    block = (f"\n# T-F mask SNR calibration (recipes/DynCP/fit_snr_calibration.py, real fitting mixtures)\n{KEY}:\n"
             f"  ratio_db: [{', '.join(f'{v:.4f}' for v in d['ratio_db'])}]\n"
             f"  snr_db: [{', '.join(f'{v:.4f}' for v in d['snr_db'])}]\n")
    path.write_text(text.rstrip("\n") + "\n" + block)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="enhancer model folder (written with --write)")
    ap.add_argument("--corpus", default=str(REPO / "results/DynCP/real_speech_seed0"),
                    help="prepare_real_speech output folder (prepared from --shared_data if absent)")
    ap.add_argument("--shared_data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--fit_items", type=int, default=1600)
    ap.add_argument("--eval_split", default=None, help="also report MAE on this split (valid or test)")
    ap.add_argument("--write", action="store_true", help="store the knots in the folder's hyperparams.yaml")
    ap.add_argument("--out", default=None, help="JSON report")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from speechbrain_dyncp.data.real_speech import prepare_fit_mixtures, prepare_real_speech
    from speechbrain_dyncp.inference.loading import load_enhancer
    from speechbrain_dyncp.probes.mask_snr import MaskSNRCalibration

    outputs = prepare_real_speech(args.shared_data, args.corpus)
    model = load_enhancer(args.model)
    fit = read_outs(model, list(csv.DictReader(open(prepare_fit_mixtures(args.corpus, args.fit_items)))))
    calibration = MaskSNRCalibration.fit(fit[:, 0], fit[:, 2])
    report = {"model": args.model, "n_fit": len(fit), "knots": len(calibration.ratio_db),
              "fit_mae_db_in_sample": float(np.abs(calibration.predict(fit[:, 0]) - fit[:, 2]).mean())}
    if args.eval_split:
        ev = read_outs(model, list(csv.DictReader(open(outputs[args.eval_split]))))
        report[f"{args.eval_split}_mae_db_mask"] = float(np.abs(calibration.predict(ev[:, 0]) - ev[:, 2]).mean())
        report[f"{args.eval_split}_mae_db_gate_probe"] = float(np.nanmean(np.abs(ev[:, 1] - ev[:, 2])))
        report[f"n_{args.eval_split}"] = len(ev)
    if args.write:
        write_calibration(Path(args.model), calibration)
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
