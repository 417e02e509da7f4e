"""recipes/VoxCeleb/make_ensemble.py: two speaker folders become one whose score is the members' mean cosine."""

import importlib.util

import numpy as np
import pytest
import torch

from speechbrain_dyncp.inference.speaker import load_speaker_model
from speechbrain_dyncp.verification.embedding import load_speaker_embedder
from tests.integration.tiny_speaker import write_tiny_speaker_folder


def _recipe(repo_root):
    spec = importlib.util.spec_from_file_location("make_ensemble", repo_root / "recipes/VoxCeleb/make_ensemble.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _members(tmp_path):
    write_tiny_speaker_folder(tmp_path / "a", lin_neurons=12)
    torch.manual_seed(1)
    write_tiny_speaker_folder(tmp_path / "b", lin_neurons=20)
    state = torch.load(tmp_path / "b/embedding_model.ckpt", weights_only=True)  # b: other weights than a
    torch.save({k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()},
               tmp_path / "b/embedding_model.ckpt")
    return tmp_path / "a", tmp_path / "b"


def test_joint_score_is_the_mean_of_member_cosines(repo_root, tmp_path):
    a, b = _members(tmp_path)
    out = _recipe(repo_root).make_ensemble([a, b], tmp_path / "ens")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 16000, generator=g) * 0.1
    embed = {name: load_speaker_embedder(folder) for name, folder in (("a", a), ("b", b), ("ens", out))}
    with torch.no_grad():
        cos = {name: float(torch.nn.functional.cosine_similarity(e(x[None]).flatten(), e(y[None]).flatten(), dim=0))
               for name, e in embed.items()}
    assert abs(cos["a"] - cos["b"]) > 1e-4  # the members really differ (random nets: both near 1)
    assert cos["ens"] == pytest.approx((cos["a"] + cos["b"]) / 2, abs=1e-5)
    # the SpeechBrain interface (from_hparams, safe-mode YAML check) loads it too: 12 + 20 dims
    model = load_speaker_model(out)
    assert model.encode_batch(x[None]).shape[-1] == 32
    assert np.isclose(float(model.verify_batch(x[None], y[None])[0]), cos["ens"], atol=1e-5)


def test_members_with_other_features_are_refused_by_name(repo_root, tmp_path):
    a, b = _members(tmp_path)
    (b / "hyperparams.yaml").write_text((b / "hyperparams.yaml").read_text().replace("n_mels: 24", "n_mels: 40"))
    with pytest.raises(ValueError, match=f"{b}: its compute_features differs"):
        _recipe(repo_root).make_ensemble([a, b], tmp_path / "ens")
    text = (b / "hyperparams.yaml").read_text()
    (b / "hyperparams.yaml").write_text(text.replace("embedding_model:", "embedder:", 1))  # its !ref now dangles
    with pytest.raises(ValueError, match=f"{b / 'hyperparams.yaml'}: .*embedding_model"):
        _recipe(repo_root).make_ensemble([a, b], tmp_path / "ens")
    (b / "hyperparams.yaml").write_text(text.replace("embedding_model", "embedder"))
    with pytest.raises(ValueError, match=f"{b / 'hyperparams.yaml'}: no embedding_model"):
        _recipe(repo_root).make_ensemble([a, b], tmp_path / "ens")
    with pytest.raises(FileNotFoundError, match="not a speaker model folder"):
        _recipe(repo_root).make_ensemble([a, tmp_path], tmp_path / "ens2")


def test_members_are_read_by_meaning_not_text(repo_root, tmp_path):
    """A member written with references (``!ref``) joins; the joint folder is the same model as from the plain one."""
    a, b = _members(tmp_path)
    plain = _recipe(repo_root).make_ensemble([a, b], tmp_path / "plain")
    text = (a / "hyperparams.yaml").read_text()
    assert "input_size: 24" in text and "n_mels: 24" in text
    (a / "hyperparams.yaml").write_text("n_mels: 24\n" + text.replace("input_size: 24", "input_size: !ref <n_mels>")
                                        .replace("n_mels: 24\n", "n_mels: !ref <n_mels>\n", 1))
    assert "!ref <n_mels>" in (a / "hyperparams.yaml").read_text()
    joint = _recipe(repo_root).make_ensemble([a, b], tmp_path / "ref")
    assert "!ref <n_mels>" not in (joint / "hyperparams.yaml").read_text()
    x = torch.randn(1, 16000, generator=torch.Generator().manual_seed(2)) * 0.1
    with torch.no_grad():
        assert torch.equal(load_speaker_embedder(joint)(x), load_speaker_embedder(plain)(x))


def test_a_ge2e_member_joins_with_its_weight(repo_root, tmp_path):
    """``--ge2e_weight w``: the joint cosine is (1 - w) x the ECAPA fusion's + w x GE2E's, in both speaker
    interfaces; a folder that already has a backend is copied without it, and one with GE2E is not nested."""
    from speechbrain_dyncp.inference.speaker import add_verification_backend
    from speechbrain_dyncp.lobes.ge2e import GE2EEncoder

    a, b = _members(tmp_path)
    recipe = _recipe(repo_root)
    ens = recipe.make_ensemble([a, b], tmp_path / "ens")
    add_verification_backend(ens, torch.randn(5, 32), 0.5)  # a cohort and threshold the copy must drop
    torch.manual_seed(3)
    ge2e = GE2EEncoder(trim_silence=False)
    torch.save({"model_state": ge2e.state_dict()}, tmp_path / "pretrained.pt")  # Resemblyzer's file layout
    out = recipe.make_ensemble([ens], tmp_path / "x3", ge2e_weight=0.3, ge2e_file=tmp_path / "pretrained.pt")
    assert "cohort" not in (out / "hyperparams.yaml").read_text()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 24000, generator=g) * 0.1
    cos = lambda u, v: float(torch.nn.functional.cosine_similarity(u.flatten(), v.flatten(), dim=0))
    with torch.no_grad():
        ecapa = load_speaker_embedder(ens)
        # the folder's GE2E trims pauses; noise has none to trim, so the untrimmed twin gives the same
        c_ecapa, c_ge2e = cos(ecapa(x[None]), ecapa(y[None])), cos(ge2e(x[None]), ge2e(y[None]))
        joint = load_speaker_embedder(out)
        assert cos(joint(x[None]), joint(y[None])) == pytest.approx(0.7 * c_ecapa + 0.3 * c_ge2e, abs=1e-5)
        model = load_speaker_model(out)
        assert model.encode_batch(x[None]).shape[-1] == 32 + 256
        assert cos(model.encode_batch(x[None]), model.encode_batch(y[None])) == pytest.approx(
            0.7 * c_ecapa + 0.3 * c_ge2e, abs=1e-5)
    assert abs(c_ecapa - c_ge2e) > 1e-3  # the weights matter
    with pytest.raises(ValueError, match="already has waveform_members"):
        recipe.make_ensemble([out], tmp_path / "x4", ge2e_weight=0.3, ge2e_file=tmp_path / "pretrained.pt")
    with pytest.raises(ValueError, match=r"ge2e_weight 1.0 must be in \[0, 1\)"):
        recipe.make_ensemble([ens], tmp_path / "x5", ge2e_weight=1.0)
