"""Pause floor: a deeper attenuation limit in the frames the gates call non-speech.

The enhancer's attenuation limit (``attenuation_limit_db``, 20 dB in the shipped models) keeps mask
errors from harming clean and high-SNR speech, but it also leaves the noise of speech pauses only
20 dB down, and that residual is what listeners and DNSMOS's background score hear most (on the
real test split our DNSMOS gap to RNNoise is background, not speech: docs/results_real.md). The
gates already say whether a frame is speech: the fitted VAD probe is a linear read-out of the
current frame's gates (``bias + sum of the weights of the active selected channels``, see
:class:`~speechbrain_dyncp.lobes.probes.MaskProbes`). :class:`PauseFloor` holds a copy of that
head and picks, per frame, the model's own floor for speech frames and for the ``hangover`` frames
after the last one (word ends, short gaps), and a deeper floor everywhere else.

Optionally (``low_snr_db``) the deeper floor also covers *speech* frames when the speech is buried:
the model's own kept-over-removed energy ratio of its un-floored mask (the read-out of
:mod:`~speechbrain_dyncp.probes.mask_snr`), summed over the speech frames of the last ``low_snr_window``
frames, below ``low_snr_db``. The 20 dB limit is there to keep clean and high-SNR speech intact; at
-5 dB it mostly keeps noise (the shipped setting gains 0.24 dB SI-SDR at -5 dB on the real validation
mixtures with nothing lost at 20 dB, but only 0.04 dB on the test mixtures: docs/results_real.md).
``low_snr_min_frames`` speech frames must be in the window first, so a word onset after a pause (where
a causal mask is still low) keeps the model's floor.

It is causal and per frame, so every inference path computes it the same way: the offline forward
(``DynCPEnhancer.masker``), the PyTorch streaming engine, the NumPy streamer, the C kernel and the
ONNX graphs; the state it carries across frames is one counter (frames since the last speech frame)
and, with ``low_snr_db``, the last window's per-frame energies. The head is a copy, frozen in the
enhancer's weights, so the C and ONNX paths need nothing but the enhancer.

Authors
 * speechbrain-dyncp contributors
"""

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechbrain_dyncp.lobes.stft_masking import attenuation_floor, kept_removed_energy


