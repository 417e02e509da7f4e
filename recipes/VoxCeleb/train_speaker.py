#!/usr/bin/env python3
"""Train speaker embeddings (ECAPA-TDNN or ResNet34, AAM softmax) on VoxCeleb or the embedded corpus.

Usage::

    python recipes/VoxCeleb/train_speaker.py hparams/VoxCeleb/train_ecapa.yaml [--key=value ...]
    python recipes/VoxCeleb/train_speaker.py hparams/VoxCeleb/train_resnet.yaml [--key=value ...]

``--data_folder=embedded`` (the default) builds the synthetic corpus of
``speechbrain_dyncp.data.synth`` under ``<output_folder>/corpus``; a real
VoxCeleb folder (``wav/<spk>/<session>/<utt>.wav``) works the same way, see
the YAML header. Manifests come from ``speechbrain_dyncp.data.voxceleb.prepare_voxceleb``;
the validation metric is speaker-ID classification error on held-out chunks.
``--front_end=<DynCP model folder>`` passes every input (training and validation) through that
enhancer, frozen, before the features: a speaker model matched to an enhancement front-end.
``--init_from=<speaker model folder>`` starts from an exported model (fine-tuning, e.g. on a front-end's output).
At the end the best checkpoint is exported to ``<output_folder>/model`` (a
SpeechBrain model folder: ``EncoderClassifier.from_hparams(source=...)`` or
``speechbrain_dyncp.verification.embedding.load_speaker_embedder``).

Authors
 * speechbrain-dyncp contributors
"""

import logging
import sys
from pathlib import Path

import speechbrain as sb
import torch

from speechbrain_dyncp.brain import finish_ddp_group, unwrap
from speechbrain_dyncp.verification.distillation import EmbeddingDistillationLoss, TeacherEmbeddings
from speechbrain_dyncp.verification.training import (
    SpeakerIDBrain,
    augmentation_csvs,
    prepare_train_dev_manifests,
    speaker_chunk_datasets,
    start_speaker_recipe,
)

logger = logging.getLogger(__name__)

MODEL_YAML = """# speaker model exported by recipes/VoxCeleb/train_speaker.py
sample_rate: {sample_rate}
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: {n_mels}
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: {embedding_model}
classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: {emb_dim}
    out_neurons: {n_speakers}
label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    classifier: !ref <classifier>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        mean_var_norm: !ref <mean_var_norm>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
"""


class SpeakerBrain(SpeakerIDBrain):  # DynCPBrain: CPU/gloo DDP with BatchNorm, exact resume
    """ECAPA + AAM softmax; lengths reach the normaliser and the pooling.

    With ``--teacher_embeddings`` the loss adds ``distill_weight`` times the cosine
    distance to a pretrained teacher's embedding of the clean utterance
    (:mod:`speechbrain_dyncp.verification.distillation`), in training only.
    ``front_end`` (set from ``--front_end``): a frozen ``DynCPEnhancer`` every input goes through.
    """

    front_end = None

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        if stage == sb.Stage.TRAIN and hasattr(self.hparams, "wav_augment"):
            wavs, lens = self.hparams.wav_augment(wavs, lens)
        if self.front_end is not None:  # after the augmentation: the speaker model learns the enhancer's output
            with torch.no_grad():
                wavs = self.front_end(wavs, lens).wav
        feats = self.modules.compute_features(wavs)
        feats = self.modules.mean_var_norm(feats, lens)
        emb = self.modules.embedding_model(feats, lens)
        return self.modules.classifier(emb), lens, emb

    def compute_objectives(self, predictions, batch, stage):
        pred, lens, emb = predictions
        spkid, _ = batch.spk_id_encoded
        teacher = batch.teacher_emb.data if stage == sb.Stage.TRAIN and "distill" in self.modules else None
        if stage == sb.Stage.TRAIN and hasattr(self.hparams, "wav_augment"):
            spkid = self.hparams.wav_augment.replicate_labels(spkid)
            teacher = None if teacher is None else self.hparams.wav_augment.replicate_labels(teacher)
        loss = self.hparams.compute_cost(pred, spkid, lens)
        if teacher is not None:
            loss = loss + self.hparams.distill_weight * self.modules.distill(emb, teacher)
        if stage != sb.Stage.TRAIN:
            self.error_metrics.append(batch.id, pred, spkid, lens)
        return loss

    def epoch_meta(self, epoch):
        """Steps the epoch LR annealing; the log shows the LR the epoch ran with."""
        old_lr, new_lr = self.hparams.lr_annealing(epoch)
        sb.nnet.schedulers.update_learning_rate(self.optimizer, new_lr)
        return {"epoch": epoch, "lr": old_lr}


def embedding_model_yaml(hparams) -> str:
    """The run's ``embedding_model`` definition (ECAPA-TDNN, ResNet34, ...) as it is in its saved
    ``hyperparams.yaml`` (overrides applied, references resolved), for the exported folder."""
    import json

    from speechbrain_dyncp.export import read_module_definition

    tag, kwargs = read_module_definition(Path(hparams["output_folder"]) / "hyperparams.yaml", "embedding_model")
    return tag + "".join(f"\n    {k}: {json.dumps(v)}" for k, v in kwargs.items())


