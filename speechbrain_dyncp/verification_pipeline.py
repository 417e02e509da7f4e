"""Speaker-verification pipeline: utterance manifests -> embeddings -> scores -> EER / minDCF.

Reusable by every recipe that scores speakers (ECAPA in
``recipes/VoxCeleb/verify.py``, enhancement front-ends at fixed SNRs, SSL
layer pooling). The only thing a caller must supply is an *embedding
function*::

    embed(wavs: Tensor[B, T], lens: Tensor[B]) -> Tensor[B, D] (or [B, 1, D])

with SpeechBrain relative lengths. :class:`SpeakerEmbedder` builds one from
Fbank + sentence mean normalisation + any speaker network, optionally behind
a waveform front-end (e.g. an enhancer, ``wav_frontend(wavs, lens) -> wavs``
or one returning an object with a ``.wav`` field) and/or a feature front-end
(``feat_frontend(feats, lens) -> feats``). :func:`load_speaker_embedder` loads
the ECAPA model folder that ``recipes/VoxCeleb/train_speaker.py`` exports.

Typical use::

    embedder = load_speaker_embedder("results/ecapa_small/model")
    results = run_verification(embedder, "<corpus>/voxceleb/meta/veri_test2.txt",
                               ["<save>/enrol.csv", "<save>/test.csv"], cohort="<save>/train.csv",
                               score_norms=("none", "as-norm"), top_k=100, out_dir="results/verify")
    results["none"]["EER"], results["as-norm"]["minDCF@0.05"]

or the pieces: :func:`utterance_dataset` -> :func:`compute_embeddings` ->
:func:`make_normalizer` -> :func:`evaluate_trials`.

Authors
 * speechbrain-dyncp contributors
"""

import json
import logging
import os
from pathlib import Path
from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence, Union

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from torch import nn

from speechbrain_dyncp.data.audio import read_audio
from speechbrain_dyncp.lengths import length_mask
from speechbrain_dyncp.metrics.verification import (
    ScoreNormalizer,
    Trials,
    read_trials,
    score_trials,
    stack_embeddings,
    verification_metrics,
    write_scores,
)

logger = logging.getLogger(__name__)
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

    def __init__(self, compute_features, mean_var_norm, embedding_model, wav_frontend=None, feat_frontend=None):
        super().__init__()
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
    model_dir = Path(model_dir)
    hp_path = model_dir / MODEL_HPARAMS
    if not hp_path.is_file():
        raise FileNotFoundError(f"No {MODEL_HPARAMS} in speaker model folder {model_dir} "
                                "(train with recipes/VoxCeleb/train_speaker.py, which exports <output_folder>/model)")
    with open(hp_path) as fh:
        hp = load_hyperpyyaml(fh)
    model = hp["embedding_model"]
    model.load_state_dict(torch.load(model_dir / "embedding_model.ckpt", map_location="cpu", weights_only=True), strict=True)
    norm = hp.get("mean_var_norm")
    if norm is not None and (model_dir / "mean_var_norm.ckpt").is_file():
        norm._load(model_dir / "mean_var_norm.ckpt")
    return SpeakerEmbedder(hp["compute_features"], norm, model, **frontends).to(device).eval()


# --------------------------------------------------------------------------- data


def resolve_voxceleb_data(data_folder: Optional[str], corpus_folder: Union[str, os.PathLike],
                          corpus_preset: str = "small", seed: int = 0, verification_file: Optional[str] = None):
    """Where the VoxCeleb-layout audio and the trial list are; builds the embedded corpus if asked.

    Arguments
    ---------
    data_folder : str or None
        A VoxCeleb folder (``wav/``, ``meta/``), or ``"embedded"`` / None / ``""``
        for ``speechbrain_dyncp.data.synth.build_corpus(corpus_folder, corpus_preset, seed)``
        (built by the main process only; the others load it).
    corpus_folder : path
        Root of the embedded corpus.
    corpus_preset : str
        Preset of the embedded corpus.
    seed : int
        Seed of the embedded corpus.
    verification_file : str, optional
        Trial list; default ``<data_folder>/meta/veri_test2.txt``.

    Returns
    -------
    (str, str, Corpus or None)
        VoxCeleb folder, trial-list path, the corpus object when embedded.
    """
    corpus = None
    if data_folder in (None, "", "embedded"):
        from speechbrain_dyncp.data.synth import build_corpus

        kwargs = {"root": Path(corpus_folder), "preset": corpus_preset, "seed": seed}
        if sb.utils.distributed.if_main_process():
            corpus = build_corpus(**kwargs)
        sb.utils.distributed.ddp_barrier()
        if not sb.utils.distributed.if_main_process():
            corpus = build_corpus(**kwargs)  # already built by the main process: only loads
        data_folder = str(corpus.voxceleb)
    if not verification_file:
        verification_file = str(Path(data_folder) / "meta" / "veri_test2.txt")
    if not Path(verification_file).is_file():
        raise FileNotFoundError(f"Verification trial list not found: {verification_file} "
                                "(pass --verification_file=<local path>; nothing is downloaded)")
    return str(data_folder), str(verification_file), corpus


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

    @sb.utils.data_pipeline.takes("wav", "start", "stop")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav, start=None, stop=None):
        start = int(start) if start not in (None, "") else 0
        stop = int(stop) if stop not in (None, "") else None
        return read_audio(wav, sample_rate=sample_rate, start=start, stop=stop)

    first = next(iter(data.data.values()))
    if "start" not in first:  # plain manifests: whole files
        audio_pipeline = sb.utils.data_pipeline.provides("sig")(
            sb.utils.data_pipeline.takes("wav")(lambda wav: read_audio(wav, sample_rate=sample_rate)))
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


