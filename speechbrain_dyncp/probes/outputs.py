"""Files of ``dyncp enhance --probes``: per-frame CSV and per-file JSON, one entry set per probe head.

Which head writes a CSV column and which per-file entries is said by its
:class:`~speechbrain_dyncp.probes.heads.Head` (``column``, ``summary``).

Authors
 * speechbrain-dyncp contributors
"""

import csv
import json
from pathlib import Path

from speechbrain_dyncp.probes.heads import HEADS, NOISE_MIN_PROB, head, ordered  # noqa: F401 (re-exported)


def drop_signal_estimates(analysis) -> None:
    """Forget the rate heads' outputs (noise class, SNR, ...): estimates of a signal that is not there."""
    for name in [n for n in analysis.outputs if head(n).probe.get("level") == "rate"]:
        del analysis.outputs[name]
    analysis.snr_from_mask_db = None  # the T-F mask read-out (probes/mask_snr.py) is one too


def write_probe_outputs(stem: Path, analysis, item: int = 0) -> None:
    """``<stem>.probes.csv`` (per frame) and ``<stem>.json`` (per file) of one analysed item."""
    n = int(analysis.frame_mask[item].sum())
    names = ordered(analysis.outputs)
    cols = {head(k).key: analysis.outputs[k] for k in names if head(k).column and analysis.outputs[k].ndim == 2}
    cols["active_ratio"] = analysis.active_ratio  # compute per frame (efficiency.frame_active_ratio)
    cols = {k: v[item, :n].tolist() for k, v in cols.items() if v is not None}
    with open(f"{stem}.probes.csv", "w", newline="") as fh:  # stem "a.flac": not with_suffix
        w = csv.writer(fh)
        w.writerow(["frame", "time_s", *cols])
        for t in range(n):
            w.writerow([t, f"{t * analysis.hop_length / analysis.sample_rate:.3f}",
                        *(f"{cols[k][t]:.4f}" for k in cols)])
    summary = {
        "frames": n,
        "hop_length": analysis.hop_length,
        "realised_channel_ratio": analysis.realised_ratio[item],
        "macs_saved_pct": analysis.macs_saved_pct[item],
    }
    for name in names:
        h = head(name)
        if h.summary is not None:
            summary.update(h.summary(analysis, item))
        elif name in analysis.classes:
            summary[name], summary[f"{name}_prob"] = analysis.top_class(name, item)
        elif name not in HEADS:  # an unregistered head: its utterance-end value
            summary[name] = analysis.utterance_value(name, item)
    if analysis.dynamism:  # efficiency.dynamism; speech frames = the VAD probe's decisions
        summary.update(analysis.dynamism[item])
    Path(f"{stem}.json").write_text(json.dumps(summary, indent=2))
