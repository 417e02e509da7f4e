"""Probe features from DynCP gate masks, and the spec of one probe fit.

Two feature families, both linear in the binary gates, so every probe stays a
weighted sum of active channels (the point of the probing paper):

* **frame** features (VAD, F0): at frame t the concatenated gates of all blocks,
  ``x_t = [g_{1,t}, ..., g_{L,t}]`` in {0,1}^(L*H), optionally stacked with the
  ``context`` previous frames (causal; frames before the start count as all-off).
  Flat index of feature (lag k, block l, channel h) = ``k*L*H + l*H + h``.
* **rate** features (noise class, SNR): per-channel firing rates, the mean of
  ``x_t`` over the whole utterance (``window=None``) or over the last ``window``
  frames (causal sliding window, one sample every ``stride`` frames).

Padded frames (``frame_mask`` False) never enter a feature.

Authors
 * speechbrain-dyncp contributors
"""

from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import torch


@dataclass
class ProbeSpec:
    """What one probe predicts and from which features.

    Arguments
    ---------
    name : str
        Head name (``vad``, ``noise``, ``snr``, ``f0`` or your own).
    task : {"classify", "regress"}
        Logistic regression or ridge regression.
    level : {"frame", "rate"}
        Frame gates (+ causal context) or firing rates.
    context : int
        Past frames stacked with the current one (frame level).
    window : int or None
        Sliding-window length in frames for rates; None = whole utterance
        (running mean from the first frame when streaming).
    stride : int
        Hop between window samples when fitting rate probes with a window.
    target : {"identity", "log"}
        ``log`` fits on ln(y) and predicts exp(.) (F0: errors become relative,
        i.e. proportional to cents, which suits a pitch scale).
    voiced_only : bool
        Fit and score only on frames with a positive target (F0).
    reg : float
        Inverse regularisation C (classify) or ridge alpha (regress).
    n_channels : int or None
        Channels kept after selection (None = all).
    fit_window : int or None
        Rate heads: fit on sliding-window rates of this many frames (hop half
        a window), i.e. more and noisier training rows; prediction still uses
        ``window``. The probe is linear in the rates either way.
    """

    name: str
    task: str = "classify"
    level: str = "frame"
    context: int = 0
    window: Optional[int] = None
    stride: int = 16
    target: str = "identity"
    voiced_only: bool = False
    reg: float = 1.0
    n_channels: Optional[int] = 200
    fit_window: Optional[int] = None

    def __post_init__(self):
        if self.task not in ("classify", "regress"):
            raise ValueError(f"ProbeSpec {self.name!r}: task must be 'classify' or 'regress', got {self.task!r}")
        if self.level not in ("frame", "rate"):
            raise ValueError(f"ProbeSpec {self.name!r}: level must be 'frame' or 'rate', got {self.level!r}")
        if self.target not in ("identity", "log"):
            raise ValueError(f"ProbeSpec {self.name!r}: target must be 'identity' or 'log', got {self.target!r}")
        if self.context < 0 or (self.window is not None and self.window < 1):
            raise ValueError(f"ProbeSpec {self.name!r}: context must be >= 0 and window >= 1")

    def to_dict(self) -> dict:
        """Plain-dict form (stored in checkpoints)."""
        return asdict(self)


def get_spec(name: str, **overrides) -> ProbeSpec:
    """The :class:`ProbeSpec` of registered head ``name`` (``heads.HEADS``) with ``overrides`` applied.

    Example
    -------
    >>> get_spec("f0").target
    'log'
    >>> get_spec("pitch")
    Traceback (most recent call last):
    ...
    ValueError: Unknown probe 'pitch'; choose from ['f0', 'noise', 'register', 'snr', 'vad'].
    """
    from speechbrain_dyncp.probes.heads import HEADS  # heads.py holds the registry (imports no features)

    if name not in HEADS:
        raise ValueError(f"Unknown probe {name!r}; choose from {sorted(HEADS)}.")
    return ProbeSpec(name=name, **{**HEADS[name].probe, **overrides})


def _check(gates: torch.Tensor, frame_mask: Optional[torch.Tensor]) -> torch.Tensor:
    if gates.ndim != 4:
        raise ValueError(f"gates must be [batch, blocks, frames, channels], got {tuple(gates.shape)}")
    B, _, N, _ = gates.shape
    if frame_mask is None:
        return torch.ones(B, N, dtype=torch.bool, device=gates.device)
    if frame_mask.shape != (B, N):
        raise ValueError(f"frame_mask must be [batch, frames] = {(B, N)}, got {tuple(frame_mask.shape)}")
    return frame_mask.bool()


