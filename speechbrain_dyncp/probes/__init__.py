"""Linear probes on DynCP gate masks: features, fitting, metrics, labels.

``features`` turns gate masks ``[B, L, N, H]`` into frame or firing-rate
features, ``fit`` fits scikit-learn probes with channel selection, ``metrics``
scores them, and ``labels`` derives VAD / F0 targets from a clean signal. The
fitted probes run as weighted sums in :class:`speechbrain_dyncp.lobes.probes.MaskProbes`.

Authors
 * speechbrain-dyncp contributors
"""

from speechbrain_dyncp.probes.features import PROBES, ProbeSpec, frame_features, rate_features

__all__ = ["PROBES", "ProbeSpec", "frame_features", "rate_features"]
