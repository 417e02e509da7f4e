"""Speaker embeddings: model folders -> embedding functions -> embeddings of utterance manifests.

An *embedding function* is all that scoring needs::

    embed(wavs: Tensor[B, T], lens: Tensor[B]) -> Tensor[B, D] (or [B, 1, D])

with SpeechBrain relative lengths. :class:`SpeakerEmbedder` builds one from
Fbank + sentence mean normalisation + any speaker network, optionally behind
a waveform front-end (e.g. an enhancer, ``wav_frontend(wavs, lens) -> wavs``
or one returning an object with a ``.wav`` field) and/or a feature front-end
(``feat_frontend(feats, lens) -> feats``). :func:`load_speaker_embedder` loads
the ECAPA model folder that ``recipes/VoxCeleb/train_speaker.py`` exports, and
:func:`load_speaker_scorer` the same folder as the frozen network E of Grad-W;
:func:`load_trained_enhancer` loads the front-end G a Grad-W run trained.

Authors
 * speechbrain-dyncp contributors
"""

import os
from pathlib import Path
from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence, Union

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from torch import nn

from speechbrain_dyncp.data.audio import read_audio
from speechbrain_dyncp.lengths import length_mask

EmbedFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MODEL_HPARAMS = "hyperparams.yaml"


