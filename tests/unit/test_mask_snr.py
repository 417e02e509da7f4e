"""The T-F mask SNR read-out (probes/mask_snr.py): what it measures, its calibration, its storage."""

import numpy as np
import pytest
import torch

from speechbrain_dyncp.inference.enhancement import DynCPEnhancement
from speechbrain_dyncp.lobes.enhancer import dyncp_small
from speechbrain_dyncp.probes.mask_snr import MaskSNRCalibration, enhancer_mask_ratio_db


def test_ratio_does_not_depend_on_the_attenuation_limit():
    """The floor is undone, so a user's --attenuation-limit-db does not shift the SNR read-out."""
    torch.manual_seed(0)
    model = dyncp_small(channels=8, hidden=16, gate_hidden=4).eval()
    x = torch.randn(2, 6000)
    with torch.no_grad():
        plain = enhancer_mask_ratio_db(model, x, model(x))
        model.attenuation_limit_db = 12.0
        limited_out = model(x)
        limited = enhancer_mask_ratio_db(model, x, limited_out)
    assert float(limited_out.mask.min()) >= 10 ** (-12 / 20) - 1e-6  # the limit is really on
    assert torch.allclose(plain, limited, atol=1e-3)


def test_calibration_is_monotone_and_learns_a_biased_read_out():
    rng = np.random.default_rng(0)
    snr = rng.choice([-5.0, 0.0, 5.0, 10.0, 20.0], 500)
    ratio = 0.5 * snr + 4.0 + rng.normal(0, 1.0, 500)  # compressed and shifted, like the real mask
    cal = MaskSNRCalibration.fit(ratio, snr)
    assert np.all(np.diff(cal.snr_db) >= 0) and np.all(np.diff(cal.ratio_db) > 0)
    assert np.abs(cal.predict(ratio) - snr).mean() < np.abs(ratio - snr).mean() / 3
    assert cal.predict([-1e3])[0] == cal.snr_db[0] and cal.predict([1e3])[0] == cal.snr_db[-1]  # clipped
    with pytest.raises(ValueError):
        MaskSNRCalibration.from_dict({"ratio_db": [0.0], "snr_db": [1.0, 2.0]})


def test_utterance_snr_prefers_the_calibrated_mask_read_out_when_the_folder_has_one():
    torch.manual_seed(0)
    enhancer = dyncp_small(channels=8, hidden=16, gate_hidden=4).eval()
    x = torch.randn(1, 8000)
    bare = DynCPEnhancement(modules={"enhancer": enhancer}, hparams={"sample_rate": 16000})
    assert bare.analyze_batch(x).utterance_snr(0) is None  # no probes, no calibration: no number
    cal = {"ratio_db": [-100.0, 100.0], "snr_db": [-50.0, 50.0]}  # snr = ratio / 2
    model = DynCPEnhancement(modules={"enhancer": enhancer}, hparams={"sample_rate": 16000, "snr_mask_calibration": cal})
    with torch.no_grad():
        ratio = float(enhancer_mask_ratio_db(enhancer, x, enhancer(x))[0])
    assert model.analyze_batch(x).utterance_snr(0) == pytest.approx(ratio / 2, abs=1e-4)


def test_written_calibration_loads_from_the_folder_and_rewriting_replaces_it(tmp_path, recipe_module):
    from speechbrain_dyncp.export import write_model_folder
    from speechbrain_dyncp.inference.loading import load_enhancer

    torch.manual_seed(0)
    model = dyncp_small(channels=8, hidden=16, gate_hidden=4).eval()
    folder = write_model_folder(tmp_path / "m", dict(channels=8, hidden=16, n_stacks=2, n_blocks=3, gate_hidden=4),
                                model.state_dict())
    fit = recipe_module("recipes/DynCP/fit_snr_calibration.py")
    for top in (10.0, 20.0):
        fit.write_calibration(folder, MaskSNRCalibration([0.0, 1.0], [0.0, top]))
    text = (folder / "hyperparams.yaml").read_text()
    assert text.count("snr_mask_calibration:") == 1
    loaded = load_enhancer(str(folder))
    assert MaskSNRCalibration.from_dict(loaded.hparams.snr_mask_calibration).snr_db == [0.0, 20.0]


def test_silence_drops_the_mask_read_out_too():
    """Digital silence: the CLI drops the signal estimates; the mask SNR must not survive as a number."""
    from speechbrain_dyncp.probes.outputs import drop_signal_estimates

    enhancer = dyncp_small(channels=8, hidden=16, gate_hidden=4).eval()
    cal = {"ratio_db": [-100.0, 100.0], "snr_db": [-50.0, 50.0]}
    model = DynCPEnhancement(modules={"enhancer": enhancer}, hparams={"sample_rate": 16000, "snr_mask_calibration": cal})
    result = model.analyze_batch(torch.zeros(1, 8000))
    assert result.utterance_snr(0) is not None
    drop_signal_estimates(result)
    assert result.utterance_snr(0) is None


def test_an_estimate_on_a_calibration_plateau_is_reported_as_a_bound():
    """Clean speech reads the calibration's top (20 dB for the bundled model: its fitting mixtures stop
    there); that is "20 dB or more", and the JSON and the figure say so. Inside the range: a plain number."""
    import sys
    from pathlib import Path

    from speechbrain_dyncp.inference.loading import load_enhancer
    from speechbrain_dyncp.probes.heads import head
    from tests.unit.test_ge2e import voice_like

    model = load_enhancer("dyncp_real_base")
    low, high = MaskSNRCalibration.from_dict(model.hparams.snr_mask_calibration).reach_db()
    assert (low, high) == (pytest.approx(-4.213), 20.0)
    clean = torch.from_numpy(voice_like())[None]
    g = torch.Generator().manual_seed(0)
    noisy = clean + clean.std() * torch.randn(clean.shape, generator=g)  # about 0 dB
    noise = 0.1 * torch.randn(1, 40000, generator=g)
    with torch.no_grad():
        results = [model.analyze_batch(x) for x in (clean, noisy, noise)]
    assert [r.utterance_snr_bound(0) for r in results] == ["at_least", None, "at_most"]
    assert results[0].utterance_snr_text(0) == ">= 20.0 dB" and results[2].utterance_snr_text(0) == "<= -4.2 dB"
    assert low < results[1].utterance_snr(0) < high and results[1].utterance_snr_text(0).endswith(" dB")
    assert head("snr").summary(results[0], 0) == {"snr_db": 20.0, "snr_db_bound": "at_least"}
