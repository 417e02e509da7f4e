#!/usr/bin/env python3
"""SI-SDR of one model folder on the real valid or test mixtures, per condition: a quick screen.

``bench_real.py`` is the record (every system, metric and read-out; 13-27 min). Screening a
training run needs one number per condition, so this runs the model alone (with the folder's
own attenuation limit, or ``--attenuation_limit_db``) and writes the mean SI-SDR per SNR for
all / dry / reverberant items, plus PESQ-WB on the clean and 20 dB items (the "no harm"
targets) and, with ``--dnsmos``, DNSMOS OVRL at 10 dB and below (the DNSMOS target), with
the same metric code and mixtures as ``bench_real.py`` (on the default model it
gives the same SI-SDR figures to two decimals). About 6 min for the test split on one thread.

    python benchmarks/sisdr_by_condition.py --model results/DynCP/real_export/noisediv_e10 --split valid \
        --out results/DynCP/real/noisediv/valid_sisdr.json

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from speechbrain_dyncp.data.audio import read_audio
from speechbrain_dyncp.data.manifest import manifest_digest
from speechbrain_dyncp.inference.enhancement import DynCPEnhancement
from speechbrain_dyncp.metrics.enhancement import pesq_wb, si_sdr

REPO = Path(__file__).resolve().parents[1]
SR = 16000
SNRS = ("clean", "20.0", "10.0", "5.0", "0.0", "-5.0")


def score(model, rows, dnsmos: bool = False):
    """Mean SI-SDR per ``<room>_<snr>`` and ``all_<snr>``; PESQ on the clean and 20 dB items; with
    ``dnsmos``, DNSMOS P.835 OVRL / SIG / BAK and P.808 (bench_real.py's ``dnsmos_parts``) on the noisy
    items at <= 10 dB (the DNSMOS target's SNRs)."""
    if dnsmos:
        from bench_real import dnsmos_parts  # benchmarks/ is on sys.path when this script runs
    res = defaultdict(list)
    for row in rows:
        noisy, clean = read_audio(row["noisy_wav"], SR).float()[None], read_audio(row["clean_wav"], SR).float()[None]
        with torch.no_grad():
            est = model.enhance_batch(noisy)
        room, snr = row["condition"].split("_", 1)
        value = float(si_sdr(est.double(), clean.double())[0])
        res[f"all_{snr}|si_sdr"].append(value)
        res[f"{room}_{snr}|si_sdr"].append(value)
        if snr in ("clean", "20.0"):
            res[f"all_{snr}|pesq"].append(pesq_wb(est[0], clean[0]))
        if dnsmos and snr in ("10.0", "5.0", "0.0", "-5.0"):
            for key, value in dnsmos_parts(est[0].numpy().astype(np.float64)).items():
                res[f"all_{snr}|{key}"].append(value)
    return {k: float(np.nanmean(v)) for k, v in sorted(res.items())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="model folder (dyncp export output or a bundled model)")
    ap.add_argument("--split", choices=("valid", "test"), default="valid")
    ap.add_argument("--corpus", default=str(REPO / "results/DynCP/real_speech_seed0"))
    ap.add_argument("--attenuation_limit_db", type=float, default=None, help="override the folder's limit")
    ap.add_argument("--dnsmos", action="store_true",
                    help="also DNSMOS P.835 (OVRL, SIG, BAK) and P.808 at 10 / 5 / 0 / -5 dB (about 2x the time)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = DynCPEnhancement.from_hparams(source=str(Path(args.model).resolve()), savedir=None)
    if args.attenuation_limit_db is not None:
        model.enhancer.attenuation_limit_db = args.attenuation_limit_db or None
    with open(Path(args.corpus) / f"{args.split}.csv") as fh:
        rows = list(csv.DictReader(fh))
    summary = {"model": args.model, "split": args.split, "n_items": len(rows),
               "digest": manifest_digest(Path(args.corpus) / f"{args.split}.csv"),  # which mixtures
               "attenuation_limit_db": model.enhancer.attenuation_limit_db, "scores": score(model, rows, args.dnsmos)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1))
    s = summary["scores"]
    print(f"{args.split} mixtures {summary['digest']}")
    for room in ("all", "dry", "rev"):
        print(room, " ".join(f"{c}: {s[f'{room}_{c}|si_sdr']:.2f}" for c in SNRS if f"{room}_{c}|si_sdr" in s))
    print(f"PESQ clean {s.get('all_clean|pesq', float('nan')):.2f}, 20 dB {s.get('all_20.0|pesq', float('nan')):.2f}")
    if args.dnsmos:
        for key, name in (("dnsmos", "DNSMOS OVRL"), ("dnsmos_sig", "  SIG"), ("dnsmos_bak", "  BAK"),
                          ("dnsmos_p808", "DNSMOS P.808")):
            print(name, " ".join(f"{c}: {s[f'all_{c}|{key}']:.2f}" for c in SNRS if f"all_{c}|{key}" in s))


if __name__ == "__main__":
    main()
