"""Linear probes on DynCP gate masks: features, fitting, metrics, labels.

``heads`` is the registry of probe heads (label, fit, metric, unit, outputs),
``features`` turns gate masks ``[B, L, N, H]`` into frame or firing-rate
features, ``fit`` fits scikit-learn probes with channel selection, ``metrics``
scores them, and ``labels`` derives VAD / F0 targets from a clean signal. The
fitted probes run as weighted sums in :class:`speechbrain_dyncp.lobes.probes.MaskProbes`.

Authors
 * speechbrain-dyncp contributors
"""

from speechbrain_dyncp.probes.features import ProbeSpec, frame_features, get_spec, rate_features
from speechbrain_dyncp.probes.heads import HEADS, Head, register_head

__all__ = ["HEADS", "Head", "ProbeSpec", "frame_features", "get_spec", "rate_features", "register_head"]
