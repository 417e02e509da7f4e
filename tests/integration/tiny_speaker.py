"""A tiny randomly initialised ECAPA speaker folder, shared by the speaker tests.

The layout of ``recipes/VoxCeleb/train_speaker.py``'s export: ``hyperparams.yaml`` with Fbank,
sentence mean normalisation and the ECAPA embedding model, ``embedding_model.ckpt``; with
``speakers`` also the AAM classifier and the label encoder (what Grad-W's frozen E needs).
"""

import torch
from hyperpyyaml import load_hyperpyyaml

TINY_ECAPA = """sample_rate: 16000
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: 24
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: 24
    channels: [16, 16, 16, 16, 48]
    attention_channels: 8
    se_channels: 8
    lin_neurons: {lin_neurons}
"""
LOADABLES = """modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
"""
CLASSIFIER = """classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: {lin_neurons}
    out_neurons: {n_speakers}
label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder
"""


def tiny_speaker_yaml(lin_neurons: int = 12) -> str:
    """The ``hyperparams.yaml`` of an embedding-only folder (SpeechBrain interface layout)."""
    return TINY_ECAPA.format(lin_neurons=lin_neurons) + LOADABLES


def write_tiny_speaker_folder(folder, lin_neurons: int = 12, speakers=None):
    """Write the folder (seeded weights); returns the embedding model's state dict."""
    from speechbrain.dataio.encoder import CategoricalEncoder

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if speakers is None:
        text = tiny_speaker_yaml(lin_neurons)
    else:
        text = TINY_ECAPA.format(lin_neurons=lin_neurons) + CLASSIFIER.format(
            lin_neurons=lin_neurons, n_speakers=len(speakers))
    (folder / "hyperparams.yaml").write_text(text)
    hp = load_hyperpyyaml(text)
    state = hp["embedding_model"].state_dict()
    torch.save(state, folder / "embedding_model.ckpt")
    if speakers is not None:
        torch.save(hp["classifier"].state_dict(), folder / "classifier.ckpt")
        enc = CategoricalEncoder()
        enc.update_from_iterable(sorted(speakers))
        enc.save(folder / "label_encoder.txt")
    return state
