"""The DynCP network of one STFT frame in NumPy: weights, per-stream state, and the frame step.

The weights of a causal eval-mode :class:`DynCPEnhancer` are copied once into
NumPy arrays (:func:`stream_weights`, norms folded to per-channel affines by
:func:`~speechbrain_dyncp.streaming.engine.block_plans`); many streams can
share them, each with its own recurrent state (:func:`block_states`). The same
arrays feed the C kernel (:mod:`speechbrain_dyncp.streaming.kernel`), and
:class:`NumpyNet` is the fallback where the kernel was not built.

Authors
 * speechbrain-dyncp contributors
"""

from typing import Dict, List

import numpy as np

from speechbrain_dyncp.streaming.engine import block_plans


def stream_weights(model, dtype=np.float32) -> Dict:
    """NumPy copies of the weights a per-frame streamer needs (read-only, shareable).

    Arguments
    ---------
    model : DynCPEnhancer
        Causal, in eval mode, ``n_fft`` divisible by ``hop_length``, 2-layer gate stacks.
    dtype : numpy dtype
        ``np.float32`` or ``np.float64``.

    Returns
    -------
    dict
        ``window``, ``hop``, the front-end (``Wf``, ``bf``), back-end (``Wb``, ``bb``),
        ``floor`` (the attenuation limit's mask floor), ``pause`` (the pause floor's head, or None),
        the feature settings, and
        ``blocks``: one dict of weights per gated block.

    Example
    -------
    >>> from speechbrain_dyncp.lobes.enhancer import dyncp_small
    >>> w = stream_weights(dyncp_small(channels=8, hidden=16, gate_hidden=4).eval())
    >>> len(w["blocks"]), w["blocks"][0]["w1"].shape, w["Wf"].dtype
    (6, (16, 8), dtype('float32'))
    """
    tcn = model.tcn
    if not model.causal or model.training:
        raise ValueError("A per-frame streamer needs a causal model in eval mode.")
    if model.n_fft % model.hop_length:
        raise ValueError(f"A per-frame streamer needs n_fft divisible by hop_length, "
                         f"got {model.n_fft}, {model.hop_length}.")
    if tcn.gated and any(len(g.convs) != 2 for g in tcn.gates):
        raise ValueError("The per-frame streamers support 2-layer gate stacks (gate_layers=2) only.")
    dtype = np.dtype(dtype)
    arr = lambda t: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=dtype)  # noqa: E731
    blocks = []
    for p in block_plans(model):
        b = {k: arr(getattr(p, k)) for k in ("w1", "b1", "s1", "t1", "s2", "t2", "w2t")}
        b.update(dw=arr(p.dw[:, 0]), a1=float(p.a1), a2=float(p.a2), dil=p.dilation, K=p.window,
                 thr=p.threshold, gated=bool(p.gate_w))
        if p.gate_w:
            b.update(G1=arr(p.gate_w[0]), gb1=arr(p.gate_b[0]), G2=arr(p.gate_w[1]), gb2=arr(p.gate_b[1]))
        b["ring"] = (b["dw"].shape[1] - 1) * p.dilation + 1  # frames of depthwise history
        blocks.append(b)
    pause = None
    if model.pause_floor is not None:  # lobes/pause_floor.py: the VAD head's weights, threshold, floors
        pf = model.pause_floor
        pause = dict(w=pf.weight.detach().cpu().double().numpy(), b=float(pf.bias), thr=pf.threshold_logit,
                     floor=pf.pause_value(model.mask_floor), hang=pf.hangover, low=None)
        if pf.low_snr_db is not None:  # the low-SNR part: window, frames needed, ratio as a power factor
            pause["low"] = dict(win=pf.low_snr_window, min=pf.low_snr_min_frames, factor=pf.low_snr_factor,
                                power_exp=model.power_exponent)
    return dict(pause=pause, dtype=dtype, cdtype=np.complex64 if dtype == np.float32 else np.complex128, window=arr(model.window), hop=model.hop_length, n_freq=model.n_freq,
                Wf=arr(model.front.weight), bf=arr(model.front.bias), Wb=arr(model.back.weight),
                bb=arr(model.back.bias), floor=float(model.mask_floor), channels=tcn.channels,
                gate_from_features=tcn.gate_input == "features", feature=model.feature,
                compression=model.compression, blocks=blocks)


def block_states(weights: Dict) -> List[Dict]:
    """Zero recurrent state of every block: depthwise history ring, gate pooling ring, positions."""
    dtype, c = weights["dtype"], weights["channels"]
    return [dict(hist=np.zeros((b["ring"], b["w1"].shape[0]), dtype), gbuf=np.zeros((max(1, b["K"]), c), dtype),
                 pos=0, gpos=0) for b in weights["blocks"]]


