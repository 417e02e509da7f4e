#!/usr/bin/env python3
"""Recipe: linear probes on a DynCP enhancer's gate masks (VAD, noise class, SNR, F0, ...).

Every head under ``heads:`` in the YAML is a registered head of
:mod:`speechbrain_dyncp.probes.heads` (its label, fit, metric) with the YAML's
overrides of its probe spec.

Runs the enhancer over a dataset, collects the binary gates ``[L, N, H]`` of
every utterance with its labels, fits one scikit-learn probe per head on the
training speakers (ranking features and keeping ``n_channels``), evaluates the
exported :class:`~speechbrain_dyncp.lobes.probes.MaskProbes` (the weighted-sum
lobe, i.e. what runs in the enhancer) on held-apart speakers, and writes into
``<probes_folder>``: ``probes.ckpt`` (state_dict), ``report.json``,
``report.md``, ``weights.png``, ``channel_curve.png``, ``timeline_*.png``.

Labels: the corpus' ``labels/<utt>.npz`` (exact for the embedded corpus);
otherwise (``label_source: estimate``, or no npz) an energy VAD and a YIN F0 on
the clean reference (:mod:`speechbrain_dyncp.data.labels`). Noise class and SNR
come from the mixing log columns of the manifest.

Usage
-----
    python recipes/DynCP/fit_probes.py hparams/DynCP/fit_probes.yaml \\
        --enhancer_ckpt=results/DynCP/1234/phi0.25/save
    python recipes/DynCP/fit_probes.py hparams/DynCP/fit_probes.yaml --data_folder=real \\
        --enhancer_ckpt=... --shared_data=../shared/data

Authors
 * speechbrain-dyncp contributors
"""

import csv
import json
import logging
import sys
from pathlib import Path

import numpy as np
import speechbrain as sb
import torch
import yaml
from hyperpyyaml import load_hyperpyyaml

from speechbrain_dyncp.data.audio import read_audio
from speechbrain_dyncp.data.labels import item_frame_labels, n_frames
from speechbrain_dyncp.data.speed import perturb_speed, perturb_speed_labels, speed_rates
from speechbrain_dyncp.efficiency import macs_per_frame
from speechbrain_dyncp.lobes.probes import MaskProbes
from speechbrain_dyncp.probes.features import ProbeSpec, get_spec, spec_features
from speechbrain_dyncp.probes.fit import channel_curve, fit_probe, speaker_split
from speechbrain_dyncp.probes.heads import HEADS, SNR_CEILING, has_label, head, score_head
from speechbrain_dyncp.probes.plots import plot_channel_curves, plot_timeline, plot_weight_maps

logger = logging.getLogger(__name__)


def prepare_rows(hp) -> list:
    """Manifest rows (dicts) of the pooled probe data, each with a ``split``."""
    folder = str(hp["data_folder"])
    if folder == "real_speech":  # the enhancer's real corpus: fit on training speakers, test on its test split
        from speechbrain_dyncp.data.real_speech import prepare_fit_mixtures, prepare_real_speech

        outputs = prepare_real_speech(hp["shared_data"], hp["real_corpus_folder"], seed=hp["corpus_seed"])
        fit_csv = prepare_fit_mixtures(hp["real_corpus_folder"], hp["max_utterances"], seed=hp["corpus_seed"])
        return ([dict(r, split="train") for r in csv.DictReader(open(fit_csv))]
                + [dict(r, split="test") for r in csv.DictReader(open(outputs["test"]))])
    if folder == "real":
        from speechbrain_dyncp.probes.real_mixtures import build_real_mixtures

        csv_path = build_real_mixtures(
            hp["shared_data"], Path(hp["save_folder"]) / "real_mix", hp["real_mixtures_per_item"],
            reverb_prob=hp["real_reverb_prob"], test_fraction=hp["test_fraction"],
            test_speakers=hp["test_speakers"] or ("rl",), seed=hp["seed"],
        )
        return list(csv.DictReader(open(csv_path)))
    from speechbrain_dyncp.data.voicebank import prepare_voicebank

    if folder == "embedded":
        from speechbrain_dyncp.data.synth import build_corpus

        folder = build_corpus(Path(hp["output_folder"]) / "corpus", hp["corpus_preset"], hp["corpus_seed"]).voicebank
    csvs = prepare_voicebank(folder, hp["save_folder"])
    rows = [dict(r, manifest=s) for s in hp["probe_sets"] for r in csv.DictReader(open(csvs[s]))]
    rng = np.random.default_rng(hp["seed"])
    if len(rows) > hp["max_utterances"]:
        rows = [rows[i] for i in sorted(rng.choice(len(rows), hp["max_utterances"], replace=False))]
    spk = [r["spk_id"] for r in rows]
    if hp["split_by"] == "manifest":  # the enhancer's own split: test speakers unseen by enhancer and probes
        is_test = np.array([r["manifest"] in hp["probe_test_sets"] for r in rows], dtype=bool)
    elif hp["split_by"] == "utterance":  # diagnostic only: test speakers are also seen in training
        is_test = rng.random(len(rows)) < hp["test_fraction"]
    else:
        is_test = speaker_split(spk, hp["test_fraction"], hp["seed"]) | np.isin(spk, list(hp["test_speakers"]))
    for r, t in zip(rows, is_test):
        r["split"] = "test" if t else "train"
    return rows


