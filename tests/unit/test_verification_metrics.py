"""Verification metrics: EER / minDCF against SpeechBrain and by hand, score normalisation, trial lists."""

import math

import numpy as np
import pytest
import torch
from speechbrain.utils.metric_stats import EER as sb_eer
from speechbrain.utils.metric_stats import minDCF as sb_min_dcf

from speechbrain_dyncp.verification.metrics import compute_eer, compute_min_dcf, verification_metrics
from speechbrain_dyncp.verification.scoring import ScoreNormalizer, cosine_scores, score_trials
from speechbrain_dyncp.verification.trials import Trials, UnknownTrialIdError, read_trials, write_scores


def _random_trials(seed, n_pos, n_neg, decimals=None):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n_pos, generator=g) + 1.0
    neg = torch.randn(n_neg, generator=g)
    if decimals is not None:  # force ties between and within classes
        pos, neg = pos.round(decimals=decimals), neg.round(decimals=decimals)
    scores = torch.cat([pos, neg])
    labels = torch.cat([torch.ones(n_pos), torch.zeros(n_neg)])
    return pos, neg, scores, labels


@pytest.mark.parametrize("seed,n_pos,n_neg,decimals", [(0, 20, 30, None), (1, 50, 50, None), (2, 7, 61, None),
                                                       (3, 40, 25, 1), (4, 33, 80, 0), (5, 3, 4, None)])
def test_eer_matches_speechbrain(seed, n_pos, n_neg, decimals):
    """Same EER value and threshold as speechbrain.utils.metric_stats.EER (ties included)."""
    pos, neg, scores, labels = _random_trials(seed, n_pos, n_neg, decimals)
    ref, ref_thr = sb_eer(pos, neg)
    eer, thr = compute_eer(scores, labels)
    assert eer == pytest.approx(ref, abs=1e-6)
    assert thr == pytest.approx(ref_thr, abs=1e-6)


@pytest.mark.parametrize("p_target,c_miss,c_fa", [(0.01, 1.0, 1.0), (0.05, 1.0, 1.0), (0.3, 2.0, 0.5)])
@pytest.mark.parametrize("seed,decimals", [(0, None), (1, 1), (2, None)])
def test_min_dcf_matches_speechbrain_unnormalised(seed, decimals, p_target, c_miss, c_fa):
    """SpeechBrain's minDCF is the unnormalised cost; ours gives it and the normalised one."""
    pos, neg, scores, labels = _random_trials(seed, 37, 53, decimals)
    ref, _ = sb_min_dcf(pos, neg, c_miss=c_miss, c_fa=c_fa, p_target=p_target)
    d = compute_min_dcf(scores, labels, p_target=p_target, c_miss=c_miss, c_fa=c_fa)
    assert d.min_dcf_unnormalised == pytest.approx(ref, abs=1e-6)
    assert d.min_dcf == pytest.approx(ref / min(c_miss * p_target, c_fa * (1 - p_target)), abs=1e-5)


def test_perfect_separation_gives_zero():
    scores = [0.9, 0.8, 0.7, -0.1, 0.2, 0.3]
    labels = [1, 1, 1, 0, 0, 0]
    assert compute_eer(scores, labels)[0] == 0.0
    for p in (0.01, 0.05, 0.5):
        assert compute_min_dcf(scores, labels, p_target=p).min_dcf == 0.0


def test_fully_overlapping_gives_chance():
    """Identical target and non-target score sets: EER 0.5 and normalised minDCF 1."""
    s = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    scores, labels = s + s, [1] * 6 + [0] * 6
    assert compute_eer(scores, labels)[0] == pytest.approx(0.5)
    assert compute_min_dcf(scores, labels, p_target=0.05).min_dcf == pytest.approx(1.0)
    # all scores equal: one operating point besides accept-all, still chance
    assert compute_eer([0.3] * 4, [1, 0, 1, 0])[0] == pytest.approx(0.5)


def test_worked_four_trial_example():
    """Non-targets 0.1, 0.4; targets 0.35, 0.8 (accept when score > t).

    t=-inf: FRR 0, FAR 1 | t=0.1: 0, 1/2 | t=0.35: 1/2, 1/2 | t=0.4: 1/2, 0 | t=0.8: 1, 0.
    EER: |FAR-FRR| = 0 at t=0.35 -> 0.5.
    DCF(p=0.05) = 0.05 P_miss + 0.95 P_fa: 0.95, 0.475, 0.5, 0.025, 0.05 -> min 0.025 at t=0.4,
    normalised by min(0.05, 0.95) = 0.05 -> 0.5.
    """
    scores, labels = [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]
    assert compute_eer(scores, labels) == (0.5, 0.35)
    d = compute_min_dcf(scores, labels, p_target=0.05)
    assert d.min_dcf_unnormalised == pytest.approx(0.025)
    assert d.min_dcf == pytest.approx(0.5)
    assert d.threshold == 0.4


def test_invariant_to_monotone_transforms():
    _, _, scores, labels = _random_trials(7, 60, 90)
    s = scores.double()
    ref_eer = compute_eer(s, labels)[0]
    ref_dcf = compute_min_dcf(s, labels, p_target=0.05).min_dcf
    for f in (lambda x: 3 * x + 1, torch.exp, torch.sigmoid, lambda x: x ** 3):
        assert compute_eer(f(s), labels)[0] == ref_eer
        assert compute_min_dcf(f(s), labels, p_target=0.05).min_dcf == ref_dcf


