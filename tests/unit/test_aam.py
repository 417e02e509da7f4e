"""Sub-centre AAM-softmax, inter-top-k penalty and the margin ramp (losses/aam.py)."""

import math

import numpy as np
import torch
from speechbrain.utils.checkpoints import Checkpointer

from speechbrain_dyncp.losses.aam import MarginScheduler, SubCenterAAMLoss, SubCenterClassifier


def test_subcenter_cosine_is_max_over_subcentres():
    """cos(x, class c) = max_k <x/|x|, w_ck/|w_ck|>, computed with loops."""
    torch.manual_seed(0)
    clf = SubCenterClassifier(input_size=5, out_neurons=4, n_subcenters=3).requires_grad_(False)
    emb = torch.randn(3, 1, 5)
    got = clf(emb)
    for b in range(3):
        x = emb[b, 0] / emb[b, 0].norm()
        for c in range(4):
            best = max(float(x @ (clf.weight[c, k] / clf.weight[c, k].norm())) for k in range(3))
            assert abs(float(got[b, 0, c]) - best) < 1e-6


def _reference_logits(cos, target, m, s, k, mp):
    """Margin logits written out element by element."""
    out = []
    order = sorted((c for c in range(len(cos)) if c != target), key=lambda c: -cos[c])[:k]
    for c, v in enumerate(cos):
        theta = math.acos(v)
        if c == target:
            out.append(math.cos(theta + m) if v > math.cos(math.pi - m) else v - m * math.sin(math.pi - m))
        elif c in order:
            out.append(math.cos(theta - mp))
        else:
            out.append(v)
    return [s * v for v in out]


def test_aam_logits_and_loss_by_hand():
    """Target cos(theta+m) (with the fallback), top-k cos(theta-m'), scale, cross-entropy."""
    loss = SubCenterAAMLoss(margin=0.3, scale=30.0, topk=2, topk_margin=0.06)
    cos = torch.tensor([[0.8, 0.5, -0.1, 0.7, 0.2], [-0.99, 0.3, 0.6, 0.1, 0.0]])
    tgt = torch.tensor([[0], [0]])  # item 1: theta + m passes pi -> fallback
    got = loss.logits(cos.unsqueeze(1), tgt)
    ce = 0.0
    for b in range(2):
        ref = _reference_logits(cos[b].tolist(), 0, 0.3, 30.0, 2, 0.06)
        torch.testing.assert_close(got[b], torch.tensor(ref), atol=1e-4, rtol=1e-5)
        ce += -(ref[0] - math.log(sum(math.exp(v) for v in ref)))
    torch.testing.assert_close(loss(cos.unsqueeze(1), tgt), torch.tensor(ce / 2), atol=1e-4, rtol=1e-5)


def test_margin_schedule_formula_and_topk_scaling():
    """m_i = m_max (log u_i - min log u)/(max - min), u = linspace(5e-3, 1, N); m' = 0.06 m / 0.3."""
    loss = SubCenterAAMLoss(margin=0.0, topk_margin=0.06)
    sched = MarginScheduler(loss, max_margin=0.3, ramp_steps=40)
    logu = np.log(np.linspace(5e-3, 1.0, 40))
    expected = 0.3 * (logu - logu.min()) / (logu.max() - logu.min())
    got = []
    for _ in range(45):
        got.append(sched.step())
        assert abs(loss.topk_margin - 0.06 * loss.margin / 0.3) < 1e-12
    np.testing.assert_allclose(got[:40], expected, atol=1e-12)
    assert got[40:] == [0.3] * 5 and got[0] == 0.0
    assert all(b > a for a, b in zip(got[:39], got[1:40]))  # strictly increasing ramp


def test_margin_scheduler_is_recoverable(tmp_path):
    """The ramp position survives a checkpoint round trip."""
    loss = SubCenterAAMLoss(margin=0.0)
    sched = MarginScheduler(loss, max_margin=0.3, ramp_steps=10)
    for _ in range(4):
        sched.step()
    ckpt = Checkpointer(tmp_path, recoverables={"margin": sched})
    ckpt.save_checkpoint()
    loss2 = SubCenterAAMLoss(margin=0.0)
    sched2 = MarginScheduler(loss2, max_margin=0.3, ramp_steps=10)
    Checkpointer(tmp_path, recoverables={"margin": sched2}).recover_if_possible()
    assert sched2.n_steps == 4 and loss2.margin == loss.margin
    assert sched2.step() == sched.step()


def test_aam_training_separates_classes():
    """A few steps of sub-centre AAM on a linear embedder lower the loss and reach full accuracy."""
    torch.manual_seed(0)
    centers = torch.randn(4, 8) * 3
    y = torch.arange(4).repeat(16)
    x = centers[y] + torch.randn(64, 8)
    emb = torch.nn.Linear(8, 6)
    clf = SubCenterClassifier(6, 4, n_subcenters=2)
    loss_fn = SubCenterAAMLoss(margin=0.2, scale=30.0, topk=2, topk_margin=0.06)
    opt = torch.optim.Adam([*emb.parameters(), *clf.parameters()], lr=0.05)
    first = None
    for _ in range(60):
        loss = loss_fn(clf(emb(x).unsqueeze(1)), y.unsqueeze(1))
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * first
    assert float((clf(emb(x).unsqueeze(1))[:, 0].argmax(-1) == y).float().mean()) == 1.0
