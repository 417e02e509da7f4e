"""Speaker-ID training pieces shared by the VoxCeleb recipes (ECAPA, LAP, Grad-W).

* :func:`speaker_chunk_datasets` / :func:`add_speaker_labels`: manifest chunks and
  speaker labels (``prepare_voxceleb``'s ``train.csv`` / ``dev.csv``);
* :func:`augmentation_csvs`: noise / music / babble / RIR CSVs of the augmenters,
  built from the embedded corpus where none was given;
* :class:`SpeakerIDBrain`: validation by speaker-ID error, logging and
  checkpointing on the best error;
* :func:`start_speaker_recipe`: DDP group, hparams, experiment folder and data;
  :func:`musan_root`;
* :func:`warmup_cosine_schedule`: per-step LR from PyTorch's schedulers;
* :func:`build_ssl_speaker_model`: the LAP recipe's SSL front-end, layer pooling and
  backend from its YAML (``poolings[<pooling>]``);
* :func:`load_enhancer_folder` / :func:`write_enhancer_folder`: Grad-W's G initialised
  from an enhancer model folder and written back as one (``load_enhancer`` reads it).

Authors
 * speechbrain-dyncp contributors
"""

import logging
import random
from pathlib import Path
from typing import Mapping, Sequence

import shutil

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main

from speechbrain_dyncp.brain import DynCPBrain, start_ddp_group
from speechbrain_dyncp.data.audio import audio_info, read_audio
from speechbrain_dyncp.lobes.ssl_speaker import SSLSpeakerModel
from speechbrain_dyncp.verification.speaker_augment import change_speed, draw_speed, speed_label, speed_labels
from speechbrain_dyncp.verification.pipeline import resolve_voxceleb_data

logger = logging.getLogger(__name__)


def start_speaker_recipe(hparams_file, run_opts, overrides: str):
    """DDP group, hparams, experiment folder and VoxCeleb-layout data of a speaker recipe.

    Arguments
    ---------
    hparams_file, run_opts, overrides
        As returned by ``speechbrain.parse_arguments``.

    Returns
    -------
    (dict, Corpus or None)
        The hparams, with ``data_folder`` and ``verification_file`` resolved by
        :func:`~speechbrain_dyncp.verification.pipeline.resolve_voxceleb_data`
        (the embedded corpus is built where asked), and that corpus.
    """
    start_ddp_group(run_opts)
    with open(hparams_file) as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(experiment_directory=hparams["output_folder"], hyperparams_to_save=hparams_file,
                                   overrides=overrides)
    hparams["data_folder"], hparams["verification_file"], corpus = resolve_voxceleb_data(
        hparams["data_folder"], hparams["corpus_folder"], hparams["corpus_preset"], hparams["corpus_seed"],
        hparams["verification_file"])
    return hparams, corpus


def musan_root(hparams, corpus) -> Path:
    """``musan_folder`` if set, else the embedded corpus's MUSAN (``noise/``, ``music/``, ``speech/``)."""
    musan = hparams["musan_folder"] or (corpus.musan if corpus is not None else None)
    if musan is None:
        raise ValueError("Set --musan_folder (MUSAN root with noise/, music/, speech/) for a real VoxCeleb folder.")
    return Path(musan)


def warmup_cosine_schedule(optimizer, total_steps: int, warmup_steps: int, lr_min: float):
    """Linear warm-up from ``lr_min`` to the optimizer's LR over ``warmup_steps``, then cosine back to ``lr_min``.

    PyTorch's ``LinearLR`` then ``CosineAnnealingLR`` (``SequentialLR``); call
    ``step()`` after every optimizer step and checkpoint it with the optimizer.

    Arguments
    ---------
    optimizer : torch.optim.Optimizer
        Its LR is the peak.
    total_steps : int
        Optimizer steps of the run (the cosine ends there).
    warmup_steps : int
        Steps of the warm-up (0: cosine from the first step).
    lr_min : float
        Start of the warm-up and end of the cosine (> 0 with a warm-up).

    Example
    -------
    >>> import torch
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> sched = warmup_cosine_schedule(opt, total_steps=6, warmup_steps=2, lr_min=0.1)
    >>> lrs = []
    >>> for _ in range(6):
    ...     lrs.append(round(opt.param_groups[0]["lr"], 4)); opt.step(); sched.step()
    >>> lrs
    [0.1, 0.55, 1.0, 0.8682, 0.55, 0.2318]
    """
    from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    cosine = CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup_steps), eta_min=lr_min)
    if warmup_steps <= 0:
        return cosine
    peak = optimizer.param_groups[0]["initial_lr"]
    warm = LinearLR(optimizer, start_factor=lr_min / peak, end_factor=1.0, total_iters=warmup_steps)
    return SequentialLR(optimizer, [warm, cosine], milestones=[warmup_steps])


