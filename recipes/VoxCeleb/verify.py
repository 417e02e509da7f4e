#!/usr/bin/env python3
"""Speaker verification with a trained ECAPA model: embeddings, cosine scores, score norm, EER / minDCF.

Usage::

    python recipes/VoxCeleb/verify.py hparams/VoxCeleb/verify_ecapa.yaml [--key=value ...]

Writes ``<output_folder>/scores.txt`` (``enrol test label score``),
``metrics.json`` (first normalisation) and ``metrics_all.json`` (all). The
work is done by :mod:`speechbrain_dyncp.verification.pipeline`, which other
recipes call with their own embedding function.

Authors
 * speechbrain-dyncp contributors
"""

import json
import logging
import sys
from pathlib import Path

import speechbrain as sb
from speechbrain.utils.distributed import infer_device, run_on_main

from speechbrain_dyncp.inference.speaker import add_verification_backend
from speechbrain_dyncp.verification.embedding import load_speaker_embedder
from speechbrain_dyncp.verification.pipeline import run_verification
from speechbrain_dyncp.verification.scoring import cohort_matrix
from speechbrain_dyncp.verification.trials import read_trials
from speechbrain_dyncp.verification.training import start_speaker_recipe

logger = logging.getLogger(__name__)


def main(argv):
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    hparams, _ = start_speaker_recipe(hparams_file, run_opts, overrides)
    device = run_opts["device"] or infer_device()  # P12: no Brain here, so default the device ourselves
    data_folder, trial_file = hparams["data_folder"], hparams["verification_file"]

    from speechbrain_dyncp.data.voxceleb import prepare_voxceleb

    norms = list(hparams["score_norms"])
    splits = ["test"] + (["train", "dev"] if any(n != "none" for n in norms) else [])
    run_on_main(prepare_voxceleb, kwargs={
        "data_folder": data_folder, "save_folder": hparams["save_folder"], "verification_pairs_file": trial_file,
        "splits": splits, "split_ratio": hparams["split_ratio"], "seg_dur": hparams["seg_dur"],
        "skip_prep": hparams["skip_prep"]})
    save = Path(hparams["save_folder"])
    trials = read_trials(trial_file)
    embedder = load_speaker_embedder(hparams["model_dir"], device=device)
    store = hparams["store_backend"]
    if store and store not in norms:
        raise ValueError(f"store_backend {store!r} must be one of score_norms {norms}")
    cohort_emb = {}
    results = run_verification(
        embedder, trials, [save / "enrol.csv", save / "test.csv"],
        cohort=save / "train.csv" if "train" in splits else None, score_norms=norms,
        top_k=hparams["cohort_top_k"], speaker_mean=hparams["cohort_speaker_mean"],
        p_targets=hparams["p_targets"], batch_size=hparams["batch_size"], device=device,
        max_cohort=hparams["max_cohort"], out_dir=hparams["output_folder"], sample_rate=hparams["sample_rate"],
        cohort_out=cohort_emb)
    if store:  # the model folder gets the cohort and the EER threshold of this trial list
        cohort = cohort_matrix(cohort_emb, hparams["cohort_speaker_mean"]) if store != "none" else None
        run_on_main(add_verification_backend, kwargs={
            "model_dir": hparams["model_dir"], "cohort": cohort, "threshold": results[store]["EER_threshold"],
            "score_norm": store, "top_k": hparams["cohort_top_k"]})
        logger.info("Stored the %s backend (threshold %.4f) in %s", store, results[store]["EER_threshold"],
                    hparams["model_dir"])
    for method, m in results.items():
        logger.info("%s %s", method, json.dumps({k: v for k, v in m.items() if k.startswith(("EER", "minDCF@"))}))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