def noisy_paths(save_folder) -> dict:
    """``ID -> noisy wav`` over the VoiceBank-style manifests :func:`prepare_rows` wrote in ``save_folder``."""
    manifests = [Path(save_folder) / f"{s}.csv" for s in ("train", "valid", "test")]
    return {r["ID"]: r["noisy_wav"] for m in manifests if m.exists() for r in csv.DictReader(open(m))}


def _meta(ckpt_dir: Path) -> dict:
    """The CKPT.yaml meta of a SpeechBrain checkpoint folder (empty if absent)."""
    meta = ckpt_dir / "CKPT.yaml"
    return yaml.safe_load(meta.read_text()) or {} if meta.exists() else {}


def load_enhancer(hp):
    """The enhancer with weights from ``enhancer_ckpt``: a file, a CKPT folder, or a save folder
    (the CKPT+ with the largest ``ckpt_select_key`` meta, as the training recipe selects; else the newest)."""
    enhancer, ckpt = hp["enhancer"], hp["enhancer_ckpt"]
    experiment = hp.get("enhancer_experiment")
    if experiment:  # a train.py output folder: its own definition, so nothing can drift
        from speechbrain_dyncp.export import read_module_definition
        from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer

        _, kwargs = read_module_definition(Path(experiment) / "hyperparams.yaml", "enhancer")
        enhancer = DynCPEnhancer(**kwargs)
        ckpt = ckpt or str(Path(experiment) / "save")
    if not ckpt:
        logger.warning("enhancer_ckpt is null: probing a RANDOMLY INITIALISED enhancer (development only)")
        return enhancer.eval(), None
    path = Path(ckpt)
    if path.is_dir():
        found = [path / "enhancer.ckpt"] if (path / "enhancer.ckpt").exists() else sorted(path.glob("CKPT+*/enhancer.ckpt"))
        if not found:
            raise FileNotFoundError(f"No enhancer.ckpt in {path} or its CKPT+* folders")
        path = max(found, key=lambda p: (_meta(p.parent).get(hp["ckpt_select_key"], float("-inf")), p.parent.name))
    enhancer.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    logger.info("Loaded enhancer weights from %s", path)
    return enhancer.eval(), str(path)


def frame_labels(row, n: int, source: str) -> dict:
    """``vad`` and ``f0`` ``[n]`` for one manifest row (corpus npz or estimated on the clean signal)."""
    vad, f0 = item_frame_labels(row.get("labels") or "", row["clean_wav"], n, source, item=row["ID"])
    return {"vad": vad, "f0": f0}


def unperturbed(utts: list) -> list:
    """``utts`` without the speed-perturbed fitting copies of :func:`collect` (the files as they are)."""
    return [u for u in utts if u.get("src", u["id"]) == u["id"]]  # caches older than the copies have no src


