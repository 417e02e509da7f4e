"""Speaker-verification trial lists from ../shared/data (speechbrain_dyncp.data.real_speakers)."""

import numpy as np
import pytest

from speechbrain_dyncp.data.real_speakers import make_trials, prepare_real_speakers
from speechbrain_dyncp.data.real_speech import find_utterances, split_speakers


def test_make_trials_balances_same_and_cross_gender_impostors():
    utts = [{"id": f"{s}_{i}", "spk": s, "gender": g} for s, g in
            (("a", "f"), ("b", "f"), ("c", "m"), ("d", "m"), ("e", "f")) for i in range(3)]
    trials = make_trials(utts, np.random.default_rng(0), max_nontarget=40)
    targets = [t for t in trials if t[0]]
    non = [t for t in trials if not t[0]]
    assert len(targets) == 5 * 3 and all(a["spk"] == b["spk"] for _, a, b in targets)
    assert len(non) == 40 and all(a["spk"] != b["spk"] for _, a, b in non)
    cross = sum(a["gender"] != b["gender"] for _, a, b in non)
    assert cross == 20  # half of the impostors are cross-gender, half same-gender


@pytest.mark.shared_data
@pytest.mark.slow
def test_prepared_lists_are_speaker_disjoint_from_training(shared_data, tmp_path):
    out = tmp_path / "spk"
    lists = prepare_real_speakers(shared_data, out, corpora=("so762",))
    assert set(lists) == {"dev_clean", "test_clean"}  # no enhancer corpus given: no noisy copies
    split = split_speakers(find_utterances(shared_data), seed=0)
    train_spk = {p.name for p in (out / "train" / "wav").iterdir()}
    assert train_spk and all(split[s] == "train" for s in train_spk)
    for name, part in (("dev_clean", "valid"), ("test_clean", "test")):
        rows = [line.split() for line in lists[name].read_text().splitlines()]
        spk = {r[k].split("/")[0] for r in rows for k in (1, 2)}
        assert spk and all(split[s] == part for s in spk) and not spk & train_spk
        for lab, a, b in rows:
            assert (a.split("/")[0] == b.split("/")[0]) == (lab == "1")
            assert (out / name.split("_")[0] / "wav" / b).exists()
