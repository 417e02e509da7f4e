#!/usr/bin/env python3
"""SNR-aware score calibration of a speaker model on real dev trials, measured on test trials.

Usage::

    python recipes/VoxCeleb/calibrate_quality.py --model <speaker model folder> \\
        --data results/speaker_real/seed0/dev/wav,results/speaker_real/seed0/test/wav --trials results/speaker_real/seed0/trials \\
        --out results/speaker_real/calibration [--store]

Trial lists come from :func:`speechbrain_dyncp.data.real_speakers.prepare_real_speakers`
(``dev_*`` on the held-apart valid speakers, ``test_*`` on the test speakers). The
speaker model scores every trial as ``dyncp verify`` does (with its stored AS-norm
cohort when it has one); the DynCP enhancer's probes (``--quality_model``, default
the bundled one) give each file's SNR and speech-fraction estimates, and with them its
seconds of speech. A
:class:`~speechbrain_dyncp.verification.calibration.QualityCalibrator` is fitted on
the dev lists (clean, 5, 0, -5 dB test sides, pooled) with and without the quality
measures, and ``test_*`` lists are scored: EER, minDCF, Cllr, minCllr. ``--store``
writes ``calibration.json`` (the quality-aware one) into the model folder, which
``dyncp verify`` then uses; with ``--front_end`` (each recording embedded from the
quality model's enhanced output) it writes ``calibration_front_end.json``, which
``dyncp verify --front-end`` uses with that front-end only. Results: ``<out>/calibration_metrics.json``, and per list
``<out>/scores_<list>.npz`` (scores, labels, both sides' quality measures, ids).

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from speechbrain_dyncp.inference.front_end import FRONT_END_CALIBRATION_FILE
from speechbrain_dyncp.verification.calibration import (CALIBRATION_FILE, QualityCalibrator, model_fingerprint,
                                                        probe_quality)
from speechbrain_dyncp.verification.metrics import cllr, min_cllr, verification_metrics
from speechbrain_dyncp.verification.trials import read_trials

logger = logging.getLogger(__name__)
LISTS = ("clean", "snr5", "snr0", "snrm5", "mixed")
MEASURES = ["snr_db", "speech_frac", "log_speech_s"]  # probe_quality: SNR, VAD share, seconds of speech


def embed_and_measure(ids, data, speaker, enhancer, cache: dict, front_end: bool = False,
                      below_snr: float = float("inf"), fuse: bool = False):
    """Embedding and quality measures of every id not yet in ``cache`` (id -> (emb, [q...], enhanced));
    with ``front_end`` the embedding is of the enhancer's output (quality still of the input), for the
    files whose SNR estimate is below ``below_snr`` (all by default; the others are embedded as they are);
    with ``fuse`` it is the mean of the unit-length embeddings of the input and of the output."""
    from tqdm import tqdm

    for uid in tqdm([i for i in ids if i not in cache], desc="embed + probes", unit="file"):
        path = next((d / f"{uid}.wav" for d in data if (d / f"{uid}.wav").exists()), data[0] / f"{uid}.wav")
        with torch.no_grad():
            analysis = enhancer.analyze_file(str(path))
            q = probe_quality(analysis)
            enhanced = front_end and not q["snr_db"] >= below_snr  # an unknown (NaN) SNR is enhanced
            # the front-end path of dyncp verify --front-end (inference/front_end.py): the output, same checks
            emb = speaker.embed_waveform(analysis.wav[0].cpu(), path) if enhanced else speaker.embed_file(path)
            if enhanced and fuse:
                emb = torch.nn.functional.normalize(emb, dim=0) + torch.nn.functional.normalize(
                    speaker.embed_file(path), dim=0)
        cache[uid] = (emb, [q[m] for m in MEASURES], enhanced)


def score_list(trials, speaker, cache):
    e1 = torch.stack([cache[i][0] for i in trials.enrol])
    e2 = torch.stack([cache[i][0] for i in trials.test])
    scores = []
    for a in range(0, len(e1), 512):  # AS-norm statistics are per call: chunks keep memory small
        scores.append(speaker.score_embeddings(e1[a:a + 512], e2[a:a + 512])[0])
    qe = np.array([cache[i][1] for i in trials.enrol])
    qt = np.array([cache[i][1] for i in trials.test])
    return torch.cat(scores).numpy().astype(np.float64), qe, qt


def evaluate(scores, labels, llr_plain, llr_q) -> dict:
    m = verification_metrics(scores, labels)
    out = {"EER": m["EER"], "minDCF@0.01": m["minDCF@0.01"], "minDCF@0.05": m["minDCF@0.05"],
           "n_target": m["n_target"], "n_nontarget": m["n_nontarget"], "minCllr": min_cllr(scores, labels),
           "Cllr_score_only": cllr(llr_plain, labels), "Cllr_quality": cllr(llr_q, labels)}
    mq = verification_metrics(llr_q, labels)
    out.update({"EER_quality": mq["EER"], "minDCF@0.01_quality": mq["minDCF@0.01"],
                "minCllr_quality": min_cllr(llr_q, labels)})
    # the decisions dyncp verify makes: LLR > 0 (Bayes at prior 0.5), error rates on this list
    for name, llr in (("score_only", llr_plain), ("quality", llr_q)):
        out[f"miss%_{name}"] = 100.0 * float(np.mean(llr[labels == 1] <= 0))
        out[f"fa%_{name}"] = 100.0 * float(np.mean(llr[labels == 0] > 0))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="speaker model folder")
    p.add_argument("--data", required=True, help="wav/ folder(s) the trial ids are relative to, comma-separated")
    p.add_argument("--trials", required=True, help="folder with {dev,test}_{clean,snr5,snr0,snrm5,mixed}.txt")
    p.add_argument("--out", required=True)
    p.add_argument("--quality_model", default=None, help="DynCP enhancer with probes (default: bundled); "
                   "with --front_end also the front-end")
    p.add_argument("--store", action="store_true", help="write calibration.json (with --front_end: "
                   "calibration_front_end.json) into --model")
    p.add_argument("--front_end", action="store_true",
                   help="embed the quality model's enhanced output instead of the input (both sides)")
    p.add_argument("--front_end_below_snr", type=float, default=float("inf"),
                   help="with --front_end: enhance only files whose SNR estimate (the quality model's own "
                        "read-out) is below this (dB); the others are embedded unenhanced")
    p.add_argument("--fuse_front_end", action="store_true",
                   help="with --front_end: embed input and output and use the mean of the unit-length embeddings")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(1)
    from speechbrain_dyncp.inference.loading import bundled_enhancer_name, enhancer_folder, load_enhancer
    from speechbrain_dyncp.inference.speaker import load_speaker_model

    speaker = load_speaker_model(args.model)
    enhancer = load_enhancer(args.quality_model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data, tdir, cache = [Path(d) for d in args.data.split(",")], Path(args.trials), {}
    lists = {f"{s}_{c}": read_trials(tdir / f"{s}_{c}.txt") for s in ("dev", "test") for c in LISTS}
    if args.store and args.front_end and (args.fuse_front_end or args.front_end_below_snr != float("inf")):
        raise SystemExit("--store with --fuse_front_end / --front_end_below_snr: dyncp verify --front-end "
                         "embeds every recording's enhanced output only")
    embed_and_measure(sorted({i for t in lists.values() for i in t.ids()}), data, speaker, enhancer, cache,
                      front_end=args.front_end, below_snr=args.front_end_below_snr, fuse=args.fuse_front_end)
    # fit on every dev condition (4x the trials of dev_mixed, the same mix of conditions)
    dev = [score_list(lists[f"dev_{c}"], speaker, cache) + (lists[f"dev_{c}"].labels,) for c in LISTS[:4]]
    s_dev, qe_dev, qt_dev, y_dev = (np.concatenate(x) for x in zip(*dev))
    plain = QualityCalibrator([]).fit(s_dev, y_dev)
    qmf = QualityCalibrator(MEASURES).fit(s_dev, y_dev, qe_dev, qt_dev)
    # name the probe model: a later change of the bundled default must not silently feed other probes
    # (a bundled model by name, so the stored calibration finds it wherever the package is installed)
    bundled = bundled_enhancer_name(args.quality_model)
    qmf.info.update({"fitted_on": [str(tdir / f"dev_{c}.txt") for c in LISTS[:4]],
                     "quality_model": None if bundled else args.quality_model, "quality_model_bundled": bundled,
                     "quality_model_sha256": model_fingerprint(enhancer_folder(args.quality_model))})
    if args.front_end:  # dyncp verify --front-end uses this calibration only with these weights
        qmf.info.update({"front_end": qmf.info["quality_model"], "front_end_bundled": bundled,
                         "front_end_sha256": qmf.info["quality_model_sha256"]})
    results = {}
    for name, trials in lists.items():
        s, qe, qt = score_list(trials, speaker, cache)
        np.savez(out / f"scores_{name}.npz", score=s, label=trials.labels, q_enrol=qe, q_test=qt,
                 enrol=np.array(trials.enrol), test=np.array(trials.test))
        results[name] = evaluate(s, trials.labels, plain.llr(s), qmf.llr(s, qe, qt))
        results[name]["enhanced_share"] = {side: float(np.mean([cache[i][2] for i in ids]))
                                           for side, ids in (("enrol", trials.enrol), ("test", trials.test))}
        corpus = np.array([e.split("/")[1].split("_")[0] for e in trials.enrol])  # <spk>/<corpus>/<utt>
        for c in sorted(set(corpus)):  # read sentences and one-second words differ a lot
            k = corpus == c
            if 0 < trials.labels[k].sum() < k.sum():
                results[name][f"EER_{c}"] = verification_metrics(s[k], trials.labels[k])["EER"]
        logger.info("%s %s", name, json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                               for k, v in results[name].items()}))
    snr = np.array([cache[i][1][0] for i in cache])
    results["probe_snr_db_quantiles"] = dict(zip(("p10", "p50", "p90"), map(float, np.nanpercentile(snr, [10, 50, 90]))))
    (out / "calibration_metrics.json").write_text(json.dumps(results, indent=1) + "\n")
    qmf.save(out / "calibration.json")
    if args.store:
        stored = qmf.save(Path(args.model) / (FRONT_END_CALIBRATION_FILE if args.front_end else CALIBRATION_FILE))
        logger.info("Stored %s", stored)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