# --------------------------------------------------------------------------- cohort + evaluation


def speaker_of_id(utt_id: str) -> str:
    """Speaker of a VoxCeleb trial id (``spk/video/utt``) or a manifest chunk id (``spk--video--utt_s_e``).

    Example
    -------
    >>> speaker_of_id("id10270/x6uYqmx31kE/00001"), speaker_of_id("id10001--1zcIwhmdeo4--00001_0.0_3.0")
    ('id10270', 'id10001')
    """
    return utt_id.split("/")[0].split("--")[0]


def speaker_means(embeddings: Mapping[str, torch.Tensor], speaker_of: Callable[[str], str] = speaker_of_id
                  ) -> torch.Tensor:
    """``[S, D]`` mean of the length-normalised embeddings of each speaker (a speaker-level cohort).

    Arguments
    ---------
    embeddings : dict
        id -> embedding.
    speaker_of : callable
        id -> speaker (default :func:`speaker_of_id`: VoxCeleb trial ids and manifest chunk ids).

    Example
    -------
    >>> speaker_means({"a/1": torch.tensor([1.0, 0.0]), "a/2": torch.tensor([0.0, 1.0]),
    ...                "b/1": torch.tensor([2.0, 0.0])})
    tensor([[0.5000, 0.5000],
            [1.0000, 0.0000]])
    """
    ids = sorted(embeddings)
    spk = sorted({speaker_of(i) for i in ids})
    index = {s: k for k, s in enumerate(spk)}
    mat = torch.nn.functional.normalize(stack_embeddings(embeddings, ids), dim=-1)
    which = torch.tensor([index[speaker_of(i)] for i in ids])
    sums = torch.zeros(len(spk), mat.shape[1]).index_add_(0, which, mat)
    return sums / torch.bincount(which, minlength=len(spk)).unsqueeze(1)


def make_normalizer(method: str, cohort: Optional[Mapping[str, torch.Tensor]] = None, top_k: Optional[int] = None,
                    speaker_mean: bool = False) -> Optional[ScoreNormalizer]:
    """A :class:`ScoreNormalizer` from a cohort dict (None for ``method="none"``).

    ``speaker_mean=True`` replaces the cohort utterances by per-speaker means
    (as in LAP's AS-norm with VoxCeleb2 speaker means).
    """
    if method in (None, "none"):
        return None
    if not cohort:
        raise ValueError(f"score normalisation {method!r} needs a cohort of embeddings (got none)")
    return ScoreNormalizer(cohort_matrix(cohort, speaker_mean), method, top_k=top_k)


def cohort_matrix(cohort: Mapping[str, torch.Tensor], speaker_mean: bool = False) -> torch.Tensor:
    """``[M, D]`` cohort used for score normalisation: the utterances, or per-speaker means."""
    return speaker_means(cohort) if speaker_mean else stack_embeddings(cohort, sorted(cohort))


