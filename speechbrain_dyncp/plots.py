"""Figures: spectrograms, the gate masks per block over time (the DynCP paper's
Fig. 1) and the probe timelines, for one analysed utterance.

Authors
 * speechbrain-dyncp contributors
"""

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from speechbrain_dyncp.probes.heads import head, ordered


def _spectrogram_db(wav: torch.Tensor, n_fft: int = 512, hop: int = 256) -> np.ndarray:
    spec = torch.stft(wav.float().cpu(), n_fft, hop, window=torch.hann_window(n_fft), return_complex=True)
    return (20 * torch.log10(spec.abs() + 1e-5)).numpy()


def _compute_panel(ax, t, gates, analysis, item, ref_vad) -> None:
    """Per-frame compute (all blocks) with speech frames shaded and the mean on each side."""
    n = len(t)
    ratio = gates.mean((0, 2))  # L, N, H -> N (the definition of efficiency.frame_active_ratio)
    if ref_vad is not None:
        speech, src = np.asarray(ref_vad[:n]) > 0.5, "reference"
    elif analysis.vad_prob is not None:
        speech, src = analysis.vad_prob[item, :n].cpu().numpy() > 0.5, "VAD probe"
    else:
        speech, src = None, ""
    top = max(0.05, 1.7 * float(ratio.max()))  # headroom: the legend sits above the curve
    if speech is not None and len(speech) == n:
        ax.fill_between(t, 0, top * speech, color="tab:gray", alpha=0.25, step="mid", label=f"speech ({src})")
        for mask, name, style in ((speech, "speech", "--"), (~speech, "pauses", ":")):
            if mask.any():
                ax.axhline(ratio[mask].mean(), color="tab:red", ls=style, lw=0.9,
                           label=f"mean in {name} {100 * ratio[mask].mean():.1f}%")
    ax.plot(t, ratio, color="tab:green", lw=1.0, label="channels computed (all blocks)")
    ax.set_ylim(0, top)
    ax.set_ylabel("share of\nchannels\ncomputed")
    ax.legend(loc="upper right", fontsize=7, ncol=2)


def _probe_panel(ax, t, h, analysis, item, ref) -> None:
    """One head's per-frame output (with its reference where given): probabilities as a curve
    over the shaded reference. Speech-only heads (F0): the utterance's register as a line over the VAD
    probe's speech frames; the per-frame probe output as dots only beside a reference (a diagnostic:
    the masks carry a register, not a pitch track, so a user's figure does not draw one)."""
    n = len(t)
    y = analysis.outputs[h.name][item, :n].cpu().numpy().astype(float)
    speech = analysis.vad_prob[item, :n].cpu().numpy() >= 0.5 if analysis.vad_prob is not None else np.ones(n, bool)
    if h.speech_only:
        y[~speech] = np.nan
        register = analysis.register_hz(item)
        if register is not None:
            ax.plot(t, np.where(speech, register, np.nan), color="tab:orange", lw=2,
                    label=f"register {register:.0f} {h.unit} (per utterance)")
        if ref is not None:
            ax.plot(t, y, ".", ms=2, label=f"{h.display or h.name} probe per frame")
    else:
        ax.plot(t, y, label=f"{h.display or h.name} (probe)")
    if ref is not None and h.unit == "probability":
        ax.fill_between(t, 0, np.asarray(ref[:n]), color="tab:gray", alpha=0.3, step="mid", label="reference")
    elif ref is not None:
        ref = np.asarray(ref[:n], dtype=float).copy()
        ref[ref <= 0] = np.nan
        ax.plot(t, ref, ".", ms=2, color="k", label="reference")
    if h.unit == "probability":
        ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel(f"{h.display or h.name} {'' if h.unit == 'probability' else h.unit}".strip())
    ax.legend(loc="upper right", fontsize=7)


