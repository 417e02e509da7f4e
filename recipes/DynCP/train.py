#!/usr/bin/env python3
"""Recipe: train (and test) the DynCP speech enhancer on VoiceBank+DEMAND-style data.

The loss is ``L_SE + lambda_dcp * L_DCP`` (compressed spectral loss on the STFT of
the time-domain output + gate-ratio loss toward ``phi_target``). Validation logs
SI-SDR(i), the *realised* active-channel ratio and, where installed, PESQ-WB and
STOI; the checkpoint kept as best maximises validation SI-SDR among epochs whose
realised ratio is within ``ratio_tolerance`` of the target (see ``_selection``).

After fitting, the TEST stage (this script's evaluation stage; ``--test_only``
re-runs it on the best checkpoint) writes into ``<output_folder>/test/``:
``per_utterance.csv`` (noisy and enhanced SI-SDR, PESQ, STOI, SI-SDRi, realised
ratio, MACs/frame, MACs saved), ``summary.json`` (means) and ``enhanced/*.wav``.

Usage
-----
Embedded synthetic corpus (built once into ``corpus_folder``; no download)::

    python recipes/DynCP/train.py hparams/DynCP/train.yaml --phi_target=0.25

Dense (ungated) baseline with the same script::

    python recipes/DynCP/train.py hparams/DynCP/train.yaml --gated=False --lambda_dcp=0

Real VoiceBank+DEMAND (16 kHz or resampled on read)::

    python recipes/DynCP/train.py hparams/DynCP/train.yaml --data_folder=/data/VoiceBank

Authors
 * speechbrain-dyncp contributors
"""

import collections
import csv
import json
import logging
import math
import random
import sys
from pathlib import Path

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import if_main_process, run_on_main

import speechbrain_dyncp.brain
from speechbrain_dyncp.brain import ddp_mean, finish_ddp_group, start_ddp_group, unwrap
from speechbrain_dyncp.data.audio import read_audio, write_audio
from speechbrain_dyncp.data.labels import item_frame_labels
from speechbrain_dyncp.data.speed import perturb_speed, perturb_speed_labels, speed_rates
from speechbrain_dyncp.data.shards import loader_kwargs_for, make_dataset, write_shards
from speechbrain_dyncp.export import load_weights
from speechbrain_dyncp.losses.dnsmos import DNSMOSP835, dnsmos_loss
from speechbrain_dyncp.losses.dyncp import realised_ratio
from speechbrain_dyncp.losses.residual_noise import residual_noise_loss
from speechbrain_dyncp.losses.waveform import waveform_loss
from speechbrain_dyncp.metrics.enhancement import (
    batch_metric,
    pesq_available,
    pesq_wb,
    si_sdr,
    stoi,
    stoi_available,
)

logger = logging.getLogger(__name__)
REAL_SPEECH = "real_speech"  # data_folder value: the real corpus of data/real_speech.py


