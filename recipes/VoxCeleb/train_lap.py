#!/usr/bin/env python3
"""Train LAP (or the SUPERB weighted sum) over an SSL model for speaker verification.

Usage::

    python recipes/VoxCeleb/train_lap.py hparams/VoxCeleb/train_lap.yaml [--phase=frozen|finetune|lmft]
        [--pooling=<a key of poolings: in the YAML>] [--key=value ...]

One run is one phase of the paper's schedule; ``phase`` selects the values
listed under ``phases:`` in the YAML (command-line keys win), and phases 2
and 3 start from the best checkpoint of the previous phase (``init_from``).
The model is ``SSLFrontEnd -> layer pooling -> backend`` (the YAML's
``poolings[<pooling>]``, see
``speechbrain_dyncp.verification.training.build_ssl_speaker_model``) with a sub-centre
AAM head (speakers x speed classes); the per-epoch validation metric is
speaker-ID error on held-out chunks (the paper selects epochs on the test
lists; we do not). At the end the best checkpoint is scored on the trial
list with ``speechbrain_dyncp.verification.pipeline.run_verification``
(``<output_folder>/verify/metrics_all.json``).

Authors
 * speechbrain-dyncp contributors
"""

import logging
import os
import random
import sys
from pathlib import Path

import speechbrain as sb
import yaml
from hyperpyyaml import resolve_references
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.distributed import if_main_process, run_on_main

from speechbrain_dyncp.brain import finish_ddp_group
from speechbrain_dyncp.verification.pipeline import run_verification
from speechbrain_dyncp.verification.speaker_augment import change_speed
from speechbrain_dyncp.verification.training import (
    SpeakerIDBrain,
    augmentation_csvs,
    build_ssl_speaker_model,
    speaker_chunk_datasets,
    ssl_model_recoverables,
    start_speaker_recipe,
    warmup_cosine_schedule,
)

logger = logging.getLogger(__name__)


class _TagsAsNone(yaml.SafeLoader):
    """Reads a resolved hparams file without building its objects."""


_TagsAsNone.add_multi_constructor("!", lambda loader, suffix, node: None)


def phase_overrides(hparams_file, overrides: str) -> str:
    """Merge ``phases[<phase>]`` of the YAML under the command-line overrides.

    Arguments
    ---------
    hparams_file : path
        The recipe YAML.
    overrides : str
        YAML string of command-line overrides (from ``sb.parse_arguments``).

    Returns
    -------
    str
        YAML overrides: the phase's values, then the command line on top.
    """
    cli = yaml.load(overrides, Loader=_TagsAsNone) or {} if overrides else {}  # only its keys are used
    with open(hparams_file) as fin:
        resolved = yaml.load(resolve_references(fin, overrides), Loader=_TagsAsNone)
    phase = resolved["phase"]
    if phase not in resolved["phases"]:
        raise ValueError(f"Unknown phase {phase!r}; choose from {sorted(resolved['phases'])}")
    merged = {k: v for k, v in resolved["phases"][phase].items() if k not in cli}
    # the command line is appended as written, so its tags (e.g. a `!name:` pooling) survive
    return "\n".join(part for part in (yaml.safe_dump(merged) if merged else "", overrides or "") if part)


class LAPBrain(SpeakerIDBrain):
    """SSL + layer pooling + AAM; speed-perturbed batches are extra speaker classes."""

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        self.speed_class = 0
        if stage == sb.Stage.TRAIN:
            speed = random.choice(self.hparams.speeds)
            # one speed per batch (the class block follows); speaker_speed_factors of train_ecapa.yaml draw per item
            wavs = change_speed(wavs, speed)
            self.speed_class = self.hparams.speed_classes.index(speed)
            if hasattr(self.hparams, "wav_augment"):
                wavs, lens = self.hparams.wav_augment(wavs, lens)
        emb = self.modules.model(wavs, lens)
        return self.modules.classifier(emb), lens

    def compute_objectives(self, predictions, batch, stage):
        pred, lens = predictions
        spkid, _ = batch.spk_id_encoded
        spkid = spkid + self.speed_class * self.n_speakers
        loss = self.hparams.compute_cost(pred, spkid, lens)
        if stage != sb.Stage.TRAIN:  # speaker error: the best speed block of each speaker counts
            by_speaker = pred.unflatten(-1, (len(self.hparams.speed_classes), self.n_speakers)).amax(dim=-2)
            self.error_metrics.append(batch.id, by_speaker, spkid, lens)
        return loss

    def on_fit_start(self):
        fresh = self.checkpointer is None or self.checkpointer.find_checkpoint() is None
        super().on_fit_start()
        if fresh and self.hparams.init_from:
            self.init_from_previous_phase(self.hparams.init_from)

    def init_from_previous_phase(self, folder):
        """Load the best checkpoint (lowest dev error) of the previous phase's save folder."""
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"init_from folder not found: {folder} (run the previous phase first)")
        rec = ssl_model_recoverables(self.modules.model, self.modules.classifier, include_frontend=True)
        ckpt = Checkpointer(folder, recoverables=rec, allow_partial_load=True).recover_if_possible(min_key="ErrorRate")
        if ckpt is None:
            raise FileNotFoundError(f"No checkpoint in {folder}")
        logger.info("Initialised from %s", ckpt.path)

    def init_optimizers(self):
        """The YAML's optimizer and its per-step LR schedule (linear warm-up, cosine), both checkpointed."""
        super().init_optimizers()
        self.lr_scheduler = warmup_cosine_schedule(self.optimizer, self.total_steps,
                                                   int(self.hparams.warmup_frac * self.total_steps),
                                                   self.hparams.lr_min)
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("lr_scheduler", self.lr_scheduler)

    def on_fit_batch_start(self, batch, should_step):
        self.current_lr = self.optimizer.param_groups[0]["lr"]
        if should_step:
            self.hparams.margin_scheduler.step()

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        if should_step:
            self.lr_scheduler.step()

    def epoch_meta(self, epoch):
        return {"epoch": epoch, "lr": getattr(self, "current_lr", self.hparams.lr),
                "margin": self.hparams.compute_cost.margin}


