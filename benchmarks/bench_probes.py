"""Mask probes next to dedicated tools on the same noisy mixtures: accuracy and compute.

Reads the output folder of ``recipes/DynCP/fit_probes.py`` (its resolved
``hyperparams.yaml``, the cached masks ``save/masks.pt`` and
``probes/probes.ckpt``) and scores, on the held-apart test speakers:

* VAD: the probe vs Silero VAD (``silero-vad``, weights in the wheel) and WebRTC
  VAD (``webrtcvad-wheels``, mode ``--webrtc_mode``) on the noisy input;
* F0 (frames voiced in the reference): the probe vs pYIN (``librosa``) and
  torchcrepe (``--crepe_model``, weights in the wheel) on the noisy input;
* noise class / SNR: the probe vs logistic / ridge regression on log-mel
  statistics (mean and std of 40 log-mel bands) fitted on the same training
  speakers.

Compute: wall time per second of audio on ``--threads`` threads (the probe in
batch mode and frame by frame; the enhancer forward for reference), MACs where
they can be counted (probe: measured ops/frame on the test gates; neural tools:
``torch.utils.flop_counter``; log-mel baseline: analytic). A tool that is not
importable is skipped with a note in the JSON.

Usage::

    python benchmarks/bench_probes.py --fit_dir results/DynCP_probes/v2_full_joint --out benchmarks/results/probes_embedded.json

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "recipes" / "DynCP"))

from speechbrain_dyncp.data.audio import read_audio  # noqa: E402
from speechbrain_dyncp.lobes.probes import MaskProbes  # noqa: E402
from speechbrain_dyncp.probes.metrics import class_scores, f0_scores, snr_scores, vad_scores  # noqa: E402

SR, HOP = 16000, 256


def count_macs(fn) -> float:
    """MACs of ``fn()`` (half the FLOPs torch's flop counter sees); nan if it cannot count."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as fc:
            fn()
        return fc.get_total_flops() / 2
    except Exception:  # scripted or C code the counter cannot see
        return float("nan")


def to_grid(values: np.ndarray, hop_tool: int, n: int) -> np.ndarray:
    """Tool frames of ``hop_tool`` samples -> our frame grid (centre ``t * HOP``)."""
    idx = np.minimum((np.arange(n) * HOP) // hop_tool, len(values) - 1)
    return values[idx]


def silero_tool():
    from silero_vad import load_silero_vad

    model = load_silero_vad()

    def run(wav: torch.Tensor, n: int) -> np.ndarray:
        model.reset_states()
        x = torch.nn.functional.pad(wav, (0, -len(wav) % 512))
        with torch.no_grad():
            p = np.array([float(model(c, SR)) for c in x.split(512)])
        return to_grid(p, 512, n)

    return run, {"params": int(sum(p.numel() for p in model.parameters())), "window_samples": 512}


def webrtc_tool(mode: int):
    import webrtcvad

    vad = webrtcvad.Vad(mode)

    def run(wav: torch.Tensor, n: int) -> np.ndarray:
        pcm = (wav.clamp(-1, 1).numpy() * 32767).astype(np.int16)
        pcm = np.pad(pcm, (0, -len(pcm) % 480))
        dec = np.array([vad.is_speech(pcm[i : i + 480].tobytes(), SR) for i in range(0, len(pcm), 480)], float)
        return to_grid(dec, 480, n)

    return run, {"mode": mode, "window_samples": 480}


def pyin_tool():
    import librosa

    def run(wav: torch.Tensor, n: int) -> np.ndarray:
        f0, _, _ = librosa.pyin(wav.numpy(), fmin=60, fmax=400, sr=SR, frame_length=1024, hop_length=HOP,
                                center=True, fill_na=None)
        return np.pad(f0, (0, max(0, n - len(f0))), mode="edge")[:n]

    return run, {"fmin": 60, "fmax": 400, "frame_length": 1024}


def crepe_tool(model_name: str):
    import torchcrepe

    def run(wav: torch.Tensor, n: int) -> np.ndarray:
        f0 = torchcrepe.predict(wav[None], SR, HOP, 50.0, 550.0, model_name, batch_size=1024, device="cpu", pad=True)
        f0 = f0[0].numpy()
        return np.pad(f0, (0, max(0, n - len(f0))), mode="edge")[:n]

    return run, {"model": model_name, "decoder": "viterbi"}


def logmel_stats(wav: torch.Tensor) -> np.ndarray:
    """Mean and std over frames of 40 log-mel bands (n_fft 512, hop 256)."""
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(SR, n_fft=512, hop_length=HOP, n_mels=40)(wav)
    lm = torch.log(mel + 1e-6)
    return torch.cat([lm.mean(1), lm.std(1)]).numpy()


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fit_dir", required=True, help="output_folder of recipes/DynCP/fit_probes.py")
    ap.add_argument("--out", default="benchmarks/results/probes.json")
    ap.add_argument("--max_test_utts", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--webrtc_mode", type=int, default=2)
    ap.add_argument("--crepe_model", default="tiny")
    ap.add_argument("--skip", nargs="*", default=[], help="tools to skip: silero webrtc pyin crepe")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from hyperpyyaml import load_hyperpyyaml
    from fit_probes import load_enhancer, prepare_rows, unperturbed

    fit_dir = Path(args.fit_dir)
    with open(fit_dir / "hyperparams.yaml") as f:
        hp = load_hyperpyyaml(f)
    rows = {r["ID"]: r for r in prepare_rows(hp)}
    # the files as they are: speed-perturbed fitting copies (fit_speed_factors) served the probes only
    utts = unperturbed(torch.load(Path(hp["save_folder"]) / "masks.pt", weights_only=False)["utts"])
    probes = MaskProbes()
    probes.load_state_dict(torch.load(Path(hp["probes_folder"]) / "probes.ckpt", weights_only=True))
    enhancer, ckpt = load_enhancer(hp)
    train = [u for u in utts if u["split"] == "train"]
    test = [u for u in utts if u["split"] == "test"]
    test = [test[i] for i in np.linspace(0, len(test) - 1, min(args.max_test_utts, len(test))).astype(int)]
    audio_s = sum(len(read_audio(rows[u["id"]]["noisy_wav"], SR)) for u in test) / SR

    tools, notes = {}, {}
    for name, make in (("silero", silero_tool), ("webrtc", lambda: webrtc_tool(args.webrtc_mode)),
                       ("pyin", pyin_tool), ("crepe", lambda: crepe_tool(args.crepe_model))):
        if name in args.skip:
            notes[name] = "skipped by --skip"
            continue
        try:
            tools[name] = make()
        except ImportError as exc:
            notes[name] = f"not importable: {exc}"
    res = {"fit_dir": str(fit_dir), "enhancer_ckpt": ckpt, "n_test_utts": len(test), "audio_s": audio_s,
           "threads": args.threads, "cpu": platform.processor() or platform.machine(),
           "torch": torch.__version__, "notes": notes,
           "scope": "vad/f0 on n_test_utts evenly spaced test utterances; noise/snr on all test utterances", "vad": {}, "f0": {}, "noise": {}, "snr": {}}

    # --- the probes (gates are what the enhancer already computes) ---
    vad_true, f0_true, pv, pf = [], [], [], []
    t_batch = t_frame = 0.0
    for u in test:
        g = torch.from_numpy(u["gates"]).float().unsqueeze(0)
        out, dt = timed(probes, g)
        t_batch += dt
        state, t0 = probes.init_state(1), time.perf_counter()
        for t in range(g.shape[2]):
            _, state = probes.forward_frame(g[:, :, t], state)
        t_frame += time.perf_counter() - t0
        vad_true.append(u["vad"]), f0_true.append(u["f0"])
        pv.append(out["vad"][0].numpy()) if "vad" in out else None
        pf.append(out["f0"][0].numpy()) if "f0" in out else None
    gates_all = torch.cat([torch.from_numpy(u["gates"]) for u in test], 1).unsqueeze(0).float()
    from speechbrain_dyncp.efficiency import macs_per_frame

    enh = macs_per_frame(enhancer, gates_all)
    cost = probes.probe_cost_per_frame(gates=gates_all)
    wav0 = read_audio(rows[test[0]["id"]]["noisy_wav"], SR)[None]
    with torch.no_grad():
        _, t_enh = timed(enhancer, wav0)
    res["enhancer"] = {"macs_per_frame": enh, "wall_s_per_audio_s_offline": t_enh / (wav0.shape[1] / SR)}
    res["probes_compute"] = {
        "ops_per_frame_measured": cost["total_expected"], "ops_per_frame_worst": cost["total_worst"],
        "fraction_of_enhancer_effective_macs": cost["total_expected"] / enh["effective"],
        "fraction_of_enhancer_effective_macs_worst": cost["total_worst"] / enh["effective"],
        "wall_s_per_audio_s_batch": t_batch / audio_s, "wall_s_per_audio_s_frame_by_frame": t_frame / audio_s,
        "per_head": cost["heads"],
    }
    vt, ft = np.concatenate(vad_true), np.concatenate(f0_true)
    if pv:
        res["vad"]["probe"] = vad_scores(vt, np.concatenate(pv))
    if pf:
        res["f0"]["probe"] = f0_scores(ft, np.concatenate(pf))

    # --- dedicated tools on the noisy waveforms ---
    for name, (run, meta) in tools.items():
        preds, t_tool = [], 0.0
        for u in test:
            wav = read_audio(rows[u["id"]]["noisy_wav"], SR)
            p, dt = timed(run, wav, u["gates"].shape[1])
            preds.append(p)
            t_tool += dt
        p = np.concatenate(preds)
        task = "vad" if name in ("silero", "webrtc") else "f0"
        scores = vad_scores(vt, p) if task == "vad" else f0_scores(ft, np.nan_to_num(p, nan=1e-3))
        scores.update(meta, wall_s_per_audio_s=t_tool / audio_s)
        if name == "crepe":
            import torchcrepe

            scores["macs_per_audio_s"] = count_macs(lambda: torchcrepe.predict(
                torch.zeros(1, SR), SR, HOP, 50.0, 550.0, args.crepe_model, batch_size=1024, device="cpu"))
        if name == "silero":
            scores["macs_per_audio_s"] = count_macs(lambda: run(torch.zeros(SR), 63))
        res[task][name] = scores

    # --- noise class / SNR: probe vs log-mel statistics baselines ---
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    all_test = [u for u in utts if u["split"] == "test"]
    all_out = [probes.utterance(torch.from_numpy(u["gates"]).float().unsqueeze(0)) for u in all_test]
    feats = {u["id"]: logmel_stats(read_audio(rows[u["id"]]["noisy_wav"], SR)) for u in train + all_test}
    Xtr = np.stack([feats[u["id"]] for u in train])
    Xte = np.stack([feats[u["id"]] for u in all_test])
    t0 = time.perf_counter()
    for u in test:
        logmel_stats(read_audio(rows[u["id"]]["noisy_wav"], SR))
    t_mel = (time.perf_counter() - t0) / audio_s
    mel_macs = 62.5 * (2.5 * 512 * np.log2(512) + 257 * 40 + 2 * 40)  # FFT + mel matrix + stats, per second
    if "noise" in probes.heads:
        classes = probes.heads["noise"]["classes"]
        y = [u["noise"] for u in all_test]
        res["noise"]["probe"] = class_scores(y, [classes[int(o["noise"][0].argmax())] for o in all_out], classes)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000)).fit(Xtr, [u["noise"] for u in train])
        res["noise"]["logmel_logreg"] = class_scores(y, clf.predict(Xte).tolist(), classes)
        res["noise"]["logmel_logreg"].update(wall_s_per_audio_s=t_mel, macs_per_audio_s_analytic=mel_macs)
    if "snr" in probes.heads:
        y = [u["snr"] for u in all_test]
        res["snr"]["probe"] = snr_scores(y, [float(o["snr"][0]) for o in all_out])
        reg = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(Xtr, [u["snr"] for u in train])
        res["snr"]["logmel_ridge"] = snr_scores(y, reg.predict(Xte))
        res["snr"]["logmel_ridge"].update(wall_s_per_audio_s=t_mel, macs_per_audio_s_analytic=mel_macs)

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2, default=float))
    for task in ("vad", "f0", "noise", "snr"):
        for tool, sc in res[task].items():
            key = {"vad": "accuracy", "f0": "r2", "noise": "accuracy", "snr": "mae_db"}[task]
            extra = f" auc={sc['roc_auc']:.3f}" if task == "vad" else (f" rpa={sc['rpa_50c']:.3f}" if task == "f0" else "")
            print(f"{task:6s} {tool:14s} {key}={sc[key]:.4f}{extra} wall/audio={sc.get('wall_s_per_audio_s', float('nan')):.4g}")
    print(json.dumps(res["probes_compute"], indent=1, default=float)[:800])
    return 0


if __name__ == "__main__":
    sys.exit(main())