class DynCPBrain(speechbrain_dyncp.brain.DynCPBrain):
    """Trains ``modules.enhancer`` (a DynCPEnhancer) with ``hparams.compute_cost`` (DynCPLoss)."""

    def compute_forward(self, batch, stage):
        """Enhance the noisy batch: EnhancerOutput(wav, mask, gates, frame_mask)."""
        batch = batch.to(self.device)
        noisy, lens = batch.noisy_sig
        return self.modules.enhancer(noisy, lens)

    def compute_objectives(self, out, batch, stage):
        """DynCP loss; accumulates logging statistics (and test rows)."""
        clean, lens = batch.clean_sig
        speech = batch.vad.data if self.speech_budget else None
        terms = self.hparams.compute_cost(out.wav, clean, out.gates, lens, out.frame_mask, speech=speech)
        n = clean.shape[0]
        self.sums["se"] += float(terms.se.detach()) * n
        self.sums["ratio"] += float(terms.ratio) * n
        if terms.ratio_speech is not None:
            self.sums["ratio_speech"] += float(terms.ratio_speech) * n
            self.sums["ratio_pause"] += float(terms.ratio_pause) * n
        self.sums["n"] += n
        if stage != sb.Stage.TRAIN:
            self._score(out, batch, stage)
        # Dense baseline: the gates are constant ones, so L_DCP is a constant; drop it.
        loss = terms.loss if self.hparams.gated else terms.se
        weight = getattr(self.hparams, "lambda_si_sdr", 0.0)
        if weight:  # waveform term: the spectral loss alone leaves phase/scale errors that cost SI-SDR
            neg_sdr = waveform_loss(out.wav, clean, lens, max_db=self.hparams.si_sdr_max_db,
                                    noisy=batch.noisy_sig.data,
                                    low_snr_db=getattr(self.hparams, "si_sdr_low_snr_db", 5.0),
                                    low_snr_boost=getattr(self.hparams, "si_sdr_low_snr_boost", 0.0))
            self.sums["neg_si_sdr"] += float(neg_sdr.detach()) * n
            loss = loss + weight * neg_sdr
        weight = getattr(self.hparams, "lambda_residual_noise", 0.0)
        if weight:  # noise left in pauses: what DNSMOS's background score hears (losses/residual_noise.py)
            enhancer = unwrap(self.modules.enhancer)
            residual_db = residual_noise_loss(out.mask, enhancer.spectrum(batch.noisy_sig.data),
                                              enhancer.spectrum(clean), out.frame_mask,
                                              max_atten_db=self.hparams.residual_noise_max_db)
            self.sums["residual_noise_db"] += float(residual_db.detach()) * n
            loss = loss + weight * residual_db
        weight = getattr(self.hparams, "lambda_dnsmos", 0.0)
        if weight and stage == sb.Stage.TRAIN:  # perceptual term: what DNSMOS hears (losses/dnsmos.py)
            neg_ovrl = dnsmos_loss(self.dnsmos, out.wav, lens, max_items=self.hparams.dnsmos_items)
            self.sums["dnsmos_ovrl"] += -float(neg_ovrl.detach()) * n
            loss = loss + weight * neg_ovrl
        if self.gate_probes is not None and stage != sb.Stage.TEST:
            joint = self.gate_probes(out.gates, out.frame_mask, batch.vad.data, batch.f0.data)
            for key, value in joint.terms.items():
                self.sums[f"probe_{key}"] += value * n
            loss = loss + joint.loss
        return loss

    @property
    def dnsmos(self):
        """The frozen DNSMOS P.835 network of the perceptual term, built on first use."""
        if getattr(self, "_dnsmos", None) is None:
            self._dnsmos = DNSMOSP835().to(self.device)
        return self._dnsmos

    @property
    def speech_budget(self):
        """True when the compute budget differs on speech and pause frames (``phi_pause``)."""
        return bool(self.hparams.gated) and getattr(self.hparams, "phi_pause", None) is not None

    @property
    def gate_probes(self):
        """The jointly trained gate read-outs (``losses/gate_probes.py``), or None."""
        return getattr(self.modules, "gate_probes", None)

    def _score(self, out, batch, stage):
        """SI-SDR (+ PESQ/STOI where enabled) of enhanced and noisy audio; test rows."""
        clean, lens = batch.clean_sig
        noisy, _ = batch.noisy_sig
        est = out.wav.detach().float()
        sdr_est, sdr_noisy = si_sdr(est, clean, lens), si_sdr(noisy, clean, lens)
        self.scores["si_sdr"] += sdr_est.tolist()
        self.scores["si_sdri"] += (sdr_est - sdr_noisy).tolist()
        quality = stage == sb.Stage.TEST or self.hparams.valid_quality_metrics
        if quality and self.use_pesq:
            self.scores["pesq"] += batch_metric(pesq_wb, est.cpu(), clean.cpu(), lens).tolist()
        if quality and self.use_stoi:
            self.scores["stoi"] += batch_metric(stoi, est.cpu(), clean.cpu(), lens).tolist()
        if stage == sb.Stage.TEST:
            self._test_rows(batch, out, est, sdr_est, sdr_noisy)

    def _test_rows(self, batch, out, est, sdr_est, sdr_noisy):
        """One CSV row per utterance, and the enhanced wavs."""
        clean, lens = batch.clean_sig
        noisy, _ = batch.noisy_sig
        n_samples = torch.round(lens * clean.shape[1]).long().tolist()
        for i, uid in enumerate(batch.id):
            k = n_samples[i]
            row = {
                "ID": uid,
                "noise": batch.noise[i],
                "snr": batch.snr[i],
                "duration": k / self.hparams.sample_rate,
                "si_sdr_noisy": float(sdr_noisy[i]),
                "si_sdr_enhanced": float(sdr_est[i]),
                "si_sdri": float(sdr_est[i] - sdr_noisy[i]),
                "ratio": float(realised_ratio(out.gates[i : i + 1], out.frame_mask[i : i + 1])),
            }
            if self.use_pesq:
                row["pesq_noisy"] = pesq_wb(noisy[i, :k].cpu(), clean[i, :k].cpu())
                row["pesq_enhanced"] = self.scores["pesq"][len(self.rows)]
            if self.use_stoi:
                row["stoi_noisy"] = stoi(noisy[i, :k].cpu(), clean[i, :k].cpu())
                row["stoi_enhanced"] = self.scores["stoi"][len(self.rows)]
            row.update(self._macs(out, i))
            self.rows.append(row)
            if self.hparams.save_enhanced and if_main_process():  # every DDP rank has the whole test set
                write_audio(self.enhanced_dir / f"{uid}.wav", est[i, :k], self.hparams.sample_rate, overwrite=True)

    def _macs(self, out, i):
        """Effective and dense MACs/frame of item ``i`` (gates' own cost included)."""
        from speechbrain_dyncp.efficiency import macs_per_frame

        macs = macs_per_frame(unwrap(self.modules.enhancer), out.gates[i : i + 1], out.frame_mask[i : i + 1])
        return {
            "macs_per_frame": macs["effective"],
            "macs_dense": macs["dense"],
            "macs_saved_pct": macs["saved_pct"],
        }

    def on_stage_start(self, stage, epoch=None):
        """Reset the statistics of this stage."""
        self.sums = collections.defaultdict(float)
        self.scores = {"si_sdr": [], "si_sdri": [], "pesq": [], "stoi": []}
        self.rows = []
        self.use_pesq = self.hparams.use_pesq and pesq_available()
        self.use_stoi = self.hparams.use_stoi and stoi_available()
        if stage == sb.Stage.TEST:
            self.enhanced_dir = Path(self.hparams.output_folder) / "test" / "enhanced"

    def _stage_stats(self, stage, loss):
        n = max(self.sums["n"], 1)
        # train batches differ per DDP rank: average the sums over ranks
        stats = {"loss": loss}
        for key in sorted(k for k in self.sums if k != "n"):
            stats[key] = ddp_mean(self.sums[key] / n, n)
        if stage != sb.Stage.TRAIN:
            for key, values in self.scores.items():
                finite = [v for v in values if math.isfinite(v)]
                if finite:
                    stats[key] = sum(finite) / len(finite)
        return stats

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, step the scheduler, checkpoint (VALID) or write the test report (TEST)."""
        stats = self._stage_stats(stage, stage_loss)
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
        elif stage == sb.Stage.VALID:
            old_lr, new_lr = self.hparams.lr_annealing(stats["se"])
            sb.nnet.schedulers.update_learning_rate(self.optimizer, new_lr)
            stats["select"] = self._selection(stats)
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": old_lr}, train_stats=self.train_stats, valid_stats=stats
            )
            self.checkpointer.save_and_keep_only(
                meta={"select": stats["select"], "si_sdr": stats["si_sdr"], "ratio": stats["ratio"]},
                max_keys=["select"],
                num_to_keep=self.hparams.ckpt_num_to_keep,
            )
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current}, test_stats=stats
            )
            self._write_report()

    def _selection(self, stats):
        """Validation quality, minus 1 dB per ratio point beyond ``ratio_tolerance`` of the target.

        Quality is the mean SI-SDR (``select_metric: si_sdr``) or the spectral loss
        in dB, ``-10 log10(L_SE)`` (``se``). The real corpus' valid set holds clean
        items whose SI-SDR runs to 30-100 dB and swamps the mean, so its runs select
        on ``se``. Without the ratio term, the best checkpoint of a gated run is
        often an early epoch whose gates have not yet reached the budget.
        """
        metric = getattr(self.hparams, "select_metric", "si_sdr")
        quality = stats["si_sdr"] if metric == "si_sdr" else -10.0 * math.log10(max(stats["se"], 1e-12))
        if not self.hparams.gated:
            return quality
        # with a speech/pause budget, phi_target is the speech frames' share
        ratio = stats.get("ratio_speech", stats["ratio"]) if self.speech_budget else stats["ratio"]
        excess = abs(ratio - self.hparams.phi_target) - self.hparams.ratio_tolerance
        return quality - 100.0 * max(0.0, excess)

    def _write_report(self):
        """``test/per_utterance.csv`` and ``test/summary.json`` (means over utterances)."""
        folder = Path(self.hparams.output_folder) / "test"
        folder.mkdir(parents=True, exist_ok=True)
        if not self.rows or not if_main_process():
            return
        with open(folder / "per_utterance.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)
        summary = {"n_utterances": len(self.rows), "gated": bool(self.hparams.gated)}
        summary["phi_target"] = self.hparams.phi_target if self.hparams.gated else 1.0
        for key, value in self.rows[0].items():
            if isinstance(value, float):
                finite = [r[key] for r in self.rows if math.isfinite(r[key])]
                summary[key] = sum(finite) / len(finite) if finite else math.nan
        (folder / "summary.json").write_text(json.dumps(summary, indent=2))
        logger.info("Test summary: %s", json.dumps(summary))


def _read_noise_list(csv_path):
    """Wav paths of a SpeechBrain extended CSV (``ID,duration,wav,wav_format,wav_opts``)."""
    with open(csv_path, newline="") as f:
        paths = [row["wav"] for row in csv.DictReader(f)]
    if not paths:
        raise ValueError(f"No rows in noise/RIR CSV {csv_path}")
    return paths


def _random_excerpt(path, n_samples, sample_rate):
    """A random ``n_samples`` excerpt of a file (looped if shorter)."""
    wav = read_audio(path, sample_rate)
    if wav.numel() < n_samples:
        wav = wav.repeat(n_samples // wav.numel() + 1)
    start = random.randint(0, wav.numel() - n_samples)
    return wav[start : start + n_samples]


def _remix(noisy, clean, noises, rirs, hparams):
    """The VoiceBank/embedded re-mixing: optional RIR on the clean source, then noise at a random SNR."""
    sr = hparams["sample_rate"]
    if rirs and random.random() < hparams["reverb_prob"]:
        from speechbrain.processing.signal_processing import reverberate

        rir = read_audio(random.choice(rirs), sr)
        clean = reverberate(clean[None], rir[None], rescale_amp="avg")[0]
        noisy = None  # the file's noise no longer matches: re-mix below
    if noises and (noisy is None or random.random() < hparams["mix_prob"]):
        from speechbrain_dyncp.data.mixing import mix_at_snr

        noise = _random_excerpt(random.choice(noises), clean.numel(), sr)
        snr = random.uniform(hparams["snr_low"], hparams["snr_high"])
        noisy = mix_at_snr(clean, noise, snr)
    if noisy is None:  # reverberated without a noise list: the clean file's noise is lost
        noisy = clean.clone()
    return noisy, clean


def dataio_prep(hparams):
    """Train/valid/test ``DynamicItemDataset``s giving ``noisy_sig`` and ``clean_sig``.

    Training items are random crops of ``crop_seconds`` (one offset for both
    signals). With ``speed_perturb``, a ``speed_prob`` share of training items is
    first played at a random speed from ``speed_factors`` (both signals and the
    frame labels; ``data/speed.py``). Where ``noise_csv`` is given, a
    ``mix_prob`` share of training items is re-mixed on the fly (``mix_at_snr``
    keeps the clean level, so the target stays the clean signal); where
    ``rir_csv`` is given, a ``reverb_prob`` share of clean sources is first
    convolved with a random RIR (aligned to its direct path; the reverberant
    clean is then the target: denoising, not dereverberation).

    With ``data_folder: real_speech`` every training item is mixed afresh by
    :class:`~speechbrain_dyncp.data.real_mixing.RealMixer` (noise-only pauses
    of up to ``pause_seconds``, a training room with ``reverb_prob``, a training
    noise segment at an SNR in ``[snr_low, snr_high]`` or, for a ``1 - mix_prob``
    share, no noise at all, and a level in ``[level_db_low, level_db_high]``).
    """
    sr, hop = hparams["sample_rate"], hparams["hop_length"]
    crop = int(hparams["crop_seconds"] * sr)
    # Frame labels: for the jointly trained gate read-outs (losses/gate_probes.py)
    # and for the speech/pause compute budget (phi_pause).
    with_labels = bool(hparams.get("joint_probes")) or hparams.get("phi_pause") is not None
    speeds = hparams.get("speed_factors") if hparams.get("speed_perturb") else None
    for factor in speeds or []:
        speed_rates(factor)  # a bad factor fails here, not inside the data loader
    real = str(hparams["data_folder"]) == REAL_SPEECH
    noises = _read_noise_list(hparams["noise_csv"]) if hparams.get("noise_csv") and not real else None
    rirs = _read_noise_list(hparams["rir_csv"]) if hparams.get("rir_csv") and not real else None
    mixer = None
    if real:  # dynamic mixing of real noises and rooms (data/real_mixing.py)
        from speechbrain_dyncp.data.real_mixing import RealMixer

        mixer = RealMixer(hparams["noise_csv"], hparams["rir_csv"], (hparams["snr_low"], hparams["snr_high"]),
                          clean_prob=1.0 - hparams["mix_prob"], reverb_prob=hparams["reverb_prob"],
                          pause_range=(0.0, hparams["pause_seconds"]),
                          level_range=(hparams["level_db_low"], hparams["level_db_high"]),
                          noise_mix_prob=hparams.get("noise_mix_prob", 0.0),
                          noise_eq_prob=hparams.get("noise_eq_prob", 0.0))

    def read_pair(noisy_wav, clean_wav):
        if noisy_wav == clean_wav:  # a clean-only manifest (the real corpus, mixed on the fly): one read
            clean = read_audio(clean_wav, sr)
            return clean, clean
        noisy, clean = read_audio(noisy_wav, sr), read_audio(clean_wav, sr)
        if noisy.numel() != clean.numel():
            raise ValueError(f"Length mismatch: {noisy_wav} ({noisy.numel()}) vs {clean_wav} ({clean.numel()})")
        return noisy, clean

    def labels(row_id, labels_path, clean_wav, n_samples):
        vad, f0 = item_frame_labels(labels_path, clean_wav, 1 + n_samples // hop, item=row_id)
        return torch.from_numpy(vad).float(), torch.from_numpy(f0)

    @sb.utils.data_pipeline.takes("id", "noisy_wav", "clean_wav", "labels")
    @sb.utils.data_pipeline.provides("noisy_sig", "clean_sig", "vad", "f0")
    def train_pipeline(row_id, noisy_wav, clean_wav, labels_path):
        noisy, clean = read_pair(noisy_wav, clean_wav)
        vad_f0 = labels(row_id, labels_path, clean_wav, clean.numel()) if with_labels else None
        if speeds and random.random() < hparams["speed_prob"]:
            factor = random.choice(speeds)
            same = noisy is clean  # one signal read once: perturb it once
            clean = perturb_speed(clean, factor)
            noisy = clean if same else perturb_speed(noisy, factor)
            if with_labels:
                vad_f0 = perturb_speed_labels(*vad_f0, factor, clean.numel(), hop)
        if crop and clean.numel() > crop:
            # crops start on the hop grid, so crop frame t is utterance frame first + t
            first = random.randint(0, (clean.numel() - crop) // hop)
            start = first * hop
            noisy, clean = noisy[start : start + crop], clean[start : start + crop]
            if with_labels:
                vad_f0 = tuple(lab[first : first + 1 + crop // hop] for lab in vad_f0)
        if mixer is not None:
            item = mixer(clean, *(vad_f0 or (None, None)))
            noisy, clean = item["noisy"], item["clean"]
            vad_f0 = (item["vad"], item["f0"]) if with_labels else None
        else:
            noisy, clean = _remix(noisy, clean, noises, rirs, hparams)
        yield noisy
        yield clean
        if with_labels:
            yield vad_f0[0]
            yield vad_f0[1]

    @sb.utils.data_pipeline.takes("id", "noisy_wav", "clean_wav", "labels")
    @sb.utils.data_pipeline.provides("noisy_sig", "clean_sig", "vad", "f0")
    def eval_pipeline(row_id, noisy_wav, clean_wav, labels_path):
        noisy, clean = read_pair(noisy_wav, clean_wav)
        yield noisy
        yield clean
        if with_labels:
            yield from labels(row_id, labels_path, clean_wav, clean.numel())

    datasets = {}
    keys = ["id", "noisy_sig", "clean_sig", "noise", "snr"] + (["vad", "f0"] if with_labels else [])
    for split in ("train", "valid", "test"):
        pipeline = train_pipeline if split == "train" else eval_pipeline
        ds = make_dataset(
            hparams.get("data_format", "csv"), csv_path=hparams[f"{split}_annotation"],
            shard_dir=Path(hparams.get("shard_folder") or ".") / split, dynamic_items=[pipeline], output_keys=keys,
            replacements={"data_root": hparams["data_folder"]}, shuffle=split == "train", seed=hparams.get("seed", 0),
        )
        if split != "train" and isinstance(ds, sb.dataio.dataset.DynamicItemDataset):
            ds = ds.filtered_sorted(sort_key="duration")
        datasets[split] = ds
    return datasets


def prepare_data(hparams):
    """Build the embedded corpus (``data_folder: embedded``) or the real-speech corpus
    (``data_folder: real_speech``, from ``shared_data``) if asked, then the manifests."""
    from speechbrain_dyncp.data.voicebank import prepare_voicebank

    if str(hparams["data_folder"]) == REAL_SPEECH:
        from speechbrain_dyncp.data.real_speech import prepare_real_speech

        run_on_main(prepare_real_speech, args=[hparams["shared_data"], hparams["real_corpus_folder"]])
        outputs = prepare_real_speech(hparams["shared_data"], hparams["real_corpus_folder"], skip_prep=True)
        for split in ("train", "valid", "test"):
            hparams[f"{split}_annotation"] = str(outputs[split])
        hparams["noise_csv"] = hparams.get("noise_csv") or str(outputs["noise_train"])
        hparams["rir_csv"] = hparams.get("rir_csv") or str(outputs["rir_train"])
        return

    if str(hparams["data_folder"]) == "embedded":
        from speechbrain_dyncp.data.synth import build_corpus

        root = Path(hparams["corpus_folder"])
        run_on_main(
            build_corpus,
            kwargs={"root": root, "preset": hparams["corpus_preset"], "seed": hparams["corpus_seed"]},
        )
        hparams["data_folder"] = str(root / "voicebank")
    run_on_main(
        prepare_voicebank, kwargs={"data_folder": hparams["data_folder"], "save_folder": hparams["save_folder"]}
    )
    if hparams.get("data_format", "csv") == "shards":
        for split in ("train", "valid", "test"):
            run_on_main(write_shards, args=[hparams[f"{split}_annotation"], Path(hparams["shard_folder"]) / split],
                        kwargs={"replacements": {"data_root": hparams["data_folder"]}})


def main(argv):
    """Parse, prepare, fit, then run the TEST stage on the best checkpoint."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    start_ddp_group(run_opts)
    with open(hparams_file) as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"], hyperparams_to_save=hparams_file, overrides=overrides
    )
    prepare_data(hparams)
    datasets = dataio_prep(hparams)
    if hparams.get("init_enhancer_from"):  # the checkpointer's recovery (in fit) overrides it when resuming
        # export.load_weights: a missing, damaged or unsafe file is a one-line error naming it
        weights = load_weights(Path(hparams["init_enhancer_from"]) / "enhancer.ckpt")
        if hparams["modules"]["enhancer"].pause_floor is None:
            # a shipped folder's pause floor is an inference setting (a copy of its VAD probe) that this
            # run's enhancer does not have: start from the network alone; set_pause_floor.py re-applies it
            floor = [k for k in weights if k.startswith("pause_floor.")]
            if floor:
                logger.info("init_enhancer_from: %s's pause floor left out (re-apply with set_pause_floor.py)",
                            hparams["init_enhancer_from"])
                weights = {k: v for k, v in weights.items() if k not in floor}
        hparams["modules"]["enhancer"].load_state_dict(weights)
    if hparams.get("joint_probes"):  # trained (and checkpointed) with the enhancer
        hparams["modules"]["gate_probes"] = hparams["gate_probes"]
        hparams["checkpointer"].add_recoverable("gate_probes", hparams["gate_probes"])

    brain = DynCPBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=loader_kwargs_for(datasets["train"], hparams["train_dataloader_opts"]),
        valid_loader_kwargs=loader_kwargs_for(datasets["valid"], hparams["valid_dataloader_opts"]),
    )
    brain.evaluate(datasets["test"], max_key="select",
                   test_loader_kwargs=loader_kwargs_for(datasets["test"], hparams["test_dataloader_opts"]))
    finish_ddp_group()
    return brain


if __name__ == "__main__":
    main(sys.argv[1:])