def export_model_dir(hparams, brain, label_encoder, out_dir):
    """Write the best checkpoint as a self-contained SpeechBrain model folder."""
    brain.checkpointer.recover_if_possible(min_key="ErrorRate")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # unwrap: under DDP the modules are DistributedDataParallel (keys would gain a "module." prefix)
    torch.save(unwrap(brain.modules.embedding_model).state_dict(), out_dir / "embedding_model.ckpt")
    torch.save(unwrap(brain.modules.classifier).state_dict(), out_dir / "classifier.ckpt")
    brain.modules.mean_var_norm._save(out_dir / "mean_var_norm.ckpt")
    label_encoder.save(out_dir / "label_encoder.ckpt")  # the name Pretrainer looks for
    (out_dir / "hyperparams.yaml").write_text(MODEL_YAML.format(
        n_speakers=len(label_encoder), embedding_model=embedding_model_yaml(hparams),
        **{k: hparams[k] for k in ("sample_rate", "n_mels", "emb_dim")}))
    logger.info("Exported speaker model to %s", out_dir)


def add_teacher_targets(hparams, train):
    """``teacher_emb`` for every training item (validation does not use it), and the distillation
    head as a module (checkpointed, not exported)."""
    teacher = TeacherEmbeddings(hparams["teacher_embeddings"], hparams["distill_min_seconds"])

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("teacher_emb")
    def teacher_pipeline(wav):
        return teacher(wav)

    train.add_dynamic_item(teacher_pipeline)
    train.set_output_keys(["id", "sig", "spk_id_encoded", "teacher_emb"])
    distill = EmbeddingDistillationLoss(hparams["emb_dim"], teacher.dim)
    hparams["modules"]["distill"] = distill
    # a run begun without a teacher cannot continue with one: the optimizer would not match its checkpoint
    hparams["checkpointer"].add_recoverable("distill", distill)
    logger.info("Distilling from %s (%d of %d utterances, %d dims), weight %s", teacher.name, teacher.n_targets,
                len(teacher.table), teacher.dim, hparams["distill_weight"])


def init_from_model_folder(brain, folder, label_encoder):
    """Load an exported speaker model's embedding model (and classifier, when the speaker labels agree).

    Called before ``fit``: a checkpoint in the run's save folder, recovered by ``fit``, overwrites these
    weights, so a resumed run continues rather than restarting from the folder.
    """
    from speechbrain.dataio.encoder import CategoricalEncoder

    from speechbrain_dyncp.export import load_weights

    folder = Path(folder)
    missing = [n for n in ("embedding_model.ckpt", "label_encoder.ckpt") if not (folder / n).is_file()]
    if missing:
        raise SystemExit(f"--init_from {folder}: not a speaker model folder (no {', '.join(missing)})")
    modules = unwrap(brain.modules)
    modules.embedding_model.load_state_dict(load_weights(folder / "embedding_model.ckpt"))
    theirs = CategoricalEncoder()
    theirs.load(folder / "label_encoder.ckpt")
    if theirs.lab2ind == label_encoder.lab2ind and (folder / "classifier.ckpt").is_file():
        modules.classifier.load_state_dict(load_weights(folder / "classifier.ckpt"))
        logger.info("Initialised embedding model and classifier from %s", folder)
    else:  # other speakers (or order): the AAM head starts afresh, the embedding model is kept
        logger.warning("%s: other speaker labels than this run's; only its embedding model is loaded", folder)


def main(argv):
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    hparams, corpus = start_speaker_recipe(hparams_file, run_opts, overrides)
    augmentation_csvs(hparams["wav_augment"], {hparams["add_noise"]: "noise", hparams["add_reverb"]: "rirs"}, corpus,
                      hparams["save_folder"], white_noise=[hparams["add_noise"]])

    prepare_train_dev_manifests(hparams)
    train, valid, label_encoder = speaker_chunk_datasets(hparams)
    if hparams["teacher_embeddings"]:
        add_teacher_targets(hparams, train)

    classifier = hparams["classifier"](out_neurons=len(label_encoder))
    hparams["modules"]["classifier"] = classifier
    hparams["checkpointer"].add_recoverable("classifier", classifier)
    brain = SpeakerBrain(modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
                         run_opts=run_opts, checkpointer=hparams["checkpointer"])
    if hparams.get("front_end"):
        from speechbrain_dyncp.inference.loading import load_enhancer

        brain.front_end = load_enhancer(hparams["front_end"]).mods.enhancer.eval().to(brain.device)
        brain.front_end.requires_grad_(False)
        logger.info("Inputs pass through the front-end %s (frozen)", hparams["front_end"])
    if hparams.get("init_from"):
        init_from_model_folder(brain, hparams["init_from"], label_encoder)
    loader_opts = hparams["dataloader_options"]
    brain.fit(brain.hparams.epoch_counter, train, valid, train_loader_kwargs=loader_opts,
              valid_loader_kwargs=dict(loader_opts, shuffle=False))
    if sb.utils.distributed.if_main_process():
        export_model_dir(hparams, brain, label_encoder, Path(hparams["output_folder"]) / "model")
    finish_ddp_group()


if __name__ == "__main__":
    main(sys.argv[1:])
