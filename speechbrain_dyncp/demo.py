"""``dyncp demo``: the project's main job end to end, on real recordings where present.

Noisy speech in; enhanced speech out; VAD and noise class read off the gate masks,
SNR and the speaker's F0 register off the T-F mask; MACs saved; the streaming path checked
against the offline one; a figure written.

Data (``data="auto"``): the held-out test mixtures of the real-speech corpus
(``data/real_speech.py``: speakers, noise segments and rooms the bundled model
never heard) where the development recordings are found (``$DYNCP_SHARED_DATA``
or ``../shared/data`` beside the working directory or the package), otherwise
the embedded synthetic corpus (a seed the synthetic model never saw). The
summary says which.

Authors
 * speechbrain-dyncp contributors
"""

import json
import math
import os
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from speechbrain_dyncp.data.audio import read_audio, write_audio
from speechbrain_dyncp.data.labels import load_frame_labels
from speechbrain_dyncp.data.synth import build_corpus
from speechbrain_dyncp.efficiency import compute_vs_snr, dynamism, pool_dynamism
from speechbrain_dyncp.metrics.enhancement import si_sdr
from speechbrain_dyncp.probes.metrics import class_scores, f0_scores, snr_scores, vad_scores

DEMO_CORPUS_SEED = 1  # the synthetic model is trained on seed-0 corpora
REAL_CORPUS = Path("results/DynCP/real_speech_seed0")  # shared with recipes/DynCP/train.py