class PauseFloor(nn.Module):
    """Per-frame speech decision from binary gates, and the mask floor it selects.

    Arguments
    ---------
    n_blocks, n_channels : int
        The enhancer's gate layout (L blocks of H channels), the VAD head's shape.
    limit_db : float
        Attenuation limit in pause frames, in dB (deeper than the model's own limit).
    threshold : float
        A frame is speech when the VAD head's probability exceeds this.
    hangover : int
        Frames after the last speech frame that still count as speech.
    low_snr_db : float, optional
        Speech frames also get the deeper floor when the running kept/removed energy ratio of the
        un-floored mask over the window's speech frames is below this (dB). None: pauses only.
    low_snr_window, low_snr_min_frames : int
        The running window (frames, causal) and the speech frames it needs before deciding.

    Example
    -------
    >>> pf = PauseFloor(n_blocks=2, n_channels=4, limit_db=40.0, threshold=0.5, hangover=1)
    >>> pf.weight[0, 0] = 2.0; _ = pf.bias.fill_(-1.0)  # speech when block 0's channel 0 is on
    >>> gates = torch.zeros(1, 2, 5, 4); gates[0, 0, 1, 0] = 1.0
    >>> pf.speech_frames(gates).tolist()  # frame 1 and one frame of hangover
    [[False, True, True, False, False]]
    """

    def __init__(self, n_blocks: int, n_channels: int, limit_db: float = 40.0, threshold: float = 0.3,
                 hangover: int = 8, low_snr_db: Optional[float] = None, low_snr_window: int = 100,
                 low_snr_min_frames: int = 50):
        super().__init__()
        if low_snr_db is not None and not 1 <= low_snr_min_frames <= low_snr_window:
            raise ValueError(f"low-SNR floor: need 1 <= min frames ({low_snr_min_frames}) <= window ({low_snr_window})")
        self.low_snr_db = None if low_snr_db is None else float(low_snr_db)
        self.low_snr_window, self.low_snr_min_frames = int(low_snr_window), int(low_snr_min_frames)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"pause VAD threshold must be in (0, 1), got {threshold}")
        if hangover < 0:
            raise ValueError(f"pause hangover must be >= 0 frames, got {hangover}")
        self.floor = attenuation_floor(limit_db)  # a bad limit fails here
        if self.floor == 0.0:
            raise ValueError("the pause attenuation limit must be a positive number of dB")
        self.limit_db, self.threshold, self.hangover = float(limit_db), float(threshold), int(hangover)
        self.register_buffer("weight", torch.zeros(n_blocks, n_channels))
        self.register_buffer("bias", torch.zeros(1))

    @classmethod
    def for_enhancer(cls, gated: bool, n_blocks: int, n_channels: int, speech_limit_db, limit_db, threshold: float,
                     hangover: int, low_snr_db, low_snr_window: int, low_snr_min_frames: int) -> Optional["PauseFloor"]:
        """The pause floor of a ``DynCPEnhancer`` from its ``pause_*`` arguments, or None (no ``limit_db``)."""
        if not limit_db:
            if low_snr_db is not None:
                raise ValueError("pause_low_snr_db needs pause_attenuation_limit_db (the limit it applies)")
            return None
        if not gated:
            raise ValueError("pause_attenuation_limit_db needs a gated model (the gates detect the pauses)")
        if not speech_limit_db or limit_db <= speech_limit_db:
            raise ValueError(f"pause_attenuation_limit_db ({limit_db}) must be deeper than "
                             f"attenuation_limit_db ({speech_limit_db})")
        return cls(n_blocks, n_channels, limit_db, threshold, hangover, low_snr_db, low_snr_window, low_snr_min_frames)

    @property
    def threshold_logit(self) -> float:
        """The threshold on the head's logit (the probability threshold through the inverse sigmoid)."""
        return math.log(self.threshold / (1.0 - self.threshold))

    def load_vad_head(self, probes) -> "PauseFloor":
        """Copy the ``vad`` head of fitted :class:`MaskProbes` (one output, current frame only)."""
        if "vad" not in probes.heads:
            raise ValueError("the probes have no 'vad' head to drive the pause floor")
        spec = probes.spec("vad")
        if spec.level != "frame" or spec.context != 0 or probes.heads["vad"]["n_out"] != 1:
            raise ValueError("the pause floor needs a one-output VAD head on the current frame (context 0)")
        if (probes.n_blocks, probes.n_channels) != tuple(self.weight.shape):
            raise ValueError(f"VAD head fitted on {probes.n_blocks}x{probes.n_channels} gates; "
                             f"the enhancer has {tuple(self.weight.shape)}")
        dense = torch.zeros(self.weight.numel(), dtype=self.weight.dtype)
        dense.index_add_(0, probes.vad_index.cpu(), probes.vad_weight[:, 0].cpu().to(dense.dtype))
        self.weight.copy_(dense.view_as(self.weight))  # flat index l * H + h, as probes.features.flat_gates
        self.bias.copy_(probes.vad_bias.cpu().to(self.bias.dtype))
        return self

    def speech_logits(self, gates: Tensor) -> Tensor:
        """The VAD head's logit per frame ``[B, N]`` (float64) from gates ``[B, L, N, H]``."""
        # float64: the streamers sum the same weights in another order; double keeps a frame's
        # decision the same in every path (a flip would change that frame's floor by 20 dB)
        return torch.einsum("blnh,lh->bn", gates.double(), self.weight.double()) + self.bias.double()

    def speech_frames(self, gates: Tensor) -> Tensor:
        """Boolean ``[B, N]``: speech, or within ``hangover`` frames after speech (causal)."""
        speech = (self.speech_logits(gates) > self.threshold_logit).to(self.weight.dtype)
        if self.hangover:
            speech = F.max_pool1d(F.pad(speech[:, None], (self.hangover, 0)), self.hangover + 1, 1)[:, 0]
        return speech > 0.5

    def frame_energies(self, logits: Tensor, feats: Tensor, power_exponent: float) -> Tensor:
        """Kept and removed energy per frame ``[B, 2, N]`` (float64) of the un-floored mask ``sigmoid(logits)``
        over the input power ``feats ** power_exponent`` (both ``[B, N, F]``; ``DynCPEnhancer.power_exponent``):
        :func:`~speechbrain_dyncp.probes.mask_snr.mask_energy_ratio_db`'s terms, per frame. Every PyTorch path
        calls this with its own frame layout; the NumPy and C streamers repeat it."""
        raw, power = torch.sigmoid(logits), feats.pow(power_exponent)
        return torch.stack(kept_removed_energy(raw.double(), power.double()), 1)

    @property
    def low_snr_factor(self) -> float:
        """``low_snr_db`` as a power ratio: "kept < removed * factor" is the decision in every path (no log)."""
        return 10.0 ** (self.low_snr_db / 10.0)

    def _low_snr(self, kept: Tensor, removed: Tensor, count: Tensor) -> Tensor:
        return (count >= self.low_snr_min_frames) & (kept < removed * self.low_snr_factor)

    def frame_floors(self, gates: Tensor, speech_floor: float, energies: Optional[Tensor] = None) -> Tensor:
        """Mask floor per frame ``[B, N, 1]``: ``speech_floor`` on speech frames, the pause floor elsewhere
        (and, with ``low_snr_db``, on speech frames of a low running SNR: ``energies`` from
        :meth:`frame_energies` are then required)."""
        speech = self.speech_frames(gates)
        keep = speech
        if self.low_snr_db is not None:
            if energies is None:
                raise ValueError("the low-SNR floor needs the frames' energies (PauseFloor.frame_energies)")
            # causal sums over the window, by cumulative sums (exportable to ONNX in float64)
            x = torch.cat([energies * speech[:, None], speech[:, None].double()], 1)  # B, 3, N
            c = torch.cumsum(F.pad(x, (self.low_snr_window, 0)), -1)
            s = c[..., self.low_snr_window:] - c[..., :-self.low_snr_window]
            keep = speech & ~self._low_snr(s[:, 0], s[:, 1], s[:, 2])
        return torch.where(keep, keep.new_tensor(speech_floor, dtype=self.weight.dtype),
                           keep.new_tensor(self.pause_value(speech_floor), dtype=self.weight.dtype)).unsqueeze(-1)

    def pause_value(self, speech_floor: float) -> float:
        """The pause frames' floor: never above the speech frames' (a user who lowers or removes the
        model's own limit, e.g. ``dyncp enhance --attenuation-limit-db 0``, gets it in pauses too)."""
        return min(self.floor, speech_floor)

    def initial_window(self, batch_size: int, device=None) -> Optional[Tensor]:
        """Zero low-SNR window state ``[B, 3, window]`` (float64), or None without ``low_snr_db``."""
        if self.low_snr_db is None:
            return None
        return torch.zeros(batch_size, 3, self.low_snr_window, dtype=torch.float64, device=device)

    def stream_floors(self, gates: Tensor, credit: Tensor, speech_floor: float, energies: Optional[Tensor] = None,
                      window: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """The streaming form of :meth:`frame_floors`, frame by frame with explicit state.

        ``gates`` ``[B, L, F, H]`` are the next F frames; ``credit`` ``[B]`` is the state: frames of
        speech left (``hangover + 1`` on a speech frame, minus one per frame after it; zero at the
        start of a stream, which is a pause as offline). With ``low_snr_db``, ``energies`` ``[B, 2, F]``
        are the frames' :meth:`frame_energies` and ``window`` (:meth:`initial_window`) holds the last
        ``low_snr_window`` frames' speech-only energies and speech flags.
        Returns the floors ``[B, F]``, the new credit and the new window.

        Example
        -------
        >>> pf = PauseFloor(1, 2, hangover=2); pf.weight[0, 0] = 5.0; _ = pf.bias.fill_(-2.0)
        >>> g = torch.zeros(1, 1, 6, 2); g[0, 0, 1, 0] = 1.0
        >>> whole = pf.frame_floors(g, 0.1)[..., 0]
        >>> a, credit, _ = pf.stream_floors(g[:, :, :4], torch.zeros(1), 0.1)
        >>> b, _, _ = pf.stream_floors(g[:, :, 4:], credit, 0.1)
        >>> torch.equal(torch.cat([a, b], 1), whole)
        True
        """
        raw = self.speech_logits(gates) > self.threshold_logit  # B, F
        floors = []
        for t in range(raw.shape[1]):
            credit = torch.where(raw[:, t], torch.full_like(credit, self.hangover + 1), (credit - 1).clamp(min=0))
            keep = credit > 0
            if self.low_snr_db is not None:
                flag = keep.double()[:, None]  # B, 1
                window = torch.cat([window[..., 1:], torch.cat([energies[..., t] * flag, flag], 1)[..., None]], -1)
                s = window.sum(-1)
                keep = keep & ~self._low_snr(s[:, 0], s[:, 1], s[:, 2])
            floors.append(torch.where(keep, credit.new_tensor(speech_floor),
                                      credit.new_tensor(self.pause_value(speech_floor))))
        return torch.stack(floors, 1).to(self.weight.dtype), credit, window
