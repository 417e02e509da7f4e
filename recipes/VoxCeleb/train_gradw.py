#!/usr/bin/env python3
"""Train a speaker-verification-aware enhancer G with the Grad-W (or Equal-W) loss.

Usage::

    python recipes/VoxCeleb/train_gradw.py hparams/VoxCeleb/train_gradw.yaml [--weighting=grad|equal]
        [--g_type=unet|dyncp] [--g_init=<enhancer model folder>] [--key=value ...]

E is the frozen speaker model exported by ``recipes/VoxCeleb/train_speaker.py``
(``--speaker_model=<folder>``); G sees on-the-fly low-SNR MUSAN mixtures of
E's own training speakers (labels map to E's classes through E's label
encoder) and learns only from :class:`~speechbrain_dyncp.losses.gradw.GradWLoss`
on E's activations. Validation mixtures are seeded per utterance, and
validation reports the Grad-W and Equal-W losses and E's closed-set speaker-ID
error for enhanced *and* unenhanced input (the gradient-weighted loss runs
under SpeechBrain's ``no_grad`` validation). The last checkpoint's
G is what ``eval_snr.py`` evaluates. With ``--g_init=<folder>`` (e.g.
``speechbrain_dyncp/pretrained/dyncp_real_small``) G is that folder's enhancer,
weights loaded, causal and gated as shipped, and the run ends by writing the
fine-tuned G as a model folder ``<output_folder>/model`` (``load_enhancer`` /
``calibrate_quality.py --quality_model`` read it); the realised gate ratio is
logged, and ``lambda_dcp > 0`` adds the DynCP gate budget ``|ratio - phi_target|``.
``epoch_steps`` fixes the optimizer steps per epoch (random draws with replacement); ``clean_prob`` of the
training inputs stay clean (G learns to leave clean speech alone).

Authors
 * speechbrain-dyncp contributors
"""

import logging
import random
import sys
from pathlib import Path

import speechbrain as sb
import torch
from speechbrain.utils.distributed import run_on_main

from speechbrain_dyncp.brain import DynCPBrain, finish_ddp_group
from speechbrain_dyncp.data.audio import read_audio
from speechbrain_dyncp.data.lowsnr import MusanMixer, stable_seed
from speechbrain_dyncp.lobes.sv_features import EnhancedFeatures
from speechbrain_dyncp.losses.dyncp import gate_ratio_loss, realised_ratio
from speechbrain_dyncp.losses.gradw import GradWLoss
from speechbrain_dyncp.verification.embedding import build_enhancer, load_speaker_scorer
from speechbrain_dyncp.verification.training import (add_speaker_labels, load_enhancer_folder, musan_root,
                                                     start_speaker_recipe, write_enhancer_folder)

logger = logging.getLogger(__name__)


class GateTap(torch.nn.Module):
    """G unchanged, keeping its last output (a gated enhancer's ``gates`` / ``frame_mask``)."""

    def __init__(self, g):
        super().__init__()
        self.g, self.last = g, None

    def forward(self, wav, lengths=None):
        self.last = self.g(wav, lengths)
        return self.last

    def gates(self):
        out = self.last
        return (out.gates, out.frame_mask) if hasattr(out, "gates") else (None, None)


