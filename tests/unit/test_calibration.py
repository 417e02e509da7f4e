"""Quality-aware score calibration (speechbrain_dyncp.verification.calibration) and Cllr / minCllr."""

import math

import numpy as np
import pytest

from speechbrain_dyncp.verification.calibration import QualityCalibrator, posterior
from speechbrain_dyncp.verification.metrics import cllr, compute_eer, min_cllr, pav_llrs


def synthetic_trials(n: int, seed: int):
    """Scores whose target/non-target distributions move with the worse side's SNR.

    Low SNR compresses targets towards impostors and shifts both down (as noisy
    cosine scores do); the speech fraction of a side lowers its reliability a little.
    """
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.2
    snr = rng.choice([40.0, 20.0, 5.0, 0.0, -5.0], size=(n, 2))
    frac = rng.uniform(0.3, 1.0, size=(n, 2))
    g = 1 / (1 + np.exp(-(snr.min(1) - 5.0) / 4.0)) * (0.7 + 0.3 * frac.min(1))  # 0 bad .. 1 good
    mu = np.where(y, 0.15 + 0.55 * g, 0.05 + 0.1 * g)
    s = mu + (0.06 + 0.06 * (1 - g)) * rng.normal(size=n)
    qe = np.stack([snr[:, 0], frac[:, 0]], 1)
    qt = np.stack([snr[:, 1], frac[:, 1]], 1)
    return s, y.astype(int), qe, qt


def test_cllr_definition_values():
    assert cllr([0.0, 0.0, 0.0], [1, 0, 0]) == pytest.approx(1.0)
    assert cllr([30.0, -30.0], [1, 0]) == pytest.approx(0.0, abs=1e-9)
    # one target at LLR log(3): cost log2(1 + 1/3); one non-target at LLR 0: cost 1 bit
    assert cllr([math.log(3), 0.0], [1, 0]) == pytest.approx(0.5 * (math.log2(4 / 3) + 1.0))
    # badly calibrated (right order, wrong scale) costs more than 1 bit
    assert cllr([-5.0, 5.0], [1, 0]) > 1.0
    with pytest.raises(ValueError):
        cllr([1.0, 2.0], [1, 1])


def test_min_cllr_is_invariant_to_monotonic_maps_and_below_cllr():
    s, y, _, _ = synthetic_trials(2000, 0)
    m = min_cllr(s, y)
    assert min_cllr(np.exp(3 * s) - 7, y) == pytest.approx(m, abs=1e-9)
    assert 0.0 < m < 1.0
    assert m <= cllr(QualityCalibrator([]).fit(s, y).llr(s), y) + 1e-9
    # PAV LLRs are non-decreasing in the score
    order = np.argsort(s, kind="stable")
    ranked = pav_llrs(s, y)[order]
    assert np.all(ranked[1:] >= ranked[:-1])


def test_quality_calibration_lowers_cllr_and_not_eer():
    s_dev, y_dev, qe_dev, qt_dev = synthetic_trials(6000, 1)
    s, y, qe, qt = synthetic_trials(6000, 2)  # held-out "test" trials
    plain = QualityCalibrator([]).fit(s_dev, y_dev)
    qmf = QualityCalibrator(["snr_db", "speech_frac"]).fit(s_dev, y_dev, qe_dev, qt_dev)
    llr_plain, llr_q = plain.llr(s), qmf.llr(s, qe, qt)
    c_raw, c_plain, c_q = cllr(s, y), cllr(llr_plain, y), cllr(llr_q, y)
    assert c_q < c_plain < c_raw  # raw cosine scores are no LLRs; quality helps beyond a global map
    assert c_q < 0.9 * c_plain
    eer_raw, eer_q = compute_eer(s, y)[0], compute_eer(llr_q, y)[0]
    assert eer_q <= eer_raw + 1e-9
    # well calibrated: little left for a monotonic recalibration of the calibrated LLRs
    assert c_q - min_cllr(llr_q, y) < 0.05
    # prior handling: LLR 0 is P = prior
    assert float(posterior(0.0, prior=0.2)) == pytest.approx(0.2)


def test_calibrator_json_round_trip_and_bad_files(tmp_path):
    s, y, qe, qt = synthetic_trials(500, 3)
    cal = QualityCalibrator(["snr_db", "speech_frac"]).fit(s, y, qe, qt)
    path = cal.save(tmp_path)
    assert path.name == "calibration.json"
    again = QualityCalibrator.load(tmp_path)
    assert np.array_equal(again.llr(s, qe, qt), cal.llr(s, qe, qt))
    assert QualityCalibrator.load(tmp_path / "none") is None
    bad = tmp_path / "bad.json"
    bad.write_text('{"measures": []}')
    with pytest.raises(ValueError, match="bad.json"):
        QualityCalibrator.load(bad)
    with pytest.raises(ValueError, match="quality measures"):
        cal.llr(s)


def test_infinite_or_missing_snr_is_clipped_not_nan():
    s, y, qe, qt = synthetic_trials(500, 4)
    cal = QualityCalibrator(["snr_db", "speech_frac"]).fit(s, y, qe, qt)
    qe2 = qe.copy()
    qe2[:5, 0] = [np.inf, np.nan, 1e6, -np.inf, 40.0]
    assert np.isfinite(cal.llr(s, qe2, qt)).all()
    same = cal.llr(s[:5], np.full((5, 2), [40.0, 0.5]), qt[:5])
    assert np.allclose(cal.llr(s[:5], np.array([[np.inf, .5], [np.nan, .5], [1e6, .5], [40., .5], [40., .5]]),
                               qt[:5])[[0, 1, 2, 4]], same[[0, 1, 2, 4]])


def test_verdict_text_warns_when_a_side_has_no_detected_speech():
    """dyncp verify's line: a side whose VAD probe hears no speech (noise alone scored 0.98 "same
    speaker" against other noise) gets a warning naming it; sides with speech get none."""
    from speechbrain_dyncp.inference.speaker_folders import calibrated_text

    s, y, qe, qt = synthetic_trials(2000, 3)
    cal = QualityCalibrator(["snr_db", "speech_frac"]).fit(s, y, qe, qt)
    llr, text = calibrated_text(cal, 0.5, ([20.0, 0.6], [5.0, 0.0]), ("a.wav", "noise.wav"))
    assert "calibrated LLR" in text and llr is not None
    assert text.splitlines()[1:] == ["warning: the VAD probe hears no speech in noise.wav; the score compares "
                                     "whatever the recording holds, not voices"]
    assert "\n" not in calibrated_text(cal, 0.5, ([20.0, 0.6], [5.0, 0.1]), ("a.wav", "b.wav"))[1]
