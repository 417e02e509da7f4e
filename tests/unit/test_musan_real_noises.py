"""musan_from_real_noises: a MUSAN-layout folder of links to real noises and training speech."""

import numpy as np
import soundfile as sf
import torch

from speechbrain_dyncp.data.lowsnr import MusanMixer
from speechbrain_dyncp.data.real_speakers import musan_from_real_noises


def _fake(tmp_path):
    rows = ["ID,duration,wav,wav_format,wav_opts,noise_class,fine_class"]
    for name, cls in (("cafe", "babble_crowd"), ("rain", "water_nature"), ("piano", "music")):
        path = tmp_path / "noises" / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.random.randn(8000) * 0.1, 16000)
        rows.append(f"{name},0.5,{path},wav,,{cls},x")
    (tmp_path / "noise_train.csv").write_text("\n".join(rows) + "\n")
    for spk in ("a", "b", "c"):
        (tmp_path / "train" / spk / "so762").mkdir(parents=True)
        sf.write(tmp_path / "train" / spk / "so762" / f"{spk}1.wav", np.random.randn(8000) * 0.1, 16000)


def test_layout_and_mixer(tmp_path):
    _fake(tmp_path)
    out = musan_from_real_noises(tmp_path / "noise_train.csv", tmp_path / "train", tmp_path / "musan", max_speech=2)
    assert sorted(p.name for p in (out / "noise").iterdir()) == ["cafe.wav", "rain.wav"]
    assert [p.name for p in (out / "music").iterdir()] == ["piano.wav"]
    speech = sorted(p.name for p in (out / "speech").iterdir())
    assert len(speech) == 2 and all(s.endswith(".wav") and s.count("_") == 2 for s in speech)
    assert all(p.is_symlink() and p.resolve().is_file() for p in out.rglob("*.wav"))
    # idempotent, and the mixer accepts it
    assert musan_from_real_noises(tmp_path / "noise_train.csv", tmp_path / "train", out, max_speech=2) == out
    noisy, info = MusanMixer(out, pool="all").mix_fixed(torch.randn(4000), -5.0, seed=1)
    assert noisy.shape == (4000,) and info["snr"] == -5.0