class GradWBrain(DynCPBrain):
    """G in front of a frozen E; the only objective is the (Grad-/Equal-W) activation loss."""

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        clean, lens = batch.clean_sig
        noisy, _ = batch.noisy_sig
        with torch.no_grad():
            ref = self.modules.features(clean)  # the target: same Fbank as every other path
        enh = self.modules.enhanced(noisy, lens)
        return ref, enh, noisy, lens

    def compute_objectives(self, predictions, batch, stage):
        ref, enh, noisy, lens = predictions
        spk = batch.spk_id_encoded.data.reshape(-1)
        loss = self.modules.loss(ref, enh, spk, lens)
        gates, fmask = self.modules.enhanced.enhancer.gates() if self.hparams.g_domain == "wave" else (None, None)
        if gates is not None:
            self.ratio_sums[stage] = [a + b for a, b in zip(self.ratio_sums.get(stage, [0.0, 0]),
                                                            [float(realised_ratio(gates.detach(), fmask)), 1])]
            if self.hparams.lambda_dcp > 0:
                loss = loss + self.hparams.lambda_dcp * gate_ratio_loss(gates, fmask, target=self.hparams.phi_target)
        if stage != sb.Stage.TRAIN:
            with torch.no_grad():
                noisy_feats = self.modules.features(noisy)
                e = self.modules.loss.speaker_model
                for tag, feats in (("enh", enh), ("noisy", noisy_feats)):
                    for name, fn in (("gradw", self.modules.monitor_grad), ("equalw", self.modules.monitor_equal)):
                        self.valid_sums[f"{name}_{tag}"] += float(fn(ref, feats, spk, lens)) * len(spk)
                    pred = e(feats, lens).argmax(-1)
                    self.valid_sums[f"spk_err_{tag}"] += float((pred != spk).sum())
                self.valid_sums["n"] += len(spk)
        return loss

    def init_optimizers(self):
        """One Adam over G only (E is frozen; one param group, so clipping covers it, P11), and the
        Grad-W schedule: linear warm-up to ``lr`` over ``warmup_epochs`` (step k: lr (k + 1) / warm), then constant."""
        self.optimizer = self.opt_class(self.hparams.enhancer.parameters())
        self.optimizers_dict = {"opt_class": self.optimizer}
        warm = max(1, int(self.hparams.warmup_epochs * self.hparams.steps_per_epoch))
        self.lr_scheduler = torch.optim.lr_scheduler.LinearLR(self.optimizer, start_factor=1 / warm,
                                                              total_iters=warm - 1)
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("optimizer", self.optimizer)
            self.checkpointer.add_recoverable("lr_scheduler", self.lr_scheduler)

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        if should_step:
            self.lr_scheduler.step()

    def on_stage_start(self, stage, epoch=None):
        self.ratio_sums = getattr(self, "ratio_sums", {})
        self.ratio_sums[stage] = [0.0, 0]
        if stage != sb.Stage.TRAIN:
            self.valid_sums = dict.fromkeys(
                ["n"] + [f"{m}_{t}" for m in ("gradw", "equalw", "spk_err") for t in ("enh", "noisy")], 0.0)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        r_sum, r_n = self.ratio_sums[stage]
        ratio = {"gate_ratio": r_sum / r_n} if r_n else {}
        if stage == sb.Stage.TRAIN:
            self.train_stats = {"loss": stage_loss, **ratio}
            return
        n = max(self.valid_sums.pop("n"), 1.0)
        stats = {"loss": stage_loss, **ratio, **{k: v / n for k, v in self.valid_sums.items()}}
        if stage == sb.Stage.VALID:
            lr = self.optimizer.param_groups[0]["lr"]
            self.hparams.train_logger.log_stats({"epoch": epoch, "lr": lr}, self.train_stats, stats)
            # Keep the latest G: no model selection on the validation mixtures.
            self.checkpointer.save_and_keep_only(meta=stats, num_to_keep=1)


