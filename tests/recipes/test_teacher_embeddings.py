"""recipes/VoxCeleb/teacher_embeddings.py: Resemblyzer's GE2E embeddings without Resemblyzer, bad files listed."""
import numpy as np
import soundfile as sf
import torch

from speechbrain_dyncp.verification.distillation import utterance_key
from tests.unit.test_ge2e import REFERENCE, voice_like  # the stored Resemblyzer reference and its signal


def test_teacher_table_holds_resemblyzers_embedding_and_heard_seconds(recipe_module, tmp_path):
    """The stored embedding of voice_like() equals Resemblyzer's own (tests/unit/data), the stored seconds are
    Resemblyzer's trimmed length, and an unreadable file is left out while the others are written."""
    good = tmp_path / "data" / "wav" / "id00001" / "s1" / "00001.wav"
    bad = tmp_path / "data" / "wav" / "id00002" / "s1" / "00001.wav"
    good.parent.mkdir(parents=True)
    bad.parent.mkdir(parents=True)
    sf.write(good, voice_like(), 16000, subtype="FLOAT")
    bad.write_bytes(b"not a wav file")
    out = tmp_path / "teacher.pt"
    assert recipe_module("recipes/VoxCeleb/teacher_embeddings.py").main(["--data_folder", str(tmp_path / "data"), "--out", str(out)]) == 0
    table = torch.load(out, weights_only=False)
    ref = np.load(REFERENCE)
    key = utterance_key(good)
    assert list(table["embeddings"]) == [key]
    assert np.abs(table["embeddings"][key].numpy() - ref["embedding"]).max() < 1e-5
    assert table["seconds"][key] == int(ref["trimmed_samples"]) / 16000
    assert not out.with_suffix(".pt.tmp").exists()
