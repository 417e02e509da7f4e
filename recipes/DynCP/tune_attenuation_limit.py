#!/usr/bin/env python3
"""Choose a model's attenuation limit on the real VALIDATION mixtures (never the test split).

The limit (``DynCPEnhancer.attenuation_limit_db``) floors the mask at
``g = 10 ** (-limit / 20)``, which equals mixing ``g`` of the noisy input back into
the unlimited output (tests/unit/test_attenuation_limit.py). So the model runs
once per file and every candidate limit is scored on ``g * noisy + (1 - g) * out``.

Criterion: the mean over the SNR conditions (clean, 20, 10, 5, 0, -5 dB; dry and
room pooled) of the condition's mean PESQ-WB; among limits within ``--tolerance``
of the best, the one that attenuates most (noise removal is what users came for).

    python recipes/DynCP/tune_attenuation_limit.py --model speechbrain_dyncp/pretrained/dyncp_real_small \
        --out results/attenuation_limit/dyncp_real_small.json --jobs 2

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import csv
import json
import math
from collections import defaultdict
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from speechbrain_dyncp.data.audio import read_audio
from speechbrain_dyncp.lobes.stft_masking import attenuation_floor
from speechbrain_dyncp.metrics.enhancement import pesq_wb, si_sdr

REPO = Path(__file__).resolve().parents[2]
SR = 16000
LIMITS_DB = [None, 30.0, 25.0, 20.0, 16.0, 12.0, 9.0, 6.0]  # None: no limit
_MODEL = {}


def _init(model_dir):
    from speechbrain_dyncp.inference.enhancement import DynCPEnhancement

    torch.set_num_threads(1)
    model = DynCPEnhancement.from_hparams(source=str(Path(model_dir).resolve()), savedir=None)
    model.enhancer.attenuation_limit_db = None  # the unlimited output; limits are mixed in below
    _MODEL["m"] = model


def _score(row):
    noisy = read_audio(row["noisy_wav"], SR)
    clean = read_audio(row["clean_wav"], SR)
    with torch.no_grad():
        out = _MODEL["m"].enhance_batch(noisy[None].float())[0].double()
    noisy, clean = noisy.double(), clean.double()
    res = {}
    for lim in LIMITS_DB:
        g = attenuation_floor(lim)
        est = g * noisy + (1 - g) * out
        res[str(lim)] = (float(si_sdr(est[None], clean[None])[0]), pesq_wb(est.numpy(), clean.numpy()))
    return row["snr"], res


def summarise(scored, tolerance):
    """Per limit: per-SNR mean SI-SDR / PESQ, and the criterion; plus the chosen limit."""
    by_snr = defaultdict(list)
    for snr, res in scored:
        by_snr[snr].append(res)
    table = {}
    for lim in map(str, LIMITS_DB):
        per = {}
        for snr, items in by_snr.items():
            pesq = [r[lim][1] for r in items if not math.isnan(r[lim][1])]
            per[snr] = {"si_sdr": float(np.mean([r[lim][0] for r in items])), "pesq": float(np.mean(pesq))}
        table[lim] = {"per_snr": per, "mean_pesq": float(np.mean([v["pesq"] for v in per.values()])),
                      "mean_si_sdr": float(np.mean([v["si_sdr"] for v in per.values()]))}
    best = max(v["mean_pesq"] for v in table.values())
    ok = [lim for lim in LIMITS_DB if table[str(lim)]["mean_pesq"] >= best - tolerance]
    chosen = max(ok, key=lambda lim: math.inf if lim is None else lim)  # the most attenuation allowed
    return {"limits": table, "chosen_db": chosen, "criterion": "mean over SNR conditions of mean PESQ-WB",
            "tolerance": tolerance, "n_items": len(scored)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(REPO / "speechbrain_dyncp/pretrained/dyncp_real_small"))
    ap.add_argument("--corpus", default=str(REPO / "results/DynCP/real_speech_seed0"),
                    help="prepare_real_speech output folder (its valid.csv is used)")
    ap.add_argument("--tolerance", type=float, default=0.01, help="PESQ points from the best")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", required=True, help="JSON written here")
    args = ap.parse_args(argv)
    with open(Path(args.corpus) / "valid.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with get_context("spawn").Pool(args.jobs, _init, (args.model,)) as pool:
        scored = pool.map(_score, rows, chunksize=4)
    summary = summarise(scored, args.tolerance)
    summary["model"] = args.model
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    for lim in map(str, LIMITS_DB):
        v = summary["limits"][lim]
        cells = " ".join(f"{s}:{p['si_sdr']:.1f}/{p['pesq']:.2f}" for s, p in sorted(v["per_snr"].items(),
                                                                                       key=lambda kv: -float(kv[0])))
        print(f"limit {lim:>5} dB  mean PESQ {v['mean_pesq']:.3f}  mean SI-SDR {v['mean_si_sdr']:.2f}  {cells}")
    print(f"chosen: {summary['chosen_db']} dB")
    return summary


if __name__ == "__main__":
    main()
