"""Where the F0 information is lost: linear decodability of log-F0 along the gate path.

Reads a ``recipes/DynCP/fit_probes.py`` output folder (its manifests in
``save/*.csv`` and the cached masks ``save/masks.pt``, which hold the speaker
split and the frame labels), reruns the enhancer of ``--enhancer_experiment``
on up to ``--max_utts`` utterances and fits the same ridge regression
(standardised features, ``--alpha``) of ln F0 on voiced frames, trained on the
training speakers and scored (R^2 of ln F0) on the held-apart speakers, from:

* ``gates``: the binary gates (what the probes see);
* ``scores``: the gates' raw scores before the Heaviside step;
* ``gate_input``: the moving-averaged tensor that feeds the gates;
* ``noisy_logspec``: the log magnitude STFT of the noisy input (a reference).

Also reported: the share of ln F0 variance that lies between speakers (a
speaker-disjoint F0 probe must predict the register of unseen speakers).

Usage::

    python benchmarks/probe_f0_information.py --fit_dir results/DynCP_probes/v2_jointA \\
        --enhancer_experiment results/DynCP/v2/jointA --out benchmarks/results/probe_f0_information_small_joint.json

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "recipes" / "DynCP"))


def record_gate_path(enhancer):
    """Patch every ChannelGate of ``enhancer`` to record (pooled input, scores) ``[N, C]`` per call."""
    from speechbrain_dyncp.lobes.gates import ChannelGate, moving_average

    store = []
    for gate in (m for m in enhancer.modules() if isinstance(m, ChannelGate)):
        def scores(x, frame_mask=None, _g=gate):
            s = ChannelGate.scores(_g, x, frame_mask)
            store.append((moving_average(x, _g.window, _g.causal)[0].T.numpy(), s[0].T.numpy()))
            return s
        gate.scores = scores
    return store


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fit_dir", required=True)
    ap.add_argument("--enhancer_experiment", required=True)
    ap.add_argument("--max_utts", type=int, default=160)
    ap.add_argument("--alpha", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    import fit_probes as fp
    from speechbrain_dyncp.data.audio import read_audio

    fit_dir = Path(a.fit_dir)
    utts = fp.unperturbed(torch.load(fit_dir / "save" / "masks.pt", weights_only=False)["utts"])
    wav = fp.noisy_paths(fit_dir / "save")
    enhancer, ckpt = fp.load_enhancer({"enhancer": None, "enhancer_ckpt": None, "ckpt_select_key": "select",
                                       "enhancer_experiment": a.enhancer_experiment})
    store = record_gate_path(enhancer)
    rng = np.random.default_rng(a.seed)
    feats = {k: ([], []) for k in ("gates", "scores", "gate_input", "noisy_logspec")}
    ys = ([], [])
    with torch.no_grad():
        for u in [utts[i] for i in rng.permutation(len(utts))[: a.max_utts]]:
            store.clear()
            x = read_audio(wav[u["id"]], 16000)
            enhancer(x[None])
            n, v = u["gates"].shape[1], u["f0"] > 0
            spec = torch.stft(x, 512, 256, window=torch.hann_window(512), return_complex=True).abs().T[:n]
            s = np.concatenate([sc for _, sc in store], 1)[:n]
            k = int(u["split"] == "test")
            feats["gates"][k].append((s[v] > 0).astype(np.float32))
            feats["scores"][k].append(s[v])
            feats["gate_input"][k].append(np.concatenate([p for p, _ in store], 1)[:n][v])
            feats["noisy_logspec"][k].append(np.log(spec.numpy()[v] + 1e-4))
            ys[k].append(np.log(u["f0"][v]))
    ytr, yte = np.concatenate(ys[0]), np.concatenate(ys[1])
    lf = {s: np.concatenate([np.log(u["f0"][u["f0"] > 0]) for u in utts if u["spk"] == s]) for s in {u["spk"] for u in utts}}
    allf = np.concatenate(list(lf.values()))
    within = np.concatenate([f - f.mean() for f in lf.values()])
    res = {"enhancer_ckpt": ckpt, "n_train_frames": len(ytr), "n_test_frames": len(yte), "alpha": a.alpha,
           "between_speaker_share_of_lnf0_variance": float(1 - within.var() / allf.var()), "r2_ln_f0": {}}
    for name, (tr, te) in feats.items():
        Xtr, Xte = np.concatenate(tr), np.concatenate(te)
        mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-6
        m = Ridge(alpha=a.alpha).fit((Xtr - mu) / sd, ytr)
        res["r2_ln_f0"][name] = {"dims": Xtr.shape[1], "train": float(r2_score(ytr, m.predict((Xtr - mu) / sd))),
                                 "test_speakers": float(r2_score(yte, m.predict((Xte - mu) / sd)))}
    Path(a.out).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
