#!/usr/bin/env python3
"""How peaked are Grad-W's position weights P for a given E? (diagnostic, prints one line per temperature)

Usage::

    python recipes/VoxCeleb/gradw_weight_stats.py --speaker_model=results/gradw_E_small/model \
        --corpus=results/ecapa_small/corpus [--n=30] [--seconds=2] [--temperatures 1 0.1]
    # real speech: a VoxCeleb-layout wav/ folder and a MUSAN-layout folder instead of --corpus
    python recipes/VoxCeleb/gradw_weight_stats.py --speaker_model=results/speaker_real/resnet34/resnet/model \
        --wav_folder=results/speaker_real/seed0/train/wav --musan_folder=results/speaker_real/gradw_musan \
        --temperatures 1 --plot p_resnet.png

Draws ``n`` random training-distribution mixtures (seeded) of E's speakers and
reports the mean share of P on the top 10 % of positions (0.10 = uniform) and
the mean of ``max(P) * n_positions`` (1 = uniform). With a 2-D E (ResNet34:
P over (frequency, time) cells) it also reports the share of P per frequency
band, and ``--plot`` draws that profile and one mixture's P map (first temperature).

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
    ap.add_argument("--corpus", help="folder with voxceleb/wav and musan/ (the embedded corpus)")
    ap.add_argument("--wav_folder", help="VoxCeleb-layout wav/<spk>/... folder (default: <corpus>/voxceleb/wav)")
    ap.add_argument("--musan_folder", help="MUSAN-layout folder (default: <corpus>/musan)")
    ap.add_argument("--plot", help="PNG: P's frequency profile and one mixture's P map at the first temperature "
                    "(2-D E only)")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.1])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    e, fbank, labels = load_speaker_scorer(args.speaker_model)
    if not args.corpus and not (args.wav_folder and args.musan_folder):
        ap.error("give --corpus, or both --wav_folder and --musan_folder")
    wav_root = Path(args.wav_folder or Path(args.corpus) / "voxceleb" / "wav")
    mixer = MusanMixer(Path(args.musan_folder or Path(args.corpus) / "musan"), pool="train")
    wavs = [w for w in sorted(wav_root.rglob("*.wav")) if w.relative_to(wav_root).parts[0] in labels.lab2ind]
    for n_temp, temp in enumerate(args.temperatures):
        gen = torch.Generator().manual_seed(args.seed)
        loss = GradWLoss(e, temperature=temp)
        top, peak, maps = [], [], []  # per temperature: P differs with it
        for i in torch.randperm(len(wavs), generator=gen)[: args.n].tolist():
            clean = read_audio(wavs[i])[: int(args.seconds * 16000)]
            noisy, _ = mixer.mix_train(clean, gen)
            lab = torch.tensor([labels.lab2ind[wavs[i].relative_to(wav_root).parts[0]]])
            p_map = loss.weights(fbank(clean[None]), fbank(noisy[None]), lab)[0]  # P: [1, *positions]
            if p_map.ndim == 3:  # [1, F', T'] of a 2-D E: one weight per (frequency, time) cell
                maps.append(p_map[0])
            p = p_map.flatten()
            s = p.sort(descending=True)[0]
            top.append(float(s[: max(1, p.numel() // 10)].sum()))
            peak.append(float(s[0] * p.numel()))
        print(f"temperature {temp:g}: share of P on the top 10% positions {sum(top) / len(top):.3f} "
              f"(uniform 0.100); max(P)*n {sum(peak) / len(peak):.2f} (uniform 1.00); {len(top)} mixtures")
        if maps:
            profile = torch.stack([m.sum(1) for m in maps]).mean(0)  # share of P per frequency row
            print("  share of P per frequency row (low -> high Mel bands; uniform "
                  f"{1 / profile.numel():.3f}): " + " ".join(f"{float(x):.3f}" for x in profile))
            if args.plot and n_temp == 0:
                plot_maps(maps, profile, temp, args.plot)


def plot_maps(maps, profile, temp, out):
    """Mean frequency profile of P and the P map of the first mixture (2-D E, one temperature)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [1, 2.5]})
    a.barh(range(profile.numel()), profile.numpy())
    a.axvline(1 / profile.numel(), color="k", ls="--", lw=0.8, label="uniform")
    a.set(xlabel="share of P", ylabel="frequency row of layer4 (low -> high)",
          title=f"{len(maps)} mixtures, temperature {temp:g}")
    a.legend()
    im = b.imshow(maps[0].numpy() * maps[0].numel(), origin="lower", aspect="auto", cmap="magma")
    b.set(xlabel="time cell", title="one mixture: P x n_cells (1 = uniform)")
    fig.colorbar(im, ax=b)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
