"""ONNX graphs of the DynCP enhancer: an offline masker and a streaming step with explicit state.

The STFT and the overlap-add stay outside the graphs (numpy here; any DSP
library in a deployment), because ONNX has no inverse STFT and a per-frame
runtime owns its audio buffers anyway. The graphs compute the part that
matters, the gated network:

* ``offline.onnx``: ``feats [B, N, F] -> mask [B, N, F], gates [B, L, N, H]``
  (any B, N);
* ``step.onnx``: one frame ``feats [B, F]`` plus the state tensors
  ``dw_<i>`` (each block's depthwise history) and ``gp_<i>`` (each gate's
  moving-average history) ``-> mask [B, F], gates [B, L, H]`` and the new
  state tensors ``dw_<i>_out`` / ``gp_<i>_out``.

ONNX graphs have static shapes, so the step graph computes every channel and
multiplies by the gates (dense-masked): the result equals the pruned path,
but the saving on the CPU clock needs the PyTorch/C streaming path
(:mod:`speechbrain_dyncp.streaming`, :mod:`speechbrain_dyncp.fastpath`).
:class:`OnnxStreamingEnhancer` runs ``step.onnx`` with onnxruntime and numpy
framing, and reproduces the PyTorch offline output.

Authors
 * speechbrain-dyncp contributors
"""

from pathlib import Path
from typing import List

import numpy as np
import torch
from torch import nn

from speechbrain_dyncp import streaming


class _OfflineMasker(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, feats):
        return self.model.masker(feats, None)


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
        self.plans = streaming.block_plans(model)
        self.gated = model.tcn.gated

    def initial_state(self, batch_size: int = 1) -> List[torch.Tensor]:
        """Zero state tensors in graph-input order."""
        ctx = streaming.make_context(self.model, batch_size)
        return [t for st in ctx.blocks for t in (st.dw_hist, st.gate_hist)]

    def state_names(self) -> List[str]:
        """Names of the state inputs (outputs add ``_out``)."""
        return [n for i in range(len(self.plans)) for n in (f"dw_{i}", f"gp_{i}")]

    def forward(self, feats, *state):
        """``feats [B, F]`` + state -> ``mask [B, F]``, ``gates [B, L, H]``, new state."""
        m, tcn = self.model, self.model.tcn
        x = torch.relu(m.front(feats)).unsqueeze(-1)  # B, C, 1
        src0, gates, new_state = x, [], []
        for i, plan in enumerate(self.plans):
            st = streaming.BlockState(state[2 * i], state[2 * i + 1])
            g = None
            if self.gated:
                g = streaming._gate(plan, st, src0 if tcn.gate_input == "features" else x)  # B, H, 1
                gates.append(g[..., 0])
            x, _ = streaming._block(plan, st, x, g, skip=False)
            new_state += [st.dw_hist, st.gate_hist]
        mask = m.mask_from_logits(m.back(x[..., 0]))
        gates_t = torch.stack(gates, 1) if gates else torch.ones(feats.shape[0], tcn.n_gated, tcn.hidden)
        return (mask, gates_t, *new_state)


def export_onnx(model_dir, out_dir=None, opset: int = 17) -> List[Path]:
    """Write ``offline.onnx`` and ``step.onnx`` for the enhancer of a model folder.

    Arguments
    ---------
    model_dir : str or path-like
        A DynCP model folder (``dyncp export`` output or the bundled model).
    out_dir : str or path-like, optional
        Where to write (default: ``model_dir``).
    opset : int
        ONNX opset.

    Returns
    -------
    list of pathlib.Path
    """
    from speechbrain_dyncp.inference.loading import load_enhancer

    enhancer = load_enhancer(str(model_dir)).enhancer.eval()
    return export_enhancer_onnx(enhancer, Path(out_dir or model_dir), opset)