def dataio_prep(hparams, label_encoder, mixer):
    """Train: random crops, fresh mixture per draw. Valid: fixed crops, mixtures seeded by utterance id."""
    sr = hparams["sample_rate"]
    seg = int(hparams["sentence_len"] * sr)
    save = Path(hparams["save_folder"])
    known = set(label_encoder.lab2ind)

    def load(split):
        data = sb.dataio.dataset.DynamicItemDataset.from_csv(str(save / f"{split}.csv"))
        kept = data.filtered_sorted(key_test={"spk_id": lambda s: s in known})
        if len(kept) < len(data):
            logger.warning("%s: dropped %d rows of speakers E was not trained on", split, len(data) - len(kept))
        if len(kept) == 0:
            raise ValueError(f"No {split} rows of E's speakers in {save / f'{split}.csv'}: is E trained on this data?")
        return kept

    train, valid = load("train"), load("dev")
    if hparams["valid_max_items"]:  # a fixed subset (every k-th row): bounded validation time
        ids = sorted(valid.data_ids)
        valid = valid.filtered_sorted(key_test={"id": set(ids[::max(1, len(ids) // hparams["valid_max_items"])]).__contains__})

    @sb.utils.data_pipeline.takes("wav", "duration")
    @sb.utils.data_pipeline.provides("clean_sig", "noisy_sig")
    def train_audio(wav, duration):
        n_file = int(float(duration) * sr)
        start = random.randint(0, n_file - seg) if n_file > seg else 0
        clean = read_audio(wav, sample_rate=sr, start=start, stop=start + seg if n_file > seg else None)
        yield clean
        yield clean if random.random() < hparams["clean_prob"] else mixer.mix_train(clean)[0]

    @sb.utils.data_pipeline.takes("id", "wav", "start", "stop")
    @sb.utils.data_pipeline.provides("clean_sig", "noisy_sig")
    def valid_audio(utt_id, wav, start, stop):
        clean = read_audio(wav, sample_rate=sr, start=int(start), stop=int(stop))
        yield clean
        yield mixer.mix_train(clean, torch.Generator().manual_seed(stable_seed(hparams["seed"], utt_id)))[0]

    train.add_dynamic_item(train_audio)
    valid.add_dynamic_item(valid_audio)
    add_speaker_labels([train, valid], label_encoder, ["clean_sig", "noisy_sig"])
    return train, valid


def main(argv):
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    hparams, corpus = start_speaker_recipe(hparams_file, run_opts, overrides)
    if hparams["weighting"] not in ("grad", "equal"):
        raise ValueError(f"weighting must be 'grad' or 'equal', got {hparams['weighting']!r}")
    data_folder, trials, musan = hparams["data_folder"], hparams["verification_file"], musan_root(hparams, corpus)

    scorer, features, label_encoder = load_speaker_scorer(hparams["speaker_model"])
    losses = {w: GradWLoss(scorer, layer=hparams["gradw_layer"], weighting=w, scale=hparams["score_scale"],
                           temperature=hparams["gradw_temperature"]) for w in ("grad", "equal")}
    if hparams["g_init"]:
        g, domain = load_enhancer_folder(hparams["g_init"]), "wave"
    else:
        g, domain = build_enhancer(hparams, n_mels=features.compute_fbanks.n_mels)
    hparams["g_domain"] = domain
    hparams["enhancer"] = g
    hparams["checkpointer"].add_recoverable("enhancer", g)

    from speechbrain_dyncp.data.voxceleb import prepare_voxceleb

    run_on_main(prepare_voxceleb, kwargs={
        "data_folder": data_folder, "save_folder": hparams["save_folder"], "verification_pairs_file": trials,
        "splits": ["train", "dev"], "split_speaker": False, "seg_dur": hparams["seg_dur"],
        "skip_prep": hparams["skip_prep"]})
    mixer = MusanMixer(musan, pool=hparams["musan_pool"], noise_snr=hparams["noise_snr"], music_snr=hparams["music_snr"],
                       babble_snrs=hparams["babble_snrs"], babble_talkers=hparams["babble_talkers"],
                       sample_rate=hparams["sample_rate"])
    train, valid = dataio_prep(hparams, label_encoder, mixer)
    hparams["steps_per_epoch"] = hparams["epoch_steps"] or -(-len(train) // hparams["batch_size"])
    loader_opts = dict(hparams["dataloader_options"])
    if hparams["epoch_steps"]:
        loader_opts.pop("shuffle", None)
        loader_opts["sampler"] = sb.dataio.sampler.ReproducibleRandomSampler(
            train, seed=hparams["seed"], replacement=True, num_samples=hparams["epoch_steps"] * hparams["batch_size"])

    modules = {"features": features, "enhanced": EnhancedFeatures(features, GateTap(g) if domain == "wave" else g, domain), "loss": losses[hparams["weighting"]],
               "monitor_grad": losses["grad"], "monitor_equal": losses["equal"]}
    brain = GradWBrain(modules=modules, opt_class=hparams["opt_class"], hparams=hparams, run_opts=run_opts,
                       checkpointer=hparams["checkpointer"])
    brain.fit(brain.hparams.epoch_counter, train, valid, train_loader_kwargs=loader_opts,
              valid_loader_kwargs=hparams["valid_dataloader_options"])
    if hparams["g_init"]:
        out = write_enhancer_folder(g, hparams["g_init"], Path(hparams["output_folder"]) / "model",
                                    note=f"G fine-tuned by train_gradw.py ({hparams['weighting'].capitalize()}-W) from {hparams['g_init']}")
        logger.info("Fine-tuned G written to %s", out)
    finish_ddp_group()


if __name__ == "__main__":
    main(sys.argv[1:])
