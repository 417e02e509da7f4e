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

HEADS = ("vad", "f0")


class GateProbeLossOutput(NamedTuple):
    """Weighted sum of the head losses and each head's own loss (detached)."""

    loss: Tensor
    terms: Dict[str, float]


class GateProbeLoss(nn.Module):
    """Jointly trained linear VAD / F0 heads on the binary gate masks.

    Arguments
    ---------
    n_gates : int
        ``L * H``: gated blocks times gated channels per block.
    weights : dict
        Loss weight per head (keys from ``("vad", "f0")``); a head with weight 0
        or absent is not built.
    f0_ref : float
        Reference frequency (Hz) of the log2 F0 target.

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
        unknown = set(weights) - set(HEADS)
        if unknown:
            raise ValueError(f"Unknown gate-probe heads {sorted(unknown)}; choose from {HEADS}.")
        self.weights = {k: float(v) for k, v in weights.items() if float(v) > 0}
        self.f0_ref = float(f0_ref)
        self.heads = nn.ModuleDict({k: nn.Linear(n_gates, 1) for k in self.weights})

    def predict(self, gates: Tensor) -> Dict[str, Tensor]:
        """Head outputs ``[B, N]`` (VAD logit, log2(F0 / f0_ref)) for gates ``[B, L, N, H]``."""
        B, L, N, H = gates.shape
        x = gates.permute(0, 2, 1, 3).reshape(B, N, L * H)  # frame t: blocks then channels
        return {k: head(x).squeeze(-1) for k, head in self.heads.items()}

    def forward(self, gates: Tensor, frame_mask: Tensor, vad: Tensor, f0: Tensor) -> GateProbeLossOutput:
        """Weighted head losses.

        Arguments
        ---------
        gates : torch.Tensor
            ``[B, L, N, H]`` binary gates (with a substitute gradient).
        frame_mask : torch.Tensor
            ``[B, N]`` bool, True on valid frames.
        vad : torch.Tensor
            ``[B, N]`` frame labels in {0, 1} (padding: any value).
        f0 : torch.Tensor
            ``[B, N]`` Hz, 0 where unvoiced.

        Returns
        -------
        GateProbeLossOutput
        """
        pred = self.predict(gates)
        valid = frame_mask.to(gates.dtype)
        loss, terms = gates.new_zeros(()), {}
        if "vad" in pred:
            bce = F.binary_cross_entropy_with_logits(pred["vad"], vad.to(gates.dtype), reduction="none")
            terms["vad"] = (bce * valid).sum() / valid.sum().clamp(min=1)
        if "f0" in pred:
            voiced = valid * (f0 > 0).to(gates.dtype)
            target = torch.log2(f0.clamp(min=1.0) / self.f0_ref)
            terms["f0"] = ((pred["f0"] - target) ** 2 * voiced).sum() / voiced.sum().clamp(min=1)
        for k, v in terms.items():
            loss = loss + self.weights[k] * v
        return GateProbeLossOutput(loss, {k: float(v.detach()) for k, v in terms.items()})
