"""A new layer pooling is one class plus a YAML entry: a toy pooling (the plain mean of the
layers) is registered under `poolings:` from the command line and built and trained by
recipes/VoxCeleb/train_lap.py (build_ssl_speaker_model), which names no pooling itself."""

import json
import math
import os
from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml
from torch import nn

from speechbrain_dyncp.verification.training import build_ssl_speaker_model


class MeanLayerPooling(nn.Module):
    """Toy layer pooling: the mean over layers, ``[B, L, T, D] -> [B, T, D]`` (no parameters)."""

    def __init__(self, n_layers: int, input_size: int):
        super().__init__()
        self.n_layers, self.input_size = n_layers, input_size

    def get_out_dim(self) -> int:
        return self.input_size

    def forward(self, hidden_states, lengths=None):
        return hidden_states.mean(dim=1)


TOY = f"!name:{MeanLayerPooling.__module__}.{MeanLayerPooling.__name__}"
ASTP = "!name:speechbrain_dyncp.lobes.temporal_pooling.AttentiveStatisticsTemporalPooling"
# the whole registration: an entry under `poolings:` (here from the command line) and `pooling: mean`
REGISTER = [f"--poolings={{mean: {{layer_pooling: {TOY} {{}}, backend: {ASTP} {{lin_neurons: !ref <emb_dim>}}}}}}",
            "--pooling=mean"]


def _hparams(repo_root, recipe, tmp_path, args):
    """The recipe's hparams as ``main`` loads them (phase values merged under ``args``)."""
    import speechbrain as sb

    yaml_path = repo_root / "hparams/VoxCeleb/train_lap.yaml"
    _, _, overrides = sb.parse_arguments([str(yaml_path), f"--output_folder={tmp_path}", *args])
    with open(yaml_path) as fin:
        return load_hyperpyyaml(fin, recipe.phase_overrides(yaml_path, overrides))


def test_toy_pooling_is_built_from_the_yaml(repo_root, recipe_module, tmp_path):
    recipe = recipe_module("recipes/VoxCeleb/train_lap.py")
    hparams = _hparams(repo_root, recipe, tmp_path, REGISTER)
    assert {"lap", "weighted_sum", "mean"} <= set(hparams["poolings"])  # added, the shipped ones kept
    assert hparams["freeze_ssl"] is True and hparams["lr"] == 0.001  # phase values still merged
    model = build_ssl_speaker_model(hparams).eval()
    assert isinstance(model.pooling, MeanLayerPooling)
    assert model.pooling.n_layers == model.frontend.n_layers and model.backend.get_out_dim() == hparams["emb_dim"]
    emb = model(torch.randn(2, 8000), torch.tensor([1.0, 0.6]))
    assert emb.shape == (2, 1, hparams["emb_dim"]) and torch.isfinite(emb).all()


def test_unknown_pooling_names_the_registered_ones(repo_root, recipe_module, tmp_path):
    recipe = recipe_module("recipes/VoxCeleb/train_lap.py")
    hparams = _hparams(repo_root, recipe, tmp_path, ["--pooling=nope"])
    with pytest.raises(ValueError, match=r"'nope'.*\['lap', 'weighted_sum'\]"):
        build_ssl_speaker_model(hparams)


@pytest.mark.slow
def test_toy_pooling_trains_and_verifies_through_the_recipe(repo_root, tiny_corpus, tmp_path, monkeypatch):
    """One epoch on the tiny corpus, then the trial list scored with the toy pooling's embeddings."""
    from test_train_lap import _run

    module_root = Path(__file__).resolve().parents[MeanLayerPooling.__module__.count(".")]
    # the recipe process imports the toy class by name
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(module_root), os.environ.get("PYTHONPATH")])))
    out = tmp_path / "mean"
    _run(repo_root, "recipes/VoxCeleb/train_lap.py", "hparams/VoxCeleb/train_lap.yaml", *REGISTER,
         f"--data_folder={tiny_corpus.voxceleb}", "--device=cpu", "--noprogressbar", "--batch_size=4",
         f"--output_folder={out}", "--number_of_epochs=1", "--score_norms=[none]", "--max_cohort=20")
    ckpt = sorted((out / "save").glob("CKPT+*"))[-1]
    assert torch.load(ckpt / "pooling.ckpt") == {}  # the toy pooling has no weights; the backend has
    assert "att_in.weight" in torch.load(ckpt / "backend.ckpt")
    metrics = json.loads((out / "verify" / "metrics_all.json").read_text())
    assert math.isfinite(metrics["none"]["EER"]) and 0 <= metrics["none"]["EER"] <= 100
