"""DynCP enhancer (Conv-FSENet): STFT -> point-wise front-end -> gated TCN -> mask -> iSTFT.

Conventions of the DynCP paper (Miccini et al., ICASSP 2025): 16 kHz, n_fft 512, hop 256, periodic Hann,
``center=True`` with zero padding, so frame t is centred on sample t*256 and a
signal of L samples has ``N = 1 + L // 256`` frames (the corpus label grid).
The sigmoid mask multiplies the complex noisy STFT.

Lengths and padding: relative ``lengths`` give ``L_b = round(lengths_b * T)``
valid samples (rounded with :func:`speechbrain_dyncp.lengths.frame_lengths`);
samples past ``L_b`` are zeroed, frames past ``1 + L_b // hop`` are invalid
(``frame_mask`` False), the TCN ignores them, and the inverse STFT normalises
with the window energy of valid frames only. Hence every valid output sample
is exactly what the unpadded item gives, in causal and non-causal mode
(tested with lengths like 7/13). Mask and output are zero on padding.

Streaming (causal models): :meth:`DynCPEnhancer.forward_streaming` takes any
chunk size and returns the offline output delayed by ``n_fft - 1`` samples,
computing only the active channels (:mod:`speechbrain_dyncp.streaming`);
:class:`speechbrain_dyncp.streaming.FastStreamer` is the same with a C kernel,
where the skipped channels show up as wall-clock savings.

Authors
 * speechbrain-dyncp contributors
"""

from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from speechbrain_dyncp import streaming
from speechbrain_dyncp.lengths import frame_lengths
from speechbrain_dyncp.lobes.gated_tcn import GatedTCN
from speechbrain_dyncp.lobes.pause_floor import PauseFloor
from speechbrain_dyncp.lobes.stft_masking import attenuation_floor, masked_istft  # noqa: F401 (re-exported)
from speechbrain_dyncp.streaming import StreamingContext

FEATURES = ("mag", "compressed")


class EnhancerOutput(NamedTuple):
    """Output of :class:`DynCPEnhancer`."""

    wav: Tensor  # B, T enhanced waveform (zero past each length)
    mask: Tensor  # B, N, F in [0, 1] (zero on padded frames)
    gates: Tensor  # B, L, N, H in {0, 1}; all ones when gated=False
    frame_mask: Tensor  # B, N bool, True on valid frames
    floors: Optional[Tensor] = None  # B, N, 1 per-frame mask floors with a pause floor, else None


