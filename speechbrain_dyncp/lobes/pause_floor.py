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

It is causal and per frame, so every inference path computes it the same way: the offline forward
(``DynCPEnhancer.masker``), the PyTorch streaming engine, the NumPy streamer and the C kernel; the
state it carries across frames is one counter (frames since the last speech frame). The head is a
copy, frozen in the enhancer's weights, so the C and ONNX paths need nothing but the enhancer.

Authors
 * speechbrain-dyncp contributors
"""

import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechbrain_dyncp.lobes.stft_masking import attenuation_floor


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

    Example
    -------
    >>> pf = PauseFloor(n_blocks=2, n_channels=4, limit_db=40.0, threshold=0.5, hangover=1)
    >>> pf.weight[0, 0] = 2.0; _ = pf.bias.fill_(-1.0)  # speech when block 0's channel 0 is on
    >>> gates = torch.zeros(1, 2, 5, 4); gates[0, 0, 1, 0] = 1.0
    >>> pf.speech_frames(gates).tolist()  # frame 1 and one frame of hangover
    [[False, True, True, False, False]]
    """

    def __init__(self, n_blocks: int, n_channels: int, limit_db: float = 40.0, threshold: float = 0.3,
                 hangover: int = 8):
        super().__init__()
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

    def frame_floors(self, gates: Tensor, speech_floor: float) -> Tensor:
        """Mask floor per frame ``[B, N, 1]``: ``speech_floor`` on speech frames, the pause floor elsewhere."""
        speech = self.speech_frames(gates)
        return torch.where(speech, speech.new_tensor(speech_floor, dtype=self.weight.dtype),
                           speech.new_tensor(self.pause_value(speech_floor), dtype=self.weight.dtype)).unsqueeze(-1)

    def pause_value(self, speech_floor: float) -> float:
        """The pause frames' floor: never above the speech frames' (a user who lowers or removes the
        model's own limit, e.g. ``dyncp enhance --attenuation-limit-db 0``, gets it in pauses too)."""
        return min(self.floor, speech_floor)

    def stream_floors(self, gates: Tensor, credit: Tensor, speech_floor: float) -> Tuple[Tensor, Tensor]:
        """The streaming form of :meth:`frame_floors`, frame by frame with explicit state.

        ``gates`` ``[B, L, F, H]`` are the next F frames; ``credit`` ``[B]`` is the state: frames of
        speech left (``hangover + 1`` on a speech frame, minus one per frame after it; zero at the
        start of a stream, which is a pause as offline). Returns the floors ``[B, F]`` and the new credit.

        Example
        -------
        >>> pf = PauseFloor(1, 2, hangover=2); pf.weight[0, 0] = 5.0; _ = pf.bias.fill_(-2.0)
        >>> g = torch.zeros(1, 1, 6, 2); g[0, 0, 1, 0] = 1.0
        >>> whole = pf.frame_floors(g, 0.1)[..., 0]
        >>> a, credit = pf.stream_floors(g[:, :, :4], torch.zeros(1), 0.1)
        >>> b, _ = pf.stream_floors(g[:, :, 4:], credit, 0.1)
        >>> torch.equal(torch.cat([a, b], 1), whole)
        True
        """
        raw = self.speech_logits(gates) > self.threshold_logit  # B, F
        floors = []
        for t in range(raw.shape[1]):
            credit = torch.where(raw[:, t], torch.full_like(credit, self.hangover + 1), (credit - 1).clamp(min=0))
            floors.append(torch.where(credit > 0, credit.new_tensor(speech_floor),
                                      credit.new_tensor(self.pause_value(speech_floor))))
        return torch.stack(floors, 1).to(self.weight.dtype), credit
