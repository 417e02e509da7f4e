#!/usr/bin/env python3
"""Match Resemblyzer's GE2E encoder to an enhancement front-end's output by distillation.

Usage::

    python recipes/VoxCeleb/train_ge2e_student.py hparams/VoxCeleb/train_ge2e_student.yaml [--key=value ...]

Each training crop (VoxCeleb layout, ``prepare_voxceleb`` manifests, as ``train_speaker.py``)
gets a real noise at ``noise_snr_low..noise_snr_high`` dB (SpeechBrain's ``AddNoise``;
``clean_share`` of the crops stay clean) and passes through the frozen front-end; the student
GE2E embeds that output, the frozen teacher (the same published weights) embeds the clean
crop, and the loss is ``1 - cos``. Distillation instead of a speaker classifier: the student
keeps the teacher's embedding space, learnt on thousands of speakers, and only learns what the
front-end's output sounds like (an AAM head on a few hundred speakers would pull the space
towards them; docs/speaker_real.md, "member 0 fine-tuned"). The ECAPA counterpart is
``train_speaker.py --front_end``.

Writes ``<output_folder>/ge2e_student.pt`` (the last epoch, in Resemblyzer's file layout), which
``make_ensemble.py --ge2e_file`` fuses into a speaker folder.

Authors
 * speechbrain-dyncp contributors
"""

import logging
import sys
from pathlib import Path

import speechbrain as sb
import torch

from speechbrain_dyncp.brain import DynCPBrain, finish_ddp_group, unwrap
from speechbrain_dyncp.verification.training import (augmentation_csvs, prepare_train_dev_manifests, speaker_chunk_datasets,
                                                      start_speaker_recipe)

logger = logging.getLogger(__name__)


class GE2EStudentBrain(DynCPBrain):
    """Student GE2E on ``front_end(noisy)`` against the frozen teacher on the clean crop.

    ``front_end`` and ``teacher`` are set after construction (frozen, not checkpointed).
    """

    front_end = None
    teacher = None

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        clean, lens = batch.sig
        noisy, _ = self.hparams.wav_augment(clean, lens)  # same length: concat_original is off
        keep = torch.rand(clean.shape[0], device=clean.device) < self.hparams.clean_share
        noisy = torch.where(keep[:, None], clean, noisy)
        with torch.no_grad():
            enhanced = self.front_end(noisy, lens).wav
            target = self.teacher(clean, lens)
        return self.modules.student(enhanced, lens), target

    def compute_objectives(self, predictions, batch, stage):
        student, target = predictions  # both unit length
        return (1 - (student * target).sum(-1)).mean()

    def on_stage_end(self, stage, stage_loss, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
        elif stage == sb.Stage.VALID:  # noisy crops drawn afresh: the valid loss is a noisy estimate
            self.hparams.train_logger.log_stats({"epoch": epoch}, {"loss": self.train_loss}, {"loss": stage_loss})
            self.checkpointer.save_and_keep_only(meta={"loss": stage_loss}, num_to_keep=1)


def main(argv):
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    hparams, corpus = start_speaker_recipe(hparams_file, run_opts, overrides)
    augmentation_csvs(hparams["wav_augment"], {hparams["add_noise"]: "noise"}, corpus, hparams["save_folder"],
                      white_noise=[hparams["add_noise"]])
    from speechbrain_dyncp.inference.loading import load_enhancer
    from speechbrain_dyncp.inference.speaker_folders import published_ge2e

    prepare_train_dev_manifests(hparams)
    train, valid, _ = speaker_chunk_datasets(hparams)
    teacher = published_ge2e(hparams["teacher_file"])
    hparams["student"].load_state_dict(teacher.state_dict())  # starts as the teacher; a resumed checkpoint wins in fit
    brain = GE2EStudentBrain(modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
                             run_opts=run_opts, checkpointer=hparams["checkpointer"])
    brain.teacher = teacher.eval().to(brain.device)
    brain.teacher.requires_grad_(False)
    brain.front_end = load_enhancer(hparams["front_end"]).mods.enhancer.eval().to(brain.device)
    brain.front_end.requires_grad_(False)
    loader_opts = hparams["dataloader_options"]
    brain.fit(hparams["epoch_counter"], train, valid, train_loader_kwargs=loader_opts,
              valid_loader_kwargs=dict(loader_opts, shuffle=False))
    if sb.utils.distributed.if_main_process():
        out = Path(hparams["output_folder"]) / "ge2e_student.pt"
        torch.save({"model_state": unwrap(brain.modules.student).state_dict()}, out)
        logger.info("Wrote %s", out)
    finish_ddp_group()


if __name__ == "__main__":
    main(sys.argv[1:])
