"""``DynCPEnhancement``: the pretrained interface of the DynCP enhancer (+ mask probes).

Usage mirrors :class:`speechbrain.inference.enhancement.SpectralMaskEnhancement`::

    model = DynCPEnhancement.from_hparams(source="path/to/model_dir", savedir="tmp")
    enhanced = model.enhance_file("noisy.wav")                 # [T]
    result = model.analyze_file("noisy.wav")                   # + VAD / SNR / F0 / noise / MACs
    stream = model.streamer(); out = stream.process(chunk)     # live audio, any chunk size

The model folder holds ``hyperparams.yaml`` (``sample_rate``, ``enhancer``,
optionally ``probes``, ``modules`` and a ``pretrainer``) and one ``.ckpt`` per
loadable; :mod:`speechbrain_dyncp.export` writes such folders.

Authors
 * speechbrain-dyncp contributors
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from speechbrain.inference.interfaces import Pretrained
from torch import Tensor

from speechbrain_dyncp.data.audio import AudioError, read_audio, write_audio
from speechbrain_dyncp.inference.strict import StrictPretrained
from speechbrain_dyncp.efficiency import dynamism, frame_active_ratio, macs_per_frame
from speechbrain_dyncp.probes.heads import HEADS, head
from speechbrain_dyncp.probes.mask_register import enhancer_mask_register_hz
from speechbrain_dyncp.probes.mask_snr import MaskSNRCalibration, enhancer_mask_ratio_db


@dataclass
class EnhancementAnalysis:
    """Everything one forward pass gives, per item of a batch.

    Per-frame tensors are ``[B, N]`` on the enhancer's frame grid (hop
    ``hop_length`` samples, frame t centred on sample ``t * hop_length``) and
    zero on padded frames; ``frame_mask`` marks the valid ones. The probe heads'
    outputs are in ``outputs`` (head name -> ``[B, N]`` or ``[B, N, C]`` class
    probabilities) and read as attributes named after each head's output
    (``probes/heads.py``): ``vad_prob``, ``f0_hz`` (a frame read-out; use
    :meth:`register_hz`: a register, not a pitch track), ``snr_db`` and
    ``register_track`` (running estimates; last valid frame = utterance),
    ``noise_probs``; None where the model has no such head.
    """

    wav: Tensor  # B, T enhanced waveform
    frame_mask: Tensor  # B, N
    gates: Tensor  # B, L, N, H binary
    realised_ratio: List[float]  # active-channel fraction per item
    macs_saved_pct: List[float]  # per item, gates' own cost included
    hop_length: int = 256
    sample_rate: int = 16000
    outputs: Dict[str, Tensor] = field(default_factory=dict)  # head name -> per-frame output
    classes: Dict[str, List[str]] = field(default_factory=dict)  # class head name -> class labels
    active_ratio: Optional[Tensor] = None  # B, N active fraction of the gated channels per frame
    # per item: efficiency.dynamism() without its per-frame tensor (that is active_ratio);
    # speech vs non-speech split by the VAD probe (vad_prob > 0.5) when the model has one
    dynamism: List[dict] = field(default_factory=list)
    # per item: the calibrated SNR read off the T-F mask (probes/mask_snr.py), where the model
    # folder has a ``snr_mask_calibration``; utterance_snr() prefers it to the gate probe
    snr_from_mask_db: Optional[List[float]] = None
    # (low, high) plateaus of the SNR calibration (MaskSNRCalibration.reach_db): an estimate there is a
    # bound (clean speech reads "at least" the top; utterance_snr_bound says so)
    snr_range_db: Optional[Tuple[float, float]] = None
    # per item: the F0 register read off the T-F mask (probes/mask_register.py); register_hz()
    # prefers it to the gate probe's F0 read-out
    register_from_mask_hz: Optional[List[Optional[float]]] = None

    @staticmethod
    def _head_of(attr: str) -> Optional[str]:
        """The head whose output is named ``attr`` (``vad_prob`` -> ``vad``), or None."""
        return next((h.name for h in HEADS.values() if h.key == attr), None)

    def __getattr__(self, attr):
        name = self._head_of(attr) if not attr.startswith("_") and attr not in ("outputs", "classes") else None
        if name is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")
        return self.outputs.get(name)

    def __setattr__(self, attr, value):
        name = self._head_of(attr)
        if name is None:
            return super().__setattr__(attr, value)
        if value is None:
            self.outputs.pop(name, None)
        else:
            self.outputs[name] = value

    @property
    def noise_classes(self) -> List[str]:
        """Class labels of the noise head (empty without one)."""
        return self.classes.get("noise", [])

    def top_class(self, name: str, i: int = 0):
        """(label, probability) of class head ``name`` for item ``i`` at its last valid frame, or None."""
        if name not in self.outputs:
            return None
        p = self.outputs[name][i, int(self.frame_mask[i].sum()) - 1]
        k = int(p.argmax())
        return self.classes[name][k], float(p[k])

    def noise_class(self, i: int = 0):
        """(label, probability) of item ``i`` at its last valid frame, or None."""
        return self.top_class("noise", i)

    def utterance_value(self, name: str, i: int = 0) -> Optional[float]:
        """Head ``name``'s estimate of item ``i`` from all its frames (its last valid frame), or None."""
        if name not in self.outputs:
            return None
        return float(self.outputs[name][i, int(self.frame_mask[i].sum()) - 1])

    def register_hz(self, i: int = 0, min_frames: int = 10) -> Optional[float]:
        """The speaker's F0 register of item ``i`` (median F0 of its voiced speech), or None.

        From the T-F mask where the analysis has it (``probes/mask_register.py``: within 10 % of
        the reference for 83 % of the real test utterances, against 44 % for the gate probe's
        F0 read-out and 68 % for torchcrepe-tiny on the noisy input; docs/results_real.md); else
        the median of the gate probe's F0 read-out over the frames the VAD probe calls speech;
        a model with a ``register`` head and no F0 head gives that head's estimate.
        ``min_frames`` applies to the gate path; the mask read-out has its own
        (``MaskRegisterSettings.min_frames``, also 10 voiced speech frames).

        A register, not a pitch contour: the gate read-out is within 50 cents on few frames,
        and the mask's frame track is too coarse to be offered as one; use a pitch tracker
        where the contour matters.
        """
        if self.register_from_mask_hz is not None:
            return self.register_from_mask_hz[i]
        return self.gate_register_hz(i, min_frames)

    def gate_register_hz(self, i: int = 0, min_frames: int = 10) -> Optional[float]:
        """The gate probes' register of item ``i`` (see :meth:`register_hz`), or None."""
        n = int(self.frame_mask[i].sum())
        if "f0" not in self.outputs or "vad" not in self.outputs:
            return self.utterance_value("register", i) if n > 0 else None  # a register head alone, or None
        speech = self.outputs["vad"][i, :n] > 0.5
        if int(speech.sum()) < min_frames:
            return None
        return float(self.outputs["f0"][i, :n][speech].median())

    def utterance_snr(self, i: int = 0) -> Optional[float]:
        """SNR estimate (dB) of item ``i``: the calibrated T-F mask read-out where the model has one
        (2.9 dB MAE on the real test split against 4.6 dB for the gate probe; docs/results_real.md),
        else the gate probe's estimate from all frames, or None."""
        if self.snr_from_mask_db is not None:
            return self.snr_from_mask_db[i]
        return self.utterance_value("snr", i)

    def utterance_snr_bound(self, i: int = 0) -> Optional[str]:
        """``"at_least"`` / ``"at_most"`` where :meth:`utterance_snr` sits at the top / bottom of the
        calibrated range (e.g. clean speech: 20 dB means 20 dB or more), else None."""
        snr = self.utterance_snr(i)
        if self.snr_range_db is None or snr is None:
            return None
        low, high = self.snr_range_db
        return "at_least" if snr >= high - 1e-6 else "at_most" if snr <= low + 1e-6 else None

    def utterance_snr_text(self, i: int = 0) -> Optional[str]:
        """:meth:`utterance_snr` for people: ``"12.3 dB"``, ``">= 20.0 dB"`` at a bound, None without one."""
        snr, bound = self.utterance_snr(i), self.utterance_snr_bound(i)
        if snr is None:
            return None
        if bound is None:
            return f"{snr:.1f} dB"
        return f">= {self.snr_range_db[1]:.1f} dB" if bound == "at_least" else f"<= {self.snr_range_db[0]:.1f} dB"


