"""train_speaker.py's ``--front_end``: a speaker model trained on what an enhancement front-end outputs,
the AddNoise SNR range as top-level keys of train_ecapa.yaml, and ``--init_from`` (fine-tuning an exported
model folder)."""

import pytest

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier
from speechbrain.processing.features import InputNormalization

from speechbrain_dyncp.lobes.enhancer import dyncp_small


class _Batch:
    def __init__(self, wavs, lens):
        self.sig = (wavs, lens)

    def to(self, device):
        return self


def _modules(n_speakers=3):
    return {"compute_features": Fbank(n_mels=20), "mean_var_norm": InputNormalization(norm_type="sentence"),
               "embedding_model": ECAPA_TDNN(20, channels=[16, 16, 16, 16, 48], attention_channels=8, lin_neurons=8),
               "classifier": Classifier(8, out_neurons=n_speakers)}


def test_front_end_output_is_what_the_speaker_model_sees(recipe_module):
    torch.manual_seed(0)
    modules = _modules()
    brain = recipe_module("recipes/VoxCeleb/train_speaker.py").SpeakerBrain(modules=modules, hparams={}, run_opts={"device": "cpu"})
    brain.modules.eval()
    front_end = dyncp_small(channels=8, hidden=16, gate_hidden=4).eval()
    wavs, lens = torch.randn(2, 8000), torch.tensor([1.0, 0.75])
    with torch.no_grad():
        _, _, plain = brain.compute_forward(_Batch(wavs, lens), sb.Stage.VALID)
        brain.front_end = front_end
        _, _, through = brain.compute_forward(_Batch(wavs, lens), sb.Stage.VALID)
        brain.front_end = None
        _, _, by_hand = brain.compute_forward(_Batch(front_end(wavs, lens).wav, lens), sb.Stage.VALID)
    assert torch.allclose(through, by_hand, atol=1e-6)
    assert (through - plain).abs().max() > 1e-3  # the front-end really changed the input


def test_noise_snr_range_is_a_top_level_key(repo_root, tmp_path):
    with open(repo_root / "hparams/VoxCeleb/train_ecapa.yaml") as fh:
        hp = load_hyperpyyaml(fh, {"noise_snr_low": -5, "noise_snr_high": 10, "output_folder": str(tmp_path)})
    assert (hp["add_noise"].snr_low, hp["add_noise"].snr_high) == (-5, 10)
    assert hp["front_end"] is None
    assert hp["init_from"] is None


def _export(folder, modules, speakers):
    folder.mkdir()
    for key in ("embedding_model", "classifier"):
        torch.save(modules[key].state_dict(), folder / f"{key}.ckpt")
    enc = CategoricalEncoder()
    enc.update_from_iterable(speakers)
    enc.save(folder / "label_encoder.ckpt")
    return enc


def test_init_from_loads_the_embedding_model_and_classifier_only_for_the_same_speakers(recipe_module, tmp_path):
    train_speaker = recipe_module("recipes/VoxCeleb/train_speaker.py")
    torch.manual_seed(0)
    trained = _modules()
    same = _export(tmp_path / "same", trained, ["a", "b", "c"])
    _export(tmp_path / "other", trained, ["c", "b", "a"])  # same speakers, another order: another head
    for folder, head_loaded in (("same", True), ("other", False)):
        fresh = _modules()
        brain = train_speaker.SpeakerBrain(modules=fresh, hparams={}, run_opts={"device": "cpu"})
        train_speaker.init_from_model_folder(brain, tmp_path / folder, same)
        for key, loaded in (("embedding_model", True), ("classifier", head_loaded)):
            a, b = trained[key].state_dict(), brain.modules[key].state_dict()
            assert all(torch.equal(a[k], b[k]) for k in a) == loaded, (folder, key)
    with pytest.raises(SystemExit, match="not a speaker model folder"):
        train_speaker.init_from_model_folder(brain, tmp_path, same)