def spectral_features(spec: np.ndarray, feature: str, compression: float) -> np.ndarray:
    """Network input of a complex spectrum: the magnitude, or ``(|X| + 1e-9) ** compression``.

    The NumPy twin of :meth:`DynCPEnhancer.features` (the C kernel repeats it too).

    Example
    -------
    >>> spectral_features(np.array([3 + 4j, 0j]), "compressed", 0.5).round(3)
    array([2.236, 0.   ])
    """
    mag = np.abs(spec)
    return (mag + 1e-9) ** compression if feature == "compressed" else mag


class NumpyNet:
    """Frame-by-frame network of one stream in NumPy, skipping pruned channels.

    Arguments
    ---------
    weights : dict
        From :func:`stream_weights` (shared, never written).

    Example
    -------
    >>> from speechbrain_dyncp.lobes.enhancer import dyncp_small
    >>> net = NumpyNet(stream_weights(dyncp_small(channels=8, hidden=16, gate_hidden=4).eval()))
    >>> mask = net(np.ones(257, np.float32))
    >>> mask.shape, bool(((mask > 0) & (mask < 1)).all()), net.computed <= 6 * 16
    ((257,), True, True)
    """

    def __init__(self, weights: Dict):
        self.weights, self.state = weights, block_states(weights)
        self.computed = 0
        """Hidden channel-frames computed so far (summed over blocks)."""
        self.pause_credit = 0  # the pause floor's state (PauseFloor.stream_floors)
        low = weights["pause"] and weights["pause"]["low"]
        self.pause_window = np.zeros((3, low["win"])) if low else None  # kept, removed, speech (float64)

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        """Mask ``[F]`` of one frame's features ``[F]``; advances the state by one frame."""
        w = self.weights
        x = np.maximum(w["Wf"] @ feats + w["bf"], 0)
        x0, pause, speech = x, w["pause"], 0.0
        for l, (b, st) in enumerate(zip(w["blocks"], self.state)):
            if b["gated"]:
                st["gbuf"][st["gpos"]] = x0 if w["gate_from_features"] else x
                st["gpos"] = (st["gpos"] + 1) % b["K"]
                h = np.maximum(b["G1"] @ (st["gbuf"].sum(0) / b["K"]) + b["gb1"], 0)
                idx = np.flatnonzero(b["G2"] @ h + b["gb2"] - b["thr"] > 0)
                w1, dw = b["w1"][idx], b["dw"][idx]
                if pause is not None:
                    speech += pause["w"][l, idx].sum()
            else:
                idx, w1, dw = slice(None), b["w1"], b["dw"]
            u = w1 @ x + b["b1"][idx]
            u = np.where(u > 0, u, b["a1"] * u) * b["s1"][idx] + b["t1"][idx]
            pos, ring, hist = st["pos"], b["ring"], st["hist"]
            hist[pos] = 0  # skipped channels leave zeros in the history
            hist[pos, idx] = u
            taps = dw.shape[1]
            v = dw[:, taps - 1] * u
            for j in range(taps - 1):
                v += dw[:, j] * hist[(pos - (taps - 1 - j) * b["dil"]) % ring, idx]
            v = np.where(v > 0, v, b["a2"] * v) * b["s2"][idx] + b["t2"][idx]
            x = x + v @ b["w2t"][idx]
            st["pos"] = (pos + 1) % ring
            self.computed += len(u)
        floor = w["floor"]  # the attenuation limit, as DynCPEnhancer.mask_from_logits
        logits = w["Wb"] @ x + w["bb"]
        if pause is not None:  # PauseFloor.stream_floors
            speech_now = speech + pause["b"] > pause["thr"]
            self.pause_credit = pause["hang"] + 1 if speech_now else max(self.pause_credit - 1, 0)
            keep, low = self.pause_credit > 0, pause["low"]
            if low:  # PauseFloor.frame_energies of this frame, into the window of the last ones
                m = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
                p = feats.astype(np.float64) ** low["power_exp"]
                win = self.pause_window
                win[:, :-1] = win[:, 1:]
                win[:, -1] = (m * m * p).sum() * keep, ((1.0 - m) ** 2 * p).sum() * keep, float(keep)
                k, r, n = win.sum(1)
                keep = keep and not (n >= low["min"] and k < r * low["factor"])
            floor = floor if keep else pause["floor"]
        return floor + (1 - floor) / (1 + np.exp(-logits))