def verify(brain, hparams, out_dir):
    """Score the trial list with the best checkpoint (cosine, plus the YAML's score norms)."""
    brain.checkpointer.recover_if_possible(min_key="ErrorRate")
    model = brain.modules.model.eval()
    save = Path(hparams["save_folder"])
    return run_verification(
        lambda wavs, lens: model(wavs, lens), hparams["verification_file"],
        [save / "enrol.csv", save / "test.csv"], cohort=save / "train.csv",
        score_norms=hparams["score_norms"], top_k=hparams["cohort_top_k"], max_cohort=hparams["max_cohort"],
        device=brain.device, out_dir=out_dir, sample_rate=hparams["sample_rate"])


def main(argv):
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    overrides = phase_overrides(hparams_file, overrides)
    hparams, corpus = start_speaker_recipe(hparams_file, run_opts, overrides)
    # the paper draws one of noise, music, babble or reverb (TV is left out); babble is one speech track, not 4-7
    augmentation_csvs(hparams["wav_augment"], {hparams["add_noise"]: "noise", hparams["add_music"]: "music",
                                               hparams["add_babble"]: "speech", hparams["add_reverb"]: "rirs"},
                      corpus, hparams["save_folder"], white_noise=[hparams["add_noise"]])

    from speechbrain_dyncp.data.voxceleb import prepare_voxceleb

    run_on_main(prepare_voxceleb, kwargs={
        "data_folder": hparams["data_folder"], "save_folder": hparams["save_folder"],
        "verification_pairs_file": hparams["verification_file"], "splits": ["train", "dev", "test"],
        "split_ratio": hparams["split_ratio"], "split_speaker": hparams["split_speaker"], "seg_dur": hparams["seg_dur"], "skip_prep": hparams["skip_prep"]})
    train, valid, label_encoder = speaker_chunk_datasets(hparams)

    unknown = set(hparams["speeds"]) - set(hparams["speed_classes"])
    if unknown:
        raise ValueError(f"speeds {sorted(unknown)} are not in speed_classes {hparams['speed_classes']}")
    model = build_ssl_speaker_model(hparams)
    n_speakers = len(label_encoder)
    classifier = hparams["classifier"](out_neurons=n_speakers * len(hparams["speed_classes"]))
    for key, obj in ssl_model_recoverables(model, classifier, not hparams["freeze_ssl"]).items():
        hparams["checkpointer"].add_recoverable(key, obj)
    brain = LAPBrain(modules={"model": model, "classifier": classifier}, opt_class=hparams["opt_class"],
                     hparams=hparams, run_opts=run_opts, checkpointer=hparams["checkpointer"])
    brain.n_speakers = n_speakers
    world = int(os.environ.get("WORLD_SIZE", "1"))  # DDP: each rank sees 1/world of the data
    steps_per_epoch = max(1, len(train) // world // hparams["batch_size"] // brain.grad_accumulation_factor)
    brain.total_steps = steps_per_epoch * hparams["number_of_epochs"]
    hparams["margin_scheduler"].ramp_steps = steps_per_epoch * hparams["margin_ramp_epochs"]
    logger.info("%s phase, %s pooling: %d speakers (x%d speed classes), %d trainable parameters",
                hparams["phase"], hparams["pooling"], n_speakers, len(hparams["speed_classes"]),
                sum(p.numel() for p in model.parameters() if p.requires_grad))
    loader_opts = hparams["dataloader_options"]
    brain.fit(brain.hparams.epoch_counter, train, valid, train_loader_kwargs=loader_opts,
              valid_loader_kwargs=dict(loader_opts, shuffle=False, drop_last=False))
    if hparams["verify"] and if_main_process():
        verify(brain, hparams, Path(hparams["output_folder"]) / "verify")
    finish_ddp_group()


if __name__ == "__main__":
    main(sys.argv[1:])
