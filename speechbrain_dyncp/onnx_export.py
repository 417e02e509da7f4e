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
but the saving on the CPU clock needs the PyTorch/C streaming paths
(:mod:`speechbrain_dyncp.streaming`).
:class:`~speechbrain_dyncp.streaming.onnx_step.OnnxStreamingEnhancer` runs
``step.onnx`` with onnxruntime and the streams' NumPy framer, and reproduces
the PyTorch offline output.

Authors
 * speechbrain-dyncp contributors
"""

from pathlib import Path
from typing import List

import torch
from torch import nn

from speechbrain_dyncp.streaming.onnx_step import StreamingStep


class _OfflineMasker(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, feats):
        return self.model.masker(feats, None)


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
