"""Speaker verification interface with an optional enhancement front-end, score
normalisation against a stored cohort and a calibrated decision threshold.

:class:`DynCPSpeakerRecognition` extends SpeechBrain's ``SpeakerRecognition``
(``encode_batch``, ``verify_batch``, ``verify_files``) and reads, from the model
folder's ``hyperparams.yaml``:

* ``enhancer`` (optional module): a waveform front-end (e.g. a Grad-W-trained
  DynCP enhancer) applied before the features;
* ``waveform_members`` (optional module): speaker embedders with their own features
  (e.g. a GE2E encoder), fused with ``embedding_model``'s embedding;
* ``cohort`` (optional :class:`EmbeddingCohort` loadable): embeddings for
  adaptive s-norm (``score_norm: as-norm``, ``cohort_top_k``);
* ``threshold``: the decision threshold calibrated on held-out trials (the
  EER operating point of the normalised scores), instead of a fixed 0.25.

:func:`add_verification_backend` writes the cohort and the calibrated
threshold into an exported speaker model folder.

Authors
 * speechbrain-dyncp contributors
"""

import sys
from pathlib import Path

import torch
from speechbrain.inference.speaker import SpeakerRecognition
from speechbrain.utils.callchains import lengths_arg_exists
from torch import nn

from speechbrain_dyncp.data.audio import SILENCE_PEAK, AudioError, read_audio
from speechbrain_dyncp.inference.speaker_folders import (  # noqa: F401 (re-exported)
    DEFAULT_SPEAKER_MODEL,
    calibrated_verdict,
    hub_layout_overrides,
    resolve_speaker_source,
    speaker_model_folder,
)
from speechbrain_dyncp.inference.strict import StrictPretrained, load_model_folder
from speechbrain_dyncp.verification.metrics import compute_eer
from speechbrain_dyncp.verification.scoring import ScoreNormalizer


MIN_SECONDS = 0.1  # shortest recording a speaker embedding is computed for


class EmbeddingCohort(nn.Module):
    """A stored cohort of embeddings ``[n_items, dim]`` (a loadable for model folders).

    Arguments
    ---------
    n_items : int
        Cohort size M.
    dim : int
        Embedding size D.

    Example
    -------
    >>> EmbeddingCohort(4, 3).embeddings.shape
    torch.Size([4, 3])
    """

    def __init__(self, n_items: int, dim: int):
        super().__init__()
        self.register_buffer("embeddings", torch.zeros(n_items, dim))


