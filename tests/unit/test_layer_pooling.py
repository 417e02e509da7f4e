"""Properties of LAP, the SUPERB weighted sum (lobes/layer_pooling.py) and ASTP (lobes/temporal_pooling.py)."""

import copy

import pytest
import torch

from speechbrain_dyncp.lobes.layer_pooling import LayerAttentivePooling, WeightedSumLayerPooling, to_batch_first
from speechbrain_dyncp.lobes.temporal_pooling import AttentiveStatisticsTemporalPooling


def _randomise(module, seed=0):
    """Non-trivial BN affine/running stats and biases, so the reference is a real check."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "bias" in name or p.ndim == 1:
                p.copy_(0.5 * torch.randn(p.shape, generator=g) + (1.0 if "norm.weight" in name else 0.0))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return module


def _bn(x, bn, dims, training):
    """BatchNorm over ``dims`` with plain tensor ops (biased batch variance)."""
    if training:
        mu, var = x.mean(dim=dims), x.var(dim=dims, unbiased=False)
    else:
        mu, var = bn.running_mean, bn.running_var
    return (x - mu) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias


def _lap_reference(lap, x, training):
    """LAP from its formula: x [B, L, T, D] -> [B, T, D_out]."""
    B, L, T, D = x.shape
    h = lap.n_heads
    d = D // h
    xn = _bn(x, lap.in_norm, (0, 1, 2), training)
    xm = xn @ lap.in_mix.weight.T + lap.in_mix.bias  # 1x1 conv over D
    out = torch.zeros(B, T, D)
    for b in range(B):
        for t in range(T):
            for k in range(h):
                blk = xm[b, :, t, k * d:(k + 1) * d]  # L, d
                def se(z):
                    hid = torch.relu(z @ lap.sq_weight[k] + lap.sq_bias[k, 0])
                    return hid @ lap.ex_weight[k] + lap.ex_bias[k, 0]
                s = torch.sigmoid(se(blk.mean(dim=1)) + se(blk.max(dim=1).values))  # L
                out[b, t, k * d:(k + 1) * d] = (blk * s[:, None]).max(dim=0).values
    y = out @ lap.out_proj.weight.T + lap.out_proj.bias
    return _bn(y, lap.out_norm, (0, 1), training)


def _small_lap(seed, training):
    """A randomised 4-layer, 2-head LAP without dropout; the global seed is left at ``seed``."""
    torch.manual_seed(seed)
    return _randomise(LayerAttentivePooling(n_layers=4, input_size=8, out_channels=6, n_heads=2,
                                            dropout=0.0)).train(training)


@pytest.mark.parametrize("training", [False, True])
def test_lap_matches_formula(training):
    """LAP equals a direct re-computation of its equations (batch stats in training)."""
    lap = _small_lap(seed=0, training=training)
    x = torch.randn(2, 4, 5, 8)
    torch.testing.assert_close(lap(x), _lap_reference(lap, x, training), atol=1e-5, rtol=1e-5)


def test_layer_scores_in_unit_interval_and_time_dynamic():
    """Scores are sigmoids (0 < s < 1), differ between frames and sum to no constant."""
    torch.manual_seed(1)
    lap = _randomise(LayerAttentivePooling(n_layers=5, input_size=16, out_channels=8, n_heads=4)).eval()
    s = lap.layer_scores(torch.randn(2, 5, 30, 16))
    assert s.shape == (2, 30, 4, 5)
    assert bool(((s > 0) & (s < 1)).all())
    assert float((s[:, 1:] - s[:, :-1]).abs().amax()) > 1e-2  # per-frame, not static
    sums = s.sum(-1)
    assert float(sums.max() - sums.min()) > 1e-2  # not softmax-normalised


def test_max_over_layers_after_reweighting():
    """Layer 0 is larger but down-weighted: max(x*s) picks layer 1, max(x)*s would not."""
    lap = LayerAttentivePooling(n_layers=2, input_size=2, out_channels=2, n_heads=1, dropout=0.0).eval()
    with torch.no_grad():
        lap.out_proj.weight.copy_(torch.eye(2))
    lap._scores = lambda x: torch.tensor([0.1, 1.0]).expand(*x.shape[:3], 2)
    x = torch.zeros(1, 2, 1, 2)
    x[0, 0, 0], x[0, 1, 0] = torch.tensor([5.0, 5.0]), torch.tensor([1.0, 1.0])
    eps = lap.in_norm.eps
    expected = torch.full((2,), max(5.0 * 0.1, 1.0 * 1.0)) / (1 + eps) ** 0.5 / (1 + eps) ** 0.5
    torch.testing.assert_close(lap(x)[0, 0], expected)
    assert abs(float(lap(x)[0, 0, 0].detach()) - 5.0 * 0.1) > 0.4  # max-then-weight would give 0.5


def _padded(x, extra, seed=0):
    """Append ``extra`` frames of large random values along the time axis (dim -2)."""
    g = torch.Generator().manual_seed(seed)
    pad = 1e3 * torch.randn(*x.shape[:-2], extra, x.shape[-1], generator=g)
    return torch.cat([x, pad], dim=-2)


@pytest.mark.parametrize("training", [False, True])
def test_lap_ignores_padding(training):
    """7 of 13 frames valid: same output as the unpadded input, in eval and in training."""
    lap = _small_lap(seed=2, training=training)
    hs = torch.randn(1, 4, 7, 8)
    a, b = copy.deepcopy(lap), copy.deepcopy(lap)
    out = a(_padded(hs, 6), torch.tensor([7 / 13]))
    torch.testing.assert_close(out[:, :7], b(hs))
    assert bool((out[:, 7:] == 0).all())
    # padded frames are excluded from the BN running statistics too
    torch.testing.assert_close(a.in_norm.running_mean, b.in_norm.running_mean)
    torch.testing.assert_close(a.out_norm.running_var, b.out_norm.running_var)


def test_weighted_sum_ignores_padding_and_selects_layers():
    """Padding-invariant; a dominant logit selects that layer."""
    pool = WeightedSumLayerPooling(n_layers=3, input_size=4)
    hs = torch.randn(1, 3, 7, 4)
    out = pool(_padded(hs, 6), torch.tensor([7 / 13]))
    torch.testing.assert_close(out[:, :7], pool(hs))
    with torch.no_grad():
        pool.layer_logits.copy_(torch.tensor([0.0, 50.0, 0.0]))
    torch.testing.assert_close(pool(hs), hs[:, 1])


@pytest.mark.parametrize("training", [False, True])
def test_astp_ignores_padding(training):
    """ASTP embeddings do not change with the padding (global context and softmax masked)."""
    torch.manual_seed(3)
    astp = _randomise(AttentiveStatisticsTemporalPooling(input_size=6, lin_neurons=4, frame_dropout=0.0))
    astp.train(training)
    x = torch.randn(2, 13, 6)
    lens = torch.tensor([7 / 13, 1.0])
    a, b = copy.deepcopy(astp), copy.deepcopy(astp)
    x1, x2 = x.clone(), x.clone()
    x1[0, 7:] = 1e3 * torch.randn(6, 6)  # item 0 is padded after 7 frames
    x2[0, 7:] = -1e3 * torch.rand(6, 6)
    out_a, out_b = a(x1, lens), b(x2, lens)
    torch.testing.assert_close(out_a[0], out_b[0])
    if not training:  # per-item in eval: equals the unpadded item alone
        torch.testing.assert_close(out_a[0], astp(x[:1, :7])[0])


def test_astp_frame_dropout_changes_training_only():
    """Frame dropout is random in training and absent in eval."""
    torch.manual_seed(4)
    astp = AttentiveStatisticsTemporalPooling(input_size=6, lin_neurons=4, frame_dropout=0.5)
    x = torch.randn(3, 20, 6)
    astp.eval()
    torch.testing.assert_close(astp(x), astp(x))
    astp.train()
    assert not torch.allclose(astp(x), astp(x))


def test_gradients_reach_layer_scoring():
    """The SE weights that score layers receive gradients through the max."""
    lap = LayerAttentivePooling(n_layers=3, input_size=8, out_channels=4, n_heads=2)
    lap(torch.randn(2, 3, 10, 8)).pow(2).sum().backward()
    assert float(lap.sq_weight.grad.abs().sum()) > 0 and float(lap.ex_bias.grad.abs().sum()) > 0


def test_wrong_layer_count_and_layout_helper():
    """A layer count mismatch (e.g. LayerDrop) raises; [L, B, T, D] converts."""
    lap = LayerAttentivePooling(n_layers=3, input_size=8, out_channels=4, n_heads=2)
    with pytest.raises(ValueError, match="LayerDrop"):
        lap(torch.randn(1, 2, 5, 8))
    x = torch.randn(3, 2, 5, 8)
    torch.testing.assert_close(to_batch_first(x)[1, 2], x[2, 1])
