"""Speaker-verification pipeline: utterance manifests -> embeddings -> scores -> EER / minDCF.

Reusable by every recipe that scores speakers (ECAPA in
``recipes/VoxCeleb/verify.py``, enhancement front-ends at fixed SNRs, SSL
layer pooling). The only thing a caller must supply is an *embedding
function* ``embed(wavs [B, T], lens [B]) -> [B, D]`` (see
:mod:`speechbrain_dyncp.verification.embedding`).

Typical use::

    embedder = load_speaker_embedder("results/ecapa_small/model")
    results = run_verification(embedder, "<corpus>/voxceleb/meta/veri_test2.txt",
                               ["<save>/enrol.csv", "<save>/test.csv"], cohort="<save>/train.csv",
                               score_norms=("none", "as-norm"), top_k=100, out_dir="results/verify")
    results["none"]["EER"], results["as-norm"]["minDCF@0.05"]

or the pieces: :func:`~speechbrain_dyncp.verification.embedding.utterance_dataset` ->
:func:`~speechbrain_dyncp.verification.embedding.compute_embeddings` ->
:func:`~speechbrain_dyncp.verification.scoring.make_normalizer` -> :func:`evaluate_trials`.

Authors
 * speechbrain-dyncp contributors
"""

import json
import logging
import os
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

import speechbrain as sb
import torch

from speechbrain_dyncp.verification.embedding import EmbedFn, compute_embeddings, utterance_dataset
from speechbrain_dyncp.verification.metrics import verification_metrics
from speechbrain_dyncp.verification.scoring import ScoreNormalizer, make_normalizer, score_trials
from speechbrain_dyncp.verification.trials import Trials, read_trials, write_scores

logger = logging.getLogger(__name__)


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
        See :func:`speechbrain_dyncp.verification.metrics.verification_metrics`,
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