def evaluate_trials(trials: Trials, embeddings: Mapping[str, torch.Tensor],
                    normalizer: Optional[ScoreNormalizer] = None, p_targets: Sequence[float] = (0.01, 0.05),
                    c_miss: float = 1.0, c_fa: float = 1.0, out_dir: Optional[Union[str, os.PathLike]] = None,
                    tag: str = "") -> Dict[str, float]:
    """Score ``trials`` and compute EER (%) and minDCF at each ``p_target``.

    With ``out_dir``, writes ``scores<tag>.txt`` (``enrol test label score``) and
    ``metrics<tag>.json`` there.

    Returns
    -------
    dict
        See :func:`speechbrain_dyncp.metrics.verification.verification_metrics`,
        plus ``score_norm`` and ``n_trials``.
    """
    scores = score_trials(trials, embeddings, normalizer)
    metrics = verification_metrics(scores, trials.labels, p_targets=p_targets, c_miss=c_miss, c_fa=c_fa)
    metrics["score_norm"] = normalizer.method if normalizer is not None else "none"
    metrics["top_k"] = normalizer.top_k if normalizer is not None else None
    metrics["n_trials"] = len(trials)
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_scores(out_dir / f"scores{tag}.txt", trials, scores)
        (out_dir / f"metrics{tag}.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def run_verification(embed: EmbedFn, trials: Union[Trials, str, os.PathLike], utterances, cohort=None,
                     score_norms: Sequence[str] = ("none",), top_k: Optional[int] = None,
                     speaker_mean: bool = False, p_targets: Sequence[float] = (0.01, 0.05),
                     batch_size: int = 1, device: str = "cpu", max_cohort: Optional[int] = None,
                     out_dir: Optional[Union[str, os.PathLike]] = None,
                     sample_rate: int = 16000,
                     cohort_out: Optional[Dict[str, torch.Tensor]] = None) -> Dict[str, Dict[str, float]]:
    """Embed, score and evaluate a trial list with any embedding function, for each score normalisation.

    Arguments
    ---------
    embed : callable
        ``(wavs [B, T], lens [B]) -> [B, D]``; e.g. a :class:`SpeakerEmbedder`
        (with an enhancement ``wav_frontend``) or an SSL + pooling model.
        Called under ``torch.no_grad``; put it in eval mode yourself.
    trials : Trials or path
        The trial list (VoxCeleb or Kaldi format).
    utterances : path, dataset or list of them
        Manifests (or datasets) covering every trial id, e.g. ``enrol.csv`` and ``test.csv``.
    cohort : path or dataset, optional
        Cohort utterances for score normalisation (e.g. ``train.csv`` chunks).
    score_norms : sequence of str
        Any of ``none``, ``z-norm``, ``t-norm``, ``s-norm``, ``as-norm``.
    top_k : int, optional
        Adaptive cohort size of ``as-norm`` (z/t/s-norm use the whole cohort; for adaptive
        z/t-norm build a :class:`ScoreNormalizer` with ``top_k`` yourself).
    speaker_mean : bool
        Use per-speaker mean cohort embeddings.
    p_targets : sequence of float
        Priors for minDCF.
    batch_size, device : int, str
        Embedding batch size (1 = no padding) and device.
    max_cohort : int, optional
        Keep at most this many (shortest) cohort utterances.
    out_dir : path, optional
        Writes ``scores.txt`` / ``metrics.json`` for the first normalisation,
        ``scores_<norm>.txt`` for the others, and ``metrics_all.json``.
    sample_rate : int
        Audio rate expected by ``embed``.
    cohort_out : dict, optional
        Filled with the cohort embeddings (id -> embedding), e.g. to store them in a model folder.

    Returns
    -------
    dict
        normalisation -> metrics dict (EER in percent, ``minDCF@<p>`` normalised).
    """
    if not isinstance(trials, Trials):
        trials = read_trials(trials)

    def as_datasets(x, limit=None):
        items = x if isinstance(x, (list, tuple)) else [x]
        return [utterance_dataset(i, sample_rate=sample_rate, max_items=limit)
                if isinstance(i, (str, os.PathLike)) else i for i in items]

    needed = set(trials.ids())
    emb: Dict[str, torch.Tensor] = {}
    for data in as_datasets(utterances):  # enrol and test manifests overlap: embed each id once
        have = set(emb) | (set(getattr(data, "data_ids", ())) - needed)
        emb.update(compute_embeddings(data, embed, batch_size, device, skip=have))
    trials.check_ids(emb)
    cohort_emb: Dict[str, torch.Tensor] = {}
    if cohort is not None and any(n not in (None, "none") for n in score_norms):
        for data in as_datasets(cohort, max_cohort):
            cohort_emb.update(compute_embeddings(data, embed, batch_size, device))
    if cohort_out is not None:
        cohort_out.update(cohort_emb)
    results = {}
    for k, method in enumerate(score_norms):
        norm = make_normalizer(method, cohort_emb, top_k=top_k if method == "as-norm" else None,
                               speaker_mean=speaker_mean)
        tag = "" if k == 0 else f"_{method}"
        results[method] = evaluate_trials(trials, emb, norm, p_targets=p_targets, out_dir=out_dir, tag=tag)
        logger.info("%s: EER %.2f%% %s", method, results[method]["EER"],
                    " ".join(f"{key} {v:.4f}" for key, v in results[method].items() if key.startswith("minDCF@")))
    if out_dir is not None:
        (Path(out_dir) / "metrics_all.json").write_text(json.dumps(results, indent=2))
    return results