def flat_gates(gates: torch.Tensor, frame_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Gates as ``[B, N, L*H]`` float, zeroed on padded frames.

    Example
    -------
    >>> g = torch.ones(1, 2, 3, 4)
    >>> flat_gates(g, torch.tensor([[True, True, False]])).sum(-1)
    tensor([[8., 8., 0.]])
    """
    mask = _check(gates, frame_mask)
    B, L, N, H = gates.shape
    x = gates.float().permute(0, 2, 1, 3).reshape(B, N, L * H)
    return x * mask.unsqueeze(-1)


def stack_context(x: torch.Tensor, context: int) -> torch.Tensor:
    """Concatenate each frame with its ``context`` predecessors: ``[B, N, (K)*D]``.

    Lag k occupies columns ``k*D:(k+1)*D``; frames before the start are zeros.

    Example
    -------
    >>> x = torch.arange(3.0).view(1, 3, 1)
    >>> stack_context(x, 1)[0].tolist()
    [[0.0, 0.0], [1.0, 0.0], [2.0, 1.0]]
    """
    if context == 0:
        return x
    lagged = [x] + [torch.nn.functional.pad(x, (0, 0, k, 0))[:, : x.shape[1]] for k in range(1, context + 1)]
    return torch.cat(lagged, dim=-1)


def frame_features(
    gates: torch.Tensor, frame_mask: Optional[torch.Tensor] = None, context: int = 0
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-frame features of all valid frames.

    Arguments
    ---------
    gates : torch.Tensor
        ``[B, L, N, H]`` binary gates.
    frame_mask : torch.Tensor, optional
        ``[B, N]`` bool, True on valid frames.
    context : int
        Past frames stacked (causal).

    Returns
    -------
    X : torch.Tensor
        ``[M, (context+1)*L*H]`` float, one row per valid frame.
    index : torch.Tensor
        ``[M, 2]`` long, the ``(batch, frame)`` of each row.

    Example
    -------
    >>> g = torch.zeros(2, 3, 5, 4); g[0, 1, 2, 3] = 1
    >>> X, idx = frame_features(g, torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]))
    >>> X.shape, idx.shape, int(X[2].argmax())
    (torch.Size([7, 12]), torch.Size([7, 2]), 7)
    """
    mask = _check(gates, frame_mask)
    x = stack_context(flat_gates(gates, mask), context)
    index = mask.nonzero()
    return x[index[:, 0], index[:, 1]], index


def rate_features(
    gates: torch.Tensor,
    frame_mask: Optional[torch.Tensor] = None,
    window: Optional[int] = None,
    stride: int = 16,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Channel firing rates over utterances or causal sliding windows.

    Arguments
    ---------
    gates, frame_mask : torch.Tensor
        As in :func:`frame_features`.
    window : int or None
        None: one row per utterance (mean over its valid frames). Otherwise one
        row per ``stride`` frames, the mean over the last ``window`` valid
        frames (fewer at the start), the same quantity MaskProbes streams.
    stride : int
        Hop between rows when ``window`` is set.

    Returns
    -------
    X : torch.Tensor
        ``[M, L*H]`` rates in [0, 1].
    index : torch.Tensor
        ``[M, 2]`` long ``(batch, last frame of the window)``.

    Example
    -------
    >>> g = torch.zeros(1, 1, 4, 2); g[0, 0, :2, 0] = 1
    >>> rate_features(g)[0].tolist()
    [[0.5, 0.0]]
    >>> rate_features(g, window=2, stride=2)[0].tolist()
    [[1.0, 0.0], [0.0, 0.0]]
    """
    mask = _check(gates, frame_mask)
    x = flat_gates(gates, mask)  # B, N, D
    n_valid = mask.sum(1)  # B
    if window is None:
        rates = x.sum(1) / n_valid.clamp(min=1).unsqueeze(-1).to(x.dtype)
        index = torch.stack([torch.arange(x.shape[0]), (n_valid - 1).cpu()], dim=1)
        return rates, index
    csum = torch.nn.functional.pad(x.double().cumsum(1), (0, 0, 1, 0))  # B, N+1, D
    rows, index = [], []
    for b in range(x.shape[0]):
        n = int(n_valid[b])
        ends = list(range(stride - 1, n, stride)) or [n - 1]
        for t in ends:
            start = max(0, t + 1 - window)
            rows.append((csum[b, t + 1] - csum[b, start]) / (t + 1 - start))
            index.append((b, t))
    return torch.stack(rows).float(), torch.tensor(index, dtype=torch.long)


def spec_features(
    spec: ProbeSpec, gates: torch.Tensor, frame_mask: Optional[torch.Tensor] = None, fitting: bool = False
):
    """The features ``spec`` asks for: :func:`frame_features` or :func:`rate_features`
    (with ``fitting=True``, the ``fit_window`` rows of a rate head).

    Example
    -------
    >>> X, idx = spec_features(get_spec("noise"), torch.ones(3, 2, 7, 4))
    >>> X.shape
    torch.Size([3, 8])
    """
    if spec.level == "frame":
        return frame_features(gates, frame_mask, spec.context)
    if fitting and spec.fit_window is not None:
        return rate_features(gates, frame_mask, spec.fit_window, max(1, spec.fit_window // 2))
    return rate_features(gates, frame_mask, spec.window, spec.stride)