class DynCPEnhancement(StrictPretrained, Pretrained):
    """Pretrained DynCP enhancer with optional gate-mask probes.

    Arguments
    ---------
    See :class:`speechbrain.inference.interfaces.Pretrained`.

    Example
    -------
    >>> from speechbrain_dyncp.lobes.enhancer import dyncp_small
    >>> model = DynCPEnhancement(modules={"enhancer": dyncp_small()}, hparams={"sample_rate": 16000})
    >>> model.enhance_batch(torch.randn(2, 8000), torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 8000])
    """

    HPARAMS_NEEDED = ["sample_rate"]
    MODULES_NEEDED = ["enhancer"]

    @property
    def enhancer(self):
        """The :class:`~speechbrain_dyncp.lobes.enhancer.DynCPEnhancer` module."""
        return self.mods.enhancer

    @property
    def probes(self):
        """The fitted :class:`~speechbrain_dyncp.lobes.probes.MaskProbes`, or None."""
        return self.mods["probes"] if "probes" in self.mods else None

    def _prepare(self, noisy: Tensor, lengths: Optional[Tensor]):
        if noisy.ndim == 1:
            noisy = noisy.unsqueeze(0)
        if noisy.ndim != 2:
            raise ValueError(f"expected waveforms [batch, time], got {tuple(noisy.shape)}")
        if noisy.shape[1] == 0:
            raise ValueError("cannot enhance an empty signal (0 samples)")
        if not torch.isfinite(noisy).all():
            raise ValueError("input contains NaN or infinite samples")
        if lengths is not None:
            lengths = lengths.to(self.device)
        return noisy.to(self.device).float(), lengths

    @torch.no_grad()
    def enhance_batch(self, noisy: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Enhanced waveforms ``[B, T]`` for noisy ``[B, T]`` with relative ``lengths``."""
        noisy, lengths = self._prepare(noisy, lengths)
        with self.inference_ctx:
            return self.enhancer(noisy, lengths).wav

    def enhance_signal_fast(self, wav: Tensor) -> Tensor:
        """One waveform ``[T]`` through the C streaming kernel (same output up to float rounding).

        The offline PyTorch graph of a gated model computes every channel and multiplies by the
        gates (it is slower than its dense twin); the C kernel skips the pruned channels and has
        no per-op dispatch cost (about 2.4x faster than :meth:`enhance_batch` for the default
        model, docs/dynamic_compute.md). Falls back to :meth:`enhance_batch` where the kernel was
        not built or does not cover the model (non-causal, static masks, other gate stacks).
        """
        import numpy as np

        from speechbrain_dyncp.streaming import FastStreamer, c_available

        noisy, _ = self._prepare(wav, None)
        if not (c_available() and self.enhancer.causal and noisy.device.type == "cpu"):
            return self.enhance_batch(noisy)[0]
        try:
            stream = FastStreamer(self.enhancer.eval(), backend="c")
        except ValueError:  # an architecture the kernel does not cover
            return self.enhance_batch(noisy)[0]
        x = noisy[0].numpy().astype(np.float32)
        y = np.concatenate([stream.process(x), stream.finish()])[stream.latency:][: x.size]
        return torch.from_numpy(np.ascontiguousarray(y))

    def load_checked_audio(self, path) -> Tensor:
        """Read ``path`` as mono at the model's rate (resampled and downmixed as needed)."""
        return read_audio(path, sample_rate=self.hparams.sample_rate)

    def enhance_file(self, filename, output_filename=None) -> Tensor:
        """Enhance one file; optionally write the result (never over an existing file).

        Arguments
        ---------
        filename : str or path-like
            Noisy audio (any rate / channel count; converted to the model's).
        output_filename : str or path-like, optional
            Where to write the enhanced wav.

        Returns
        -------
        torch.Tensor
            ``[T]`` enhanced waveform at ``sample_rate``.
        """
        wav = self.load_checked_audio(filename)
        enhanced = self.enhance_batch(wav.unsqueeze(0), torch.tensor([1.0]))[0].cpu()
        if output_filename is not None:
            write_audio(output_filename, enhanced, self.hparams.sample_rate)
        return enhanced

    @torch.no_grad()
    def analyze_batch(self, noisy: Tensor, lengths: Optional[Tensor] = None) -> EnhancementAnalysis:
        """Enhanced audio plus everything read off the gate masks, in one pass.

        Arguments
        ---------
        noisy : torch.Tensor
            ``[B, T]`` noisy waveforms.
        lengths : torch.Tensor, optional
            Relative lengths ``[B]``.

        Returns
        -------
        EnhancementAnalysis
        """
        noisy, lengths = self._prepare(noisy, lengths)
        with self.inference_ctx:
            out = self.enhancer(noisy, lengths)
        b = out.wav.shape[0]
        stats = [macs_per_frame(self.enhancer, out.gates[i : i + 1], out.frame_mask[i : i + 1]) for i in range(b)]
        result = EnhancementAnalysis(
            wav=out.wav,
            frame_mask=out.frame_mask,
            gates=out.gates,
            realised_ratio=[s["realised_ratio"] for s in stats],
            macs_saved_pct=[s["saved_pct"] for s in stats],
            hop_length=self.enhancer.hop_length,
            sample_rate=self.hparams.sample_rate,
        )
        if self.probes is not None:
            self._fill_probes(result, self.probes(out.gates, out.frame_mask))
        calibration = MaskSNRCalibration.from_dict(getattr(self.hparams, "snr_mask_calibration", None))
        speech = result.vad_prob > 0.5 if result.vad_prob is not None else None
        # one analysis STFT for both T-F mask read-outs
        spec = self.enhancer.spectrum(noisy) if calibration is not None or speech is not None else None
        if calibration is not None:
            ratio = enhancer_mask_ratio_db(self.enhancer, noisy, out, spec=spec)
            result.snr_from_mask_db = [float(v) for v in calibration.predict(ratio.cpu().numpy())]
            result.snr_range_db = calibration.reach_db()
        result.active_ratio = frame_active_ratio(out.gates, out.frame_mask)
        if speech is not None:  # without a VAD, periodic noise (hum, music) would vote for a register
            result.register_from_mask_hz = enhancer_mask_register_hz(self.enhancer, noisy, out, speech, spec=spec)
        result.dynamism = [{k: v for k, v in d.items() if k != "active_ratio"}
                           for d in dynamism(out.gates, out.frame_mask, speech)]
        return result

    def _fill_probes(self, result: EnhancementAnalysis, pred: Dict[str, Tensor]):
        for name, y in pred.items():  # every head of the model (probes/heads.py: what each means)
            if head(name).unit == "class" or y.ndim == 3:  # class probabilities [B, N, C]
                if y.ndim == 2:  # a binary class head: P(class 1) -> two columns
                    y = torch.stack([1 - y, y], dim=-1)
                result.classes[name] = [str(c) for c in self.probes.heads[name]["classes"]]
            result.outputs[name] = y

    def analyze_file(self, filename) -> EnhancementAnalysis:
        """:meth:`analyze_batch` on one file (resampled / downmixed as needed)."""
        wav = self.load_checked_audio(filename)
        return self.analyze_batch(wav.unsqueeze(0), torch.tensor([1.0]))

    def streamer(self):
        """A :class:`~speechbrain_dyncp.inference.streaming.EnhancementStreamer` for live audio."""
        from speechbrain_dyncp.inference.streaming import EnhancementStreamer

        return EnhancementStreamer(self.enhancer, self.probes)


__all__ = ["DynCPEnhancement", "EnhancementAnalysis", "AudioError"]