class DynCPEnhancer(nn.Module):
    """Conv-FSENet with DynCP channel gates on every TCN block's hidden channels.

    Arguments
    ---------
    n_fft : int
        FFT size (window length).
    hop_length : int
        Hop in samples.
    sample_rate : int
        Sample rate (informative; the model works in samples).
    channels : int
        Residual width B (front-end output).
    hidden : int
        Hidden width H per block (the gated channels).
    kernel_size : int
        Depthwise kernel P.
    n_stacks, n_blocks : int
        TCN layout; L = n_stacks * n_blocks gated blocks.
    causal : bool
        Causal TCN and gate pooling (streamable).
    gated : bool
        False gives the dense baseline (gates all ones).
    feature : str
        ``"mag"``: ``|X|`` (the paper's config); ``"compressed"``:
        ``(|X| + 1e-9) ** compression``.
    compression : float
        Power-law exponent for ``feature="compressed"``.
    gate_input, gate_window, gate_hidden, gate_layers, gate_backward, gate_beta, gate_threshold, gate_init_bias
        See :class:`~speechbrain_dyncp.lobes.gated_tcn.GatedTCN`.
    dropout : float
        Dropout in the TCN blocks.
    attenuation_limit_db : float, optional
        Largest attenuation the mask may apply, in dB (DeepFilterNet's
        ``atten_lim_db``): the mask becomes ``floor + (1 - floor) * sigmoid``
        with ``floor = 10 ** (-limit / 20)``, the same as mixing ``floor`` of the
        noisy input back into the output. None (default) or 0 = no limit. On real
        speech a 20 dB limit removes most of the harm to clean and high-SNR input
        at almost no cost at low SNR (docs/results_real.md); every inference path
        (offline, PyTorch and C streaming, ONNX) applies it.
    pause_attenuation_limit_db : float, optional
        A deeper limit for the frames the gates call non-speech
        (:class:`~speechbrain_dyncp.lobes.pause_floor.PauseFloor`: a copy of the fitted VAD
        probe, in this module's weights as ``pause_floor.*``; set it with
        ``recipes/DynCP/set_pause_floor.py``). Needs a gated model and an
        ``attenuation_limit_db`` below it. None (default) = one limit for all frames.
    pause_vad_threshold, pause_hangover_frames, pause_low_snr_db, pause_low_snr_window, pause_low_snr_min_frames
        ``PauseFloor``'s speech threshold (VAD probability), hangover (frames) and low-SNR part (speech
        frames whose running mask energy ratio is below ``pause_low_snr_db`` get the pause limit too).

    Example
    -------
    >>> model = DynCPEnhancer(channels=16, hidden=32, n_stacks=1, n_blocks=2, gate_hidden=8).eval()
    >>> out = model(torch.randn(2, 4000), lengths=torch.tensor([1.0, 0.5]))
    >>> out.wav.shape, out.mask.shape, out.gates.shape, out.frame_mask.sum(1)
    (torch.Size([2, 4000]), torch.Size([2, 16, 257]), torch.Size([2, 2, 16, 32]), tensor([16,  8]))
    >>> bool(((out.gates == 0) | (out.gates == 1)).all())
    True
    """

    def __init__(
        self,
        n_fft: int = 512,
        hop_length: int = 256,
        sample_rate: int = 16000,
        channels: int = 128,
        hidden: int = 256,
        kernel_size: int = 3,
        n_stacks: int = 3,
        n_blocks: int = 3,
        causal: bool = True,
        gated: bool = True,
        feature: str = "mag",
        compression: float = 0.3,
        gate_input: str = "block",
        gate_window: int = 4,
        gate_hidden: int = 64,
        gate_layers: int = 2,
        gate_backward: str = "surrogate",
        gate_beta: float = 5.0,
        gate_threshold: float = 0.0,
        gate_init_bias: float = 0.5,
        dropout: float = 0.0,
        attenuation_limit_db: Optional[float] = None,
        pause_attenuation_limit_db: Optional[float] = None,
        pause_vad_threshold: float = 0.3,
        pause_hangover_frames: int = 8,
        pause_low_snr_db: Optional[float] = None,
        pause_low_snr_window: int = 100,
        pause_low_snr_min_frames: int = 50,
    ):
        super().__init__()
        if feature not in FEATURES:
            raise ValueError(f"Unknown feature {feature!r}; choose from {FEATURES}.")
        self.n_fft, self.hop_length, self.sample_rate = n_fft, hop_length, sample_rate
        self.n_freq = n_fft // 2 + 1
        self.causal, self.gated = causal, gated
        self.feature, self.compression = feature, compression
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.front = nn.Linear(self.n_freq, channels)
        self.tcn = GatedTCN(
            channels, hidden, kernel_size=kernel_size, n_stacks=n_stacks, n_blocks=n_blocks,
            causal=causal, gated=gated, gate_input=gate_input, gate_window=gate_window,
            gate_hidden=gate_hidden, gate_layers=gate_layers, gate_backward=gate_backward,
            gate_beta=gate_beta, gate_threshold=gate_threshold, gate_init_bias=gate_init_bias,
            dropout=dropout,
        )
        self.back = nn.Linear(channels, self.n_freq)
        attenuation_floor(attenuation_limit_db)  # a bad value fails here, not at the first forward
        self.attenuation_limit_db = attenuation_limit_db
        self.pause_floor = PauseFloor.for_enhancer(
            gated, n_stacks * n_blocks, hidden, attenuation_limit_db, pause_attenuation_limit_db, pause_vad_threshold,
            pause_hangover_frames, pause_low_snr_db, pause_low_snr_window, pause_low_snr_min_frames)

    @property
    def mask_floor(self) -> float:
        """Smallest mask value (:func:`attenuation_floor` of ``attenuation_limit_db``)."""
        return attenuation_floor(self.attenuation_limit_db)

    def mask_from_logits(self, logits: Tensor, floor: Optional[Tensor] = None) -> Tensor:
        """Mask in ``[floor, 1]`` from the back-end's logits (the one place the activation lives;
        the C kernel and the NumPy streamer repeat it, see streaming/numpy_net.py); ``floor``
        (broadcastable, per frame: the pause floor) replaces the model's constant one."""
        mask = torch.sigmoid(logits)
        if floor is None:
            floor = self.mask_floor
            if floor == 0.0:
                return mask
        return floor + (1.0 - floor) * mask

    @property
    def power_exponent(self) -> float:
        """``p`` with ``feats ** p == |X|^2`` (``(|X| + 1e-9) ** c`` undone for compressed features): the input
        power the low-SNR floor weighs the mask with, computable in every path from the features alone."""
        return 2.0 / self.compression if self.feature == "compressed" else 2.0

    def frame_floors(self, gates: Tensor, logits: Optional[Tensor] = None,
                     feats: Optional[Tensor] = None) -> Optional[Tensor]:
        """Per-frame mask floor ``[B, N, 1]`` from gates ``[B, L, N, H]`` (a low-SNR floor also reads the
        logits and features ``[B, N, F]``), or None without a pause floor."""
        if self.pause_floor is None:
            return None
        energies = None
        if self.pause_floor.low_snr_db is not None:
            energies = self.pause_floor.frame_energies(logits, feats, self.power_exponent)
        return self.pause_floor.frame_floors(gates, self.mask_floor, energies)

    def spectrum(self, wav: Tensor) -> Tensor:
        """The analysis STFT ``[B, F, N]`` of ``wav`` ``[B, T]`` (centred frames, zero padding)."""
        return torch.stft(wav, self.n_fft, self.hop_length, window=self.window, center=True,
                          pad_mode="constant", return_complex=True)

    def features(self, spec: Tensor) -> Tensor:
        """Input features ``[B, N, F]`` from the complex STFT ``[B, F, N]``."""
        mag = spec.abs().transpose(1, 2)
        if self.feature == "compressed":
            mag = (mag + 1e-9) ** self.compression
        return mag

    def masker(self, feats: Tensor, frame_mask: Optional[Tensor] = None):
        """Features ``[B, N, F]`` -> (mask ``[B, N, F]``, gates ``[B, L, N, H]``)."""
        mask, gates, _ = self.masker_floors(feats, frame_mask)
        return mask, gates

    def masker_floors(self, feats: Tensor, frame_mask: Optional[Tensor] = None):
        """:meth:`masker` plus the per-frame floors it used (``[B, N, 1]``, or None: the constant one)."""
        logits, gates = self.mask_logits(feats, frame_mask)
        floors = self.frame_floors(gates, logits, feats)
        return self.mask_from_logits(logits, floors), gates, floors

    def mask_logits(self, feats: Tensor, frame_mask: Optional[Tensor] = None):
        """Features ``[B, N, F]`` -> (the back-end's logits ``[B, N, F]``, gates ``[B, L, N, H]``): the network."""
        out = self.tcn(torch.relu(self.front(feats)), frame_mask)  # front-end: B, N, C
        return self.back(out.out), out.gates

    def forward(self, wav: Tensor, lengths: Optional[Tensor] = None) -> EnhancerOutput:
        """Enhance ``wav`` ``[B, T]``; ``lengths`` relative ``[B]`` (any device).

        Arguments
        ---------
        wav : torch.Tensor
            Noisy waveforms ``[B, T]``.
        lengths : torch.Tensor, optional
            Relative lengths in (0, 1]; None = all full length.

        Returns
        -------
        EnhancerOutput
            ``wav`` ``[B, T]``, ``mask`` ``[B, N, F]``, ``gates`` ``[B, L, N, H]``,
            ``frame_mask`` ``[B, N]``.
        """
        if wav.ndim != 2:
            raise ValueError(
                f"DynCPEnhancer expects waveforms [batch, time], got {tuple(wav.shape)}; "
                "for one file use wav.unsqueeze(0)."
            )
        if not bool(torch.isfinite(wav).all()):
            raise ValueError("DynCPEnhancer got NaN or infinite samples; clean the input first.")
        b, t = wav.shape
        n_valid = frame_lengths(lengths, t, b).to(wav.device)  # samples, rounded
        sample_mask = torch.arange(t, device=wav.device)[None] < n_valid[:, None]
        wav = wav * sample_mask.to(wav.dtype)
        spec = self.spectrum(wav)  # B, F, N
        n = spec.shape[-1]
        frame_mask = torch.arange(n, device=wav.device)[None] < (1 + n_valid // self.hop_length)[:, None]
        mask, gates, floors = self.masker_floors(self.features(spec), frame_mask)
        mask = mask * frame_mask.unsqueeze(-1).to(mask.dtype)
        est = masked_istft(spec * mask.transpose(1, 2), frame_mask, self.window, self.hop_length, t)
        if not bool(torch.isfinite(est).all()):
            raise ValueError(f"DynCPEnhancer overflowed float32 (input peak |x| = "
                             f"{float(wav.abs().max()):.3g}); normalise the waveform.")
        return EnhancerOutput(est * sample_mask.to(est.dtype), mask, gates, frame_mask, floors)

    def make_streaming_context(self, batch_size: int = 1, group_frames: int = 1, skip_pruned: bool = True,
                               keep_gates: bool = False) -> StreamingContext:
        """Fresh state for :meth:`forward_streaming` (causal model in eval mode).

        Arguments
        ---------
        batch_size : int
            Streams processed together.
        group_frames : int
            Frames computed together; pruned channels are skipped per group
            (the union of the group's gates is computed). 1 = per frame.
        skip_pruned : bool
            Gather only active channels (True) or compute all and multiply.
        keep_gates : bool
            Record the gates of every frame in ``ctx.gates``.

        Returns
        -------
        StreamingContext
            See :mod:`speechbrain_dyncp.streaming`.
        """
        return streaming.make_context(self, batch_size, group_frames, skip_pruned, keep_gates)

    def forward_streaming(self, chunk: Tensor, ctx: StreamingContext) -> Tensor:
        """Enhance ``chunk`` ``[B, S]`` (any S); returns ``[B, S]`` delayed by ``ctx.latency``.

        Arguments
        ---------
        chunk : torch.Tensor
            Next input samples.
        ctx : StreamingContext
            From :meth:`make_streaming_context`; updated in place.

        Returns
        -------
        torch.Tensor
            ``[B, S]``; the concatenated outputs from sample ``ctx.latency`` on equal the offline output.

        Example
        -------
        >>> model = dyncp_small(channels=8, hidden=16, gate_hidden=4, n_stacks=1).eval()
        >>> x = torch.randn(1, 1500)
        >>> ctx = model.make_streaming_context()
        >>> y = torch.cat([model.forward_streaming(c, ctx) for c in x.split(700, 1)]
        ...               + [model.finish_streaming(ctx)], 1)
        >>> torch.allclose(y[:, ctx.latency:], model(x).wav, atol=1e-4)
        True
        """
        return streaming.forward_streaming(self, chunk, ctx)

    def finish_streaming(self, ctx: StreamingContext) -> Tensor:
        """End of stream: flush the last ``ctx.latency`` output samples ``[B, latency]``.

        Arguments
        ---------
        ctx : StreamingContext
            The stream's context (cannot be used afterwards).

        Returns
        -------
        torch.Tensor
            The remaining output samples.
        """
        return streaming.finish_streaming(self, ctx)


def dyncp_small(**overrides) -> DynCPEnhancer:
    """Tiny CPU-trainable DynCP enhancer: 2 stacks x 3 blocks, B=64, H=128, r=32.

    Arguments
    ---------
    **overrides
        Any :class:`DynCPEnhancer` argument.

    Returns
    -------
    DynCPEnhancer

    Example
    -------
    >>> model = dyncp_small()
    >>> model.tcn.n_gated, model.tcn.hidden
    (6, 128)
    """
    cfg = dict(channels=64, hidden=128, n_stacks=2, n_blocks=3, gate_hidden=32)
    cfg.update(overrides)
    return DynCPEnhancer(**cfg)
