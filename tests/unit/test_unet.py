"""Properties of Grad-W's enhancer G (speechbrain_dyncp.lobes.unet) and its feature adapters."""

import math

import pytest
import torch
from speechbrain.lobes.features import Fbank
from torch import nn

from speechbrain_dyncp.lobes.resnet import ResNetTrunk
from speechbrain_dyncp.lobes.sv_features import EnhancedFeatures
from speechbrain_dyncp.lobes.unet import MaskUNet, mask_unet_small


def small_unet(n_mels=20):
    torch.manual_seed(0)
    return MaskUNet(n_mels, base_width=4, num_blocks=[1, 1, 1, 1], up_convs=[1, 2, 1])


@pytest.mark.parametrize("n_frames", [8, 21, 37])
def test_mask_in_open_unit_interval_and_shape_of_input(n_frames):
    """The mask lives in (0, 1) at the input's (T x n_mels) resolution, for T and F not multiples of 8."""
    g = small_unet()
    x = 5 * torch.randn(2, n_frames, 20)
    out = g(x, torch.tensor([1.0, 0.7]))
    assert out.mask.shape == x.shape == out.feats.shape
    assert bool(((out.mask > 0) & (out.mask < 1)).all())


def test_mask_multiplies_mel_power():
    """Enhanced Fbank dB = 10 log10(Mel power x (M + 1e-6)): the mask acts in the Mel-power domain."""
    fbank = Fbank(n_mels=20)
    g = small_unet()
    wav = torch.randn(2, 4000)
    noisy = fbank(wav)
    out = g(noisy)
    mel_power = 10 ** (noisy / 10)
    torch.testing.assert_close(out.feats, 10 * torch.log10(mel_power * (out.mask + 1e-6)), rtol=1e-5, atol=1e-4)
    # the adapter feeds the same Fbank output through G
    torch.testing.assert_close(EnhancedFeatures(fbank, g, domain="mel")(wav), out.feats)


def test_natural_log_features():
    """log_scale=1 gives log E = log X + log(M + 1e-6) exactly as Grad-W's code on natural-log Mel."""
    g = MaskUNet(16, base_width=4, num_blocks=[1, 1, 1, 1], up_convs=[1, 1, 1], log_scale=1.0)
    x = torch.randn(1, 16, 16)
    out = g(x)
    torch.testing.assert_close(out.feats, x + torch.log(out.mask + 1e-6))


def test_paper_architecture():
    """Default G: ResNet34 encoder (32/64/128/256, [3,4,6,3]) and 3+4+6 transposed convs, IN + ReLU."""
    g = MaskUNet(80)
    assert g.encoder.channels == [32, 64, 128, 256]
    assert [len(s) for s in (g.encoder.layer1, g.encoder.layer2, g.encoder.layer3, g.encoder.layer4)] == [3, 4, 6, 3]
    tconvs = [[m for m in up.modules() if isinstance(m, nn.ConvTranspose2d)] for up in g.up]
    assert [len(t) for t in tconvs] == [3, 4, 6]
    assert [t[0].stride for t in tconvs] == [(2, 2)] * 3 and all(c.stride == (1, 1) for t in tconvs for c in t[1:])
    assert g.head.out_channels == 1 and g.head.bias is None


def test_trunk_strides():
    """Stage outputs are 1, 1/2, 1/4, 1/8 of the input in both axes."""
    outs = ResNetTrunk(base_width=4, num_blocks=[1, 1, 1, 1])(torch.randn(1, 1, 80, 64))
    assert [o.shape[2:] for o in outs] == [(80, 64), (40, 32), (20, 16), (10, 8)]


def test_gradient_reaches_every_parameter():
    """Every parameter of G (encoder, decoder, head) receives a non-zero gradient."""
    g = mask_unet_small(24)
    out = g(torch.randn(2, 19, 24))
    out.feats.square().mean().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in g.parameters())


def test_wave_domain_adapter_runs_features_on_enhanced_wav():
    """domain='wave' (DynCP): features of the enhancer's waveform, through the same Fbank."""

    class Halve(nn.Module):
        def forward(self, wav, lengths=None):
            return wav * 0.5

    fbank = Fbank(n_mels=20)
    wav = torch.randn(1, 4000)
    out = EnhancedFeatures(fbank, Halve(), domain="wave")(wav)
    torch.testing.assert_close(out, fbank(wav) - 20 * math.log10(2), atol=1e-3, rtol=0)


def test_bad_input_messages():
    """Wrong shapes say what was expected."""
    with pytest.raises(ValueError, match=r"\[batch, time, 20\]"):
        small_unet()(torch.randn(2, 10, 21))
    with pytest.raises(ValueError, match=r"\[batch, time\]"):
        EnhancedFeatures(Fbank(n_mels=20))(torch.randn(4000))


def test_dyncp_enhancer_as_g_gets_gradw_gradients():
    """The DynCP enhancer (waveform in/out) plugs in as G: the Grad-W loss reaches its parameters."""
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier

    from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer
    from speechbrain_dyncp.losses.gradw import GradWLoss, SpeakerScorer

    torch.manual_seed(0)
    g = DynCPEnhancer(channels=8, hidden=8, n_stacks=1, n_blocks=2, gate_hidden=4, causal=False, gated=False)
    fbank = Fbank(n_mels=20)
    emb = ECAPA_TDNN(20, channels=[8, 8, 8, 8, 24], attention_channels=4, se_channels=4, lin_neurons=6)
    loss_fn = GradWLoss(SpeakerScorer(emb, Classifier(6, out_neurons=3)))
    clean = torch.randn(2, 4000)
    noisy = clean + torch.randn(2, 4000)
    lens = torch.tensor([1.0, 0.75])
    loss = loss_fn(fbank(clean), EnhancedFeatures(fbank, g, domain="wave")(noisy, lens), torch.tensor([0, 2]), lens)
    loss.backward()
    assert sum(float(p.grad.abs().sum()) for p in g.parameters() if p.grad is not None) > 0
