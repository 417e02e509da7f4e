"""Live-audio streaming object of :class:`DynCPEnhancement`: chunks in, enhanced audio
and per-frame probe estimates out, identical to the offline results.

    stream = model.streamer()
    for chunk in microphone:                 # any number of samples
        out = stream.process(chunk)          # out.wav: as many samples, delayed by stream.latency
        out.vad_prob, out.f0_hz, out.snr_db  # one value per frame completed by this chunk
        out.register_hz                      # running F0 register (T-F mask read-out), or None
    tail = stream.finish()                   # the last ``latency`` samples

Authors
 * speechbrain-dyncp contributors
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from speechbrain_dyncp.efficiency import dense_macs
from speechbrain_dyncp.probes.heads import HEADS, head
from speechbrain_dyncp.probes.mask_register import MaskRegisterSettings, masked_autocorrelation_f0

REGISTER = MaskRegisterSettings()  # the offline read-out's settings (EnhancementAnalysis.register_from_mask_hz)


@dataclass
class StreamOutput:
    """What one :meth:`EnhancementStreamer.process` call returns."""

    wav: Tensor  # [S] enhanced samples (delayed by the streamer's latency)
    frames: int = 0  # STFT frames completed by this chunk
    # per probe head (probes/heads.py): one value per completed frame; read as attributes
    # named by each head's output (vad_prob, f0_hz, snr_db, ...; [] where the model has no such head)
    outputs: Dict[str, List[float]] = field(default_factory=dict)
    # per class head: (label, probability) of the running estimate after the last frame
    top_classes: Dict[str, Tuple[str, float]] = field(default_factory=dict)
    gates: Optional[Tensor] = None  # [L, frames, H] gates of the completed frames
    # the running F0 register (Hz) read off the T-F mask (probes/mask_register.py) after the last
    # frame; None until enough voiced speech frames (needs a VAD probe), as in offline analysis
    register_hz: Optional[float] = None

    def __getattr__(self, attr):
        name = next((h.name for h in HEADS.values() if h.key == attr), None)
        if name is None or attr.startswith("_") or attr in ("outputs", "top_classes"):
            raise AttributeError(f"'StreamOutput' object has no attribute {attr!r}")
        return self.outputs.get(name, [])

    @property
    def noise_class(self) -> Optional[str]:
        """Running noise class after the last frame, or None."""
        return self.top_classes["noise"][0] if "noise" in self.top_classes else None

    @property
    def noise_prob(self) -> Optional[float]:
        """Its probability, or None."""
        return self.top_classes["noise"][1] if "noise" in self.top_classes else None


def as_mono_float(chunk: Union[Tensor, np.ndarray]) -> Tensor:
    """``[1, S]`` float32 of a mono chunk (tensor or array, float or integer PCM).

    Example
    -------
    >>> as_mono_float(np.array([16384, -32768], dtype=np.int16))
    tensor([[ 0.5000, -1.0000]])
    >>> as_mono_float(torch.zeros(2, 4))
    Traceback (most recent call last):
    ...
    ValueError: expected a mono audio chunk [S] or [1, S], got shape (2, 4): down-mix ...
    """
    if isinstance(chunk, np.ndarray):
        chunk = torch.from_numpy(np.ascontiguousarray(chunk))
    if not isinstance(chunk, Tensor):
        raise TypeError(f"expected an audio chunk as a torch.Tensor or numpy.ndarray, got {type(chunk).__name__}")
    if chunk.ndim > 2 or (chunk.ndim == 2 and chunk.shape[0] != 1):
        raise ValueError(f"expected a mono audio chunk [S] or [1, S], got shape {tuple(chunk.shape)}: "
                         "down-mix multichannel audio first (average over the channel axis: chunk.mean(1) "
                         "for soundfile's [S, C], chunk.mean(0) for [C, S])")
    if not chunk.is_floating_point():  # integer PCM: full scale is the type's range
        low = torch.iinfo(chunk.dtype).min if chunk.dtype != torch.bool else 0
        if low == 0:
            raise TypeError(f"expected float or signed integer PCM samples, got {chunk.dtype}")
        chunk = chunk.double() / -low
    chunk = chunk.reshape(1, -1).float()
    if not torch.isfinite(chunk).all():
        raise ValueError("audio chunk contains NaN or infinite samples")
    return chunk


class EnhancementStreamer:
    """Stateful causal enhancer + probes for one live stream (batch of 1).

    Arguments
    ---------
    enhancer : DynCPEnhancer
        A causal model (eval mode is set here).
    probes : MaskProbes, optional
        Fitted probes; evaluated frame by frame on the streamed gates.
    group_frames : int
        Frames computed together (1 = lowest latency; larger is faster on CPU).

    Example
    -------
    >>> from speechbrain_dyncp.lobes.enhancer import dyncp_small
    >>> model = dyncp_small().eval()
    >>> x = torch.randn(1, 4000)
    >>> s = EnhancementStreamer(model)
    >>> y = torch.cat([s.process(c).wav for c in x[0].split(333)] + [s.finish()])
    >>> torch.allclose(y[s.latency:], model(x).wav[0], atol=1e-4)
    True
    """

    def __init__(self, enhancer, probes=None, group_frames: int = 1):
        self.enhancer = enhancer.eval()
        self.probes = probes
        self.group_frames = group_frames
        self.reset()

    @property
    def latency(self) -> int:
        """Fixed delay of the returned audio, in samples."""
        return self.ctx.latency

    def reset(self) -> None:
        """Start a new stream (all state cleared)."""
        self.ctx = self.enhancer.make_streaming_context(
            batch_size=1, group_frames=self.group_frames, keep_gates=self.probes is not None
        )
        self.probe_state = self.probes.init_state(1) if self.probes is not None else None
        # F0 -> count over the voiced speech frames so far: F0 is sample_rate / an integer lag, so at
        # most a few hundred distinct values; the running median stays O(1) in memory on long streams
        self.voiced_f0: Counter = Counter()

    @torch.no_grad()
    def process(self, chunk: Union[Tensor, np.ndarray]) -> StreamOutput:
        """Feed ``chunk``: ``[S]`` or ``[1, S]`` mono samples at the model's rate, a tensor or a
        NumPy array; integer PCM (e.g. int16) is rescaled to [-1, 1]. Multichannel chunks are
        refused (down-mix them first, e.g. ``chunk.mean(0)``): flattening would interleave channels."""
        chunk = as_mono_float(chunk)
        frames_before = self.ctx.frames_done
        wav = self.enhancer.forward_streaming(chunk, self.ctx)[0]
        return self._collect(wav, self.ctx.frames_done - frames_before)

    @torch.no_grad()
    def finish(self) -> Tensor:
        """Flush the stream; returns the last ``latency`` samples (probe outputs of the final
        frames are available from :attr:`last` afterwards)."""
        frames_before = self.ctx.frames_done
        tail = self.enhancer.finish_streaming(self.ctx)[0]
        self.last = self._collect(tail, self.ctx.frames_done - frames_before)
        return tail

    def _collect(self, wav: Tensor, n_frames: int) -> StreamOutput:
        out = StreamOutput(wav=wav, frames=n_frames)
        if self.probes is not None and self.ctx.gates:
            self._read_probes(out)
        out.register_hz = self.register_hz  # after this chunk's voiced frames are counted
        return out

    def _read_probes(self, out: StreamOutput) -> None:
        """Probe estimates of the frames just computed into ``out``; their voiced F0 into the register."""
        gates = torch.cat(self.ctx.gates, dim=2)[0]  # L, frames, H
        self.ctx.gates.clear()
        out.gates = gates
        f0, periodicity = self._mask_f0()
        for t in range(gates.shape[1]):
            pred, self.probe_state = self.probes.forward_frame(gates[:, t].unsqueeze(0), self.probe_state)
            for name, y in pred.items():  # every head of the model (probes/heads.py)
                p = y[0]
                if head(name).unit == "class" or p.ndim == 1:  # class probabilities: the running top class
                    p = torch.stack([1 - p, p]) if p.ndim == 0 else p
                    k = int(p.argmax())
                    out.top_classes[name] = (str(self.probes.heads[name]["classes"][k]), float(p[k]))
                else:
                    out.outputs.setdefault(name, []).append(float(p))
            if "vad" in pred and float(pred["vad"][0]) > 0.5 and float(periodicity[t]) > REGISTER.voicing_threshold:
                self.voiced_f0[float(f0[t])] += 1

    @property
    def register_hz(self) -> Optional[float]:
        """The running F0 register (Hz): median F0 of the voiced speech frames so far, or None."""
        n = sum(self.voiced_f0.values())
        if n < REGISTER.min_frames:
            return None
        rank = (n - 1) // 2  # the lower median, as torch.median of the offline read-out
        for value in sorted(self.voiced_f0):
            rank -= self.voiced_f0[value]
            if rank < 0:
                return value

    def _mask_f0(self):
        """Per-frame F0 and periodicity of the frames just computed, from their masked spectra."""
        masked = torch.cat(self.ctx.masked_spectra, dim=2)  # 1, bins, frames
        self.ctx.masked_spectra.clear()
        ones = masked.real.new_ones(1, masked.shape[2], masked.shape[1])  # the mask is already applied
        f0, periodicity = masked_autocorrelation_f0(masked, ones, self.enhancer.window, int(self.enhancer.sample_rate))
        return f0[0], periodicity[0]

    @property
    def macs_saved_pct(self) -> float:
        """MACs saved so far versus the dense model on the same frames (executed MACs counted)."""
        if self.ctx.frames_done == 0:
            return 0.0
        dense = dense_macs(self.enhancer)["total"] * self.ctx.frames_done
        return 100.0 * (1.0 - self.ctx.macs / dense)
