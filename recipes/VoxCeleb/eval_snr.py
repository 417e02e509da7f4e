#!/usr/bin/env python3
"""Speaker verification at fixed SNRs: no enhancement vs Equal-W vs Grad-W enhancers.

Usage::

    python recipes/VoxCeleb/eval_snr.py hparams/VoxCeleb/eval_snr.yaml [--key=value ...]

For each SNR (``clean`` and dB values) every trial utterance is mixed once with
held-out MUSAN noise, music or babble (seeded per utterance and SNR, see
:class:`~speechbrain_dyncp.data.lowsnr.MusanMixer`), enhanced by each system's
G (or not), embedded by the frozen E and scored by cosine. EER and minDCF
come from ``speechbrain_dyncp.verification``. Writes ``results.csv``,
``results.md``, ``results.json`` and ``eer_vs_snr.png`` in the output folder.

Authors
 * speechbrain-dyncp contributors
"""

import csv
import json
import logging
import sys
import time
from pathlib import Path

import speechbrain as sb
import torch
from speechbrain.utils.distributed import infer_device

from speechbrain_dyncp.data.audio import read_audio
from speechbrain_dyncp.data.lowsnr import MusanMixer, stable_seed
from speechbrain_dyncp.lobes.sv_features import EnhancedFeatures
from speechbrain_dyncp.verification.embedding import (
    SpeakerEmbedder,
    compute_embeddings,
    load_speaker_scorer,
    load_trained_enhancer,
)
from speechbrain_dyncp.verification.pipeline import evaluate_trials
from speechbrain_dyncp.verification.trials import read_trials
from speechbrain_dyncp.verification.training import musan_root, start_speaker_recipe

logger = logging.getLogger(__name__)


def mixture_dataset(csv_paths, mixer, snr, seed, sample_rate):
    """Whole trial utterances (one row per id), mixed at ``snr`` (or clean) with a per-id seed."""
    rows = {}
    for path in csv_paths:
        with open(path) as fh:
            for row in csv.DictReader(fh):
                rows.setdefault(row["ID"], {k: row[k] for k in ("wav", "duration")})
    data = sb.dataio.dataset.DynamicItemDataset(rows)

    @sb.utils.data_pipeline.takes("id", "wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio(utt_id, wav):
        clean = read_audio(wav, sample_rate=sample_rate)
        if snr == "clean":
            return clean
        return mixer.mix_fixed(clean, float(snr), stable_seed(seed, utt_id, snr))[0]

    data.add_dynamic_item(audio)
    data.set_output_keys(["id", "sig"])
    return data


def write_outputs(rows, out_dir: Path, p_targets):
    """CSV, markdown table, JSON and an EER / minDCF vs SNR plot."""
    keys = ["snr", "system", "EER"] + [f"minDCF@{p:g}" for p in p_targets] + ["n_trials"]
    with open(out_dir / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out_dir / "results.json").write_text(json.dumps(rows, indent=2))
    systems = list(dict.fromkeys(r["system"] for r in rows))
    snrs = list(dict.fromkeys(r["snr"] for r in rows))
    by = {(r["snr"], r["system"]): r for r in rows}
    p0 = p_targets[0]
    lines = ["| SNR (dB) | " + " | ".join(f"{s} EER % / minDCF@{p0:g}" for s in systems) + " |",
             "|---|" + "---|" * len(systems)]
    for snr in snrs:
        cells = [f"{by[snr, s]['EER']:.2f} / {by[snr, s][f'minDCF@{p0:g}']:.3f}" for s in systems]
        lines.append(f"| {snr} | " + " | ".join(cells) + " |")
    (out_dir / "results.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    labels = [str(s) for s in snrs]
    for s in systems:
        axes[0].plot(labels, [by[snr, s]["EER"] for snr in snrs], marker="o", label=s)
        axes[1].plot(labels, [by[snr, s][f"minDCF@{p0:g}"] for snr in snrs], marker="o", label=s)
    axes[0].set_ylabel("EER (%)")
    axes[1].set_ylabel(f"minDCF (p_target={p0:g})")
    for ax in axes:
        ax.set_xlabel("SNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "eer_vs_snr.png", dpi=120)
    plt.close(fig)
    return "\n".join(lines)


def main(argv):
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    hparams, corpus = start_speaker_recipe(hparams_file, run_opts, overrides)
    device = run_opts["device"] or infer_device()  # P12
    out_dir = Path(hparams["output_folder"])
    data_folder, trial_file, musan = hparams["data_folder"], hparams["verification_file"], musan_root(hparams, corpus)

    from speechbrain_dyncp.data.voxceleb import prepare_voxceleb

    csvs = prepare_voxceleb(data_folder, hparams["save_folder"], verification_pairs_file=trial_file, splits=["test"])
    scorer, features, _ = load_speaker_scorer(hparams["speaker_model"], device)
    n_mels = features.compute_fbanks.n_mels
    systems = {}
    for name, folder in hparams["systems"].items():
        g, domain = (None, "mel") if folder is None else load_trained_enhancer(folder, n_mels, device=device)
        systems[name] = SpeakerEmbedder(EnhancedFeatures(features, g, domain), scorer.normalizer,
                                        scorer.embedding_model).to(device).eval()
    mixer = MusanMixer(musan, pool=hparams["musan_pool"], sample_rate=hparams["sample_rate"])
    trials = None
    rows = []
    for snr in hparams["snrs"]:
        data = mixture_dataset([csvs["enrol"], csvs["test"]], mixer, snr, hparams["seed"], hparams["sample_rate"])
        for name, embedder in systems.items():
            t0 = time.perf_counter()
            emb = compute_embeddings(data, embedder, batch_size=1, device=device)
            if trials is None:
                trials = read_trials(trial_file, known_ids=emb)
            m = evaluate_trials(trials, emb, p_targets=hparams["p_targets"],
                                out_dir=hparams["save_folder"], tag=f"_{name}_{snr}")
            rows.append({"snr": snr, "system": name, **m, "seconds": round(time.perf_counter() - t0, 1)})
            logger.info("SNR %s %s: EER %.2f%%, minDCF@%g %.3f (%.0f s)", snr, name, m["EER"],
                        hparams["p_targets"][0], m[f"minDCF@{hparams['p_targets'][0]:g}"], rows[-1]["seconds"])
    table = write_outputs(rows, out_dir, hparams["p_targets"])
    print(table)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main(sys.argv[1:])
