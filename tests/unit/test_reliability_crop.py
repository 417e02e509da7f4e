"""The speaker recipes' random chunk is 2.0 s whatever the file's rate (issue 18)."""

import numpy as np
import soundfile as sf
from speechbrain.dataio.encoder import CategoricalEncoder

from speechbrain_dyncp.verification.training import speaker_chunk_datasets


def test_random_chunk_of_a_44k_file_is_two_seconds(tmp_path):
    rows = []
    for i, rate in enumerate((44100, 16000)):
        path = tmp_path / f"s{i}.wav"
        sf.write(path, 0.1 * np.random.default_rng(i).standard_normal(5 * rate), rate)
        rows.append(f"u{i},5.0,{path},0,{5 * rate},spk{i}\n")
    for name in ("train.csv", "dev.csv"):
        (tmp_path / name).write_text("ID,duration,wav,start,stop,spk_id\n" + "".join(rows))
    hparams = {"sample_rate": 16000, "sentence_len": 2.0, "random_chunk": True, "save_folder": str(tmp_path),
               "label_encoder": CategoricalEncoder()}
    train, _, _ = speaker_chunk_datasets(hparams)
    for i in range(2):
        for _ in range(3):  # random offsets
            assert abs(train[i]["sig"].numel() - 32000) <= 1  # 2.0 s at 16 kHz (44.1 kHz gave 0.73 s)
