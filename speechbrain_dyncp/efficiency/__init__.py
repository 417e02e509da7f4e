"""How much the DynCP enhancer computes and how that follows the input.

* :mod:`~speechbrain_dyncp.efficiency.macs`: parameters, dense and gate-effective MACs per
  frame, look-ahead and latency, and planting a gate density for benchmarks;
* :mod:`~speechbrain_dyncp.efficiency.dynamism`: the per-frame active ratio and the
  dynamism figures of a file (within-file spread, speech vs pauses, flips) and of a corpus.

Authors
 * speechbrain-dyncp contributors
"""

from speechbrain_dyncp.efficiency.dynamism import compute_vs_snr, dynamism, frame_active_ratio, pool_dynamism
from speechbrain_dyncp.efficiency.macs import (
    algorithmic_latency_samples,
    dense_macs,
    frames_per_second,
    gate_macs,
    lookahead_frames,
    macs_per_frame,
    parameter_count,
    plant_gate_ratio,
)

__all__ = ["algorithmic_latency_samples", "compute_vs_snr", "dense_macs", "dynamism", "frame_active_ratio",
           "frames_per_second", "gate_macs", "lookahead_frames", "macs_per_frame", "parameter_count",
           "plant_gate_ratio", "pool_dynamism"]
