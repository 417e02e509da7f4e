"""MaskProbes: linear heads on DynCP gate masks, computed as sums of active weights.

With binary gates a linear probe is ``bias + sum of the weights of the active
selected channels``; nothing else is computed. Frame heads (VAD, F0) read the
current frame (plus optional past frames); rate heads (noise class, SNR) read
firing rates, which stream as a running (or sliding-window) mean of the
per-frame sums: ``bias + (1/n) * sum_t s_t`` with ``s_t`` the active-weight sum
of frame t. So batch mode and frame-by-frame mode give the same numbers.

Authors
 * speechbrain-dyncp contributors
"""

from dataclasses import dataclass, field
from typing import Dict, Optional

import torch
from torch import nn

from speechbrain_dyncp.probes.features import ProbeSpec, flat_gates


@dataclass
class ProbeState:
    """Mutable streaming state of :class:`MaskProbes`; see ``init_state``."""

    history: Optional[torch.Tensor]
    """Last ``max_context`` frames of flat gates ``[B, K, L*H]`` (oldest first), or None."""
    sums: Dict[str, torch.Tensor] = field(default_factory=dict)
    """Per rate head, the running sum of per-frame active-weight sums ``[B, n_out]`` (float64)."""
    ring: Dict[str, torch.Tensor] = field(default_factory=dict)
    """Per windowed rate head, the last ``window`` per-frame sums ``[B, W, n_out]``."""
    frames_seen: int = 0


