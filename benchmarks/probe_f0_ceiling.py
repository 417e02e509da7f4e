"""How far could binary per-frame units go on F0, and where along the gate path is pitch lost?

The mask probes read F0 off gates whose first job is enhancement. This script
asks what the same read-out reaches when the units are trained for F0 alone:
a network shaped like one DynCP gate (1x1 conv to ``--hidden`` -> ReLU -> 1x1
conv to ``--units`` -> Heaviside with the surrogate gradient) and a linear head,
trained on log2 F0 of voiced frames of the fitting speakers, scored on the
held-apart speakers of a ``fit_probes.py`` output folder (its ``save/masks.pt``
holds the split and the exact labels). Trained twice: on the files as they
are, and with every training file also played at each ``--speeds`` factor
(``data/speed.py``), as ``train.yaml: speed_perturb`` does for the enhancer.

What the network reads (``--sources``, one network each):

* ``spectrum``: the noisy compressed spectrum ``|X|^0.3`` (what the enhancer
  sees), causally averaged over ``--window`` frames like a gate's input;
* ``block<i>``: the input of gated block i of ``--enhancer_experiment`` (what
  its gate sees), averaged the same way; ``block0`` is the front-end output;
* ``gates``: all binary gates of that enhancer (what the mask probes see), so
  the network is a non-linear read-out of the masks, an upper bound for any
  probe on them.

Reported: R^2 of F0 in Hz on the test speakers (the probes' headline metric)
and on the training frames, R^2 of ln F0 and the R^2 of the per-speaker means
(register), next to the fit folder's own F0 probe.

Usage::

    python benchmarks/probe_f0_ceiling.py --fit_dir results/DynCP_probes/v3_full_joint_sp_fitsp \
        --out benchmarks/results/probe_f0_ceiling.json
    python benchmarks/probe_f0_ceiling.py --fit_dir results/DynCP_probes/v3_full_joint_sp_fitsp \
        --enhancer_experiment results/DynCP/v3/full_joint_sp --sources spectrum block0 block4 block8 gates \
        --augment_only --out benchmarks/results/probe_f0_ceiling_path.json

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import r2_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "recipes" / "DynCP"))

from speechbrain_dyncp.data.audio import read_audio  # noqa: E402
from speechbrain_dyncp.data.speed import perturb_speed, perturb_speed_labels  # noqa: E402
from speechbrain_dyncp.lobes.gates import heaviside, moving_average  # noqa: E402
from fit_probes import load_enhancer, noisy_paths, unperturbed  # noqa: E402


def spectrum(wav: torch.Tensor) -> torch.Tensor:
    """Compressed magnitude ``[257, N]`` of a waveform (the enhancer's STFT grid and feature)."""
    spec = torch.stft(wav, 512, 256, window=torch.hann_window(512), center=True, return_complex=True)
    return (spec.abs() + 1e-9) ** 0.3


class GatePath:
    """The tensors along an enhancer's gate path for one waveform: ``source -> [N, D]``."""

    def __init__(self, sources, window: int, enhancer=None):
        self.sources, self.window, self.enhancer = sources, window, enhancer
        self.blocks = {int(m.group(1)) for m in (re.fullmatch(r"block(\d+)", s) for s in sources) if m}
        self._inputs = {}
        if enhancer is not None:
            for i in self.blocks:  # a block's input is what its gate pools (gate_input="block")
                enhancer.tcn.blocks[i].register_forward_pre_hook(
                    lambda _m, args, i=i: self._inputs.__setitem__(i, args[0][0]))

    @torch.no_grad()
    def __call__(self, wav: torch.Tensor) -> dict:
        out = {}
        if "spectrum" in self.sources:
            out["spectrum"] = moving_average(spectrum(wav)[None], self.window)[0].T
        if self.enhancer is not None:
            gates = self.enhancer(wav[None]).gates[0]  # L, N, H
            if "gates" in self.sources:
                out["gates"] = gates.permute(1, 0, 2).flatten(1)
            for i in self.blocks:
                out[f"block{i}"] = moving_average(self._inputs[i][None], self.window)[0].T
        return out


def voiced_rows(items, speeds, path: GatePath):
    """Per source: stacked features of the voiced frames of ``items`` at each speed; F0 (Hz); speakers."""
    X, y, spk = {s: [] for s in path.sources}, [], []
    for u, wav in items:
        vad, f0 = torch.from_numpy(u["vad"]), torch.from_numpy(u["f0"])
        for s in speeds:
            w = perturb_speed(wav, s)
            _, f = perturb_speed_labels(vad, f0, s, w.numel())  # factor 1: the labels as they are
            v = f > 0
            for name, feats in path(w).items():
                X[name].append(feats[v])
            y.append(f[v])
            spk += [u["spk"]] * int(v.sum())
    return {k: torch.cat(v) for k, v in X.items()}, torch.cat(y), np.array(spk)


def train_and_score(Xtr, ytr, Xte, yte, spk, a):
    """Fit the gate-like pitch net on (Xtr, ytr); scores on the test rows."""
    torch.manual_seed(a.seed)
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
    return {"dims": Xtr.shape[1], "train_frames": len(Xtr), "test_frames": len(Xte),
            "r2_hz_train": r2_score(ytr.numpy(), fit), "r2_hz": r2_score(true, pred),
            "r2_ln": r2_score(np.log(true), np.log(pred)), "r2_speaker_means": r2_score(tm, pm)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fit_dir", required=True)
    ap.add_argument("--sources", nargs="+", default=["spectrum"], help="spectrum, block<i>, gates")
    ap.add_argument("--enhancer_experiment", default=None, help="train.py output folder (block<i> and gates)")
    ap.add_argument("--speeds", type=float, nargs="+", default=[0.8, 0.85, 0.9, 0.95, 1.05, 1.1, 1.15, 1.2, 1.25])
    ap.add_argument("--augment_only", action="store_true", help="skip the run without speed augmentation")
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--units", type=int, default=256)
    ap.add_argument("--steps", type=int, default=16000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    bad = [s for s in a.sources if s not in ("spectrum", "gates") and not re.fullmatch(r"block\d+", s)]
    if bad:
        ap.error(f"unknown --sources {bad}; use spectrum, block<i> or gates")
    torch.set_num_threads(2)
    enhancer, ckpt = None, None
    if set(a.sources) - {"spectrum"}:
        if not a.enhancer_experiment:
            ap.error(f"--sources {a.sources} read an enhancer: give --enhancer_experiment")
        enhancer, ckpt = load_enhancer({"enhancer": None, "enhancer_ckpt": None, "ckpt_select_key": "select",
                                        "enhancer_experiment": a.enhancer_experiment})
    path = GatePath(a.sources, a.window, enhancer)
    fit_dir = Path(a.fit_dir)
    utts = unperturbed(torch.load(fit_dir / "save" / "masks.pt", weights_only=False)["utts"])
    wav = noisy_paths(fit_dir / "save")
    split = {k: [(u, read_audio(wav[u["id"]], 16000)) for u in utts if u["split"] == k] for k in ("train", "test")}
    res = {"fit_dir": str(fit_dir), "enhancer_ckpt": ckpt,
           "net": f"[avg{a.window}] -> {a.hidden} ReLU -> {a.units} Heaviside -> linear, {a.steps} steps",
           "train_speakers": len({u["spk"] for u, _ in split["train"]}),
           "test_speakers": len({u["spk"] for u, _ in split["test"]})}
    report = fit_dir / "probes" / "report.json"
    if report.exists():
        res["mask_probe_f0_r2_hz"] = json.loads(report.read_text())["test_scores_mask_probes"]["f0"]["r2"]
    Xte, yte, spk = voiced_rows(split["test"], [1.0], path)
    runs = (() if a.augment_only else (("no_augmentation", [1.0]),)) + (("speed_augmentation", [1.0, *a.speeds]),)
    for name, speeds in runs:
        Xtr, ytr, _ = voiced_rows(split["train"], speeds, path)
        for source in a.sources:
            t0 = time.time()
            r = train_and_score(Xtr[source], ytr, Xte[source], yte, spk, a)
            r["seconds"] = round(time.time() - t0, 1)
            res.setdefault(name, {})[source] = r
            print(name, source, r, flush=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
