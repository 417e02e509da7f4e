#!/usr/bin/env python3
"""Train ECAPA-TDNN speaker embeddings (AAM softmax) on VoxCeleb or the embedded corpus.

Usage::

    python recipes/VoxCeleb/train_speaker.py hparams/VoxCeleb/train_ecapa.yaml [--key=value ...]

``--data_folder=embedded`` (the default) builds the synthetic corpus of
``speechbrain_dyncp.data.synth`` under ``<output_folder>/corpus``; a real
VoxCeleb folder (``wav/<spk>/<session>/<utt>.wav``) works the same way, see
the YAML header. Manifests come from ``speechbrain_dyncp.data.voxceleb.prepare_voxceleb``;
the validation metric is speaker-ID classification error on held-out chunks.
At the end the best checkpoint is exported to ``<output_folder>/model`` (a
SpeechBrain model folder: ``EncoderClassifier.from_hparams(source=...)`` or
``speechbrain_dyncp.verification.embedding.load_speaker_embedder``).

Authors
 * speechbrain-dyncp contributors
"""

import logging
import random
import sys
from pathlib import Path

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main

from speechbrain_dyncp.brain import DynCPBrain, unwrap
from speechbrain_dyncp.data.audio import audio_info, read_audio
from speechbrain_dyncp.verification.pipeline import resolve_voxceleb_data

logger = logging.getLogger(__name__)

MODEL_YAML = """# ECAPA speaker model exported by recipes/VoxCeleb/train_speaker.py
sample_rate: {sample_rate}
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: {n_mels}
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: {n_mels}
    channels: {channels}
    kernel_sizes: {kernel_sizes}
    dilations: {dilations}
    attention_channels: {attention_channels}
    se_channels: {se_channels}
    lin_neurons: {emb_dim}
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


class SpeakerBrain(DynCPBrain):  # CPU/gloo DDP with BatchNorm, exact resume
    """ECAPA + AAM softmax; lengths reach the normaliser and the pooling."""

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        if stage == sb.Stage.TRAIN and hasattr(self.hparams, "wav_augment"):
            wavs, lens = self.hparams.wav_augment(wavs, lens)
        feats = self.modules.compute_features(wavs)
        feats = self.modules.mean_var_norm(feats, lens)
        emb = self.modules.embedding_model(feats, lens)
        return self.modules.classifier(emb), lens

    def compute_objectives(self, predictions, batch, stage):
        pred, lens = predictions
        spkid, _ = batch.spk_id_encoded
        if stage == sb.Stage.TRAIN and hasattr(self.hparams, "wav_augment"):
            spkid = self.hparams.wav_augment.replicate_labels(spkid)
        loss = self.hparams.compute_cost(pred, spkid, lens)
        if stage != sb.Stage.TRAIN:
            self.error_metrics.append(batch.id, pred, spkid, lens)
        return loss

    def on_stage_start(self, stage, epoch=None):
        if stage != sb.Stage.TRAIN:
            self.error_metrics = self.hparams.error_stats()

    def on_stage_end(self, stage, stage_loss, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
            return
        stats = {"loss": stage_loss, "ErrorRate": self.error_metrics.summarize("average")}
        if stage == sb.Stage.VALID:
            old_lr, new_lr = self.hparams.lr_annealing(epoch)
            sb.nnet.schedulers.update_learning_rate(self.optimizer, new_lr)
            self.hparams.train_logger.log_stats({"epoch": epoch, "lr": old_lr}, {"loss": self.train_loss}, stats)
            self.checkpointer.save_and_keep_only(meta={"ErrorRate": stats["ErrorRate"]}, min_keys=["ErrorRate"])


def embedded_noise_csvs(corpus, hparams):
    """Noise / RIR CSVs from the embedded corpus's musan/noise and rirs folders, unless CSVs were given."""
    from speechbrain_dyncp.data.noise import prepare_noise_csv, prepare_rir_csv

    save = Path(hparams["save_folder"])
    if hparams["add_noise"].csv_file is None and (corpus.musan / "noise").is_dir():
        csv = save / "noise.csv"
        run_on_main(prepare_noise_csv, kwargs={"folders": corpus.musan / "noise", "csv_file": csv})
        hparams["add_noise"].csv_file = str(csv)
    if hparams["add_reverb"].csv_file is None and corpus.rirs.is_dir():
        csv = save / "rir.csv"
        run_on_main(prepare_rir_csv, kwargs={"rir_folder": corpus.rirs, "csv_file": csv})
        hparams["add_reverb"].csv_file = str(csv)


def drop_unusable_augmentations(augmenter):
    """AddReverb without an RIR CSV cannot run: remove it (AddNoise without a CSV adds white noise)."""
    for key in [k for k, aug in augmenter.augmentations.items()
                if isinstance(aug, sb.augment.time_domain.AddReverb) and aug.csv_file is None]:
        logger.info("No rir_csv given: training without reverberation")
        del augmenter.augmentations[key]
        augmenter.require_lengths.pop(key, None)
    augmenter.max_augmentations = min(augmenter.max_augmentations, len(augmenter.augmentations))
    augmenter.min_augmentations = min(augmenter.min_augmentations, augmenter.max_augmentations)


