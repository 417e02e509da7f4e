"""The bad-input list of the project, tried against its entry points.

Each hostile input gets a clear error naming the item, or a documented
recovery (docs/scaling.md, "Bad input"). Very long files: test_chunking.py
and benchmarks/bench_long_file.py; random bytes / arrays: test_fuzz.py.
"""

import csv

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.utils.data_pipeline import provides, takes

from speechbrain_dyncp.data.audio import AudioError, read_audio, write_audio
from speechbrain_dyncp.data.shards import make_dataset, write_shards
from speechbrain_dyncp.inference.chunking import enhance_file_chunked
from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer
from speechbrain_dyncp.verification.trials import UnknownTrialIdError, read_trials

SR = 16000


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DynCPEnhancer(channels=8, hidden=8, n_stacks=1, n_blocks=2, gate_hidden=4).eval()


def _tone(n=SR, rate=SR, channels=1):
    t = np.arange(n) / rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t)
    return np.stack([x] * channels, 1) if channels > 1 else x


def test_truncated_and_corrupt_files(tmp_path):
    sf.write(tmp_path / "full.wav", _tone(), SR)
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])  # header promises 1 s
    cut = read_audio(tmp_path / "cut.wav")  # recovery: libsndfile reads the samples that are there
    assert 0 < cut.numel() < SR
    torch.testing.assert_close(cut, read_audio(tmp_path / "full.wav")[: cut.numel()])
    (tmp_path / "garbage.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt nonsense")
    with pytest.raises(AudioError, match="garbage.wav"):
        read_audio(tmp_path / "garbage.wav")
    (tmp_path / "header_only.wav").write_bytes(data[:44])
    with pytest.raises(AudioError, match="header_only.wav.*empty"):
        read_audio(tmp_path / "header_only.wav")


def test_zero_length_and_all_silent(tmp_path, model):
    sf.write(tmp_path / "empty.wav", np.zeros(0), SR)
    with pytest.raises(AudioError, match="empty.wav.*empty"):
        read_audio(tmp_path / "empty.wav")
    with pytest.raises(AudioError, match="empty.wav.*empty"):
        enhance_file_chunked(model, tmp_path / "empty.wav", tmp_path / "out.wav")
    sf.write(tmp_path / "silent.wav", np.zeros(SR), SR)
    assert read_audio(tmp_path / "silent.wav").abs().max() == 0  # allowed by default
    with pytest.raises(AudioError, match="silent.wav is all silence"):
        read_audio(tmp_path / "silent.wav", allow_silent=False)
    with torch.no_grad():
        assert model(torch.zeros(1, SR)).wav.abs().max() == 0  # silence in, silence out


def test_nan_and_inf_samples(tmp_path, model):
    x = _tone().astype(np.float32)
    x[1234], x[5000] = np.nan, np.inf
    sf.write(tmp_path / "nan.wav", x, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav contains NaN"):
        read_audio(tmp_path / "nan.wav")
    with pytest.raises(AudioError, match="nan.wav contains NaN.*sample 1234"):
        enhance_file_chunked(model, tmp_path / "nan.wav", tmp_path / "out.wav")
    with pytest.raises(ValueError, match="DynCPEnhancer got NaN"):
        model(torch.from_numpy(x)[None])
    with pytest.raises(AudioError, match="Refusing to write NaN"):
        write_audio(tmp_path / "w.wav", torch.from_numpy(x), SR)


def test_extreme_amplitudes_and_clipping(tmp_path, model):
    loud = (40 * _tone()).astype(np.float32)  # a float file far over full scale
    sf.write(tmp_path / "loud.wav", loud, SR, subtype="FLOAT")
    wav = read_audio(tmp_path / "loud.wav")
    assert wav.abs().max() > 10  # never silently clipped on read
    with torch.no_grad():
        assert torch.isfinite(model(wav[None]).wav).all()
    clipped = np.clip(3 * _tone(), -1, 1)  # hard-clipped speech is ordinary input
    with torch.no_grad():
        assert torch.isfinite(model(torch.from_numpy(clipped).float()[None]).wav).all()
    with pytest.raises(ValueError, match="overflowed float32"):
        model(torch.full((1, 600), 3e38))
    out = write_audio(tmp_path / "w.wav", wav, SR)  # written clipped to [-1, 1], documented
    assert sf.read(out)[0].max() <= 1.0


def test_wrong_mixed_and_absurd_sample_rates(tmp_path):
    sf.write(tmp_path / "a8k.wav", _tone(8000, 8000), 8000)
    sf.write(tmp_path / "b44k.flac", _tone(44100, 44100, channels=2), 44100)
    sf.write(tmp_path / "c16k.wav", _tone(), SR)
    with open(tmp_path / "m.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ID", "duration", "wav"])
        for name in ("a8k.wav", "b44k.flac", "c16k.wav"):
            w.writerow([name.split(".")[0], 1.0, str(tmp_path / name)])

    @takes("wav")
    @provides("sig")
    def pipeline(wav):
        return read_audio(wav, SR)

    batch = next(iter(make_dataloader(make_dataset("csv", csv_path=tmp_path / "m.csv", dynamic_items=[pipeline],
                                                   output_keys=["id", "sig"]), batch_size=3)))
    assert batch.sig.data.shape == (3, SR) and torch.all(batch.sig.lengths == 1)  # one rate, one second each
    with pytest.raises(AudioError, match=r"a8k.wav is at 8000 Hz, expected 16000"):
        read_audio(tmp_path / "a8k.wav", SR, on_rate_mismatch="error")
    sf.write(tmp_path / "odd.wav", _tone(4410, 44101), 44101)
    with pytest.raises(AudioError, match="odd.wav is at 44101 Hz.*convert it first"):
        read_audio(tmp_path / "odd.wav", SR)


