#!/usr/bin/env python3
"""Tiny seeded recipe exercising DynCPBrain: DDP, resume, determinism, shards.

Runs like every recipe of the project::

    python tests/recipes/assets/tiny_recipe/train.py tests/recipes/assets/tiny_recipe/train.yaml \\
        --data_folder=/tmp/tiny --output_folder=/tmp/tiny_out --device=cpu
    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/recipes/assets/tiny_recipe/train.py \\
        tests/recipes/assets/tiny_recipe/train.yaml ... --distributed_backend=gloo --device=cpu

Every step's loss (averaged over ranks) is appended to ``step_losses.txt``.

Authors
 * speechbrain-dyncp contributors
"""

import csv
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tiny_model for the YAML

import speechbrain as sb  # noqa: E402
from hyperpyyaml import load_hyperpyyaml  # noqa: E402
from speechbrain.utils.data_pipeline import provides, takes  # noqa: E402
from speechbrain.utils.distributed import if_main_process, run_on_main  # noqa: E402

from speechbrain_dyncp.brain import DynCPBrain, ddp_mean, finish_ddp_group, start_ddp_group  # noqa: E402
from speechbrain_dyncp.data.audio import read_audio, write_audio  # noqa: E402
from speechbrain_dyncp.data.shards import loader_kwargs_for, make_dataset, write_shards  # noqa: E402


class TinyBrain(DynCPBrain):
    """Cross-entropy on tone classes; noise augmentation draws from the global RNG."""

    def compute_forward(self, batch, stage):
        """Logits of the (augmented) waveforms."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        if stage == sb.Stage.TRAIN and self.hparams.aug_noise > 0:
            wavs = wavs + self.hparams.aug_noise * torch.randn_like(wavs)
        if stage == sb.Stage.TRAIN and self.hparams.step_sleep > 0:
            time.sleep(self.hparams.step_sleep)
        return self.modules.model(wavs, lens)

    def compute_objectives(self, predictions, batch, stage):
        """Mean cross-entropy over the batch."""
        return torch.nn.functional.cross_entropy(predictions, batch.label_t.data[:, 0])

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Log this step's loss averaged over ranks."""
        global_loss = float(ddp_mean(loss.detach()))
        if if_main_process():
            with open(Path(self.hparams.output_folder) / "step_losses.txt", "a", encoding="utf-8") as f:
                f.write(f"{global_loss!r}\n")

    def on_stage_end(self, stage, stage_loss, epoch):
        """Log, and keep the best checkpoint by valid loss (on all ranks, P6)."""
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
        elif stage == sb.Stage.VALID:
            self.hparams.train_logger.log_stats(
                {"epoch": epoch}, train_stats={"loss": self.train_loss}, valid_stats={"loss": stage_loss}
            )
            self.checkpointer.save_and_keep_only(meta={"loss": stage_loss}, min_keys=["loss"])


def prepare_tiny(data_folder, sample_rate, n_classes, n_train, n_valid, seed=0):
    """Synthetic tones (class = frequency) with random lengths; skipped if done."""
    folder = Path(data_folder)
    if (folder / "valid.csv").exists():
        return
    gen = torch.Generator().manual_seed(seed)
    for split, n in (("train", n_train), ("valid", n_valid)):
        rows = []
        for i in range(n):
            label = i % n_classes
            n_samples = 80 * int(torch.randint(10, 30, (1,), generator=gen))  # whole frames: exact lengths
            t = torch.arange(n_samples) / sample_rate
            wav = 0.3 * torch.sin(2 * math.pi * (200 + 150 * label) * t) + 0.05 * torch.randn(n_samples, generator=gen)
            path = write_audio(folder / split / f"{split}_{i:03d}.wav", wav, sample_rate, overwrite=True)
            rows.append({"ID": f"{split}_{i:03d}", "duration": n_samples / sample_rate, "wav": str(path),
                         "label": label})
        with open(folder / f"{split}.csv.part", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        (folder / f"{split}.csv.part").replace(folder / f"{split}.csv")


def dataio_prep(hparams):
    """Train / valid datasets from CSV or shards (``data_format``), same pipeline."""

    @takes("wav")
    @provides("sig")
    def audio_pipeline(wav):
        return read_audio(wav, sample_rate=hparams["sample_rate"])

    @takes("label")
    @provides("label_t")
    def label_pipeline(label):
        return torch.tensor([int(label)])

    datasets = {}
    for split in ("train", "valid"):
        datasets[split] = make_dataset(
            hparams["data_format"],
            csv_path=Path(hparams["data_folder"]) / f"{split}.csv",
            shard_dir=Path(hparams["shard_folder"]) / split,
            dynamic_items=[audio_pipeline, label_pipeline],
            output_keys=["id", "sig", "label_t"],
            shuffle=split == "train" and hparams["sorting"] == "random",
            seed=hparams["seed"],
        )
    return datasets


def make_shards(hparams):
    """Write shards from the manifests (main process only; idempotent)."""
    for split in ("train", "valid"):
        write_shards(Path(hparams["data_folder"]) / f"{split}.csv", Path(hparams["shard_folder"]) / split,
                     max_count=20)


if __name__ == "__main__":
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:])
    start_ddp_group(run_opts)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(hparams["output_folder"], hyperparams_to_save=hparams_file, overrides=overrides)
    run_on_main(prepare_tiny, kwargs={k: hparams[k] for k in
                                      ("data_folder", "sample_rate", "n_classes", "n_train", "n_valid")})
    if hparams["data_format"] == "shards":
        run_on_main(make_shards, kwargs={"hparams": hparams})
    datasets = dataio_prep(hparams)
    train_opts = dict(hparams["dataloader_options"], shuffle=hparams["sorting"] == "random")
    brain = TinyBrain(modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
                      run_opts=run_opts, checkpointer=hparams["checkpointer"])
    brain.fit(brain.hparams.epoch_counter, datasets["train"], datasets["valid"],
              train_loader_kwargs=loader_kwargs_for(datasets["train"], train_opts),
              valid_loader_kwargs=loader_kwargs_for(datasets["valid"], hparams["dataloader_options"]))
    finish_ddp_group()
