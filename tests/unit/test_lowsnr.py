"""Low-SNR MUSAN mixtures for Grad-W (speechbrain_dyncp.data.lowsnr)."""

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbrain_dyncp.data.lowsnr import MUSAN_TYPES, MusanMixer, in_test_pool, stable_seed


@pytest.fixture(scope="module")
def musan(tmp_path_factory):
    root = tmp_path_factory.mktemp("musan")
    rng = np.random.default_rng(0)
    for kind in MUSAN_TYPES:
        for k in range(12):
            (root / kind / "sub").mkdir(parents=True, exist_ok=True)
            sf.write(root / kind / "sub" / f"{kind}{k}.wav", rng.standard_normal(6000 + 500 * k) * 0.1, 16000)
    return root


def snr_db(clean, noisy):
    return float(10 * torch.log10(clean.pow(2).mean() / (noisy - clean).pow(2).mean()))


def test_training_mixtures_follow_the_lsnr_distribution(musan):
    """Every item gets noise; noise/music SNR in [-10, 0] dB; babble = 5-7 talkers at {5, ..., 15} dB each."""
    mixer = MusanMixer(musan, pool="all")
    gen = torch.Generator().manual_seed(0)
    clean = torch.randn(16000)
    kinds = set()
    for _ in range(40):
        noisy, info = mixer.mix_train(clean, gen)
        kinds.add(info["type"])
        assert not torch.equal(noisy, clean)
        if info["type"] == "speech":
            assert 5 <= len(info["snr"]) <= 7 and set(info["snr"]) <= {5.0, 8.0, 10.0, 13.0, 15.0}
        else:
            assert -10.0 <= info["snr"] <= 0.0
            assert snr_db(clean, noisy) == pytest.approx(info["snr"], abs=1e-3)
    assert kinds == set(MUSAN_TYPES)


@pytest.mark.parametrize("snr", [20.0, 0.0, -10.0])
def test_fixed_mixture_exact_and_reproducible(musan, snr):
    """Test mixtures hit the SNR exactly and depend only on the seed."""
    mixer = MusanMixer(musan, pool="test")
    clean = torch.randn(9000)
    a, info = mixer.mix_fixed(clean, snr, stable_seed(1, "spk/s/1", snr))
    b, _ = mixer.mix_fixed(clean, snr, stable_seed(1, "spk/s/1", snr))
    c, _ = mixer.mix_fixed(clean, snr, stable_seed(1, "spk/s/2", snr))
    assert snr_db(clean, a) == pytest.approx(snr, abs=1e-3)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_train_and_test_pools_are_disjoint(musan):
    """Hash-split pools: no file is in both; together they are all files."""
    train, test = MusanMixer(musan, pool="train"), MusanMixer(musan, pool="test")
    for kind in MUSAN_TYPES:
        a = {p for p, _ in train.files[kind]}
        b = {p for p, _ in test.files[kind]}
        assert a and b and not (a & b) and len(a | b) == 12
        assert all(in_test_pool(str(p.relative_to(musan))) for p in b)


def test_missing_folder_is_named(tmp_path):
    """A MUSAN root without the expected sub-folders says which one is missing."""
    with pytest.raises(FileNotFoundError, match="noise/"):
        MusanMixer(tmp_path)