def find_shared_data() -> Optional[Path]:
    """The development recordings folder, or None."""
    env = os.environ.get("DYNCP_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[2] / "shared" / "data"]
    return next((c for c in candidates if (c / "speechocean762").is_dir()), None)


def _real_items(shared: Path, n_files: int):
    """``n_files`` evenly spaced held-out mixtures of the real test split (prepared once)."""
    import csv

    from speechbrain_dyncp.data.real_speech import prepare_real_speech

    rows = list(csv.DictReader(open(prepare_real_speech(shared, REAL_CORPUS)["test"])))
    rows = [rows[i] for i in np.linspace(0, len(rows) - 1, min(n_files, len(rows))).round().astype(int)]
    return [dict(id=r["ID"], noisy=r["noisy_wav"], clean=r["clean_wav"], labels=r["labels"], noise=r["noise"],
                 snr=float(r["snr"])) for r in rows]


def _test_items(corpus, n_files: int):
    vb = Path(corpus.voicebank)
    log = {}
    for line in (vb / "log_testset.txt").read_text().splitlines():
        utt, noise, snr = line.split()
        log[utt] = (noise, float(snr))
    utts = sorted(log)[:n_files]
    return [dict(id=u, noisy=vb / "noisy_testset_wav" / f"{u}.wav", clean=vb / "clean_testset_wav" / f"{u}.wav",
                 labels=vb / "labels" / f"{u}.npz", noise=log[u][0], snr=log[u][1]) for u in utts]


def _pad(wavs):
    t = max(w.shape[0] for w in wavs)
    batch = torch.stack([torch.nn.functional.pad(w, (0, t - w.shape[0])) for w in wavs])
    return batch, torch.tensor([w.shape[0] / t for w in wavs])


def run_demo(out_dir: Path, model: Optional[str] = None, n_files: int = 24, quiet: bool = False,
             data: str = "auto") -> int:
    """Run the demo; writes enhanced wavs, ``summary.json`` and ``demo_figure.png`` to ``out_dir``.

    Arguments
    ---------
    out_dir : pathlib.Path
        Output folder (the corpus is built in ``out_dir/corpus`` once).
    model : str, optional
        Enhancer model folder or bundled name (default: the bundled real-speech model).
    n_files : int
        Number of test mixtures to analyse.
    quiet : bool
        Do not print the summary.
    data : {"auto", "real", "embedded"}
        Test mixtures: real where found (auto), or forced.

    Returns
    -------
    int
        Exit status (0).
    """
    from speechbrain_dyncp.inference.loading import DEFAULT_ENHANCER, load_enhancer
    from speechbrain_dyncp.plots import plot_analysis

    t0 = time.time()
    out_dir = Path(out_dir)
    shared = find_shared_data() if data in ("auto", "real") else None
    if data == "real" and shared is None:
        raise FileNotFoundError("dyncp demo --data real: no development recordings found (set DYNCP_SHARED_DATA)")
    if shared is not None:
        items, source = _real_items(shared, n_files), f"real test split of {shared} (unseen speakers, noises, rooms)"
    else:
        corpus = build_corpus(out_dir / "corpus", preset="demo", seed=DEMO_CORPUS_SEED)
        items, source = _test_items(corpus, n_files), f"embedded synthetic corpus (seed {DEMO_CORPUS_SEED})"
    enh = load_enhancer(model)
    noisy = [read_audio(it["noisy"]) for it in items]
    clean = [read_audio(it["clean"]) for it in items]
    labels = [load_frame_labels(it["labels"]) for it in items]
    batch, lens = _pad(noisy)
    t1 = time.time()
    result = enh.analyze_batch(batch, lens)
    infer_s = time.time() - t1
    clean_b, _ = _pad(clean)
    sisdr_in = si_sdr(batch, clean_b, lens)
    sisdr_out = si_sdr(result.wav, clean_b, lens)
    noisy_items = torch.tensor([math.isfinite(it["snr"]) for it in items])

    vad_t, vad_p, f0_t, f0_p, snr_t, snr_p, cls_t, cls_p = [], [], [], [], [], [], [], []
    enh_dir = out_dir / "enhanced"
    for i, it in enumerate(items):
        n = min(int(result.frame_mask[i].sum()), len(labels[i]["vad"]))
        out_wav = enh_dir / f"{it['id']}.wav"
        write_audio(out_wav, result.wav[i, : noisy[i].shape[0]], 16000, overwrite=True)
        if result.vad_prob is not None:
            vad_t.append(labels[i]["vad"][:n])
            vad_p.append(result.vad_prob[i, :n].numpy())
        if result.f0_hz is not None:
            f0_t.append(labels[i]["f0"][:n])
            f0_p.append(result.f0_hz[i, :n].numpy())
        if result.snr_db is not None and math.isfinite(it["snr"]):  # clean items have no SNR to read
            snr_t.append(it["snr"])
            snr_p.append(result.utterance_snr(i))
        # scored only where the file's noise label is one of the model's classes: the real-speech
        # model's vocabulary (babble_crowd, ...) has no counterpart in the synthetic corpus' labels
        if result.noise_probs is not None and it["noise"] in result.noise_classes:
            cls_t.append(it["noise"])
            cls_p.append(result.noise_class(i)[0])

    summary = {
        "model": str(model or f"bundled {DEFAULT_ENHANCER}"),
        "data": source,
        "files": len(items),
        "audio_seconds": float(sum(w.shape[0] for w in noisy) / 16000),
        # over the noisy items: a clean input's SI-SDR (100+ dB) would swamp the means
        "si_sdr_noisy_db": float(sisdr_in[noisy_items].mean()),
        "si_sdr_enhanced_db": float(sisdr_out[noisy_items].mean()),
        "si_sdr_improvement_db": float((sisdr_out - sisdr_in)[noisy_items].mean()),
        "noisy_files": int(noisy_items.sum()),
        "realised_channel_ratio": float(np.mean(result.realised_ratio)),
        "macs_saved_pct": float(np.mean(result.macs_saved_pct)),
        "offline_rtf": infer_s / float(sum(w.shape[0] for w in noisy) / 16000),
    }
    if vad_t:
        summary["vad"] = vad_scores(np.concatenate(vad_t), np.concatenate(vad_p))
    if f0_t:
        summary["f0"] = f0_scores(np.concatenate(f0_t), np.concatenate(f0_p))
    if snr_t:
        summary["snr"] = snr_scores(snr_t, snr_p)
    if cls_t:
        summary["noise"] = class_scores(cls_t, cls_p)
    if not bool(noisy_items.all()):  # clean inputs: how much of the clean speech survives
        summary["clean_passthrough_si_sdr_db"] = float(sisdr_out[~noisy_items].mean())
    summary["dynamism"] = _dynamism_summary(result, labels, [min(it["snr"], 40.0) for it in items])
    if f0_t:
        summary["register"] = _register_summary(f0_t, [result.register_hz(i) for i in range(len(items))])

    # Streaming check on the first file: same audio as offline, after the fixed latency.
    stream = enh.streamer()
    x = noisy[0]
    chunks = [stream.process(c).wav for c in x.split(160)]  # 10 ms chunks, like live audio
    streamed = torch.cat(chunks + [stream.finish()])[stream.latency:]
    summary["streaming_max_abs_diff"] = float((streamed - result.wav[0, : x.shape[0]]).abs().max())
    summary["streaming_latency_ms"] = 1000.0 * stream.latency / 16000
    summary["streaming_macs_saved_pct"] = stream.macs_saved_pct

    fig = plot_analysis(out_dir / "demo_figure.png", noisy[0], result, item=0, title=items[0]["id"],
                        clean=clean[0], ref_vad=labels[0]["vad"], ref_f0=labels[0]["f0"])
    summary["figure"] = str(fig)
    summary["wall_seconds"] = time.time() - t0
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if not quiet:
        print(format_summary(summary))
    return 0


def _register_summary(f0_true, registers) -> dict:
    """Speaker register (``EnhancementAnalysis.register_hz``) vs the reference's median voiced F0;
    a file with a reference register and no estimate counts as a miss (``n_missing``)."""
    from speechbrain_dyncp.probes.metrics import register_scores

    labelled = [(float(np.median(ref[ref > 0])), reg) for ref, reg in zip(f0_true, registers) if (ref > 0).sum() >= 10]
    pairs = [(ref, reg) for ref, reg in labelled if reg is not None]
    if not pairs:
        return {"n": 0}
    scores = register_scores(*zip(*pairs))
    return {"n": len(labelled), "n_missing": len(labelled) - len(pairs),
            "within_10pct": scores["within_10pct"] * len(pairs) / len(labelled),
            "median_rel_error": scores["median_rel_error"]}


def _dynamism_summary(result, labels, snrs) -> dict:
    """Does compute follow the input? efficiency.dynamism pooled over the files.

    Speech frames are the corpus' exact VAD labels (not the probe), so the
    speech / non-speech split measures the gates, not the probe's errors.
    """
    speech = torch.zeros_like(result.frame_mask)
    for i, lab in enumerate(labels):
        n = min(int(result.frame_mask[i].sum()), len(lab["vad"]))
        speech[i, :n] = torch.as_tensor(np.asarray(lab["vad"][:n]) > 0.5)
    per_file = dynamism(result.gates, result.frame_mask, speech)
    pooled = pool_dynamism(per_file)
    pooled["speech_frames_from"] = "reference VAD labels"
    if len(set(snrs)) > 1:
        pooled["compute_vs_input_snr"] = compute_vs_snr([d["active_ratio_mean"] for d in per_file], snrs)
    return pooled


def format_summary(s: dict) -> str:
    """Short human-readable summary of :func:`run_demo`'s ``summary.json``."""
    lines = [
        f"DynCP demo: {s['files']} unseen mixtures ({s['audio_seconds']:.0f} s of audio), model {s['model']}",
        f"  data: {s['data']}",
        f"  SI-SDR  noisy {s['si_sdr_noisy_db']:.2f} dB -> enhanced {s['si_sdr_enhanced_db']:.2f} dB "
        f"({s['si_sdr_improvement_db']:+.2f} dB, {s['noisy_files']} noisy files)"
        + (f"; clean input passed through: {s['clean_passthrough_si_sdr_db']:.1f} dB"
           if "clean_passthrough_si_sdr_db" in s else ""),
        f"  compute channels used {100 * s['realised_channel_ratio']:.1f}%, MACs saved {s['macs_saved_pct']:.1f}% "
        f"(streaming, executed: {s['streaming_macs_saved_pct']:.1f}%), offline RTF {s['offline_rtf']:.3f}",
    ]
    if "dynamism" in s:
        d = s["dynamism"]
        pauses = "n/a" if d["nonspeech_over_speech"] is None else f"{d['nonspeech_over_speech']:.2f}"
        line = (f"  dynamism: active ratio std {d['active_ratio_std']:.3f} within files, non-speech/speech "
                f"{pauses}, switching channels {100 * d['switching_channels']:.0f}%, "
                f"flips {100 * d['flip_rate']:.2f}%")
        if "compute_vs_input_snr" in d:
            line += f", {d['compute_vs_input_snr']['slope_per_10db']:+.3f} per 10 dB SNR"
        lines.append(line)
    if "vad" in s:
        lines.append(f"  VAD from masks: accuracy {100 * s['vad']['accuracy']:.1f}%  ROC-AUC {s['vad']['roc_auc']:.3f}")
    if "noise" in s:
        lines.append(f"  noise class from masks: accuracy {100 * s['noise']['accuracy']:.1f}% ({s['noise']['n']} files)")
    if "snr" in s:
        lines.append(f"  SNR from masks: MAE {s['snr']['mae_db']:.2f} dB")
    if s.get("register", {}).get("n"):
        r = s["register"]
        lines.append(f"  F0 register from masks (median F0 per file, not a pitch track): within 10% for "
                     f"{100 * r['within_10pct']:.0f}% of {r['n']} files ({r['n_missing']} without an estimate), "
                     f"median error {100 * r['median_rel_error']:.1f}%")
    lines.append(f"  streaming == offline: max |diff| {s['streaming_max_abs_diff']:.2e} "
                 f"at {s['streaming_latency_ms']:.1f} ms latency")
    lines.append(f"  figure: {s['figure']}   ({s['wall_seconds']:.0f} s)")
    return "\n".join(lines)