def test_multichannel_is_downmixed(tmp_path):
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (SR, 4)).astype(np.float32)
    sf.write(tmp_path / "quad.wav", x, SR, subtype="FLOAT")
    torch.testing.assert_close(read_audio(tmp_path / "quad.wav"), torch.from_numpy(x.mean(1)))


def test_manifest_rows_pointing_at_missing_files(tmp_path):
    sf.write(tmp_path / "ok.wav", _tone(), SR)
    (tmp_path / "m.csv").write_text(f"ID,duration,wav\nok,1.0,{tmp_path / 'ok.wav'}\n"
                                    f"gone,1.0,{tmp_path / 'gone.wav'}\n")

    @takes("wav")
    @provides("sig")
    def pipeline(wav):
        return read_audio(wav, SR)

    ds = make_dataset("csv", csv_path=tmp_path / "m.csv", dynamic_items=[pipeline], output_keys=["id", "sig"])
    assert ds[0]["sig"].numel() == SR
    with pytest.raises(FileNotFoundError, match="gone.wav"):
        ds[1]
    with pytest.raises(FileNotFoundError, match="Row 'gone'.*gone.wav"):
        write_shards(tmp_path / "m.csv", tmp_path / "sh")


def test_trial_list_with_unknown_ids(tmp_path):
    (tmp_path / "trials.txt").write_text("1 a/s1/1.wav a/s1/2.wav\n0 a/s1/1.wav zz/nobody/9.wav\n")
    with pytest.raises(UnknownTrialIdError, match="zz/nobody/9"):
        read_trials(tmp_path / "trials.txt", known_ids=["a/s1/1", "a/s1/2"])


def test_model_folder_with_missing_or_corrupted_checkpoint(tmp_path, monkeypatch):
    from speechbrain_dyncp.cli import load_enhancer
    from speechbrain_dyncp.export import write_model_folder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = dict(channels=8, hidden=8, n_stacks=1, n_blocks=2, gate_hidden=4)
    state = DynCPEnhancer(**cfg).state_dict()
    missing = write_model_folder(tmp_path / "missing", cfg, state)
    (missing / "enhancer.ckpt").unlink()
    with pytest.raises(FileNotFoundError, match="enhancer.ckpt"):
        load_enhancer(str(missing))
    corrupt = write_model_folder(tmp_path / "corrupt", cfg, state)
    data = (corrupt / "enhancer.ckpt").read_bytes()
    (corrupt / "enhancer.ckpt").write_bytes(data[: len(data) // 3])
    with pytest.raises(RuntimeError, match=r"corrupt: cannot load its checkpoint \(enhancer.ckpt\)"):
        load_enhancer(str(corrupt))
