#!/usr/bin/env python3
"""How peaked are Grad-W's position weights P for a given E? (diagnostic, prints one line per temperature)

Usage::

    python recipes/VoxCeleb/gradw_weight_stats.py --speaker_model=results/gradw_E_small/model \
        --corpus=results/ecapa_small/corpus [--n=30] [--seconds=2] [--temperatures 1 0.1]

Draws ``n`` random training-distribution mixtures (seeded) of E's speakers and
reports the mean share of P on the top 10 % of positions (0.10 = uniform) and
the mean of ``max(P) * n_positions`` (1 = uniform).

Authors
 * speechbrain-dyncp contributors
"""

import argparse
from pathlib import Path

import torch

from speechbrain_dyncp.data.audio import read_audio
from speechbrain_dyncp.data.lowsnr import MusanMixer
from speechbrain_dyncp.losses.gradw import GradWLoss
from speechbrain_dyncp.verification.embedding import load_speaker_scorer


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speaker_model", required=True)
    ap.add_argument("--corpus", required=True, help="folder with voxceleb/wav and musan/")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.1])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    e, fbank, labels = load_speaker_scorer(args.speaker_model)
    mixer = MusanMixer(Path(args.corpus) / "musan", pool="train")
    wavs = [w for w in sorted((Path(args.corpus) / "voxceleb" / "wav").rglob("*.wav")) if w.parts[-3] in labels.lab2ind]
    for temp in args.temperatures:
        gen = torch.Generator().manual_seed(args.seed)
        loss = GradWLoss(e, temperature=temp)
        top, peak = [], []
        for i in torch.randperm(len(wavs), generator=gen)[: args.n].tolist():
            clean = read_audio(wavs[i])[: int(args.seconds * 16000)]
            noisy, _ = mixer.mix_train(clean, gen)
            lab = torch.tensor([labels.lab2ind[wavs[i].parts[-3]]])
            p = loss.weights(fbank(clean[None]), fbank(noisy[None]), lab)[0].flatten()
            s = p.sort(descending=True)[0]
            top.append(float(s[: max(1, p.numel() // 10)].sum()))
            peak.append(float(s[0] * p.numel()))
        print(f"temperature {temp:g}: share of P on the top 10% positions {sum(top) / len(top):.3f} "
              f"(uniform 0.100); max(P)*n {sum(peak) / len(peak):.2f} (uniform 1.00); {len(top)} mixtures")


if __name__ == "__main__":
    main()
