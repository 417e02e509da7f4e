"""How far could binary per-frame units go on F0? A dedicated gate-like pitch network.

The mask probes read F0 off gates whose first job is enhancement. This script
asks what the same read-out reaches when the units are trained for F0 alone:
a network shaped like one DynCP gate (causal moving average over
``--window`` frames of the noisy compressed spectrum ``|X|^0.3`` -> 1x1 conv to
``--hidden`` -> ReLU -> 1x1 conv to ``--units`` -> Heaviside with the surrogate
gradient) and a linear head, trained on log2 F0 of voiced frames of the
fitting speakers, scored on the held-apart speakers of a ``fit_probes.py``
output folder (its ``save/masks.pt`` holds the split and the exact labels).
Trained twice: on the files as they are, and with every training file also
played at each ``--speeds`` factor (``data/speed.py``), as ``train.yaml:
speed_perturb`` does for the enhancer.

Reported: R^2 of F0 in Hz on the test speakers (the probes' headline metric)
and on the training frames, R^2 of ln F0 and the R^2 of the per-speaker means
(register), next to the fit folder's own F0 probe.

Usage::

    python benchmarks/probe_f0_ceiling.py --fit_dir results/DynCP_probes/v3_full_joint_sp \\
        --out benchmarks/results/probe_f0_ceiling.json

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import r2_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from speechbrain_dyncp.data.audio import read_audio  # noqa: E402
from speechbrain_dyncp.data.speed import perturb_speed, perturb_speed_labels  # noqa: E402
from speechbrain_dyncp.lobes.gates import heaviside, moving_average  # noqa: E402


def frames(wav: torch.Tensor, window: int) -> torch.Tensor:
    """Causally averaged compressed magnitude ``[N, 257]`` of a waveform (the enhancer's STFT grid)."""
    spec = torch.stft(wav, 512, 256, window=torch.hann_window(512), center=True, return_complex=True)
    return moving_average((spec.abs() + 1e-9)[None] ** 0.3, window)[0].T


def voiced_rows(items, speeds, window):
    """Stacked features, F0 (Hz) and speaker of the voiced frames of ``items`` at each speed."""
    X, y, spk = [], [], []
    for u, wav in items:
        vad, f0 = torch.from_numpy(u["vad"]), torch.from_numpy(u["f0"])
        for s in speeds:
            w = perturb_speed(wav, s)
            _, f = perturb_speed_labels(vad, f0, s, w.numel())  # factor 1: the labels as they are
            v = f > 0
            X.append(frames(w, window)[v])
            y.append(f[v])
            spk += [u["spk"]] * int(v.sum())
    return torch.cat(X), torch.cat(y), np.array(spk)


def train_and_score(train, test, a, speeds):
    """Fit the gate-like pitch net on ``train`` (at ``speeds``); scores on ``test``."""
    torch.manual_seed(a.seed)
    Xtr, ytr, _ = voiced_rows(train, speeds, a.window)
    Xte, yte, spk = voiced_rows(test, [1.0], a.window)
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-6
    net = torch.nn.Sequential(torch.nn.Linear(Xtr.shape[1], a.hidden), torch.nn.ReLU(), torch.nn.Linear(a.hidden, a.units))
    head = torch.nn.Linear(a.units, 1)
    opt = torch.optim.AdamW([*net.parameters(), *head.parameters()], a.lr, weight_decay=1e-3)
    target, ref = torch.log2(ytr), torch.log2(ytr).mean()
    Xn = (Xtr - mu) / sd
    for _ in range(a.steps):
        idx = torch.randint(0, len(Xn), (a.batch,))
        loss = ((head(heaviside(net(Xn[idx])))[:, 0] + ref - target[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = (2 ** (head(heaviside(net((Xte - mu) / sd)))[:, 0] + ref)).numpy()
        fit = (2 ** (head(heaviside(net(Xn)))[:, 0] + ref)).numpy()
    true = yte.numpy()
    means = {s: (pred[spk == s].mean(), true[spk == s].mean()) for s in set(spk)}
    pm, tm = np.array([means[s][0] for s in spk]), np.array([means[s][1] for s in spk])
    return {"train_frames": len(Xtr), "test_frames": len(Xte), "r2_hz_train": r2_score(ytr.numpy(), fit),
            "r2_hz": r2_score(true, pred), "r2_ln": r2_score(np.log(true), np.log(pred)),
            "r2_speaker_means": r2_score(tm, pm)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fit_dir", required=True)
    ap.add_argument("--speeds", type=float, nargs="+", default=[0.8, 0.85, 0.9, 0.95, 1.05, 1.1, 1.15, 1.2, 1.25])
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--units", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    fit_dir = Path(a.fit_dir)
    utts = [u for u in torch.load(fit_dir / "save" / "masks.pt", weights_only=False)["utts"] if "@x" not in u["id"]]
    wav = {r["ID"]: r["noisy_wav"] for s in ("train", "valid", "test") if (fit_dir / "save" / f"{s}.csv").exists()
           for r in csv.DictReader(open(fit_dir / "save" / f"{s}.csv"))}
    split = {k: [(u, read_audio(wav[u["id"]], 16000)) for u in utts if u["split"] == k] for k in ("train", "test")}
    res = {"fit_dir": str(fit_dir), "net": f"avg{a.window} -> {a.hidden} ReLU -> {a.units} Heaviside -> linear",
           "train_speakers": len({u["spk"] for u, _ in split["train"]}),
           "test_speakers": len({u["spk"] for u, _ in split["test"]})}
    report = fit_dir / "probes" / "report.json"
    if report.exists():
        res["mask_probe_f0_r2_hz"] = json.loads(report.read_text())["test_scores_mask_probes"]["f0"]["r2"]
    for name, speeds in (("no_augmentation", [1.0]), ("speed_augmentation", [1.0, *a.speeds])):
        t0 = time.time()
        res[name] = train_and_score(split["train"], split["test"], a, speeds)
        res[name]["seconds"] = round(time.time() - t0, 1)
        print(name, res[name], flush=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