def test_large_list_matches_gaussian_theory():
    """1e6 trials (SpeechBrain's minDCF would need ~TBs here): EER of N(d,1) vs N(0,1) is Phi(-d/2)."""
    rng = np.random.default_rng(0)
    d, n = 2.0, 500_000
    scores = np.r_[rng.normal(d, 1, n), rng.normal(0, 1, n)]
    labels = np.r_[np.ones(n), np.zeros(n)]
    theory = 0.5 * math.erfc(d / 2 / math.sqrt(2))
    assert compute_eer(scores, labels)[0] == pytest.approx(theory, abs=2e-3)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="both target and non-target"):
        compute_eer([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="NaN"):
        compute_eer([0.1, float("nan")], [1, 0])
    with pytest.raises(ValueError, match="p_target"):
        compute_min_dcf([0.1, 0.2], [1, 0], p_target=0.0)


def test_verification_metrics_reports_each_prior():
    _, _, scores, labels = _random_trials(3, 30, 30)
    m = verification_metrics(scores, labels, p_targets=(0.01, 0.05))
    assert m["EER"] == pytest.approx(100 * compute_eer(scores, labels)[0])
    assert m["minDCF@0.05"] == pytest.approx(compute_min_dcf(scores, labels, 0.05).min_dcf)
    assert m["minDCF_unnorm@0.01"] == pytest.approx(compute_min_dcf(scores, labels, 0.01).min_dcf_unnormalised)


# --------------------------------------------------------------------------- score normalisation


def _norm_by_hand(s, e, t, cohort, method, k):
    """Per-trial recomputation with plain Python loops (SpeechBrain recipe formula)."""

    def stats(x):
        sc = sorted((float(torch.nn.functional.cosine_similarity(x, c, dim=0)) for c in cohort), reverse=True)
        sc = sc[:k] if k else sc
        mu = sum(sc) / len(sc)
        sd = math.sqrt(sum((v - mu) ** 2 for v in sc) / (len(sc) - 1))
        return mu, sd

    (mu_e, sd_e), (mu_t, sd_t) = stats(e), stats(t)
    z, tn = (s - mu_e) / sd_e, (s - mu_t) / sd_t
    return {"z-norm": z, "t-norm": tn, "s-norm": 0.5 * (z + tn), "as-norm": 0.5 * (z + tn)}[method]


@pytest.mark.parametrize("method,k", [("z-norm", None), ("t-norm", None), ("s-norm", None), ("as-norm", 3),
                                      ("z-norm", 4)])
def test_score_normalisation_by_hand(method, k):
    g = torch.Generator().manual_seed(0)
    cohort = torch.randn(7, 5, generator=g)
    emb = {f"u{i}": torch.randn(5, generator=g) for i in range(5)}
    trials = Trials(["u0", "u0", "u1", "u2"], ["u3", "u4", "u3", "u0"], np.array([1, 0, 0, 1]))
    norm = ScoreNormalizer(cohort, method, top_k=k)
    got = score_trials(trials, emb, norm)
    raw = score_trials(trials, emb)
    want = [_norm_by_hand(float(raw[i]), emb[e], emb[t], cohort, method, k)
            for i, (e, t) in enumerate(zip(trials.enrol, trials.test))]
    torch.testing.assert_close(got, torch.tensor(want), atol=1e-5, rtol=1e-5)
    # stats are cached per unique id, and a second call gives the same scores
    n_cached = len(norm.cache)
    assert n_cached == {"z-norm": 3, "t-norm": 3}.get(method, 5)
    torch.testing.assert_close(score_trials(trials, emb, norm), got)
    assert len(norm.cache) == n_cached


def test_as_norm_needs_top_k_and_valid_method():
    with pytest.raises(ValueError, match="top_k"):
        ScoreNormalizer(torch.randn(4, 3), "as-norm")
    with pytest.raises(ValueError, match="choose from"):
        ScoreNormalizer(torch.randn(4, 3), "q-norm")


def test_cosine_scores_ignore_scale():
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    torch.testing.assert_close(cosine_scores(3 * a, 0.5 * b), torch.nn.functional.cosine_similarity(a, b))


# --------------------------------------------------------------------------- trial lists


def test_read_trials_both_formats(tmp_path):
    vox = tmp_path / "vox.txt"
    vox.write_text("1 id1/s1/001.wav id1/s2/002.wav\n0 id1/s1/001.wav id2/s9/003.wav\n\n")
    kaldi = tmp_path / "kaldi.txt"
    kaldi.write_text("id1/s1/001 id1/s2/002 target\nid1/s1/001 id2/s9/003 nontarget\n")
    a, b = read_trials(vox), read_trials(kaldi)
    assert a.enrol == b.enrol == ["id1/s1/001", "id1/s1/001"]
    assert a.test == b.test == ["id1/s2/002", "id2/s9/003"]
    assert a.labels.tolist() == b.labels.tolist() == [1, 0]


def test_read_trials_errors_name_the_problem(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("1 a b\n2 a b\n")
    with pytest.raises(ValueError, match=r"t\.txt:2"):
        read_trials(p)
    p.write_text("1 a/x.wav b/y.wav\n0 a/x.wav c/z.wav\n")
    with pytest.raises(UnknownTrialIdError, match=r"names 1 id\(s\).*c/z"):
        read_trials(p, known_ids=["a/x", "b/y"])
    with pytest.raises(UnknownTrialIdError, match="c/z"):
        score_trials(read_trials(p), {"a/x": torch.ones(2), "b/y": torch.ones(2)})


def test_write_scores_round_trip(tmp_path):
    trials = Trials(["a", "b"], ["c", "d"], np.array([1, 0]))
    path = write_scores(tmp_path / "s" / "scores.txt", trials, torch.tensor([0.25, -0.5]))
    assert path.read_text().splitlines() == ["a c 1 0.250000", "b d 0 -0.500000"]
