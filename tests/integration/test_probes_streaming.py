"""MaskProbes on the enhancer's streaming gates equal MaskProbes on the offline gates."""

import numpy as np
import torch

from speechbrain_dyncp.efficiency import plant_gate_ratio
from speechbrain_dyncp.lobes.enhancer import dyncp_small
from speechbrain_dyncp.lobes.probes import MaskProbes
from speechbrain_dyncp.probes.features import frame_features, get_spec, rate_features
from speechbrain_dyncp.probes.fit import fit_probe


def test_probes_run_frame_by_frame_inside_the_streaming_enhancer():
    """Gates recorded while streaming (keep_gates) fed to forward_frame reproduce the offline
    probe outputs of every frame: the probes need nothing but the gates the stream computes."""
    torch.manual_seed(0)
    model = dyncp_small(channels=8, hidden=16, gate_hidden=4, n_stacks=1).eval()
    x = torch.randn(3, 6000) * torch.linspace(0, 1, 6000)  # rising level: gates vary over time
    plant_gate_ratio(model, x, 0.3)
    with torch.no_grad():
        gates = model(x[:1]).gates  # 1, L, N, H
        Xf, idx = frame_features(model(x).gates)
        Xr, idr = rate_features(model(x).gates, window=10, stride=5)
    loud = (torch.linspace(0, 1, 6000)[idx[:, 1] * 256 % 6000] > 0.5).numpy().astype(int)
    probes = MaskProbes.from_sklearn({
        "vad": fit_probe(get_spec("vad", context=0, n_channels=8), Xf.numpy(), loud),
        "snr": fit_probe(get_spec("snr", window=10, n_channels=8), Xr.numpy(), idr[:, 1].numpy().astype(float)),
    }, n_blocks=3, n_channels=16)
    offline = probes(gates)
    ctx = model.make_streaming_context(keep_gates=True)
    with torch.no_grad():
        for chunk in x[:1].split(700, 1):
            model.forward_streaming(chunk, ctx)
        model.finish_streaming(ctx)
    streamed = torch.cat(ctx.gates, dim=2)[:, :, : gates.shape[2]]  # B, L, N, H
    torch.testing.assert_close(streamed, gates)
    state, outs = probes.init_state(1), []
    for t in range(streamed.shape[2]):
        out, state = probes.forward_frame(streamed[:, :, t], state)
        outs.append(out)
    for name in ("vad", "snr"):
        np.testing.assert_allclose(torch.stack([o[name] for o in outs], 1).numpy(), offline[name].numpy(), atol=1e-5)