def dataio_prep(hparams):
    """Train (random chunks) and valid (fixed chunks) datasets plus the fitted label encoder."""
    sr = hparams["sample_rate"]
    save = Path(hparams["save_folder"])
    train = sb.dataio.dataset.DynamicItemDataset.from_csv(str(save / "train.csv"))
    valid = sb.dataio.dataset.DynamicItemDataset.from_csv(str(save / "dev.csv"))

    @sb.utils.data_pipeline.takes("wav", "start", "stop")
    @sb.utils.data_pipeline.provides("sig")
    def train_audio(wav, start, stop):
        start, stop = int(start), int(stop)
        if hparams["random_chunk"]:
            # start/stop count samples at the file's own rate (e.g. 44.1 kHz), so the crop does too:
            # a 16 kHz count read at 44.1 kHz would be a 0.73 s "2 s" chunk
            seg_file = round(hparams["sentence_len"] * audio_info(wav)[1])
            if stop - start > seg_file:  # else the whole row: PaddedBatch pads (never randint on < 0, P14)
                start = random.randint(start, stop - seg_file)
                stop = start + seg_file
        return read_audio(wav, sample_rate=sr, start=start, stop=stop)

    @sb.utils.data_pipeline.takes("wav", "start", "stop")
    @sb.utils.data_pipeline.provides("sig")
    def valid_audio(wav, start, stop):
        return read_audio(wav, sample_rate=sr, start=int(start), stop=int(stop))

    label_encoder = hparams["label_encoder"]

    @sb.utils.data_pipeline.takes("spk_id")
    @sb.utils.data_pipeline.provides("spk_id_encoded")
    def label_pipeline(spk_id):
        return label_encoder.encode_sequence_torch([spk_id])

    train.add_dynamic_item(train_audio)
    valid.add_dynamic_item(valid_audio)
    for d in (train, valid):
        d.add_dynamic_item(label_pipeline)
        d.set_output_keys(["id", "sig", "spk_id_encoded"])
    # speakers of both splits, so a speaker whose chunks all fell into dev is still encodable
    label_encoder.load_or_create(path=save / "label_encoder.txt", from_didatasets=[train, valid],
                                 output_key="spk_id")
    label_encoder.expect_len(len(label_encoder))  # P24
    return train, valid, label_encoder


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
    keys = ("sample_rate", "n_mels", "channels", "kernel_sizes", "dilations", "attention_channels", "se_channels",
            "emb_dim")
    (out_dir / "hyperparams.yaml").write_text(
        MODEL_YAML.format(n_speakers=len(label_encoder), **{k: hparams[k] for k in keys}))
    logger.info("Exported speaker model to %s", out_dir)


def main(argv):
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    sb.utils.distributed.ddp_init_group(run_opts)
    with open(hparams_file) as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(experiment_directory=hparams["output_folder"], hyperparams_to_save=hparams_file,
                                   overrides=overrides)
    hparams["data_folder"], hparams["verification_file"], corpus = resolve_voxceleb_data(
        hparams["data_folder"], hparams["corpus_folder"], hparams["corpus_preset"], hparams["corpus_seed"],
        hparams["verification_file"])
    if corpus is not None:
        embedded_noise_csvs(corpus, hparams)
    drop_unusable_augmentations(hparams["wav_augment"])

    from speechbrain_dyncp.data.voxceleb import prepare_voxceleb

    run_on_main(prepare_voxceleb, kwargs={
        "data_folder": hparams["data_folder"], "save_folder": hparams["save_folder"],
        "verification_pairs_file": hparams["verification_file"], "splits": ["train", "dev"],
        "split_ratio": hparams["split_ratio"], "split_speaker": hparams["split_speaker"], "seg_dur": hparams["seg_dur"],
        "skip_prep": hparams["skip_prep"]})
    train, valid, label_encoder = dataio_prep(hparams)

    classifier = hparams["classifier"](out_neurons=len(label_encoder))
    hparams["modules"]["classifier"] = classifier
    hparams["checkpointer"].add_recoverable("classifier", classifier)
    brain = SpeakerBrain(modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
                         run_opts=run_opts, checkpointer=hparams["checkpointer"])
    loader_opts = hparams["dataloader_options"]
    brain.fit(brain.hparams.epoch_counter, train, valid, train_loader_kwargs=loader_opts,
              valid_loader_kwargs=dict(loader_opts, shuffle=False))
    if sb.utils.distributed.if_main_process():
        export_model_dir(hparams, brain, label_encoder, Path(hparams["output_folder"]) / "model")


if __name__ == "__main__":
    main(sys.argv[1:])