@torch.no_grad()
def export_enhancer_onnx(enhancer, out_dir, opset: int = 17) -> List[Path]:
    """Export an in-memory :class:`DynCPEnhancer` (see :func:`export_onnx`)."""
    import warnings

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_freq = enhancer.n_freq
    offline, step_path = out_dir / "offline.onnx", out_dir / "step.onnx"
    # Wrappers are put in eval mode: the exporter restores the wrapper's mode
    # recursively afterwards, which would otherwise flip the enhancer to train().
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer / legacy-exporter chatter
        torch.onnx.export(
            _OfflineMasker(enhancer).eval(), (torch.rand(1, 20, n_freq),), str(offline), dynamo=False,
            input_names=["feats"], output_names=["mask", "gates"], opset_version=opset,
            dynamic_axes={"feats": {0: "batch", 1: "frames"}, "mask": {0: "batch", 1: "frames"},
                          "gates": {0: "batch", 2: "frames"}},
        )
        step = StreamingStep(enhancer).eval()
        names = step.state_names()
        torch.onnx.export(
            step, (torch.rand(1, n_freq), *step.initial_state(1)), str(step_path), dynamo=False,
            input_names=["feats", *names], output_names=["mask", "gates", *(n + "_out" for n in names)],
            opset_version=opset,
        )
    return [offline, step_path]


class OnnxStreamingEnhancer:
    """Frame-by-frame enhancement with ``step.onnx`` (onnxruntime) and numpy STFT / overlap-add.

    Same alignment as the PyTorch offline model (``torch.stft(center=True)``):
    :meth:`enhance` of a whole signal returns what ``DynCPEnhancer`` returns.

    Arguments
    ---------
    step_onnx : str or path-like
        ``step.onnx`` from :func:`export_onnx`.
    n_fft, hop_length : int
        STFT parameters of the model.
    feature : str
        ``"mag"`` or ``"compressed"`` (with ``compression``).
    compression : float
        Exponent of the compressed feature.
    """

    def __init__(self, step_onnx, n_fft: int = 512, hop_length: int = 256, feature: str = "mag",
                 compression: float = 0.3):
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(step_onnx), providers=["CPUExecutionProvider"])
        self.n_fft, self.hop = n_fft, hop_length
        self.feature, self.compression = feature, compression
        self.window = torch.hann_window(n_fft).numpy().astype(np.float32)
        self.state_inputs = [i for i in self.session.get_inputs() if i.name != "feats"]

    def enhance(self, wav: np.ndarray) -> np.ndarray:
        """Enhance a mono signal ``[T]`` frame by frame; returns ``[T]``."""
        wav = np.asarray(wav, np.float32)
        n_fft, hop, t = self.n_fft, self.hop, len(wav)
        padded = np.pad(wav, (n_fft // 2, n_fft // 2))
        n = 1 + t // hop
        state = {i.name: np.zeros(i.shape, np.float32) for i in self.state_inputs}
        out = np.zeros(n_fft + (n - 1) * hop, np.float32)
        env = np.zeros_like(out)
        for k in range(n):
            frame = padded[k * hop : k * hop + n_fft] * self.window
            spec = np.fft.rfft(frame)
            mag = np.abs(spec).astype(np.float32)
            feats = (mag + 1e-9) ** self.compression if self.feature == "compressed" else mag
            res = self.session.run(None, {"feats": feats[None], **state})
            mask, new_state = res[0][0], res[2:]
            state = {i.name: s for i, s in zip(self.state_inputs, new_state)}
            out[k * hop : k * hop + n_fft] += np.fft.irfft(spec * mask, n=n_fft).astype(np.float32) * self.window
            env[k * hop : k * hop + n_fft] += self.window**2
        out, env = out[n_fft // 2 : n_fft // 2 + t], env[n_fft // 2 : n_fft // 2 + t]
        return np.where(env > 1e-11, out / np.maximum(env, 1e-11), 0.0).astype(np.float32)