class MaskProbes(nn.Module):
    """Fitted probe heads evaluated on binary gates ``[B, L, N, H]``.

    Arguments
    ---------
    n_blocks : int
        Gated blocks L.
    n_channels : int
        Gated channels H per block.
    heads : dict, optional
        ``name -> {"spec": ProbeSpec dict, "n_selected": S, "n_out": C, "classes": list}``;
        the weights are buffers filled by :meth:`from_sklearn` or ``load_state_dict``
        (which also rebuilds the heads from the checkpoint's config).

    Example
    -------
    >>> import numpy as np
    >>> from speechbrain_dyncp.probes.features import ProbeSpec, frame_features
    >>> from speechbrain_dyncp.probes.fit import fit_probe
    >>> g = (torch.rand(4, 2, 30, 8) > 0.5).float()
    >>> X, idx = frame_features(g)
    >>> y = X[:, 3].numpy().astype(int)  # block 0, channel 3 "is speech"
    >>> fitted = fit_probe(ProbeSpec("vad", n_channels=4), X.numpy(), y)
    >>> probes = MaskProbes.from_sklearn({"vad": fitted}, n_blocks=2, n_channels=8)
    >>> out = probes(g)["vad"]
    >>> np.allclose(out[idx[:, 0], idx[:, 1]].numpy(), fitted.predict(X.numpy()), atol=1e-5)
    True
    """

    def __init__(self, n_blocks: int = 9, n_channels: int = 256, heads: Optional[dict] = None):
        super().__init__()
        self._build(n_blocks, n_channels, heads or {})

    # ----------------------------------------------------------------- config
    def _build(self, n_blocks: int, n_channels: int, heads: dict):
        for name in list(getattr(self, "heads", {})):
            for suffix in ("index", "weight", "bias"):
                delattr(self, f"{name}_{suffix}")
        self.n_blocks, self.n_channels = int(n_blocks), int(n_channels)
        self.heads = {}
        for name, cfg in heads.items():
            if not name.isidentifier():
                raise ValueError(f"probe head name must be an identifier, got {name!r}")
            spec = ProbeSpec(**cfg["spec"])
            S, C = int(cfg["n_selected"]), int(cfg["n_out"])
            self.heads[name] = {"spec": spec.to_dict(), "n_selected": S, "n_out": C, "classes": list(cfg.get("classes") or [])}
            self.register_buffer(f"{name}_index", torch.zeros(S, dtype=torch.long))
            self.register_buffer(f"{name}_weight", torch.zeros(S, C))
            self.register_buffer(f"{name}_bias", torch.zeros(C))

    def get_extra_state(self):
        return {"n_blocks": self.n_blocks, "n_channels": self.n_channels, "heads": self.heads}

    def set_extra_state(self, state):
        if state != self.get_extra_state():
            raise RuntimeError("MaskProbes config mismatch; use load_state_dict, which rebuilds the heads")

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Rebuild the heads from the checkpoint's config, then load the weights."""
        extra = state_dict.get("_extra_state")
        if extra is not None and extra != self.get_extra_state():
            self._build(extra["n_blocks"], extra["n_channels"], extra["heads"])
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def spec(self, name: str) -> ProbeSpec:
        """The :class:`ProbeSpec` of head ``name``."""
        return ProbeSpec(**self.heads[name]["spec"])

    @classmethod
    def from_sklearn(cls, probes: dict, n_blocks: int, n_channels: int) -> "MaskProbes":
        """Build from ``name -> FittedProbe`` (see :mod:`speechbrain_dyncp.probes.fit`)."""
        heads, tensors = {}, {}
        for name, p in probes.items():
            coef = torch.as_tensor(p.estimator.coef_, dtype=torch.float64)
            coef = coef.reshape(1, -1) if coef.ndim == 1 else coef  # C, S
            bias = torch.as_tensor(p.estimator.intercept_, dtype=torch.float64).reshape(-1)
            width = (p.spec.context + 1 if p.spec.level == "frame" else 1) * n_blocks * n_channels
            if p.n_features != width:
                raise ValueError(f"probe {name!r} was fitted on {p.n_features} features; gates give {width}")
            classes = [c.item() if hasattr(c, "item") else c for c in (p.classes or [])]
            heads[name] = {"spec": p.spec.to_dict(), "n_selected": len(p.selected), "n_out": coef.shape[0], "classes": classes}
            tensors[name] = (torch.as_tensor(p.selected, dtype=torch.long), coef.T.float(), bias.float())
        module = cls(n_blocks, n_channels, heads)
        for name, (index, weight, bias) in tensors.items():
            getattr(module, f"{name}_index").copy_(index)
            getattr(module, f"{name}_weight").copy_(weight)
            getattr(module, f"{name}_bias").copy_(bias)
        return module

    # ------------------------------------------------------------ computation
    def _link(self, name: str, z: torch.Tensor) -> torch.Tensor:
        """Decision values ``[..., C]`` -> outputs (probability, class probs or value)."""
        spec = self.spec(name)
        if spec.task == "classify":
            return torch.sigmoid(z[..., 0]) if z.shape[-1] == 1 else torch.softmax(z, dim=-1)
        z = z[..., 0]
        return torch.exp(z) if spec.target == "log" else z

    def _frame_sums(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Active-weight sums ``[B, N, C]`` of flat gates ``x`` ``[B, N, D]`` (lags handled)."""
        D = self.n_blocks * self.n_channels
        index, weight = getattr(self, f"{name}_index"), getattr(self, f"{name}_weight")
        lag, feat = index // D, index % D
        out = x.new_zeros(x.shape[0], x.shape[1], weight.shape[1])
        for k in lag.unique().tolist():
            sel = lag == k
            xk = torch.nn.functional.pad(x, (0, 0, k, 0))[:, : x.shape[1]] if k else x
            out = out + xk[..., feat[sel]] @ weight[sel]  # binary gates: sum of active weights
        return out

    def forward(self, gates: torch.Tensor, frame_mask: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Per-frame outputs of every head.

        Arguments
        ---------
        gates : torch.Tensor
            ``[B, L, N, H]`` binary gates.
        frame_mask : torch.Tensor, optional
            ``[B, N]`` bool, True on valid frames (trailing padding).

        Returns
        -------
        dict
            ``name -> [B, N]`` (P(class 1) or value) or ``[B, N, C]`` (class
            probabilities); rate heads give at frame t the estimate from the
            frames so far (or the last ``window``), zeros on padded frames.
        """
        if gates.shape[1] != self.n_blocks or gates.shape[3] != self.n_channels:
            raise ValueError(
                f"MaskProbes fitted on {self.n_blocks} blocks x {self.n_channels} channels, "
                f"got gates {tuple(gates.shape)} [batch, blocks, frames, channels]"
            )
        x = flat_gates(gates, frame_mask)
        valid = x.new_ones(x.shape[:2]) if frame_mask is None else frame_mask.to(x.dtype)
        out = {}
        for name in self.heads:
            spec, bias = self.spec(name), getattr(self, f"{name}_bias")
            s = self._frame_sums(name, x)
            if spec.level == "rate":
                csum = s.double().cumsum(1)
                count = valid.double().cumsum(1)
                if spec.window is not None:
                    W = spec.window
                    csum = csum - nn.functional.pad(csum, (0, 0, W, 0))[:, : csum.shape[1]]
                    count = count - nn.functional.pad(count, (W, 0))[:, : count.shape[1]]
                s = (csum / count.clamp(min=1).unsqueeze(-1)).to(x.dtype)
            y = self._link(name, s + bias)
            out[name] = y * (valid.unsqueeze(-1) if y.ndim == 3 else valid)
        return out

    def utterance(self, gates: torch.Tensor, frame_mask: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Rate-head outputs at each item's last valid frame (= utterance-level estimate)."""
        out = self.forward(gates, frame_mask)
        B, N = gates.shape[0], gates.shape[2]
        last = (torch.full((B,), N) if frame_mask is None else frame_mask.long().sum(1)) - 1
        return {k: v[torch.arange(B), last] for k, v in out.items() if self.spec(k).level == "rate"}

    def init_state(self, batch_size: int = 1) -> ProbeState:
        """A fresh :class:`ProbeState` for :meth:`forward_frame`."""
        D = self.n_blocks * self.n_channels
        K = max([self.spec(n).context for n in self.heads if self.spec(n).level == "frame"] or [0])
        state = ProbeState(history=torch.zeros(batch_size, K, D) if K else None)
        for name, cfg in self.heads.items():
            spec = self.spec(name)
            if spec.level == "rate":
                state.sums[name] = torch.zeros(batch_size, cfg["n_out"], dtype=torch.float64)
                if spec.window is not None:
                    state.ring[name] = torch.zeros(batch_size, spec.window, cfg["n_out"], dtype=torch.float64)
        return state

    def forward_frame(self, gates_t: torch.Tensor, state: Optional[ProbeState] = None):
        """One frame ``[B, L, H]`` -> (``name -> [B]`` or ``[B, C]``, updated state)."""
        if gates_t.ndim != 3:
            raise ValueError(f"forward_frame expects gates [batch, blocks, channels], got {tuple(gates_t.shape)}")
        state = state if state is not None else self.init_state(gates_t.shape[0])
        x_t = gates_t.float().reshape(gates_t.shape[0], -1)  # B, D
        # lag-major [x_t, x_{t-1}, ...], so a head's flat index addresses it directly
        stacked = x_t if state.history is None else torch.cat([x_t, state.history.flip(1).flatten(1)], dim=1)
        out = {}
        for name in self.heads:
            spec = self.spec(name)
            index, weight, bias = (getattr(self, f"{name}_{k}") for k in ("index", "weight", "bias"))
            g = stacked[:, index]  # B, S gates of the selected channels
            s = (g.unsqueeze(-1) * weight).sum(1)  # B, C: weights of the active channels, summed
            if spec.level == "rate":
                state.sums[name] += s.double()
                n = state.frames_seen + 1
                if spec.window is not None:
                    W = spec.window
                    slot = state.frames_seen % W
                    if state.frames_seen >= W:
                        state.sums[name] -= state.ring[name][:, slot]
                    state.ring[name][:, slot] = s.double()
                    n = min(n, W)
                s = (state.sums[name] / n).float()
            out[name] = self._link(name, s + bias)
        if state.history is not None:
            state.history = torch.cat([state.history[:, 1:], x_t.unsqueeze(1)], dim=1)
        state.frames_seen += 1
        return out, state

    def probe_cost_per_frame(
        self, gate_density: Optional[float] = None, gates: Optional[torch.Tensor] = None,
        frame_mask: Optional[torch.Tensor] = None,
    ) -> dict:
        """Operations per frame (additions/multiplies counted as MAC-equivalents).

        Per head: one add per active selected channel and output, the bias, the
        running mean of rate heads (add, subtract, divide per output) and the
        output nonlinearity (sigmoid or exp 4, softmax 3 per class). ``worst``
        assumes every selected channel active; ``expected`` uses
        ``gate_density``, or, with ``gates`` ``[B, L, N, H]``, the measured mean
        number of active selected channels per valid frame. Reading the gates is
        free: the gating module computes them anyway.

        Example
        -------
        >>> MaskProbes(2, 4).probe_cost_per_frame()["total_worst"]
        0
        """
        heads, worst, expected = {}, 0, 0.0
        x = None if gates is None else flat_gates(gates, frame_mask)
        n_valid = None if x is None else (x.shape[0] * x.shape[1] if frame_mask is None else float(frame_mask.sum()))
        for name, cfg in self.heads.items():
            spec, S, C = self.spec(name), cfg["n_selected"], cfg["n_out"]
            fixed = C + (3 * C if spec.level == "rate" else 0)
            fixed += 3 * C if (spec.task == "classify" and C > 1) else 4
            if x is not None:  # measured: active selected channels (lag 0) per valid frame
                feat = getattr(self, f"{name}_index") % x.shape[-1]
                active = float(x[..., feat].sum()) / max(n_valid, 1)
            else:
                active = (1.0 if gate_density is None else float(gate_density)) * S
            heads[name] = {"selected_channels": S, "outputs": C, "active_per_frame": active,
                           "worst": S * C + fixed, "expected": active * C + fixed}
            worst += heads[name]["worst"]
            expected += heads[name]["expected"]
        return {"heads": heads, "total_worst": worst, "total_expected": expected, "gate_density": gate_density}

    def weight_map(self, name: str) -> torch.Tensor:
        """Dense weights ``[K, L, H, C]`` of head ``name`` (zeros for unselected channels)."""
        spec, cfg = self.spec(name), self.heads[name]
        K = spec.context + 1 if spec.level == "frame" else 1
        dense = torch.zeros(K * self.n_blocks * self.n_channels, cfg["n_out"])
        dense[getattr(self, f"{name}_index")] = getattr(self, f"{name}_weight")
        return dense.view(K, self.n_blocks, self.n_channels, cfg["n_out"])