def plot_analysis(
    path,
    noisy: torch.Tensor,
    analysis,
    item: int = 0,
    title: str = "",
    clean: Optional[torch.Tensor] = None,
    ref_vad: Optional[np.ndarray] = None,
    ref_f0: Optional[np.ndarray] = None,
) -> Path:
    """Write a figure of one item of an :class:`EnhancementAnalysis`.

    Panels: noisy and enhanced spectrograms; every gated block's binary mask
    (channel index x frames, white = computed, black = skipped) with its
    instantaneous active ratio; the compute per frame (active fraction of all
    gated channels, :func:`~speechbrain_dyncp.efficiency.frame_active_ratio`)
    over the speech frames (reference VAD, else the VAD probe), so pauses that
    cost less show as dips; one panel per probe head with a per-frame output
    (``probes/heads.py``: VAD probability, F0, running SNR, ...; with
    references where given).

    Arguments
    ---------
    path : str or path-like
        Output image (png/pdf).
    noisy : torch.Tensor
        ``[T]`` input waveform.
    analysis : EnhancementAnalysis
        Output of ``DynCPEnhancement.analyze_batch``.
    item : int
        Batch item to draw.
    title : str
        Figure title prefix.
    clean : torch.Tensor, optional
        ``[T]`` clean reference (adds a spectrogram panel).
    ref_vad, ref_f0 : numpy.ndarray, optional
        Per-frame reference labels on the same frame grid.

    Returns
    -------
    pathlib.Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = int(analysis.frame_mask[item].sum())
    hop, sr = analysis.hop_length, analysis.sample_rate
    secs = n * hop / sr
    gates = analysis.gates[item, :, :n].cpu().numpy()  # L, N, H
    n_blocks = gates.shape[0]
    spec_rows = 3 if clean is not None else 2
    refs = {"vad": ref_vad, "f0": ref_f0}
    panels_of = [k for k in ordered(analysis.outputs) if analysis.outputs[k].ndim == 2 and head(k).display != ""]
    probe_rows = len(panels_of)
    heights = [2] * spec_rows + [1] * n_blocks + [1.5] + [1.3] * probe_rows
    fig, axes = plt.subplots(len(heights), 1, figsize=(11, 0.9 * sum(heights) + 1), sharex=True,
                             gridspec_kw={"height_ratios": heights})
    extent = [0, secs, 0, sr / 2000]
    panels = [("noisy", noisy)] + ([("clean", clean)] if clean is not None else []) + [("enhanced", analysis.wav[item])]
    for ax, (name, w) in zip(axes, panels):
        db = _spectrogram_db(w[: n * hop])[:, :n]
        ax.imshow(db, origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=db.max() - 80, vmax=db.max())
        ax.set_ylabel(f"{name}\nkHz")
    for b in range(n_blocks):
        ax = axes[spec_rows + b]
        g = gates[b].T  # H, N
        ax.imshow(g, origin="lower", aspect="auto", extent=[0, secs, 0, g.shape[0]], cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ratio = g.mean(0)
        ax2 = ax.twinx()
        ax2.plot((np.arange(n) + 0.5) * hop / sr, ratio, color="tab:green", lw=0.8,
                 label="active ratio of this block")
        ax2.set_ylim(0, 1)
        ax2.set_yticks([])
        if b == 0:
            ax2.legend(loc="upper right", fontsize=7)
        ax.set_yticks([0, g.shape[0]])
        ax.tick_params(axis="y", labelsize=6)
        ax.set_ylabel(f"block {b}\nchannel\n({100 * ratio.mean():.0f}% on)", rotation=0, ha="right",
                      va="center", fontsize=8)
    t = (np.arange(n)) * hop / sr
    row = spec_rows + n_blocks
    _compute_panel(axes[row], t, gates, analysis, item, ref_vad)
    row += 1
    for name, ax in zip(panels_of, axes[row:]):
        _probe_panel(ax, t, head(name), analysis, item, refs.get(name))
    axes[-1].set_xlabel("time (s)")
    top = f"{title}  " if title else ""
    top += f"channels used {100 * analysis.realised_ratio[item]:.1f}%  MACs saved {analysis.macs_saved_pct[item]:.1f}%"
    for name in ordered(analysis.outputs):  # utterance read-outs: class heads, then rate heads with a panel
        h = head(name)
        if name in analysis.classes:
            best, prob = analysis.top_class(name, item)
            top += f"  {name}: {best} (p={prob:.2f})"
        elif name == "snr":  # the read-out the JSON gives (T-F mask where calibrated), a bound said as one
            top += f"  SNR est. {analysis.utterance_snr_text(item)}"
        elif h.probe.get("level") == "rate" and h.display != "":
            top += f"  {h.display or name} est. {analysis.utterance_value(name, item):.1f} {h.unit}".rstrip()
    fig.suptitle(top, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