class SpeakerIDBrain(DynCPBrain):
    """A ``DynCPBrain`` validated by speaker-ID error: logs and keeps the checkpoint of lowest ``ErrorRate``.

    Subclasses append to ``self.error_metrics`` in ``compute_objectives`` (valid and
    test stages) and may extend :meth:`epoch_meta` (e.g. to step an LR scheduler).
    """

    def epoch_meta(self, epoch) -> dict:
        """What the train log shows for ``epoch`` beside the losses (called once per validation)."""
        return {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]}

    def on_stage_start(self, stage, epoch=None):
        if stage != sb.Stage.TRAIN:
            self.error_metrics = self.hparams.error_stats()

    def on_stage_end(self, stage, stage_loss, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
            return
        stats = {"loss": stage_loss, "ErrorRate": self.error_metrics.summarize("average")}
        if stage == sb.Stage.VALID:
            self.hparams.train_logger.log_stats(self.epoch_meta(epoch), {"loss": self.train_loss}, stats)
            self.checkpointer.save_and_keep_only(meta={"ErrorRate": stats["ErrorRate"]}, min_keys=["ErrorRate"],
                                                 num_to_keep=getattr(self.hparams, "ckpt_num_to_keep", 1))


def add_speaker_labels(datasets: Sequence, label_encoder, audio_keys: Sequence[str], label_key: str = "spk_id"):
    """Add ``spk_id_encoded`` (from the ``spk_id`` column) and set the output keys of each dataset.

    Arguments
    ---------
    datasets : sequence of DynamicItemDataset
        Datasets whose audio items (``audio_keys``) are already added.
    label_encoder : speechbrain.dataio.encoder.CategoricalEncoder
        Encodes the speaker ids (fitted by the caller or by :func:`speaker_chunk_datasets`).
    audio_keys : sequence of str
        Output keys between ``id`` and ``spk_id_encoded``.
    label_key : str
        The item holding the speaker's class (a column, or a dynamic item such as
        the speed-augmented ``speaker`` of :func:`speaker_chunk_datasets`).

    Returns
    -------
    CategoricalEncoder
        ``label_encoder``.
    """

    @sb.utils.data_pipeline.takes(label_key)
    @sb.utils.data_pipeline.provides("spk_id_encoded")
    def label_pipeline(spk_id):
        return label_encoder.encode_sequence_torch([spk_id])

    for d in datasets:
        d.add_dynamic_item(label_pipeline)
        d.set_output_keys(["id", *audio_keys, "spk_id_encoded"])
    return label_encoder


def prepare_train_dev_manifests(hparams):
    """``train.csv`` / ``dev.csv`` chunk manifests of a speaker recipe's VoxCeleb-layout data (on the main process),
    as :func:`speaker_chunk_datasets` reads them: ``prepare_voxceleb`` with the recipe's split and chunk keys."""
    from speechbrain_dyncp.data.voxceleb import prepare_voxceleb

    run_on_main(prepare_voxceleb, kwargs={
        "data_folder": hparams["data_folder"], "save_folder": hparams["save_folder"],
        "verification_pairs_file": hparams["verification_file"], "splits": ["train", "dev"],
        "split_ratio": hparams["split_ratio"], "split_speaker": hparams["split_speaker"], "seg_dur": hparams["seg_dur"],
        "skip_prep": hparams["skip_prep"]})


def speaker_chunk_datasets(hparams):
    """Train (random chunks) and valid (fixed chunks) datasets plus the fitted label encoder.

    Arguments
    ---------
    hparams : dict
        ``save_folder`` (with ``train.csv`` / ``dev.csv`` of ``prepare_voxceleb``),
        ``sample_rate``, ``sentence_len``, ``random_chunk``, ``label_encoder``; optional
        ``speaker_speed_factors`` / ``speaker_speed_prob`` (speaker augmentation: that share of
        training crops is sped up by one of the factors and labelled as a new speaker).

    Returns
    -------
    (train, valid, label_encoder)
        Datasets giving ``id``, ``sig`` and ``spk_id_encoded``.
    """
    sr = hparams["sample_rate"]
    save = Path(hparams["save_folder"])
    train = sb.dataio.dataset.DynamicItemDataset.from_csv(str(save / "train.csv"))
    valid = sb.dataio.dataset.DynamicItemDataset.from_csv(str(save / "dev.csv"))
    # speaker augmentation (speaker_augment.py): a sped-up or slowed-down crop is a new speaker
    factors = tuple(float(f) for f in hparams.get("speaker_speed_factors") or ())
    speed_prob = float(hparams.get("speaker_speed_prob", 0.0))

    @sb.utils.data_pipeline.takes("wav", "start", "stop", "spk_id")
    @sb.utils.data_pipeline.provides("sig", "speaker")
    def train_audio(wav, start, stop, spk_id):
        start, stop = int(start), int(stop)
        factor = draw_speed(factors, speed_prob)
        if hparams["random_chunk"]:
            # start/stop count samples at the file's own rate (e.g. 44.1 kHz), so the crop does too:
            # a 16 kHz count read at 44.1 kHz would be a 0.73 s "2 s" chunk; a crop to be sped up by
            # `factor` is `factor` times longer, so every crop ends up sentence_len long
            seg_file = round(hparams["sentence_len"] * factor * audio_info(wav)[1])
            if stop - start > seg_file:  # else the whole row: PaddedBatch pads (never randint on < 0, P14)
                start = random.randint(start, stop - seg_file)
                stop = start + seg_file
        yield change_speed(read_audio(wav, sample_rate=sr, start=start, stop=stop), factor)
        yield speed_label(spk_id, factor)

    @sb.utils.data_pipeline.takes("wav", "start", "stop", "spk_id")
    @sb.utils.data_pipeline.provides("sig", "speaker")
    def valid_audio(wav, start, stop, spk_id):
        yield read_audio(wav, sample_rate=sr, start=int(start), stop=int(stop))
        yield spk_id

    train.add_dynamic_item(train_audio)
    valid.add_dynamic_item(valid_audio)
    label_encoder = add_speaker_labels([train, valid], hparams["label_encoder"], ["sig"], label_key="speaker")
    # speakers of both splits, so a speaker whose chunks all fell into dev is still encodable
    path = save / "label_encoder.txt"
    label_encoder.load_or_create(path=path, from_didatasets=[train, valid], output_key="spk_id")
    extra = [lab for lab in speed_labels([r["spk_id"] for d in (train, valid) for r in d.data.values()], factors)
             if lab not in label_encoder.lab2ind]
    if extra:  # appended after the original speakers (their indices unchanged); on resume the file has them
        label_encoder.update_from_iterable(extra)
        if sb.utils.distributed.if_main_process():
            label_encoder.save(path)
    label_encoder.expect_len(len(label_encoder))  # P24
    return train, valid, label_encoder


def augmentation_csvs(augmenter, sources: Mapping, corpus=None, save_folder=None, white_noise=()):
    """Fill the augmentations' missing CSVs from the embedded corpus; drop those left without one.

    Arguments
    ---------
    augmenter : speechbrain.augment.augmenter.Augmenter
        Holds the augmentations.
    sources : dict
        Augmentation (``AddNoise`` / ``AddReverb``) -> its source in the embedded corpus:
        a MUSAN sub-folder (``"noise"``, ``"music"``, ``"speech"``) or ``"rirs"``.
    corpus : Corpus, optional
        The embedded corpus (None for real data: only given CSVs are used).
    save_folder : path, optional
        Where the built CSVs go (``<source>.csv``; ``rir.csv``).
    white_noise : sequence
        Augmentations kept without a CSV (``AddNoise`` then adds white noise); any other
        augmentation with ``csv_file = None`` is removed (``AddReverb`` cannot run without one).
    """
    from speechbrain_dyncp.data.noise import prepare_noise_csv, prepare_rir_csv

    if corpus is not None:
        for aug, source in sources.items():
            folder = corpus.rirs if source == "rirs" else corpus.musan / source
            if aug.csv_file is None and folder.is_dir():
                csv = Path(save_folder) / ("rir.csv" if source == "rirs" else f"{source}.csv")
                run_on_main(prepare_rir_csv if source == "rirs" else prepare_noise_csv, args=[folder, csv])
                aug.csv_file = str(csv)
    for key in [k for k, a in augmenter.augmentations.items()
                if getattr(a, "csv_file", "") is None and all(a is not w for w in white_noise)]:
        del augmenter.augmentations[key]
        augmenter.require_lengths.pop(key, None)
    augmenter.max_augmentations = min(augmenter.max_augmentations, len(augmenter.augmentations))
    augmenter.min_augmentations = min(augmenter.min_augmentations, augmenter.max_augmentations)
    logger.info("Augmentations: %s", ", ".join(
        type(a).__name__ + (f"({Path(a.csv_file).stem})" if getattr(a, "csv_file", None) else
                            "(white)" if hasattr(a, "csv_file") else "") for a in augmenter.augmentations.values()))


def build_ssl_speaker_model(hparams) -> SSLSpeakerModel:
    """Front-end, layer pooling and backend from the YAML: the entry ``poolings[<pooling>]``.

    Its ``layer_pooling`` is sized from the front-end and its ``backend`` from the
    pooling (:meth:`SSLSpeakerModel.build`), with the extra constructor arguments
    of ``sizes[<model_size>]``. No pooling is named here: a new one is its class
    plus an entry under ``poolings:``.

    Arguments
    ---------
    hparams : dict
        Loaded recipe hparams (``frontend``, ``poolings``, ``pooling``, ``model_size``).

    Returns
    -------
    SSLSpeakerModel
    """
    if hparams["pooling"] not in hparams["poolings"]:
        raise ValueError(f"Unknown pooling {hparams['pooling']!r}; choose from {sorted(hparams['poolings'])} "
                         "or add an entry under `poolings:` in the YAML")
    entry = hparams["poolings"][hparams["pooling"]]
    sizes = (entry.get("sizes") or {}).get(hparams["model_size"]) or {}
    return SSLSpeakerModel.build(hparams["frontend"], entry["layer_pooling"], entry["backend"],
                                 pooling_kwargs=sizes.get("layer_pooling"), backend_kwargs=sizes.get("backend"))


def ssl_model_recoverables(model, classifier, include_frontend: bool) -> dict:
    """What a checkpoint holds: the frozen front-end is left out (it is the public model)."""
    rec = {"pooling": model.pooling, "backend": model.backend, "classifier": classifier}
    if include_frontend:
        rec["frontend"] = model.frontend
    return rec


def load_enhancer_folder(model_dir):
    """The enhancer of a model folder (e.g. ``pretrained/dyncp_real_small``): ``enhancer`` of its
    ``hyperparams.yaml`` (architecture, causality, gates as shipped), ``enhancer.ckpt`` loaded strictly."""
    model_dir = Path(model_dir)
    with open(model_dir / "hyperparams.yaml") as fh:
        g = load_hyperpyyaml(fh)["enhancer"]
    g.load_state_dict(torch.load(model_dir / "enhancer.ckpt", map_location="cpu", weights_only=True), strict=True)
    return g


def write_enhancer_folder(g, init_dir, out_dir, note: str = "") -> Path:
    """``out_dir`` = ``init_dir`` (its ``hyperparams.yaml`` and other ``.ckpt``, e.g. ``probes.ckpt``) with
    ``g``'s weights as ``enhancer.ckpt``: a folder ``inference.loading.load_enhancer`` loads."""
    init_dir, out_dir = Path(init_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for src in [init_dir / "hyperparams.yaml", *sorted(init_dir.glob("*.ckpt"))]:
        if src.name != "enhancer.ckpt":
            shutil.copyfile(src, out_dir / src.name)
    if note:
        with open(out_dir / "hyperparams.yaml", "a") as fh:
            fh.write(f"\n# {note}\n")
    torch.save({k: v.detach().cpu() for k, v in g.state_dict().items()}, out_dir / "enhancer.ckpt")
    return out_dir
