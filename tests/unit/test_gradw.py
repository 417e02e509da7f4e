"""Properties of the Grad-W / Equal-W loss (speechbrain_dyncp.losses.gradw)."""

import pytest
import torch
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier
from torch import nn

from speechbrain_dyncp.lengths import length_mask
from speechbrain_dyncp.lobes.resnet import ResNetSpeaker
from speechbrain_dyncp.lobes.unet import MaskUNet
from speechbrain_dyncp.losses.gradw import GradWLoss, SpeakerScorer

N_MELS, N_SPK = 16, 4


def tiny_ecapa_scorer(seed=0):
    torch.manual_seed(seed)
    emb = ECAPA_TDNN(N_MELS, channels=[8, 8, 8, 8, 24], attention_channels=4, se_channels=4, lin_neurons=6)
    e = SpeakerScorer(emb, Classifier(6, out_neurons=N_SPK))
    # Non-trivial BatchNorm statistics, so a train-mode slip would change outputs.
    e.train()
    with torch.no_grad():
        for _ in range(3):
            e(torch.randn(4, 20, N_MELS) * 3 + 1)
    return e.eval()


class FrameNet(nn.Module):
    """A speaker net with per-frame (kernel-1) layers and masked mean pooling: exactly padding invariant."""

    def __init__(self, n_in=N_MELS, c=6, d=5):
        super().__init__()
        self.conv1 = nn.Conv1d(n_in, c, 1)
        self.tap = nn.Conv1d(c, c, 1)
        self.fc = nn.Linear(c, d)

    def pool(self, a, lengths):
        m = length_mask(lengths, a.shape[-1], a.shape[0], a.device).unsqueeze(1).float()
        return (a * m).sum(-1) / m.sum(-1)

    def forward(self, x, lengths=None):
        a = self.tap(torch.tanh(self.conv1(x.transpose(1, 2))))
        return self.fc(self.pool(torch.tanh(a), lengths)).unsqueeze(1)


def frame_scorer(seed=0):
    torch.manual_seed(seed)
    return SpeakerScorer(FrameNet(), Classifier(5, out_neurons=N_SPK)).eval()


def feats_pair(b=3, t=25, seed=1):
    g = torch.Generator().manual_seed(seed)
    clean = torch.randn(b, t, N_MELS, generator=g)
    enh = clean + 0.5 * torch.randn(b, t, N_MELS, generator=g)
    return clean, enh


LENS = torch.tensor([1.0, 0.6, 13 / 25])
LABELS = torch.tensor([0, 3, 1])


def test_p_sums_to_one_detached_zero_on_padding():
    """P is a distribution over each utterance's valid frames and carries no graph."""
    loss_fn = GradWLoss(tiny_ecapa_scorer(), weighting="grad")
    clean, enh = feats_pair()
    enh.requires_grad_(True)
    p, a_ref, a_enh = loss_fn.weights(clean, enh, LABELS, LENS)
    assert p.shape == (3, 25)  # ECAPA: one weight per frame
    torch.testing.assert_close(p.sum(1), torch.ones(3))
    assert not p.requires_grad and not a_ref.requires_grad and a_enh.requires_grad
    valid = length_mask(LENS, 25, 3)
    assert bool((p[~valid] == 0).all()) and bool((p[valid] > 0).all())
    assert p[0].std() > 0  # not uniform: the gradients differ between frames


def test_p_matches_hand_autograd():
    """P recomputed by hand (explicit forward split at the tap, autograd.grad) equals the module's."""
    e = frame_scorer()
    scale = 30.0
    loss_fn = GradWLoss(e, layer="embedding_model.tap", weighting="grad", scale=scale)
    clean, enh = feats_pair()
    net = e.embedding_model

    def grad_at_tap(x):
        x = e.normalizer(x, LENS) * length_mask(LENS, x.shape[1], x.shape[0]).unsqueeze(-1)
        a = net.tap(torch.tanh(net.conv1(x.transpose(1, 2)))).detach().requires_grad_(True)
        emb = net.fc(net.pool(torch.tanh(a), LENS)).unsqueeze(1)
        cos = e.classifier(emb).squeeze(1)
        y = scale * cos[torch.arange(3), LABELS]
        return torch.autograd.grad(y.sum(), a)[0]

    d = (grad_at_tap(enh) - grad_at_tap(clean)).sum(1)
    valid = length_mask(LENS, 25, 3)
    p, _, _ = loss_fn.weights(clean, enh, LABELS, LENS)
    for b in range(3):
        torch.testing.assert_close(p[b][valid[b]], torch.softmax(d[b][valid[b]], 0))
        assert p[b].std() > 0


def test_equal_weighting_is_channel_summed_position_mean_l1():
    """Equal-W = (1/B) sum_b (1/n_b) sum_{valid t} sum_c |A_ref - A_enh| with maps from an independent hook."""
    e = tiny_ecapa_scorer()
    maps = []
    e.embedding_model.mfa.register_forward_hook(lambda m, i, o: maps.append(o.detach()))
    clean, enh = feats_pair()
    with torch.no_grad():
        e(clean, LENS)
        e(enh, LENS)
    a_ref, a_enh = maps
    n = torch.round(LENS * 25).long()
    expected = torch.stack([(a_ref[b, :, : n[b]] - a_enh[b, :, : n[b]]).abs().sum(0).mean() for b in range(3)]).mean()
    loss = GradWLoss(e, weighting="equal")(clean, enh, LABELS, LENS)
    torch.testing.assert_close(loss, expected)


