"""Probe-aware gate training: linear read-outs on the binary gates, trained jointly.

The probing paper fits its linear predictors *after* the enhancer is trained
and names joint training as future work (Miccini et al., ICASSP 2026). Trained for
enhancement and sparsity only, our gates keep the pitch information up to the
Heaviside and lose it there (``benchmarks/probe_f0_information.py``): nothing
asks a pitch change to flip a gate. This loss asks for it. During enhancer
training, linear heads read the concatenated binary gates
``g_t in {0,1}^{L*H}`` of every frame:

* VAD: ``BCE(w_v . g_t + b_v, vad_t)`` over valid frames;
* F0: ``MSE(w_f . g_t + b_f, log2(f0_t / f0_ref))`` over voiced valid frames
  (octaves, so every register weighs the same).

The forward pass of the gates stays binary, so the heads see exactly what the
post-hoc probes see; the gradient reaches the gate scores through the gate's
substitute derivative (``lobes/gates.py``). The heads are a training device
only: ``recipes/DynCP/fit_probes.py`` still fits the scikit-learn probes on the
masks of the trained enhancer, so the deployed probes stay the paper's linear
predictors (weighted sums of active channels).

Authors
 * speechbrain-dyncp contributors
"""

from typing import Dict, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechbrain_dyncp.probes.heads import HEADS


def frame_heads() -> tuple:
    """Registered heads with a label per frame: the heads this loss can train (``probes/heads.py``)."""
    return tuple(n for n, h in HEADS.items() if h.frame_label and h.probe.get("level", "frame") == "frame")


class GateProbeLossOutput(NamedTuple):
    """Weighted sum of the head losses and each head's own loss (detached)."""

    loss: Tensor
    terms: Dict[str, float]


class GateProbeLoss(nn.Module):
    """Jointly trained linear frame heads (VAD, F0, ...) on the binary gate masks.

    Each head's loss follows its registered probe spec: a ``classify`` head is
    scored with binary cross-entropy, a ``regress`` head with the squared error
    (of ``log2(y / f0_ref)`` for a ``log`` target); ``voiced_only`` heads count
    only frames with a positive label.

    Arguments
    ---------
    n_gates : int
        ``L * H``: gated blocks times gated channels per block.
    weights : dict
        Loss weight per head (keys from :func:`frame_heads`); a head with weight 0
        or absent is not built.
    f0_ref : float
        Reference (Hz for F0) of the log2 target of ``log`` heads.

    Example
    -------
    >>> loss = GateProbeLoss(n_gates=2 * 4, weights={"vad": 1.0, "f0": 0.5})
    >>> gates = torch.randint(0, 2, (3, 2, 10, 4)).float()  # B, L, N, H
    >>> vad = torch.randint(0, 2, (3, 10)).float()
    >>> f0 = vad * 150.0
    >>> out = loss(gates, torch.ones(3, 10, dtype=torch.bool), vad, f0)
    >>> sorted(out.terms), bool(out.loss > 0)
    (['f0', 'vad'], True)
    """

    def __init__(self, n_gates: int, weights: Optional[dict] = None, f0_ref: float = 150.0):
        super().__init__()
        weights = {"vad": 1.0, "f0": 1.0} if weights is None else dict(weights)
        unknown = set(weights) - set(frame_heads())
        if unknown:
            raise ValueError(f"Unknown gate-probe heads {sorted(unknown)}; choose from {frame_heads()}.")
        self.weights = {k: float(v) for k, v in weights.items() if float(v) > 0}
        self.f0_ref = float(f0_ref)
        self.heads = nn.ModuleDict({k: nn.Linear(n_gates, 1) for k in self.weights})

    def predict(self, gates: Tensor) -> Dict[str, Tensor]:
        """Head outputs ``[B, N]`` (VAD logit, log2(F0 / f0_ref)) for gates ``[B, L, N, H]``."""
        B, L, N, H = gates.shape
        x = gates.permute(0, 2, 1, 3).reshape(B, N, L * H)  # frame t: blocks then channels
        return {k: head(x).squeeze(-1) for k, head in self.heads.items()}

    def forward(self, gates: Tensor, frame_mask: Tensor, vad: Optional[Tensor] = None, f0: Optional[Tensor] = None,
                **labels: Tensor) -> GateProbeLossOutput:
        """Weighted head losses.

        Arguments
        ---------
        gates : torch.Tensor
            ``[B, L, N, H]`` binary gates (with a substitute gradient).
        frame_mask : torch.Tensor
            ``[B, N]`` bool, True on valid frames.
        vad, f0, **labels : torch.Tensor
            ``[B, N]`` frame labels per head (VAD in {0, 1}; F0 in Hz, 0 where unvoiced).

        Returns
        -------
        GateProbeLossOutput
        """
        labels = {"vad": vad, "f0": f0, **labels}
        pred = self.predict(gates)
        valid = frame_mask.to(gates.dtype)
        loss, terms = gates.new_zeros(()), {}
        for name in [n for n in HEADS if n in pred]:  # registry order: the same sum for any weights order
            z, spec, y = pred[name], HEADS[name].probe, labels[name]
            mask = valid * (y > 0).to(gates.dtype) if spec.get("voiced_only") else valid
            if spec.get("task") == "classify":
                err = F.binary_cross_entropy_with_logits(z, y.to(gates.dtype), reduction="none")
            else:
                target = torch.log2(y.clamp(min=1.0) / self.f0_ref) if spec.get("target") == "log" else y.to(gates.dtype)
                err = (z - target) ** 2
            terms[name] = (err * mask).sum() / mask.sum().clamp(min=1)
        for k, v in terms.items():
            loss = loss + self.weights[k] * v
        return GateProbeLossOutput(loss, {k: float(v.detach()) for k, v in terms.items()})
