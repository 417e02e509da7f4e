"""The README's Python example runs as printed, offline, from any working directory."""

import re
from pathlib import Path

import numpy as np
import soundfile as sf

README = Path(__file__).parents[2] / "README.md"


def test_the_readme_python_example_runs_and_its_outputs_are_answers(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    t = np.arange(2 * 16000) / 16000
    voice = 0.1 * sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 10)) * (np.sin(2 * np.pi * 1.5 * t) > 0)
    noisy = voice + 0.02 * np.random.default_rng(0).standard_normal(t.size)
    sf.write(tmp_path / "noisy.wav", np.stack([noisy, noisy], 1), 44100 // 2)  # stereo, 22.05 kHz
    monkeypatch.chdir(tmp_path)
    scope = {"chunk": noisy[:3000].astype(np.float32)}
    exec(compile(code, str(README), "exec"), scope)  # noqa: S102 (our own README)
    assert sf.info(tmp_path / "enhanced.wav").samplerate == 16000
    result = scope["result"]
    assert np.isfinite(result.utterance_snr(0)) and result.noise_class(0)[0]
    assert scope["out"].wav.shape[-1] == 3000 and np.isfinite(np.asarray(scope["out"].wav)).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enhanced.wav", "noisy.wav"]  # nothing else written
