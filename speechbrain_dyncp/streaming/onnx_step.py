"""The gated network as one causal frame step with explicit state, for ONNX, and its NumPy runner.

:class:`StreamingStep` is what ``step.onnx`` contains (exported by
:func:`speechbrain_dyncp.onnx_export.export_enhancer_onnx`): one frame
``feats [B, F]`` plus the state tensors ``dw_<i>`` (each block's depthwise
history) and ``gp_<i>`` (each gate's moving-average history) ``-> mask [B, F],
gates [B, L, H]`` and the new state tensors ``dw_<i>_out`` / ``gp_<i>_out``.
It reuses the PyTorch engine's gate and block steps (dense-masked: ONNX graphs
have static shapes, so every channel is computed and multiplied by its gate;
the result equals the pruned path). :class:`OnnxStreamingEnhancer` runs it with
onnxruntime inside the framer every stream shares
(:class:`~speechbrain_dyncp.streaming.framing.OverlapAdd`).

Authors
 * speechbrain-dyncp contributors
"""

from typing import List

import numpy as np
import torch
from torch import nn

from speechbrain_dyncp.streaming import engine
from speechbrain_dyncp.streaming.framing import FrameStream, OverlapAdd
from speechbrain_dyncp.streaming.numpy_net import spectral_features


class StreamingStep(nn.Module):
    """One causal frame of the gated network with state as explicit tensors (exportable).

    Arguments
    ---------
    model : DynCPEnhancer
        A causal model in eval mode.

    Example
    -------
    >>> from speechbrain_dyncp.lobes.enhancer import dyncp_small
    >>> step = StreamingStep(dyncp_small().eval())
    >>> states = step.initial_state(1)
    >>> mask, gates, *states = step(torch.rand(1, 257), *states)
    >>> mask.shape, gates.shape, len(states)
    (torch.Size([1, 257]), torch.Size([1, 6, 128]), 12)
    """

    def __init__(self, model):
        super().__init__()
        if not model.causal:
            raise ValueError("ONNX streaming export needs a causal model")
        self.model = model.eval()
        self.plans = engine.block_plans(model)
        self.gated = model.tcn.gated

    def initial_state(self, batch_size: int = 1) -> List[torch.Tensor]:
        """Zero state tensors in graph-input order."""
        ctx = engine.make_context(self.model, batch_size)
        pause = [t for t in (ctx.pause_credit, ctx.pause_window) if t is not None]
        return [t for st in ctx.blocks for t in (st.dw_hist, st.gate_hist)] + pause

    def state_names(self) -> List[str]:
        """Names of the state inputs (outputs add ``_out``); ``pause`` with a pause floor, ``pause_window``
        (float64) with its low-SNR part."""
        pf = self.model.pause_floor
        pause = [] if pf is None else ["pause"] + ([] if pf.low_snr_db is None else ["pause_window"])
        return [n for i in range(len(self.plans)) for n in (f"dw_{i}", f"gp_{i}")] + pause

    def forward(self, feats, *state):
        """``feats [B, F]`` + state -> ``mask [B, F]``, ``gates [B, L, H]``, new state."""
        m, tcn = self.model, self.model.tcn
        x = torch.relu(m.front(feats)).unsqueeze(-1)  # B, C, 1
        src0, gates, new_state = x, [], []
        for i, plan in enumerate(self.plans):
            st = engine.BlockState(state[2 * i], state[2 * i + 1])
            g = None
            if self.gated:
                g = engine.step_gate(plan, st, src0 if tcn.gate_input == "features" else x)  # B, H, 1
                gates.append(g[..., 0])
            x, _ = engine.step_block(plan, st, x, g, skip=False)
            new_state += [st.dw_hist, st.gate_hist]
        gates_t = torch.stack(gates, 1) if gates else torch.ones(feats.shape[0], tcn.n_gated, tcn.hidden)
        floor, logits, pf = None, m.back(x[..., 0]), m.pause_floor
        if pf is not None:  # state: the pause floor's speech credit (zero at stream start) [and window]
            energies, window = None, None
            if pf.low_snr_db is not None:
                energies = pf.frame_energies(logits[:, None], feats[:, None], m.power_exponent)
                window = state[2 * len(self.plans) + 1]
            floor, credit, window = pf.stream_floors(gates_t.unsqueeze(2), state[2 * len(self.plans)], m.mask_floor,
                                                     energies, window)
            new_state += [credit] + ([] if window is None else [window])
        mask = m.mask_from_logits(logits, floor)
        return (mask, gates_t, *new_state)


class OnnxStreamingEnhancer(FrameStream):
    """Frame-by-frame enhancement with ``step.onnx`` (onnxruntime) and the streams' framer (NumPy).

    Same alignment as the PyTorch offline model (``torch.stft(center=True)``):
    :meth:`enhance` of a whole signal returns what ``DynCPEnhancer`` returns; :meth:`process`
    and :meth:`finish` stream it in chunks like the other streamers (output delayed by
    ``latency = n_fft - 1`` samples).

    Arguments
    ---------
    step_onnx : str or path-like
        ``step.onnx`` from :func:`speechbrain_dyncp.onnx_export.export_onnx`.
    n_fft, hop_length : int
        STFT parameters of the model.
    feature : str
        ``"mag"`` or ``"compressed"`` (with ``compression``).
    compression : float
        Exponent of the compressed feature.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_dyncp.lobes.enhancer import dyncp_small
    >>> from speechbrain_dyncp.onnx_export import export_enhancer_onnx
    >>> model = dyncp_small(channels=8, hidden=16, gate_hidden=4).eval()
    >>> folder = tempfile.mkdtemp()
    >>> _, step = export_enhancer_onnx(model, folder)
    >>> x = torch.randn(1, 3000)
    >>> y = OnnxStreamingEnhancer(step).enhance(x[0].numpy())
    >>> bool(np.abs(y - model(x).wav[0].detach().numpy()).max() < 1e-4)
    True
    """

    def __init__(self, step_onnx, n_fft: int = 512, hop_length: int = 256, feature: str = "mag",
                 compression: float = 0.3):
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(step_onnx), providers=["CPUExecutionProvider"])
        self.n_fft, self.hop = n_fft, hop_length
        self.feature, self.compression = feature, compression
        self.window = torch.hann_window(n_fft).numpy().astype(np.float32)
        self.state_inputs = [i for i in self.session.get_inputs() if i.name != "feats"]
        self.dtype = np.float32
        self.reset()

    def reset(self) -> None:
        """Start a new stream: zero state, empty buffers."""
        self.ola = OverlapAdd(self.window, self.hop)
        self.state = {i.name: np.zeros(i.shape, np.float64 if i.type == "tensor(double)" else np.float32)
                      for i in self.state_inputs}

    def _frame(self, frame: np.ndarray) -> None:
        spec = np.fft.rfft(frame * self.window)
        feats = spectral_features(spec, self.feature, self.compression).astype(np.float32)
        res = self.session.run(None, {"feats": feats[None], **self.state})
        self.state = {i.name: s for i, s in zip(self.state_inputs, res[2:])}
        self.ola.add(np.fft.irfft(spec * res[0][0], n=self.n_fft).astype(np.float32) * self.window)

    def enhance(self, wav: np.ndarray) -> np.ndarray:
        """Enhance a whole mono signal ``[T]`` (a new stream); returns ``[T]``."""
        self.reset()
        out = np.concatenate([self.process(wav), self.finish()])
        return out[self.latency:]