@torch.no_grad()
def collect(enhancer, rows, hp, speed: float = 1.0) -> list:
    """Run the enhancer; per utterance: gates ``[L, N, H]`` uint8 + labels. Bad items are skipped.

    ``speed`` != 1 plays every item that much faster first (``data/speed.py``:
    the labels follow, F0 scaled); such utterances get the id ``<ID>@x<speed>``.
    """
    rows = sorted(rows, key=lambda r: float(r["duration"]))
    utts, bs = [], hp["batch_size"]
    for i in range(0, len(rows), bs):
        batch, wavs, n_orig = [], [], []
        for r in rows[i : i + bs]:
            try:
                wav = read_audio(r["noisy_wav"], 16000)
            except (OSError, ValueError) as exc:
                logger.warning("skipping %s: %s", r["ID"], exc)
                continue
            wavs.append(perturb_speed(wav, speed))
            n_orig.append(n_frames(len(wav)))
            batch.append(r)
        if not wavs:
            continue
        T = max(len(w) for w in wavs)
        x = torch.stack([torch.nn.functional.pad(w, (0, T - len(w))) for w in wavs])
        out = enhancer(x, torch.tensor([len(w) / T for w in wavs]))
        for b, r in enumerate(batch):
            n = int(out.frame_mask[b].sum())
            uid = r["ID"] if speed == 1.0 else f"{r['ID']}@x{speed}"
            utt = {"id": uid, "src": r["ID"], "spk": r["spk_id"], "split": r["split"], "noise": r["noise"],
                   "snr": min(float(r["snr"]), SNR_CEILING)}
            utt["gates"] = out.gates[b, :, :n].to(torch.uint8).numpy()
            lab = frame_labels(r, n if speed == 1.0 else n_orig[b], hp["label_source"])
            if speed != 1.0:
                vad, f0 = perturb_speed_labels(torch.from_numpy(lab["vad"]), torch.from_numpy(lab["f0"]),
                                               speed, len(wavs[b]))
                lab = {"vad": vad.numpy(), "f0": f0.numpy()}
            utt.update(lab)
            utts.append(utt)
        logger.info("masks%s: %d / %d utterances", "" if speed == 1.0 else f" (speed {speed})", len(utts), len(rows))
    return utts


def head_rows(spec: ProbeSpec, utts, cap, rng, fitting: bool = False):
    """Features and labels of ``spec`` over ``utts`` (at most ``cap`` rows, spread over utterances)."""
    quota = None if cap is None else max(1, int(np.ceil(cap / max(1, len(utts)))))
    h, Xs, ys = head(spec.name), [], []
    for u in utts:
        X, idx = spec_features(spec, torch.from_numpy(u["gates"]).unsqueeze(0), fitting=fitting)
        label = h.label_of(u)
        if h.frame_label:  # label of the row's (last) frame, whatever the feature level
            y = np.asarray(label)[idx[:, 1].numpy()]
            if spec.voiced_only:
                keep = y > 0
                X, y = X[torch.from_numpy(keep)], y[keep]
        else:
            if not has_label(label):  # e.g. no register without voicing
                continue
            y = np.array([label] * len(X))
        if quota is not None and len(X) > quota:
            sel = np.sort(rng.choice(len(X), quota, replace=False))
            X, y = X[torch.from_numpy(sel)], y[sel]
        Xs.append(X.numpy().astype(np.float32))
        ys.append(y)
    return np.concatenate(Xs), np.concatenate(ys)


