#!/usr/bin/env python3
"""Real test split, side by side in one run: DynCP vs RNNoise vs the noisy input, and the probes vs tools.

On the held-out mixtures of the real-speech corpus (``data/real_speech.py``:
speakers, noise segments and rooms never seen in training), one thread:

* quality per condition (dry / reverberant x clean, 20, 10, 5, 0, -5 dB): SI-SDR,
  PESQ-WB, STOI and DNSMOS OVRL (``speechmos``, its ONNX models ship in the wheel)
  for the noisy passthrough, RNNoise (``pyrnnoise``, output aligned by cross-
  correlation with the input), the DynCP model offline and on the C streaming
  path (``streaming.FastStreamer``; its SI-SDR and its largest difference to the
  offline output), and optionally a second model (``--compare``);
* VAD F1 / ROC-AUC on the 0-10 dB mixtures: the mask probe vs Silero VAD and
  WebRTC VAD (mode 2), against the clean reference's frame labels;
* SNR MAE on the noisy mixtures: the probe vs WADA-SNR (Kim & Stern 2008, its
  table rebuilt by simulation below);
* noise class: the probe vs log-mel statistics + logistic regression fitted on
  the same fitting mixtures as the probes; expected calibration error;
* F0: utterance register (median F0 over the estimator's voiced frames) within
  10 % of the reference register (the model's read-out, the T-F mask's where it has
  one, and the gate probe's), and frame raw pitch accuracy (50 cents) over the
  reference's voiced frames (gate probe, T-F mask track) vs torchcrepe-tiny on the
  noisy input;
* compute: realised ratio, MACs saved, active ratio on non-speech vs speech
  frames (clean-reference VAD), offline and streaming real-time factors.

    python benchmarks/bench_real.py --out benchmarks/results/real.json --md docs/results_real.md

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import csv
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_probes import logmel_stats, silero_tool, webrtc_tool  # noqa: E402

from speechbrain_dyncp.data.audio import read_audio  # noqa: E402
from speechbrain_dyncp.data.labels import load_frame_labels  # noqa: E402
from speechbrain_dyncp.efficiency import dynamism  # noqa: E402
from speechbrain_dyncp.metrics.enhancement import pesq_wb, si_sdr, stoi  # noqa: E402
from speechbrain_dyncp.probes.metrics import cents, vad_scores  # noqa: E402

SR, HOP = 16000, 256


def rnnoise(wav: np.ndarray) -> np.ndarray:
    """RNNoise (pyrnnoise, 48 kHz inside) on float audio, delay removed by cross-correlation with the input."""
    import pyrnnoise

    den = pyrnnoise.RNNoise(SR)
    pcm = (np.clip(wav, -1, 1) * 32767).astype(np.int16)
    frames = [np.atleast_2d(f) for _, f in den.denoise_chunk(pcm, partial=True)]
    out = np.concatenate(frames, axis=1)[0].astype(np.float64) / 32767
    n = len(wav)
    lags = np.arange(0, 1024)
    score = [np.dot(out[lag : lag + n - 1024], wav[: n - 1024]) for lag in lags]
    lag = int(lags[int(np.argmax(score))])
    return np.pad(out[lag:], (0, max(0, n - len(out) + lag)))[:n]


_WADA = None


def wada_snr(wav: np.ndarray) -> float:
    """WADA-SNR: the mean-log vs log-mean gap of |x| mapped to SNR through a simulated table.

    Kim & Stern (Interspeech 2008) model speech amplitudes as Gamma(0.4) and the
    noise as Gaussian; their table of that gap against SNR is rebuilt here by
    simulation (seeded) instead of copied.
    """
    global _WADA
    if _WADA is None:
        rng = np.random.default_rng(0)
        speech = rng.gamma(0.4, 1.0, 400_000) * rng.choice([-1, 1], 400_000)
        noise = rng.standard_normal(400_000)
        snrs = np.arange(-20.0, 101.0)
        gaps = []
        for snr in snrs:
            z = np.abs(speech / speech.std() * 10 ** (snr / 20) + noise) + 1e-12
            gaps.append(np.log(z.mean()) - np.log(z).mean())
        _WADA = (np.array(gaps), snrs)
    # magnitudes floored at one 16-bit step: digital zeros would send the mean log to -inf
    x = np.maximum(np.abs(wav), 2.0**-15)
    gap = np.log(x.mean()) - np.log(x).mean()
    gaps, snrs = _WADA
    return float(np.interp(gap, gaps, snrs))  # the gap rises with SNR


def _one_thread_onnxruntime():
    """speechmos opens its ONNX sessions with onnxruntime's default thread pool, which spins
    on every core; this benchmark measures on one thread, so its sessions get one too."""
    import onnxruntime as ort

    if getattr(ort.InferenceSession, "_one_thread", False):
        return
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    base = ort.InferenceSession

    class OneThreadSession(base):
        _one_thread = True

        def __init__(self, path, sess_options=None, **kwargs):
            super().__init__(path, sess_options=sess_options or opts, **kwargs)

    ort.InferenceSession = OneThreadSession


def dnsmos_parts(wav: np.ndarray) -> dict:
    """DNSMOS P.835 OVRL / SIG / BAK and DNSMOS P.808 (a separate network on log-mel input: the
    independent check beside P.835 for models trained with the P.835 term, losses/dnsmos.py)."""
    _one_thread_onnxruntime()
    from speechmos import dnsmos

    r = dnsmos.run(np.clip(wav, -1, 1).astype(np.float32), SR)
    return {"dnsmos": float(r["ovrl_mos"]), "dnsmos_sig": float(r["sig_mos"]), "dnsmos_bak": float(r["bak_mos"]),
            "dnsmos_p808": float(r["p808_mos"])}


def quality(est: np.ndarray, clean: np.ndarray, full: bool = True) -> dict:
    """SI-SDR (and PESQ-WB, STOI, DNSMOS P.835 parts and P.808 where ``full``) of ``est`` against ``clean``."""
    e, c = torch.from_numpy(est).float()[None], torch.from_numpy(clean).float()[None]
    out = {"si_sdr": float(si_sdr(e, c)[0])}
    if full:
        out.update(pesq=pesq_wb(e[0], c[0]), stoi=stoi(e[0], c[0]), **dnsmos_parts(est))
    return out


def expected_calibration_error(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """ECE: |accuracy - confidence| averaged over equal-width confidence bins, weighted by their counts."""
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


def register(f0: np.ndarray, voiced: np.ndarray):
    """Median F0 over voiced frames, or None with fewer than 10."""
    f = f0[voiced & (f0 > 0)]
    return float(np.median(f)) if len(f) >= 10 else None


def load_model(folder):
    from speechbrain_dyncp.inference.enhancement import DynCPEnhancement

    return DynCPEnhancement.from_hparams(source=str(Path(folder).resolve()), savedir=None)


def run_item(row, model, tools, compare=None):
    """Every system and tool on one test mixture -> a record of raw results."""
    from speechbrain_dyncp.streaming import FastStreamer

    noisy = read_audio(row["noisy_wav"], SR).double().numpy()
    clean = read_audio(row["clean_wav"], SR).double().numpy()
    lab = load_frame_labels(row["labels"])
    dur = len(noisy) / SR
    rec = {"id": row["ID"], "condition": row["condition"], "snr": float(row["snr"]), "noise": row["noise"],
           "duration": dur, "corpus": row["corpus"]}
    t0 = time.perf_counter()
    res = model.analyze_batch(torch.from_numpy(noisy).float()[None])
    rec["rtf_offline"] = (time.perf_counter() - t0) / dur
    enh = res.wav[0].double().numpy()
    stream = FastStreamer(model.enhancer)
    t0 = time.perf_counter()
    chunks = [stream.process(c) for c in np.array_split(noisy.astype(np.float32), max(1, len(noisy) // 4096))]
    streamed = np.concatenate(chunks + [stream.finish()])[stream.latency :][: len(noisy)]
    rec["rtf_stream"] = (time.perf_counter() - t0) / dur
    rec["stream_max_diff"] = float(np.abs(streamed - enh).max())
    rec["q"] = {"noisy": quality(noisy, clean), "rnnoise": quality(rnnoise(noisy), clean),
                "dyncp": quality(enh, clean), "dyncp_stream": quality(streamed, clean, full=False)}
    if compare is not None:
        rec["q"]["compare"] = quality(compare.enhance_batch(torch.from_numpy(noisy).float()[None])[0].double().numpy(),
                                      clean)
    n = int(res.frame_mask[0].sum())
    vad = lab["vad"][:n].astype(bool)
    gates, fmask = res.gates, res.frame_mask
    rec["ratio"], rec["macs_saved"] = res.realised_ratio[0], res.macs_saved_pct[0]
    dyn = dynamism(gates, fmask, torch.from_numpy(np.pad(vad, (0, gates.shape[2] - n)))[None])[0]
    rec["active_speech"], rec["active_pause"] = dyn.get("active_ratio_speech"), dyn.get("active_ratio_nonspeech")
    rec["vad_true"] = vad.astype(np.uint8).tolist()
    noisy_t = torch.from_numpy(noisy).float()
    if res.vad_prob is not None:
        rec["vad_probe"] = res.vad_prob[0, :n].tolist()
    for name in ("silero", "webrtc"):
        rec[f"vad_{name}"] = tools[name](noisy_t, n).tolist()
    if res.snr_db is not None:
        rec["snr_probe"] = res.utterance_snr(0)
    rec["snr_wada"] = wada_snr(noisy)
    if res.noise_probs is not None:
        label, prob = res.noise_class(0)
        rec["noise_probe"], rec["noise_conf"] = label, prob
    rec["logmel"] = logmel_stats(noisy_t).tolist()
    f0_ref = lab["f0"][:n]
    crepe_f0, crepe_voiced = tools["crepe"](noisy_t, n)
    probe_f0 = res.f0_hz[0, :n].numpy() if res.f0_hz is not None else np.zeros(n)
    rec["register"] = {"ref": register(f0_ref, f0_ref > 0), "probe": res.register_hz(0),
                       "gate_probe": res.gate_register_hz(0), "crepe": register(crepe_f0, crepe_voiced)}
    voiced = f0_ref > 0
    rec["rpa"] = {k: (np.abs(cents(f[voiced], f0_ref[voiced])) < 50).tolist() if voiced.any() else []
                  for k, f in (("probe", probe_f0), ("mask", mask_f0_track(model, noisy_t, n)), ("crepe", crepe_f0))}
    return rec


def mask_f0_track(model, noisy_t, n):
    """The T-F mask's frame F0 track (probes/mask_register.py; the register is its median): for the
    frame raw pitch accuracy only, as the model offers no pitch track."""
    from speechbrain_dyncp.probes.mask_register import masked_autocorrelation_f0

    with torch.no_grad():
        out = model.enhancer(noisy_t[None])
        f0, _ = masked_autocorrelation_f0(model.enhancer.spectrum(noisy_t[None]), out.mask, model.enhancer.window, SR)
    return f0[0, :n].numpy()


def crepe_with_voicing():
    """torchcrepe-tiny F0 and a voicing decision (periodicity > 0.5) on our frame grid."""
    import torchcrepe

    def run(wav, n):
        f0, per = torchcrepe.predict(wav[None], SR, HOP, 50.0, 550.0, "tiny", batch_size=1024, device="cpu",
                                     pad=True, return_periodicity=True)
        f0, per = f0[0].numpy(), per[0].numpy()
        pad = max(0, n - len(f0))
        return np.pad(f0, (0, pad), mode="edge")[:n], np.pad(per, (0, pad))[:n] > 0.5

    return run


def _mean(values):
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def summarise_quality(records) -> dict:
    """Mean metric per system and condition ("dry_5.0", ...) and per SNR over dry + reverberant."""
    table = defaultdict(lambda: defaultdict(list))
    for r in records:
        snr = r["condition"].split("_", 1)[1]
        for system, q in r["q"].items():
            for metric, v in q.items():
                table[f"{system}|{metric}"][r["condition"]].append(v)
                table[f"{system}|{metric}"][f"all_{snr}"].append(v)
    return {key: {cond: _mean(vals) for cond, vals in sorted(conds.items())} for key, conds in table.items()}


def summarise_probes(records, fit_rows) -> dict:
    """VAD, SNR, noise class and F0 scores of the probe and the tools."""
    out = {}
    mid = [r for r in records if 0 <= r["snr"] <= 10]
    truth = np.concatenate([r["vad_true"] for r in mid])
    for name in ("probe", "silero", "webrtc"):
        if all(f"vad_{name}" in r for r in mid):
            prob = np.concatenate([r[f"vad_{name}"] for r in mid])
            out[f"vad_{name}"] = vad_scores(truth, prob)
    noisy = [r for r in records if math.isfinite(r["snr"])]
    if all("snr_probe" in r for r in noisy):
        out["snr_mae_probe"] = float(np.mean([abs(r["snr_probe"] - r["snr"]) for r in noisy]))
    out["snr_mae_wada"] = float(np.mean([abs(r["snr_wada"] - r["snr"]) for r in noisy]))
    out["snr_mae_by_snr"] = {str(s): {k: float(np.mean([abs(r[f"snr_{k}"] - s) for r in noisy if r["snr"] == s]))
                                      for k in ("probe", "wada") if all(f"snr_{k}" in r for r in noisy)}
                             for s in sorted({r["snr"] for r in noisy})}
    if all("noise_probe" in r for r in records):
        correct = np.array([r["noise_probe"] == r["noise"] for r in noisy])
        out["noise_acc_probe"] = float(correct.mean())
        out["noise_ece_probe"] = expected_calibration_error(np.array([r["noise_conf"] for r in noisy]), correct)
        out["noise_acc_probe_with_clean"] = float(np.mean([r["noise_probe"] == r["noise"] for r in records]))
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.array([logmel_stats(read_audio(r["noisy_wav"], SR)).tolist() for r in fit_rows])
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0)).fit(X, [r["noise"] for r in fit_rows])
    pred = clf.predict(np.array([r["logmel"] for r in noisy]))
    out["noise_acc_logmel"] = float(np.mean(pred == np.array([r["noise"] for r in noisy])))
    for k in ("probe", "gate_probe", "crepe"):  # probe = what the model reports (the T-F mask's, where it has one)
        pairs = [(r["register"]["ref"], r["register"].get(k)) for r in records if r["register"]["ref"]]
        ok = [p is not None and abs(p / ref - 1) <= 0.10 for ref, p in pairs]
        out[f"register_within10_{k}"] = float(np.mean(ok)) if ok else None
        out[f"register_n_{k}"] = len(ok)
    for k in ("probe", "mask", "crepe"):  # probe = the gate probes' frame F0 read-out
        rpa = np.concatenate([np.asarray(r["rpa"].get(k, []), bool) for r in records])
        out[f"rpa_{k}"] = float(rpa.mean()) if len(rpa) else None
    return out


def summarise_compute(records) -> dict:
    speech = [r["active_speech"] for r in records if r["active_speech"] is not None]
    pause = [r["active_pause"] for r in records if r["active_pause"] is not None]
    return {"realised_ratio": _mean([r["ratio"] for r in records]),
            "macs_saved_pct": _mean([r["macs_saved"] for r in records]),
            "active_ratio_speech": _mean(speech), "active_ratio_nonspeech": _mean(pause),
            "nonspeech_over_speech": _mean(pause) / _mean(speech) if speech and pause else None,
            "rtf_offline": _mean([r["rtf_offline"] for r in records]),
            "rtf_stream_c": _mean([r["rtf_stream"] for r in records]),
            "stream_max_abs_diff": max(r["stream_max_diff"] for r in records)}


def markdown(summary) -> str:
    """The per-SNR quality table and the probe table of ``summary``."""
    q = summary["quality"]
    systems = [s for s in ("noisy", "rnnoise", "dyncp", "dyncp_stream", "compare") if f"{s}|si_sdr" in q]
    snrs = ["all_clean", "all_20.0", "all_10.0", "all_5.0", "all_0.0", "all_-5.0"]
    lines = [f"Real test split: {summary['n_items']} mixtures, model `{summary['model']}`"
             + (f", compared with `{summary['compare']}`" if summary.get("compare") else "") + ".", "",
             "| metric | system | " + " | ".join(s.split("_", 1)[1] for s in snrs) + " |",
             "|---|---|" + "---|" * len(snrs)]
    for metric in ("si_sdr", "pesq", "stoi", "dnsmos", "dnsmos_p808"):
        for s in systems:
            row = q.get(f"{s}|{metric}")
            if row:
                cells = [f"{row[c]:.2f}" if row.get(c) is not None else "-" for c in snrs]
                lines.append(f"| {metric} | {s} | " + " | ".join(cells) + " |")
    p = summary["probes"]
    lines += ["", "| read-out | probe | tools |", "|---|---|---|"]
    vad = lambda k: p.get(f"vad_{k}", {})  # noqa: E731
    fmt = lambda v, spec=".3f": "-" if v is None else format(v, spec)  # noqa: E731
    lines.append(f"| VAD F1 / ROC-AUC (0-10 dB) | {fmt(vad('probe').get('f1'))} / {fmt(vad('probe').get('roc_auc'))} "
                 f"| Silero {fmt(vad('silero').get('f1'))} / {fmt(vad('silero').get('roc_auc'))}; "
                 f"WebRTC {fmt(vad('webrtc').get('f1'))} |")
    lines.append(f"| SNR MAE (dB) | {fmt(p.get('snr_mae_probe'), '.2f')} | WADA-SNR {fmt(p['snr_mae_wada'], '.2f')} |")
    lines.append(f"| noise class accuracy (ECE) | {fmt(p.get('noise_acc_probe'))} ({fmt(p.get('noise_ece_probe'))}) "
                 f"| log-mel + LR {fmt(p['noise_acc_logmel'])} |")
    lines.append(f"| register within 10 % | {fmt(p['register_within10_probe'])} (gate probe "
                 f"{fmt(p.get('register_within10_gate_probe'))}) | torchcrepe-tiny {fmt(p['register_within10_crepe'])} |")
    lines.append(f"| raw pitch accuracy (50 cents) | gate probe {fmt(p['rpa_probe'])}, T-F mask track "
                 f"{fmt(p.get('rpa_mask'))} | torchcrepe-tiny {fmt(p['rpa_crepe'])} |")
    c = summary["compute"]
    lines += ["", f"Compute: realised ratio {fmt(c['realised_ratio'])}, MACs saved {fmt(c['macs_saved_pct'], '.1f')} %, "
              f"active ratio non-speech / speech {fmt(c['active_ratio_nonspeech'])} / {fmt(c['active_ratio_speech'])} "
              f"({fmt(c['nonspeech_over_speech'], '.2f')}), RTF offline {fmt(c['rtf_offline'], '.4f')}, "
              f"C stream {fmt(c['rtf_stream_c'], '.4f')} (1 thread), stream vs offline max |diff| "
              f"{fmt(c['stream_max_abs_diff'], '.1e')}."]
    return "\n".join(lines) + "\n"


_WORKER = {}


def _init_worker(model_dir, compare_dir):
    torch.set_num_threads(1)
    _WORKER.update(model=load_model(model_dir), compare=load_model(compare_dir) if compare_dir else None,
                   tools={"silero": silero_tool()[0], "webrtc": webrtc_tool(2)[0], "crepe": crepe_with_voicing()})


def _work(row):
    return run_item(row, _WORKER["model"], _WORKER["tools"], _WORKER["compare"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=str(REPO / "results/DynCP/real_speech_seed0"),
                    help="prepare_real_speech output folder (prepared from --shared_data if absent)")
    ap.add_argument("--shared_data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--model", default=str(REPO / "speechbrain_dyncp/pretrained/dyncp_real_base"))
    ap.add_argument("--compare", default=None, help="a second model folder (e.g. the synthetic model)")
    ap.add_argument("--max_items", type=int, default=0, help="evenly spaced subset (0 = all)")
    ap.add_argument("--fit_items", type=int, default=400, help="fitting mixtures for the log-mel baseline")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (one thread each)")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/real.json"))
    ap.add_argument("--md", default=None, help="also write the tables as markdown")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from speechbrain_dyncp.data.manifest import manifest_digest
    from speechbrain_dyncp.data.real_speech import prepare_fit_mixtures, prepare_real_speech

    outputs = prepare_real_speech(args.shared_data, args.corpus)
    rows = list(csv.DictReader(open(outputs["test"])))
    if args.max_items and len(rows) > args.max_items:
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, args.max_items).round().astype(int)]
    fit_rows = list(csv.DictReader(open(prepare_fit_mixtures(args.corpus, args.fit_items))))
    t0 = time.time()
    from multiprocessing import get_context

    # each worker process: one thread, its own model and tools (RTFs stay one-thread figures)
    with get_context("spawn").Pool(args.jobs, _init_worker, (args.model, args.compare)) as pool:
        records = []
        for i, rec in enumerate(pool.imap(_work, rows)):
            records.append(rec)
            if i % 25 == 0:
                print(f"{i + 1}/{len(rows)} items, {time.time() - t0:.0f} s", flush=True)
    summary = {"model": str(Path(args.model).relative_to(REPO)) if Path(args.model).is_relative_to(REPO) else args.model,
               "compare": args.compare, "n_items": len(records), "threads": 1,
               "test_digest": manifest_digest(outputs["test"]),  # which mixtures (docs/data.md lists the split's)
               "quality": summarise_quality(records), "probes": summarise_probes(records, fit_rows),
               "compute": summarise_compute(records), "wall_s": round(time.time() - t0, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    table = markdown(summary)
    if args.md:
        Path(args.md).write_text(table)
    print(table)
    return summary


if __name__ == "__main__":
    main()
