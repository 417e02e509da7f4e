"""Properties of the DynCP enhancer (Conv-FSENet with gated TCN)."""

import pytest
import torch

from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer, dyncp_small, masked_istft


TINY = dict(channels=8, hidden=12, n_stacks=1, n_blocks=3, gate_hidden=4, gate_window=3)


def _model(**kw):
    torch.manual_seed(0)
    cfg = dict(TINY, gate_init_bias=0.0)
    cfg.update(kw)
    model = DynCPEnhancer(**cfg).eval()
    for blk in model.tcn.blocks:  # non-trivial norm statistics
        for bn in (blk.norm1, blk.norm2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("causal", [True, False])
def test_padding_never_changes_valid_outputs(causal):
    """Lengths 7/13: padded item == unpadded item on every valid sample/frame."""
    model = _model(causal=causal)
    n = 7 * 256 + 100
    x = torch.randn(1, n)
    t = round(n * 13 / 7)
    padded = torch.cat([x, 1e3 * torch.randn(1, t - n)], 1)
    batch = torch.cat([padded, torch.randn(1, t)])
    ref = model(x)
    out = model(batch, lengths=torch.tensor([n / t, 1.0]))
    nf = ref.mask.shape[1]
    assert out.frame_mask[0].sum() == nf == 1 + n // 256
    torch.testing.assert_close(out.wav[0, :n], ref.wav[0], atol=1e-5, rtol=1e-4)
    assert out.wav[0, n:].abs().max() == 0
    torch.testing.assert_close(out.mask[0, :nf], ref.mask[0])
    assert out.mask[0, nf:].abs().max() == 0
    assert torch.equal(out.gates[0, :, :nf], ref.gates[0])


def test_gated_model_with_gates_on_equals_dense_model():
    """Dense mode == gated mode with every gate forced on (same weights)."""
    dense = _model(gated=False)
    gated = _model()
    gated.load_state_dict(dense.state_dict(), strict=False)
    for g in gated.tcn.gates:
        torch.nn.init.zeros_(g.convs[-1].weight)
        torch.nn.init.constant_(g.convs[-1].bias, 1.0)
    x = torch.randn(2, 3000)
    d, o = dense(x), gated(x)
    assert torch.equal(d.gates, torch.ones_like(d.gates))
    assert d.gates.shape == o.gates.shape and bool((o.gates == 1).all())
    torch.testing.assert_close(o.wav, d.wav)


def test_gated_off_channel_makes_output_independent_of_its_weights():
    """A channel gated to 0 at every frame: its W1 row, taps and W2 column are irrelevant."""
    model = _model()
    gate = model.tcn.gates[1]
    torch.nn.init.constant_(gate.convs[-1].bias[5:6], -1e4)
    x = torch.randn(2, 3000)
    ref = model(x)
    assert bool((ref.gates[:, 1, :, 5] == 0).all())
    blk = model.tcn.blocks[1]
    with torch.no_grad():
        blk.in_conv.weight[5].normal_(0, 10.0)
        blk.in_conv.bias[5] = 7.0
        blk.dw_conv.weight[5].normal_(0, 10.0)
        blk.out_conv.weight[:, 5].normal_(0, 10.0)
    torch.testing.assert_close(model(x).wav, ref.wav)
    with torch.no_grad():  # the same change on an active channel does matter
        on = int(ref.gates[0, 1, 3].nonzero()[0])
        blk.out_conv.weight[:, on].normal_(0, 10.0)
    assert not torch.allclose(model(x).wav, ref.wav)


def test_surrogate_gradient_reaches_gates_through_the_enhancer():
    """An output loss gives nonzero gradients on every gate's parameters."""
    model = _model().train()
    out = model(torch.randn(2, 3000), lengths=torch.tensor([1.0, 0.6]))
    out.wav.pow(2).sum().backward()
    for g in model.tcn.gates:
        assert g.convs[0].weight.grad.abs().sum() > 0
        assert g.convs[-1].bias.grad.abs().sum() > 0


def test_masked_istft_equals_torch_istft_without_padding():
    """Our inverse STFT is torch.istft when every frame is valid."""
    w = torch.hann_window(512)
    spec = torch.stft(torch.randn(2, 5000), 512, 256, window=w, return_complex=True)
    spec = spec * torch.rand(spec.shape)  # a non-consistent spectrogram
    ok = torch.ones(2, spec.shape[-1], dtype=torch.bool)
    want = torch.istft(spec, 512, 256, window=w, length=5000)
    torch.testing.assert_close(masked_istft(spec, ok, w, 256, 5000), want, atol=1e-5, rtol=1e-4)


def test_lengths_as_cpu_kwarg_and_bad_shape():
    """lengths=tensor([1.0]) (SpectralMaskEnhancement) == no lengths; 1-D input errors."""
    model = _model()
    x = torch.randn(1, 2000)
    torch.testing.assert_close(model(x, lengths=torch.tensor([1.0])).wav, model(x).wav)
    with pytest.raises(ValueError, match=r"\[batch, time\]"):
        model(x[0])


def test_dyncp_small_preset():
    """The small preset has 6 gated blocks of 128 channels and fewer params than the base."""
    small, base = dyncp_small(), DynCPEnhancer()
    assert (small.tcn.n_gated, small.tcn.hidden, small.tcn.channels) == (6, 128, 64)
    assert base.tcn.n_gated == 9 and base.tcn.hidden == 256
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(small) < n(base) / 3
