"""A GE2E speaker encoder (d-vector) that reads the waveform, laid out as Resemblyzer's.

Wan et al., "Generalized End-to-End Loss for Speaker Verification", ICASSP 2018: three
LSTM layers over 40 mel bands, the last hidden state projected and L2-normalised per
1.6 s window, windows averaged. Resemblyzer (C. Jemine, Apache-2.0) publishes weights
trained on LibriSpeech + VoxCeleb 1/2 inside its PyPI wheel. Its own package cannot be a
dependency (it pins ``webrtcvad``, whose original distribution imports the removed
``pkg_resources``, and the ``typing`` backport), so this module re-implements its
inference in PyTorch with the same features, windows and silence trimming, and loads its
weights (:meth:`GE2EEncoder.load_resemblyzer`); tests/unit/test_ge2e.py holds it to
Resemblyzer's own embeddings.

It reads the waveform, not SpeechBrain's Fbank, so in a speaker model folder it is a
:class:`~speechbrain_dyncp.lobes.embedding_ensemble.WaveformMembers` member.

Authors
 * speechbrain-dyncp contributors
"""
import math
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch
import torchaudio
from torch import nn

INT16_MAX = 2 ** 15 - 1


def resemblyzer_weights_path() -> Path:
    """``pretrained.pt`` of an installed Resemblyzer wheel, found without importing the package
    (its import needs ``webrtcvad``); ``FileNotFoundError`` when it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("resemblyzer")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt" if spec else None
    if path is None or not path.is_file():
        raise FileNotFoundError("Resemblyzer's weights (resemblyzer/pretrained.pt) not found: "
                                "pip install --no-deps resemblyzer")
    return path


class GE2EEncoder(nn.Module):
    """GE2E d-vectors ``[B, D]`` (unit length) of waveforms ``[B, T]`` at 16 kHz.

    Per item (relative ``lengths`` honoured): the level raised (never lowered) to
    ``target_dbfs``; with ``trim_silence`` pauses longer than ~0.2 s cut out by the WebRTC
    VAD (Resemblyzer's preprocessing; needs ``webrtcvad-wheels``); 40 mel power bands
    (25 ms window, 10 ms hop); windows of 160 frames every ``1 / rate`` s; the mean of the
    windows' embeddings, L2-normalised.

    Arguments
    ---------
    n_mels, hidden_size, embedding_size, num_layers : int
        Network size (Resemblyzer's: 40, 256, 256, 3).
    sample_rate : int
        Input rate; 16000 (the weights' rate).
    partial_frames : int
        Window length in 10 ms frames.
    rate : float
        Windows per second.
    min_coverage : float
        The last window is kept when at least this share of it holds signal.
    target_dbfs : float
        Level quiet input is raised to.
    trim_silence : bool
        Cut long pauses with the WebRTC VAD first.

    Example
    -------
    >>> torch.manual_seed(0) and None
    >>> enc = GE2EEncoder(trim_silence=False).eval()
    >>> wavs = 0.1 * torch.randn(2, 32000)
    >>> emb = enc(wavs, torch.tensor([1.0, 0.5]))
    >>> emb.shape, torch.allclose(emb.norm(dim=-1), torch.ones(2))
    (torch.Size([2, 256]), True)
    >>> torch.allclose(emb[1], enc(wavs[1:, :16000])[0], atol=1e-5)  # lengths leave padding out
    True
    """

    def __init__(self, n_mels: int = 40, hidden_size: int = 256, embedding_size: int = 256, num_layers: int = 3,
                 sample_rate: int = 16000, partial_frames: int = 160, rate: float = 1.3, min_coverage: float = 0.75,
                 target_dbfs: float = -30.0, trim_silence: bool = True):
        super().__init__()
        if sample_rate != 16000:
            raise ValueError(f"GE2EEncoder works at 16000 Hz (its weights' rate), not {sample_rate}")
        self.lstm = nn.LSTM(n_mels, hidden_size, num_layers, batch_first=True)
        self.linear = nn.Linear(hidden_size, embedding_size)
        self.n_fft, self.hop = 400, 160  # 25 ms / 10 ms
        self.partial_frames, self.rate, self.min_coverage = partial_frames, rate, min_coverage
        self.target_dbfs, self.trim_silence = target_dbfs, trim_silence
        # librosa's default mel filters (Slaney scale and area normalisation), as Resemblyzer's features
        fb = torchaudio.functional.melscale_fbanks(self.n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate,
                                                   norm="slaney", mel_scale="slaney")
        self.register_buffer("mel_fb", fb, persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def load_resemblyzer(self, path=None) -> "GE2EEncoder":
        """Load Resemblyzer's published weights (default: the installed wheel's ``pretrained.pt``)."""
        path = Path(path) if path is not None else resemblyzer_weights_path()
        state = torch.load(path, map_location="cpu", weights_only=False)["model_state"]
        # the file also holds GE2E's training-only similarity scale and bias
        self.load_state_dict({k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))}, strict=True)
        return self

    def forward(self, wavs: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Unit-length embeddings ``[B, D]`` of waveforms ``[B, T]`` with relative ``lengths`` ``[B]``."""
        if wavs.ndim == 1:
            wavs = wavs.unsqueeze(0)
        if lengths is None:
            lengths = torch.ones(wavs.shape[0], device=wavs.device)
        out = []
        for wav, rel in zip(wavs, lengths):
            out.append(self.embed_one(wav[: int(torch.round(rel * wavs.shape[1]))]))
        return torch.stack(out)

    def embed_one(self, wav: torch.Tensor) -> torch.Tensor:
        """Embedding ``[D]`` of one unpadded waveform ``[T]``."""
        return self.embed_heard(wav)[0]

    def embed_heard(self, wav: torch.Tensor) -> Tuple[torch.Tensor, float]:
        """Embedding ``[D]`` of one unpadded waveform ``[T]`` and the seconds of it left after pause trimming
        (Resemblyzer's ``len(preprocess_wav(x)) / 16000``; near 0 for a file that is all pause, which is then
        embedded untrimmed rather than from nothing)."""
        wav = self._raise_level(wav.float())
        heard = wav.numel()
        if self.trim_silence:
            trimmed = trim_long_silences(wav)
            heard = trimmed.numel()
            if trimmed.numel() >= self.hop * 10:  # all pause: keep the signal rather than embed nothing
                wav = trimmed
        starts, n_pad = self._partials(wav.numel())
        if n_pad > wav.numel():
            wav = nn.functional.pad(wav, (0, n_pad - wav.numel()))
        spec = torch.stft(wav, self.n_fft, self.hop, window=self.window, center=True, pad_mode="constant",
                          return_complex=True).abs() ** 2
        mel = (self.mel_fb.T @ spec).T  # frames, mels
        windows = torch.stack([mel[s: s + self.partial_frames] for s in starts])
        _, (hidden, _) = self.lstm(windows)
        partial = nn.functional.normalize(torch.relu(self.linear(hidden[-1])), dim=-1)
        return nn.functional.normalize(partial.mean(0), dim=-1), heard / 16000.0

    def _raise_level(self, wav: torch.Tensor) -> torch.Tensor:
        rms = wav.pow(2).mean().sqrt()
        if not rms > 0:
            return wav
        gain_db = self.target_dbfs - 20 * torch.log10(rms)
        return wav * 10 ** (gain_db / 20) if gain_db > 0 else wav

    def _partials(self, n_samples: int):
        """Window start frames and the padded length in samples (Resemblyzer's slicing)."""
        n_frames = math.ceil((n_samples + 1) / self.hop)
        step = int(round(16000 / self.rate / self.hop))
        starts = list(range(0, max(1, n_frames - self.partial_frames + step + 1), step))
        coverage = (n_samples - starts[-1] * self.hop) / (self.partial_frames * self.hop)
        if coverage < self.min_coverage and len(starts) > 1:
            starts = starts[:-1]
        return starts, (starts[-1] + self.partial_frames) * self.hop


def trim_long_silences(wav: torch.Tensor, sample_rate: int = 16000, window_ms: int = 30, smooth: int = 8,
                       max_silence: int = 6, mode: int = 3) -> torch.Tensor:
    """``wav`` ``[T]`` without the pauses longer than ``max_silence`` VAD windows (Resemblyzer's rule).

    WebRTC VAD (aggressiveness ``mode``) per ``window_ms`` window, a centred moving average of
    ``smooth`` windows rounded, then voiced regions dilated by ``max_silence`` windows each side.
    """
    import webrtcvad  # webrtcvad-wheels: the C VAD the field uses; imported here so the rest needs nothing

    win = window_ms * sample_rate // 1000
    wav = wav[: wav.numel() - wav.numel() % win]
    if wav.numel() == 0:
        return wav
    # Resemblyzer converts with a wrap-around on overflow; clipping instead only differs on clipped input
    pcm = (wav.detach().cpu().numpy() * INT16_MAX).round().clip(-INT16_MAX - 1, INT16_MAX).astype(np.int16).tobytes()
    vad = webrtcvad.Vad(mode)
    flags = np.array([vad.is_speech(pcm[2 * s: 2 * (s + win)], sample_rate) for s in range(0, wav.numel(), win)],
                     dtype=float)
    padded = np.concatenate([np.zeros((smooth - 1) // 2), flags, np.zeros(smooth // 2)])
    voiced = np.round(np.convolve(padded, np.ones(smooth) / smooth, mode="valid")).astype(bool)
    # dilation by a (max_silence + 1)-wide structuring element, as scipy's binary_dilation
    k = max_silence + 1
    voiced = np.convolve(np.pad(voiced.astype(float), (k // 2, (k - 1) // 2)), np.ones(k), mode="valid") > 0
    keep = torch.from_numpy(np.repeat(voiced, win)).to(wav.device)
    return wav[keep]
