"""SSL front-end: offline tiny models, fixed layer count, freezing (lobes/ssl_frontend.py)."""

import json

import pytest
import torch

from speechbrain_dyncp.lobes.layer_pooling import LayerAttentivePooling
from speechbrain_dyncp.lobes.temporal_pooling import AttentiveStatisticsTemporalPooling
from speechbrain_dyncp.lobes.ssl_frontend import SSLFrontEnd, make_tiny_ssl_model
from speechbrain_dyncp.losses.aam import SubCenterAAMLoss, SubCenterClassifier


def _edit_config(folder, **changes):
    path = f"{folder}/config.json"
    cfg = json.load(open(path))
    cfg.update(changes)
    json.dump(cfg, open(path, "w"))


@pytest.mark.parametrize("kind", ["wavlm", "hubert", "wav2vec2"])
def test_tiny_model_loads_offline_with_fixed_layer_count(tmp_path, monkeypatch, kind):
    """With LayerDrop 0.9 in the checkpoint config, train-mode calls still return L+1 states."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = make_tiny_ssl_model(tmp_path / kind, kind=kind, num_layers=3)
    _edit_config(folder, layerdrop=0.9)
    fe = SSLFrontEnd(folder, freeze=False).train()
    assert type(fe.hf_model).__name__.lower().startswith(kind.replace("wav2vec2", "wav2vec2model"))
    counts = {fe(torch.randn(1, 2000)).shape[1] for _ in range(6)}
    assert counts == {4}
    # the raw HF model with the checkpoint's LayerDrop does drop layers: the fix is needed
    fe.hf_model.config.layerdrop = 0.9
    raw = {len(fe.hf_model(torch.randn(1, 2000), output_hidden_states=True).hidden_states) for _ in range(6)}
    assert raw != {4}


def test_spec_augment_off_unless_asked(tmp_path):
    """Without dropout, train-mode outputs are deterministic unless SpecAugment is requested."""
    folder = make_tiny_ssl_model(tmp_path / "m")
    _edit_config(folder, hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                 feat_proj_dropout=0.0, mask_time_prob=0.5, mask_time_length=2)
    wav = torch.randn(1, 8000)
    fe = SSLFrontEnd(folder, freeze=False).train()
    torch.testing.assert_close(fe(wav), fe(wav))
    fe_aug = SSLFrontEnd(folder, freeze=False, apply_spec_augment=True).train()
    assert not torch.allclose(fe_aug(wav), fe_aug(wav))


def test_frozen_frontend_unchanged_by_training_step(tmp_path):
    """Frozen: eval mode after .train(), no grads, identical weights after an Adam step."""
    torch.manual_seed(0)
    fe = SSLFrontEnd(make_tiny_ssl_model(tmp_path / "m"), freeze=True)
    lap = LayerAttentivePooling(fe.n_layers, fe.hidden_size, out_channels=16, n_heads=4)
    astp = AttentiveStatisticsTemporalPooling(16, lin_neurons=8)
    clf = SubCenterClassifier(8, 3)
    model = torch.nn.ModuleDict({"fe": fe, "lap": lap, "astp": astp, "clf": clf}).train()
    assert not fe.hf_model.training and lap.training
    before = {k: v.clone() for k, v in fe.state_dict().items()}
    lap_before = lap.sq_weight.detach().clone()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    wav, lens = torch.randn(3, 8000), torch.tensor([1.0, 0.8, 0.6])
    loss = SubCenterAAMLoss()(clf(astp(lap(fe(wav, lens), lens), lens)), torch.tensor([[0], [1], [2]]))
    loss.backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in fe.state_dict().items())
    assert all(p.grad is None for p in fe.parameters())
    assert not torch.equal(lap_before, lap.sq_weight)


def test_finetuned_frontend_gets_gradients(tmp_path):
    """freeze=False: gradients reach the CNN feature encoder and the transformer."""
    fe = SSLFrontEnd(make_tiny_ssl_model(tmp_path / "m"), freeze=False).train()
    fe(torch.randn(2, 4000)).pow(2).mean().backward()
    grads = {n: p.grad for n, p in fe.named_parameters()}
    assert any("conv_layers" in n and g is not None and g.abs().sum() > 0 for n, g in grads.items())
    assert any("encoder.layers" in n and g is not None and g.abs().sum() > 0 for n, g in grads.items())


def test_missing_local_folder_never_reaches_the_network():
    """A path-looking source that does not exist fails at once with the path in the message."""
    with pytest.raises(FileNotFoundError, match="results/typo/tiny_ssl"):
        SSLFrontEnd("./results/typo/tiny_ssl")


def test_generic_encoder_module():
    """Any module returning a list of hidden states works; L and D are measured."""

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(160, 6)
            self.layer = torch.nn.Linear(6, 6)

        def forward(self, wav, wav_lens=None):
            h0 = self.proj(wav.unfold(1, 160, 160))
            return [h0, self.layer(h0), self.layer(self.layer(h0))]

    fe = SSLFrontEnd(Toy(), freeze=True)
    assert (fe.n_layers, fe.hidden_size) == (3, 6)
    hs = fe(torch.randn(2, 1600))
    assert hs.shape == (2, 3, 10, 6) and not hs.requires_grad
