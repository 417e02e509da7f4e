"""Grad-W's G from an enhancer model folder and back: load_enhancer_folder / write_enhancer_folder."""

import torch

from speechbrain_dyncp.inference.loading import bundled_model_dir, load_enhancer
from speechbrain_dyncp.verification.training import load_enhancer_folder, write_enhancer_folder


def test_init_then_write_round_trip(tmp_path):
    src = bundled_model_dir()
    g = load_enhancer_folder(src)
    shipped = torch.load(src / "enhancer.ckpt", map_location="cpu", weights_only=True)
    assert all(torch.equal(v, shipped[k]) for k, v in g.state_dict().items())
    assert g.causal and g.tcn.n_gated > 0  # causal and gated as shipped
    name, param = next(iter(g.named_parameters()))
    with torch.no_grad():
        param.add_(0.01)  # "fine-tuned"
    out = write_enhancer_folder(g, src, tmp_path / "model", note="fine-tuned")
    assert (out / "probes.ckpt").read_bytes() == (src / "probes.ckpt").read_bytes()
    assert (out / "hyperparams.yaml").read_text().rstrip().endswith("# fine-tuned")
    loaded = load_enhancer(str(out)).mods.enhancer
    assert all(torch.equal(v, g.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert not torch.equal(loaded.state_dict()[name], shipped[name])
    wav = torch.randn(1, 8000)
    g.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(wav).wav, g(wav).wav, atol=1e-6)