class SpeakerEmbedder(nn.Module):
    """Waveforms -> speaker embeddings ``[B, D]``, with optional front-ends.

    Arguments
    ---------
    compute_features : callable
        ``wavs [B, T] -> feats [B, N, F]`` (e.g. ``speechbrain.lobes.features.Fbank``).
    mean_var_norm : callable or None
        ``(feats, lens) -> feats`` (e.g. ``InputNormalization(norm_type="sentence")``).
    embedding_model : nn.Module
        ``(feats, lens) -> [B, 1, D]`` (e.g. ECAPA-TDNN).
    wav_frontend : nn.Module, optional
        Applied to the waveforms first, ``(wavs, lens) -> wavs`` or an output with ``.wav``
        (e.g. ``DynCPEnhancer``).
    feat_frontend : nn.Module, optional
        Applied to the normalised features, ``(feats, lens) -> feats``.
    waveform_members : WaveformMembers, optional
        Embedders with their own features, fused with ``embedding_model``'s embedding
        (:class:`speechbrain_dyncp.lobes.embedding_ensemble.WaveformMembers`).

    Padding: lengths reach the normaliser and the network's pooling, and
    padded frames are zeroed, but the convolutions' context at the end of a
    short item still differs from an unpadded run (SpeechBrain convs pad by
    reflection), so embed one item per batch where exactness matters.

    Example
    -------
    >>> from speechbrain.lobes.features import Fbank
    >>> from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    >>> ecapa = ECAPA_TDNN(40, channels=[16, 16, 16, 16, 48], lin_neurons=8)
    >>> embed = SpeakerEmbedder(Fbank(n_mels=40), None, ecapa).eval()
    >>> wavs = torch.randn(2, 16000)
    >>> embed(wavs, torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 8])
    """

    def __init__(self, compute_features, mean_var_norm, embedding_model, wav_frontend=None, feat_frontend=None,
                 waveform_members=None):
        super().__init__()
        self.waveform_members = waveform_members
        self.compute_features = compute_features
        self.mean_var_norm = mean_var_norm
        self.embedding_model = embedding_model
        self.wav_frontend = wav_frontend
        self.feat_frontend = feat_frontend

    def forward(self, wavs: torch.Tensor, lens: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Embed a padded batch ``[B, T]`` with relative lengths ``[B]``."""
        if lens is None:
            lens = torch.ones(wavs.shape[0], device=wavs.device)
        if self.wav_frontend is not None:
            out = self.wav_frontend(wavs, lens)
            wavs = getattr(out, "wav", out)
        feats = self.compute_features(wavs)  # B, N, F
        if self.mean_var_norm is not None:
            feats = self.mean_var_norm(feats, lens)
        # zero the padded frames so the network sees the same thing at any padding
        feats = feats * length_mask(lens, feats.shape[1], feats.shape[0], feats.device).unsqueeze(-1)
        if self.feat_frontend is not None:
            feats = self.feat_frontend(feats, lens)
        emb = self.embedding_model(feats, lens)
        if self.waveform_members is not None:
            emb = self.waveform_members(emb, wavs, lens)
        return emb.reshape(emb.shape[0], -1)


def load_speaker_embedder(model_dir: Union[str, os.PathLike], device: str = "cpu", **frontends) -> SpeakerEmbedder:
    """Load the model folder written by ``train_speaker.py`` (``export_model_dir``) as a :class:`SpeakerEmbedder`.

    Arguments
    ---------
    model_dir : path
        Folder with ``hyperparams.yaml`` (``compute_features``, ``mean_var_norm``,
        ``embedding_model``) and ``embedding_model.ckpt`` (+ ``mean_var_norm.ckpt``).
    device : str
        Where to put the model.
    **frontends
        ``wav_frontend=`` / ``feat_frontend=`` passed to :class:`SpeakerEmbedder`.

    Returns
    -------
    SpeakerEmbedder
        In eval mode; weights loaded strictly (a mismatch raises).
    """
    hp = _load_model_folder(model_dir, ["embedding_model"], optional=["waveform_members"])
    norm = hp.get("mean_var_norm")
    if norm is not None and (Path(model_dir) / "mean_var_norm.ckpt").is_file():
        norm._load(Path(model_dir) / "mean_var_norm.ckpt")
    model = hp["embedding_model"]
    return SpeakerEmbedder(hp["compute_features"], norm, model, waveform_members=hp.get("waveform_members"),
                           **frontends).to(device).eval()


def _load_model_folder(model_dir: Union[str, os.PathLike], modules: Sequence[str],
                       extra_files: Sequence[str] = (), optional: Sequence[str] = ()) -> dict:
    """The hparams of a ``train_speaker.py`` model folder with ``<module>.ckpt`` loaded strictly into each module
    (and into each ``optional`` module the hparams define).

    A missing file is a ``FileNotFoundError`` naming every missing one; a weight
    mismatch raises (unlike SpeechBrain's Pretrainer).
    """
    model_dir = Path(model_dir)
    missing = [n for n in [MODEL_HPARAMS, *(f"{m}.ckpt" for m in modules)] if not (model_dir / n).is_file()]
    missing += list(extra_files)
    if missing:
        raise FileNotFoundError(f"Speaker model folder {model_dir} lacks {missing}; train it with "
                                "recipes/VoxCeleb/train_speaker.py (it exports <output_folder>/model)")
    with open(model_dir / MODEL_HPARAMS) as fh:
        hp = load_hyperpyyaml(fh)
    present = [k for k in optional if k in hp]
    lacking = [f"{k}.ckpt" for k in present if not (model_dir / f"{k}.ckpt").is_file()]
    if lacking:
        raise FileNotFoundError(f"Speaker model folder {model_dir} defines but lacks {lacking}")
    for key in [*modules, *present]:
        state = torch.load(model_dir / f"{key}.ckpt", map_location="cpu", weights_only=True)
        hp[key].load_state_dict(state, strict=True)
    return hp


def load_speaker_scorer(model_dir: Union[str, os.PathLike], device: str = "cpu"):
    """E of Grad-W from a speaker model folder exported by ``recipes/VoxCeleb/train_speaker.py``.

    The folder holds ``hyperparams.yaml`` (``compute_features``,
    ``mean_var_norm``, ``embedding_model``, ``classifier``, ``label_encoder``)
    and ``embedding_model.ckpt``, ``classifier.ckpt``, ``label_encoder.ckpt`` (or ``.txt``).
    Weights are loaded strictly (a mismatch raises).

    Arguments
    ---------
    model_dir : str or path-like
        The model folder.
    device : str
        Where to put E.

    Returns
    -------
    tuple
        ``(SpeakerScorer in eval mode, compute_features, label_encoder)``; the
        feature extractor is the one E was trained with, to be shared by the
        clean, noisy and enhanced paths.
    """
    from speechbrain_dyncp.losses.gradw import SpeakerScorer

    model_dir = Path(model_dir)
    encoders = [model_dir / n for n in ("label_encoder.ckpt", "label_encoder.txt") if (model_dir / n).is_file()]
    hp = _load_model_folder(model_dir, ["embedding_model", "classifier"],
                            extra_files=[] if encoders else ["label_encoder.ckpt (or .txt)"])
    label_encoder = hp["label_encoder"]
    label_encoder.load(encoders[0])
    scorer = SpeakerScorer(hp["embedding_model"], hp["classifier"], hp.get("mean_var_norm"))
    return scorer.to(device).eval(), hp["compute_features"].to(device), label_encoder


def build_enhancer(hparams, n_mels: int):
    """G of the Grad-W recipe from ``g_factories[g_type]`` of its YAML, and its domain ('mel' or 'wave')."""
    g_type = hparams["g_type"]
    if g_type not in hparams["g_factories"]:
        raise ValueError(f"Unknown g_type {g_type!r}; choose from {sorted(hparams['g_factories'])}")
    factory = hparams["g_factories"][g_type]
    domain = hparams["g_domains"][g_type]
    return (factory(n_mels=n_mels) if domain == "mel" else factory()), domain


def load_trained_enhancer(output_folder, n_mels: int, overrides: dict = None, device: str = "cpu"):
    """G of a finished ``recipes/VoxCeleb/train_gradw.py`` run (its saved ``hyperparams.yaml`` + latest checkpoint).

    Returns
    -------
    (nn.Module, str)
        G in eval mode and its domain.
    """
    output_folder = Path(output_folder)
    with open(output_folder / "hyperparams.yaml") as fh:
        hp = load_hyperpyyaml(fh, overrides or {})
    g, domain = build_enhancer(hp, n_mels)
    ckpt = sb.utils.checkpoints.Checkpointer(output_folder / "save").find_checkpoint()
    if ckpt is None or not (ckpt.path / "enhancer.ckpt").is_file():
        raise FileNotFoundError(f"No enhancer checkpoint under {output_folder / 'save'}; did training finish?")
    g.load_state_dict(torch.load(ckpt.path / "enhancer.ckpt", map_location="cpu", weights_only=True), strict=True)
    return g.to(device).eval(), domain


def utterance_dataset(csv_path: Union[str, os.PathLike], sample_rate: int = 16000,
                      replacements: Optional[Mapping[str, str]] = None,
                      max_items: Optional[int] = None) -> sb.dataio.dataset.DynamicItemDataset:
    """A dataset of whole utterances (or ``[start, stop)`` segments) from a SpeechBrain CSV.

    The CSV needs columns ``ID, duration, wav`` and optionally ``start, stop``
    (samples); ``prepare_voxceleb``'s ``enrol.csv`` / ``test.csv`` / ``train.csv``
    qualify. Items are sorted by duration (less padding per batch) and give
    ``id`` and ``sig``.

    Arguments
    ---------
    csv_path : path
        The manifest.
    sample_rate : int
        Audio is resampled to this rate.
    replacements : dict, optional
        ``$key`` substitutions in the CSV (e.g. ``{"data_root": ...}``).
    max_items : int, optional
        Keep only the first (shortest) items, e.g. to bound a cohort.
    """
    data = sb.dataio.dataset.DynamicItemDataset.from_csv(str(csv_path), replacements=dict(replacements or {}))

    segments = "start" in next(iter(data.data.values()))  # else a plain manifest of whole files

    @sb.utils.data_pipeline.takes(*(("wav", "start", "stop") if segments else ("wav",)))
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav, start=None, stop=None):
        start = int(start) if start not in (None, "") else 0
        stop = int(stop) if stop not in (None, "") else None
        return read_audio(wav, sample_rate=sample_rate, start=start, stop=stop)

    data.add_dynamic_item(audio_pipeline)
    data.set_output_keys(["id", "sig"])
    return data.filtered_sorted(sort_key="duration", select_n=max_items)


@torch.no_grad()
def compute_embeddings(dataset, embed: EmbedFn, batch_size: int = 1, device: str = "cpu",
                       num_workers: int = 0, skip: Iterable[str] = ()) -> Dict[str, torch.Tensor]:
    """Embed every item of ``dataset`` (items with ``id`` and ``sig``) with ``embed(wavs, lens)``.

    Arguments
    ---------
    dataset : Dataset
        E.g. :func:`utterance_dataset`.
    embed : callable
        ``(wavs [B, T], lens [B]) -> [B, D]`` or ``[B, 1, D]``, on ``device``.
    batch_size : int
        1 gives padding-free embeddings; larger batches are faster (the
        dataset is duration-sorted, so padding stays small).
    device : str
        Where batches are moved.
    num_workers : int
        DataLoader workers.
    skip : iterable of str
        Ids already embedded (batches whose ids are all skipped are not run).

    Returns
    -------
    dict
        id -> ``[D]`` float tensor on CPU.
    """
    skip = set(skip)
    loader = sb.dataio.dataloader.make_dataloader(dataset, batch_size=batch_size, num_workers=num_workers)
    out: Dict[str, torch.Tensor] = {}
    for batch in loader:
        if all(i in skip for i in batch.id):
            continue
        wavs, lens = batch.sig
        emb = embed(wavs.to(device), lens.to(device))
        emb = emb.reshape(emb.shape[0], -1).float().cpu()
        out.update(zip(batch.id, emb))
    return out