def evaluate_lobe(probes: MaskProbes, utts) -> dict:
    """Test scores of the exported weighted-sum lobe (all frames / utterance-end values)."""
    preds = {n: [] for n in probes.heads}
    truth = {n: [] for n in probes.heads}
    for u in utts:
        out = probes(torch.from_numpy(u["gates"]).float().unsqueeze(0))
        for name in probes.heads:
            spec, y, h = probes.spec(name), out[name][0].numpy(), head(name)
            label = h.label_of(u)
            if h.frame_label:  # scored on every frame (a rate head: its running/window estimate)
                preds[name].append(y)
                truth[name].append(label)
            elif h.is_scored(label):
                last = y[-1]
                classes = probes.heads[name]["classes"]
                preds[name].append([classes[int(np.argmax(last))]] if spec.task == "classify" and classes else [last])
                truth[name].append([label])
    scores = {}
    for name in probes.heads:
        spec = probes.spec(name)
        t, p = np.concatenate(truth[name]), np.concatenate(preds[name])
        scores[name] = score_head(name, spec.task, t, p, probes.heads[name]["classes"] or None)
    return scores


def main(argv):
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    with open(hparams_file) as fin:
        hp = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(hp["output_folder"], hyperparams_to_save=hparams_file, overrides=overrides)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    out_dir = Path(hp["probes_folder"])
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(hp["seed"])

    rows = prepare_rows(hp)
    enhancer, ckpt = load_enhancer(hp)
    cache = Path(hp["save_folder"]) / "masks.pt"
    cache.parent.mkdir(parents=True, exist_ok=True)  # the real corpus writes nothing into save_folder
    speeds = [float(f) for f in hp.get("fit_speed_factors") or [] if float(f) != 1.0]
    for factor in speeds:
        speed_rates(factor)  # a bad factor fails before any mask is collected
    key = {"ckpt": ckpt, "ids": [r["ID"] for r in rows], "label_source": hp["label_source"], "speeds": speeds}
    from speechbrain_dyncp.checkpoints import load_with_arrays  # weights-only: a planted masks.pt runs no code
    found = load_with_arrays(cache) if cache.exists() else None
    if found is not None and found["key"] == key:
        utts = found["utts"]  # same enhancer weights and data: reuse the collected masks
        split = {r["ID"]: r["split"] for r in rows}
        for u in utts:
            u["split"] = split[u.get("src", u["id"])]
        logger.info("Reusing the masks collected in %s", cache)
    else:
        utts = collect(enhancer, rows, hp)
        fit_rows = [r for r in rows if r["split"] == "train"]
        for speed in speeds:  # speed-perturbed copies of the fitting items only
            utts += collect(enhancer, fit_rows, hp, speed)
        torch.save({"key": key, "utts": utts}, cache)
    train = [u for u in utts if u["split"] == "train"]
    test = [u for u in utts if u["split"] == "test"]
    L, _, H = train[0]["gates"].shape
    logger.info("train: %d utts (%d speakers), test: %d utts (%d speakers)", len(train),
                len({u["spk"] for u in train}), len(test), len({u["spk"] for u in test}))

    fitted, curves, info = {}, {}, {}
    for name, cfg in hp["heads"].items():  # registered heads (probes/heads.py) with the YAML's overrides
        spec = get_spec(name, **(cfg or {})) if name in HEADS else ProbeSpec(name=name, **(cfg or {}))
        Xtr, ytr = head_rows(spec, train, hp["max_train_samples"], rng, fitting=True)
        Xte, yte = head_rows(spec, test, hp["max_train_samples"], rng)
        if spec.task == "classify":  # classes unseen in training cannot be predicted: report them
            unseen = sorted(set(np.unique(yte).tolist()) - set(np.unique(ytr).tolist()))
            info[name] = {"test_classes_unseen_in_train": [str(c) for c in unseen]}
        fitted[name] = fit_probe(spec, Xtr, ytr, hp["ranking"], hp["max_train_samples"], hp["seed"])
        curves[name] = channel_curve(spec, Xtr, ytr, Xte, yte, fitted[name].ranking, hp["curve_sizes"],
                                     hp["max_train_samples"], hp["seed"])
        info.setdefault(name, {}).update(spec=spec.to_dict(), n_train_rows=len(Xtr), n_test_rows=len(Xte))
        logger.info("%s: curve %s", name, [(c["n_channels"], round(c["score"], 3)) for c in curves[name]])

    probes = MaskProbes.from_sklearn(fitted, L, H)
    torch.save(probes.state_dict(), out_dir / "probes.ckpt")
    scores = evaluate_lobe(probes, test)

    # MACs depend on the gates only through the mean number of active channels per frame
    frames = sum(u["gates"].shape[1] for u in test)
    active = sum(float(u["gates"].sum()) for u in test) / frames
    enh_macs = macs_per_frame(enhancer, torch.full((1, L, 1, H), active / (L * H)))
    gates_all = torch.cat([torch.from_numpy(u["gates"]) for u in test], dim=1).unsqueeze(0).float()
    cost = probes.probe_cost_per_frame(gates=gates_all)  # measured active channels on the test set
    for kind in ("worst", "expected"):
        cost[f"{kind}_fraction_of_enhancer_effective_macs"] = cost[f"total_{kind}"] / enh_macs["effective"]
        cost[f"{kind}_fraction_of_enhancer_dense_macs"] = cost[f"total_{kind}"] / enh_macs["dense"]

    report = {
        "enhancer_ckpt": ckpt, "data_folder": str(hp["data_folder"]), "label_source": hp["label_source"],
        "split_by": hp["split_by"] if str(hp["data_folder"]) != "real" else "speaker",
        "n_train_utts": len(train), "n_test_utts": len(test),
        "train_speakers": sorted({u["spk"] for u in train}), "test_speakers": sorted({u["spk"] for u in test}),
        "gate_density_test": active / (L * H), "enhancer_macs_per_frame": enh_macs, "probe_cost_per_frame": cost,
        "test_scores_mask_probes": scores, "channel_curves": curves, "heads": info,
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (out_dir / "report.md").write_text(markdown(report))
    plot_weight_maps(probes, out_dir / "weights.png")
    plot_channel_curves(curves, out_dir / "channel_curve.png")
    for u in test[: hp["n_timeline_plots"]]:
        out = probes(torch.from_numpy(u["gates"]).float().unsqueeze(0))
        plot_timeline(u["id"], {k: v[0].numpy() for k, v in out.items()}, u,
                      {k: cfg["classes"] for k, cfg in probes.heads.items()}, out_dir / f"timeline_{u['id']}.png")
    logger.info("Probe report: %s", out_dir / "report.md")
    print((out_dir / "report.md").read_text())


def markdown(r: dict) -> str:
    """A short human-readable report."""
    s = r["test_scores_mask_probes"]
    lines = [
        "# Mask-probe report", "",
        f"enhancer: `{r['enhancer_ckpt']}`; data: `{r['data_folder']}`; labels: {r['label_source']}; "
        f"split by {r['split_by']}",
        f"train {r['n_train_utts']} utts / {len(r['train_speakers'])} speakers; "
        f"test {r['n_test_utts']} utts / {len(r['test_speakers'])} "
        f"{'seen (utterance split)' if r['split_by'] == 'utterance' else 'held-apart'} speakers; "
        f"gate density {r['gate_density_test']:.3f}", "",
        "| head | metric | test |", "|---|---|---|",
    ]
    for name, sc in s.items():
        for k in ("accuracy", "f1", "roc_auc", "balanced_accuracy", "r2", "r2_log", "rmse_hz", "rmse_cents", "rpa_50c", "mae_db"):
            if k in sc:
                lines.append(f"| {name} | {k} | {sc[k]:.4f} |")
    c = r["probe_cost_per_frame"]
    m = r["enhancer_macs_per_frame"]
    lines += ["", f"probe cost per frame, measured on the test gates: {c['total_expected']:.0f} ops "
              f"= {100 * c['expected_fraction_of_enhancer_effective_macs']:.3f}% of the enhancer's effective MACs "
              f"({m['effective']:.0f}/frame; dense {m['dense']:.0f}); worst case (all selected channels active) "
              f"{c['total_worst']} ops = {100 * c['worst_fraction_of_enhancer_effective_macs']:.3f}%", ""]
    for name, curve in r["channel_curves"].items():
        lines.append(f"- {name} vs channels: " + ", ".join(f"{p['n_channels']}: {p['score']:.3f}" for p in curve))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main(sys.argv[1:])
