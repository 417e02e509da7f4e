#!/usr/bin/env python3
"""Plot LAP's per-frame layer scores over one utterance, from a trained run.

Usage::

    python recipes/VoxCeleb/plot_layer_scores.py <output_folder of train_lap.py> [--wav file.wav]
        [--out layer_scores.png] [--head mean|<index>]

Loads ``<output_folder>/hyperparams.yaml`` (the phase/overrides of that run
applied), rebuilds the model with
``speechbrain_dyncp.verification.training.build_ssl_speaker_model``, restores
the best checkpoint (lowest dev error) and draws the waveform above a
layers x frames heat map of the scores (mean over heads, or one head). For
the SUPERB baseline the map is its static softmax weights. Without
``--wav`` the first utterance of ``save/test.csv`` is used. The scores are
also written next to the figure as ``.npy`` ([frames, heads, layers]).

Authors
 * speechbrain-dyncp contributors
"""

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from hyperpyyaml import load_hyperpyyaml  # noqa: E402
from speechbrain.utils.checkpoints import Checkpointer  # noqa: E402

from speechbrain_dyncp.data.audio import read_audio  # noqa: E402
from speechbrain_dyncp.verification.training import build_ssl_speaker_model, ssl_model_recoverables  # noqa: E402


def load_trained(output_folder):
    """(model in eval mode, hparams) of a finished ``train_lap.py`` run."""
    output_folder = Path(output_folder)
    with open(output_folder / "hyperparams.yaml") as fin:
        hparams = load_hyperpyyaml(fin)
    model = build_ssl_speaker_model(hparams)
    classifier_free = ssl_model_recoverables(model, torch.nn.Identity(), include_frontend=not hparams["freeze_ssl"])
    classifier_free.pop("classifier")
    ckpt = Checkpointer(hparams["save_folder"], recoverables=classifier_free,
                        allow_partial_load=True).recover_if_possible(min_key="ErrorRate")
    if ckpt is None:
        raise FileNotFoundError(f"No checkpoint in {hparams['save_folder']}")
    return model.eval(), hparams


def plot_layer_scores(scores, wav, sample_rate, out_png, title="", head="mean"):
    """Waveform above a layers x time heat map of ``scores`` [T, heads, L] in (0, 1).

    Arguments
    ---------
    scores : numpy.ndarray
        ``[T, heads, L]``.
    wav : numpy.ndarray
        ``[samples]``.
    sample_rate : int
        Rate of ``wav``.
    out_png : path
        Figure file.
    title : str
        Figure title.
    head : "mean" or int
        Average the heads or show one.

    Returns
    -------
    pathlib.Path
    """
    img = scores.mean(axis=1) if head == "mean" else scores[:, int(head)]
    dur = len(wav) / sample_rate
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(10, 5), sharex=True, gridspec_kw={"height_ratios": [1, 3]})
    ax0.plot(np.arange(len(wav)) / sample_rate, wav, lw=0.4, color="k")
    ax0.set_ylabel("wave")
    ax0.set_title(title)
    im = ax1.imshow(img.T, aspect="auto", origin="lower", extent=(0, dur, -0.5, img.shape[1] - 0.5),
                    cmap="magma", interpolation="nearest")
    ax1.set_xlabel("time (s)")
    ax1.set_ylabel("layer (0 = CNN projection)")
    fig.colorbar(im, ax=[ax0, ax1], label="layer score" + (" (mean over heads)" if head == "mean" else f" (head {head})"))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("output_folder", help="output folder of a train_lap.py run")
    p.add_argument("--wav", default=None, help="utterance (default: first of save/test.csv)")
    p.add_argument("--out", default=None, help="figure (default: <output_folder>/layer_scores.png)")
    p.add_argument("--head", default="mean", help="'mean' or a head index")
    args = p.parse_args(argv)
    model, hparams = load_trained(args.output_folder)
    wav_path = args.wav
    if wav_path is None:
        with open(Path(hparams["save_folder"]) / "test.csv") as fin:
            wav_path = next(csv.DictReader(fin))["wav"]
    wav = read_audio(wav_path, sample_rate=hparams["sample_rate"])
    scores = model.layer_scores(wav[None])[0].cpu().numpy()  # T, heads, L
    out = Path(args.out or Path(args.output_folder) / "layer_scores.png")
    plot_layer_scores(scores, wav.numpy(), hparams["sample_rate"], out, head=args.head,
                      title=f"{hparams['pooling']} layer scores: {Path(wav_path).name}")
    np.save(out.with_suffix(".npy"), scores)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