class DynCPSpeakerRecognition(StrictPretrained, SpeakerRecognition):
    """``SpeakerRecognition`` + enhancement front-end, AS-norm cohort and calibrated threshold.

    Scores returned by :meth:`verify_batch` are normalised when the folder has a
    cohort, so they are comparable with the stored threshold.
    """

    HPARAMS_NEEDED = ["compute_features", "embedding_model"]
    MODULES_NEEDED = ["compute_features", "embedding_model"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.normalizer = None
        cohort = self.mods["cohort"] if "cohort" in self.mods else None
        method = getattr(self.hparams, "score_norm", "none")
        if cohort is not None and method != "none":
            self.normalizer = ScoreNormalizer(cohort.embeddings, method, getattr(self.hparams, "cohort_top_k", None))

    @property
    def threshold(self) -> float:
        """The calibrated decision threshold (0.25, SpeechBrain's default, if none is stored)."""
        return float(getattr(self.hparams, "threshold", 0.25))

    def encode_batch(self, wavs, wav_lens=None, normalize=False):
        """Embeddings ``[B, 1, D]`` of waveforms ``[B, T]`` (enhanced first when the folder has an enhancer)."""
        if wavs.ndim == 1:
            wavs = wavs.unsqueeze(0)
        if wav_lens is None:
            wav_lens = torch.ones(wavs.shape[0])
        wavs, wav_lens = wavs.to(self.device).float(), wav_lens.to(self.device)
        if "enhancer" in self.mods:
            out = self.mods.enhancer(wavs, wav_lens)
            wavs = getattr(out, "wav", out)
        feats_mod = self.mods.compute_features
        feats = feats_mod(wavs, wav_lens) if lengths_arg_exists(feats_mod.forward) else feats_mod(wavs)
        if "mean_var_norm" in self.mods:
            feats = self.mods.mean_var_norm(feats, wav_lens)
        emb = self.mods.embedding_model(feats, wav_lens)
        if "waveform_members" in self.mods:  # embedders with their own features (lobes/embedding_ensemble.py)
            emb = self.mods.waveform_members(emb, wavs, wav_lens)
        if normalize and "mean_var_norm_emb" in self.mods:  # as SpeechBrain's EncoderClassifier.encode_batch
            emb = self.mods.mean_var_norm_emb(emb, torch.ones(emb.shape[0], device=self.device))
        return emb.reshape(emb.shape[0], 1, -1)

    @torch.no_grad()
    def verify_batch(self, wavs1, wavs2, wav1_lens=None, wav2_lens=None, threshold=None):
        """(scores ``[B]``, decisions ``[B]``); normalised scores when a cohort is stored."""
        e1 = self.encode_batch(wavs1, wav1_lens)[:, 0]
        e2 = self.encode_batch(wavs2, wav2_lens)[:, 0]
        return self.score_embeddings(e1, e2, threshold)

    def score_embeddings(self, e1, e2, threshold=None):
        """(scores ``[B]``, decisions ``[B]``) of embeddings ``[B, D]`` (normalised with a cohort)."""
        score = nn.functional.cosine_similarity(e1, e2, dim=-1, eps=1e-6)
        if self.normalizer is not None:
            # ids only key the per-call statistics cache: make them unique to this call
            self.normalizer.cache.clear()
            ids1 = [f"e{i}" for i in range(len(e1))]
            ids2 = [f"t{i}" for i in range(len(e2))]
            score = self.normalizer(score.cpu(), ids1, e1.cpu(), ids2, e2.cpu())
        thr = self.threshold if threshold is None else threshold
        return score, score > thr

    @torch.no_grad()
    def embed_file(self, path):
        """Embedding ``[D]`` of one audio file; :class:`AudioError` naming it when it is too short
        or its samples make the model overflow (a NaN embedding is never returned).

        Arguments
        ---------
        path : str or path-like
            Any rate / channel count (converted to the model's rate, mono).

        Returns
        -------
        torch.Tensor
        """
        sr = getattr(self.hparams, "sample_rate", 16000)
        return self.embed_waveform(read_audio(path, sample_rate=sr), path)

    @torch.no_grad()
    def embed_waveform(self, wav, source):
        """Embedding ``[D]`` of a mono waveform ``[T]`` at the model's rate (e.g. a front-end's output);
        :class:`AudioError` naming ``source`` when it is too short, digital silence, or the model overflows on it."""
        sr = getattr(self.hparams, "sample_rate", 16000)
        if wav.numel() < MIN_SECONDS * sr:  # the features' padding fails below a few frames
            raise AudioError(f"Audio file {source} is {1000 * wav.numel() / sr:.0f} ms long: too short for a "
                             f"speaker embedding (at least {1000 * MIN_SECONDS:.0f} ms)")
        if not float(wav.abs().max()) >= SILENCE_PEAK:  # an embedding of nothing scores like a speaker (0.99 same)
            raise AudioError(f"Audio file {source} is digital silence (peak {float(wav.abs().max()):.1e}): "
                             "no speaker to embed")
        emb = self.encode_batch(wav)[0, 0]
        if not bool(torch.isfinite(emb).all()):
            raise AudioError(f"Audio file {source}: the speaker model overflows on it (peak sample "
                             f"{float(wav.abs().max()):.3g}); no embedding")
        return emb.cpu()

    def verify_files(self, path_x, path_y, **kwargs):
        """Score two audio files (any rate / channels; converted to 16 kHz mono)."""
        score, decision = self.score_embeddings(self.embed_file(path_x)[None], self.embed_file(path_y)[None])
        return score[0], decision[0]


def calibrate_threshold(scores, labels) -> float:
    """Decision threshold at the equal-error operating point of held-out trials."""
    return compute_eer(scores, labels)[1]


def add_verification_backend(model_dir, cohort: torch.Tensor, threshold: float, score_norm: str = "as-norm",
                             top_k: int = 100) -> Path:
    """Store a cohort and a calibrated threshold in a speaker model folder (idempotent rewrite).

    Arguments
    ---------
    model_dir : str or path-like
        Folder exported by ``recipes/VoxCeleb/train_speaker.py`` (has ``hyperparams.yaml``
        with ``modules`` and a ``pretrainer``).
    cohort : torch.Tensor or None
        ``[M, D]`` cohort embeddings (e.g. training-speaker means); None with ``score_norm="none"``.
    threshold : float
        Calibrated threshold for scores normalised with ``score_norm``.
    score_norm : str
        ``none``, ``z-norm``, ``t-norm``, ``s-norm`` or ``as-norm``.
    top_k : int
        Adaptive cohort size for ``as-norm``.

    Returns
    -------
    pathlib.Path
    """
    model_dir = Path(model_dir)
    hp = model_dir / "hyperparams.yaml"
    text = hp.read_text().split("\n# --- verification backend")[0].rstrip("\n")
    if "modules:" not in text or "loadables:" not in text:
        raise ValueError(f"{hp} has no modules/pretrainer sections to extend")
    block = (
        f"\n# --- verification backend (speechbrain_dyncp.inference.speaker.add_verification_backend)\n"
        f"score_norm: {score_norm}\ncohort_top_k: {int(top_k)}\nthreshold: {float(threshold)!r}\n"
    )
    if cohort is None:  # a threshold for raw cosine scores only
        if score_norm != "none":
            raise ValueError(f"score_norm {score_norm!r} needs a cohort")
        text = text.replace("    cohort: !ref <cohort>\n", "").replace("        cohort: !ref <cohort>\n", "")
        hp.write_text(text + "\n" + block)
        return model_dir
    m, d = cohort.shape
    torch.save({"embeddings": cohort.detach().float().cpu()}, model_dir / "cohort.ckpt")
    block += f"cohort: !new:speechbrain_dyncp.inference.speaker.EmbeddingCohort\n    n_items: {m}\n    dim: {d}\n"
    # register the cohort as a module and as a pretrainer loadable
    if "cohort: !ref <cohort>" not in text:
        text = text.replace("modules:\n", "modules:\n    cohort: !ref <cohort>\n", 1)
        text = text.replace("loadables:\n", "loadables:\n        cohort: !ref <cohort>\n", 1)
    hp.write_text(text + "\n" + block)
    return model_dir


def load_speaker_model(model_dir, trust_code: bool = False):
    """``DynCPSpeakerRecognition`` from a local model folder, strictly offline and strict on keys;
    its ``hyperparams.yaml`` is scanned in safe mode first unless ``trust_code``. Folders laid out like
    SpeechBrain's published ``spkrec-ecapa-voxceleb`` load too (:func:`hub_layout_overrides`)."""
    folder = Path(model_dir)
    overrides = hub_layout_overrides(folder) if (folder / "hyperparams.yaml").is_file() else {}
    return load_model_folder(DynCPSpeakerRecognition, folder, what="speaker model", trust_code=trust_code,
                             overrides=overrides)


def verify_from_cli(args) -> int:
    """``dyncp verify ENROL TEST [--model DIR] [--front-end [MODEL]]``: prints the score and the decision,
    with the calibrated LLR when the folder has ``calibration.json`` (``calibration_front_end.json`` with a
    front-end: :mod:`speechbrain_dyncp.inference.front_end`), and says when the threshold is an uncalibrated
    fallback."""
    folder = speaker_model_folder(args.model, getattr(args, "front_end", None))
    model = load_speaker_model(folder, trust_code=args.trust_model_code)
    try:
        if getattr(args, "front_end", None):
            from speechbrain_dyncp.inference.front_end import verify_with_front_end

            print(verify_with_front_end(folder, model, args.enrol, args.test, args.front_end, args.trust_model_code))
            return 0
        score, decision = model.verify_files(args.enrol, args.test)
        llr, text = calibrated_verdict(folder, model, args.enrol, args.test, float(score))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if text is not None:
        print(text)
        return 0
    calibrated = hasattr(model.hparams, "threshold")
    note = "calibrated on dev trials" if calibrated else (
        "UNCALIBRATED FALLBACK (SpeechBrain's default; this model folder stores no threshold or "
        "calibration, so the decision may be wrong for any pair)")
    print(f"score {float(score):.4f}  threshold {model.threshold:.4f} ({note})  "
          f"{'same speaker' if bool(decision) else 'different speakers'}")
    return 0


def embed_output_path(output) -> Path:
    """The file ``dyncp embed -o OUTPUT`` writes: ``.npz`` appended as ``numpy.savez`` does."""
    out = Path(output)
    return out if out.suffix == ".npz" else out.with_name(out.name + ".npz")


def embed_from_cli(args) -> int:
    """``dyncp embed FOLDER -o OUT.npz --model DIR``: one embedding per audio file.

    The output is checked before any work (an existing file needs ``--overwrite``;
    an unwritable folder fails at once) and written atomically.
    """
    import os

    import numpy as np
    from tqdm import tqdm

    from speechbrain_dyncp.data.audio import list_audio_files

    out_path = embed_output_path(args.output)
    if out_path.exists() and not args.overwrite:
        raise FileExistsError(f"Refusing to overwrite existing file {out_path} (use --overwrite)")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".part")
    tmp.touch()  # an unwritable folder fails here, not after the work
    try:
        root = Path(args.folder)
        files = list_audio_files(root)
        if not files:
            print(f"error: no audio files found under {root}", file=sys.stderr)
            return 2
        model = load_speaker_model(speaker_model_folder(args.model, getattr(args, "front_end", None)),
                                   trust_code=args.trust_model_code)
        embed = model.embed_file
        if getattr(args, "front_end", None):
            from speechbrain_dyncp.inference.front_end import embed_files_with_front_end

            embed = embed_files_with_front_end(model, args.front_end, args.trust_model_code)
        out, failed = {}, []
        for f in tqdm(files, desc="embedding", unit="file"):
            try:
                out[str(f.relative_to(root) if root.is_dir() else f.name)] = embed(f).numpy()
            except (OSError, ValueError, RuntimeError) as exc:  # AudioError is a ValueError
                failed.append(f"{f}: {exc}")
        with open(tmp, "wb") as fh:
            np.savez(fh, **out)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    print(f"embedded {len(out)} files, failed {len(failed)} -> {out_path}")
    return 1 if failed else 0
