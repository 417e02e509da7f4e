"""train_speaker.py's ``--front_end``: a speaker model trained on what an enhancement front-end outputs,
and the AddNoise SNR range as top-level keys of train_ecapa.yaml."""

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier
from speechbrain.processing.features import InputNormalization

from speechbrain_dyncp.lobes.enhancer import dyncp_small


class _Batch:
    def __init__(self, wavs, lens):
        self.sig = (wavs, lens)

    def to(self, device):
        return self


def test_front_end_output_is_what_the_speaker_model_sees(recipe_module):
    torch.manual_seed(0)
    modules = {"compute_features": Fbank(n_mels=20), "mean_var_norm": InputNormalization(norm_type="sentence"),
               "embedding_model": ECAPA_TDNN(20, channels=[16, 16, 16, 16, 48], attention_channels=8, lin_neurons=8),
               "classifier": Classifier(8, out_neurons=3)}
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
