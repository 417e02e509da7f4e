"""Figures for the probe report (matplotlib, Agg backend).

Authors
 * speechbrain-dyncp contributors
"""

from pathlib import Path
from typing import Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from speechbrain_dyncp.probes.heads import HEADS, head, ordered  # noqa: E402


def plot_weight_maps(probes, path) -> Path:
    """|weights| of every head over blocks x channels (summed over lags and outputs)."""
    names = list(probes.heads)
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 1.6 * len(names) + 0.6), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        w = probes.weight_map(name).abs().sum(dim=(0, 3)).numpy()  # L, H
        im = ax.imshow(w, aspect="auto", interpolation="nearest", cmap="magma")
        ax.set_ylabel("block")
        ax.set_title(f"{name}: |weight| of {probes.heads[name]['n_selected']} selected channels", fontsize=9)
        fig.colorbar(im, ax=ax, pad=0.01)
    axes[-1, 0].set_xlabel("channel")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_channel_curves(curves: Dict[str, List[dict]], path) -> Path:
    """Test score versus number of channels kept, one panel per head."""
    names = list(curves)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        k = [c["n_channels"] for c in curves[name]]
        s = [c["score"] for c in curves[name]]
        ax.semilogx(k, s, "o-")
        ax.set_xlabel("channels kept")
        ax.set_ylabel(head(name).headline if name in HEADS else "score")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_timeline(utt_id: str, outputs: Dict[str, np.ndarray], labels: dict, classes: Dict[str, list], path) -> Path:
    """Predicted vs true labels of one utterance, one panel per head (``probes/heads.py``): frame
    heads against their frame labels, class heads as running class probabilities, other rate
    heads against their utterance label. ``classes``: head name -> class labels."""
    panels = ordered(outputs)
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 1.9 * len(panels)), sharex=True, squeeze=False)
    t = np.arange(len(next(iter(outputs.values())))) * 0.016
    for ax, name in zip(axes[:, 0], panels):
        h, y = head(name), outputs[name]
        truth = h.label_of(labels)
        if y.ndim == 2:  # class probabilities
            for c, lab in enumerate(classes.get(name) or []):
                ax.plot(t, y[:, c], label=str(lab), lw=1.5 if str(lab) == str(truth) else 0.7)
            ax.set_title(f"true {name}: {truth}", fontsize=8)
        elif h.frame_label and h.speech_only:  # e.g. F0: voiced frames only
            voiced = truth > 0
            ax.plot(t, np.where(voiced, truth, np.nan), label=f"true {name}", lw=2)
            ax.plot(t, np.where(voiced, y, np.nan), label="probe", lw=1)
        elif h.frame_label:
            ax.plot(t, y, label="probe")
            ax.step(t, truth, where="mid", label="label", alpha=0.7)
        else:
            ax.plot(t, y, label="probe")
            ax.axhline(truth, color="k", ls="--", label="true")
        ax.legend(fontsize=6, loc="upper right", ncol=2)
        ax.set_ylabel(h.unit if h.unit not in ("", "class", "probability") else name)
    axes[0, 0].set_title(f"{utt_id}", fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
