"""ONNX export of the DynCP enhancer: onnxruntime equals PyTorch."""

import numpy as np
import onnxruntime as ort
import torch

from speechbrain_dyncp.efficiency import plant_gate_ratio
from speechbrain_dyncp.lobes.enhancer import dyncp_small
from speechbrain_dyncp.onnx_export import export_enhancer_onnx
from speechbrain_dyncp.streaming.onnx_step import OnnxStreamingEnhancer


def test_onnx_offline_and_streaming_step_equal_pytorch(tmp_path):
    torch.manual_seed(0)
    model = dyncp_small().eval()
    plant_gate_ratio(model, torch.randn(2, 16000), 0.3)  # real pruning, not all-on gates
    offline_path, step_path = export_enhancer_onnx(model, tmp_path)
    assert not model.training  # the exporter must not flip the model to train mode

    x = 0.3 * torch.randn(2, 9000)
    with torch.no_grad():
        ref = model(x)
        spec = torch.stft(x, 512, 256, window=model.window, return_complex=True)
        feats = model.features(spec)
        ref_mask, ref_gates = model.masker(feats)
    # Offline graph at a frame count and batch other than the export's.
    mask, gates = ort.InferenceSession(str(offline_path)).run(None, {"feats": feats.numpy()})
    np.testing.assert_allclose(mask, ref_mask.numpy(), atol=1e-5)
    assert (gates == ref_gates.numpy()).mean() > 0.999  # binary: at most a rare tie flips
    assert 0.1 < gates.mean() < 0.6

    # Step graph with explicit state, run frame by frame with numpy STFT / OLA.
    runner = OnnxStreamingEnhancer(step_path)
    y = runner.enhance(x[0].numpy())
    np.testing.assert_allclose(y, ref.wav[0].numpy(), atol=2e-4)