def test_speaker_frozen_bit_identical_and_gradients_reach_g():
    """A training step on G leaves E's parameters and BN stats bit-identical, with no gradient; G gets one."""
    e = tiny_ecapa_scorer()
    before = {k: v.clone() for k, v in e.state_dict().items()}
    loss_fn = GradWLoss(e, weighting="grad")
    loss_fn.train()  # what Brain does to its modules: E must stay in eval mode
    assert not e.training and not any(m.training for m in e.modules())
    torch.manual_seed(0)
    g = MaskUNet(N_MELS, base_width=4, num_blocks=[1, 1, 1, 1], up_convs=[1, 1, 1])
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    g_before = [p.detach().clone() for p in g.parameters()]
    clean, noisy = feats_pair()
    loss = loss_fn(clean, g(noisy, LENS).feats, LABELS, LENS)
    loss.backward()
    assert all(p.grad is None for p in e.parameters())
    grads = [p.grad for p in g.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert sum(float(gr.abs().sum()) for gr in grads) > 0
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(g_before, g.parameters()))
    for k, v in e.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("weighting", ["grad", "equal"])
def test_works_under_no_grad_and_equals_grad_enabled_value(weighting):
    """Validation (torch.no_grad): same value as in training, detached."""
    loss_fn = GradWLoss(tiny_ecapa_scorer(), weighting=weighting)
    clean, enh = feats_pair()
    train_val = loss_fn(clean, enh.clone().requires_grad_(True), LABELS, LENS)
    with torch.no_grad():
        val = loss_fn(clean, enh, LABELS, LENS)
    assert not val.requires_grad and val.grad_fn is None
    torch.testing.assert_close(val, train_val.detach())


@pytest.mark.parametrize("weighting", ["grad", "equal"])
def test_padding_invariance(weighting):
    """A short item padded with garbage inside a batch gives its unpadded loss (per-frame net)."""
    loss_fn = GradWLoss(frame_scorer(), layer="embedding_model.tap", weighting=weighting)
    clean, enh = feats_pair(b=2, t=13)
    short_c, short_e = clean[:1, :7], enh[:1, :7]
    garbage = 1e3 * torch.randn(1, 6, N_MELS)
    batch_c = torch.cat([torch.cat([short_c, garbage], 1), clean[1:]])
    batch_e = torch.cat([torch.cat([short_e, -garbage], 1), enh[1:]])
    labels = torch.tensor([2, 1])
    both = loss_fn(batch_c, batch_e, labels, torch.tensor([7 / 13, 1.0]))
    alone = (loss_fn(short_c, short_e, labels[:1]) + loss_fn(clean[1:], enh[1:], labels[1:])) / 2
    torch.testing.assert_close(both, alone)


def test_ecapa_padding_content_does_not_matter():
    """With ECAPA, what fills the padding never changes the loss (only its length can, via conv context)."""
    loss_fn = GradWLoss(tiny_ecapa_scorer(), weighting="grad")
    clean, enh = feats_pair()
    pad = ~length_mask(LENS, 25, 3).unsqueeze(-1)
    noisy_c = clean.masked_fill(pad, 0.0) + pad * 1e3 * torch.randn_like(clean)
    noisy_e = enh.masked_fill(pad, 0.0) + pad * 1e3 * torch.randn_like(enh)
    torch.testing.assert_close(loss_fn(noisy_c, noisy_e, LABELS, LENS), loss_fn(clean, enh, LABELS, LENS))


def test_resnet_speaker_positions_are_time_frequency():
    """With a 2-D ResNet E (as in the paper), P is a softmax over all (f, t) cells of layer4."""
    torch.manual_seed(0)
    emb = ResNetSpeaker(N_MELS, base_width=4, num_blocks=[1, 1, 1, 1], lin_neurons=8)
    loss_fn = GradWLoss(SpeakerScorer(emb, Classifier(8, out_neurons=N_SPK)).eval())
    assert loss_fn.layer == "embedding_model.trunk.layer4"
    clean, enh = feats_pair(t=32)
    p, a_ref, _ = loss_fn.weights(clean, enh, LABELS, LENS)
    assert a_ref.shape[2:] == (2, 4) and p.shape == (3, 2, 4)
    torch.testing.assert_close(p.flatten(1).sum(1), torch.ones(3))
    assert bool((p[1, :, 3] == 0).all())  # 0.6 * 4 frames -> 2 valid: the last column is padding


def test_bad_arguments_raise_clear_errors():
    """Unknown weighting or layer names say what is allowed."""
    with pytest.raises(ValueError, match="weighting"):
        GradWLoss(frame_scorer(), layer="embedding_model.tap", weighting="softmax")
    with pytest.raises(ValueError, match="no submodule"):
        GradWLoss(frame_scorer(), layer="embedding_model.nope")
