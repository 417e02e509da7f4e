"""Speaker-network features of (optionally enhanced) speech: one pipeline for every path.

Grad-W compares E's activations on clean and on enhanced input, so the clean,
noisy and enhanced signals must reach E through the *same* feature extractor
(SpeechBrain ``Fbank``: 25/10 ms Hamming STFT, power Mel, 10 log10). E's own
mean normalisation is applied later, inside the speaker model.

:class:`EnhancedFeatures` puts an enhancer G in front of that extractor and
lets the recipe pick G by YAML:

* ``domain="mel"``: G maps noisy log-Mel to enhanced log-Mel
  (:class:`~speechbrain_dyncp.lobes.unet.MaskUNet`, Grad-W's own G);
* ``domain="wave"``: G maps waveforms to waveforms
  (``speechbrain_dyncp.lobes.enhancer.DynCPEnhancer``, whose ``forward``
  returns an object with a ``wav`` field), then the extractor runs on its output;
* ``enhancer=None``: no enhancement (the noisy baseline).

Authors
 * speechbrain-dyncp contributors
"""

from typing import Optional

import torch  # noqa: F401  (doctest namespace)
from torch import Tensor, nn

DOMAINS = ("mel", "wave")


class EnhancedFeatures(nn.Module):
    """Log-Mel features of ``enhancer(wav)`` (or of ``wav`` when there is no enhancer).

    Arguments
    ---------
    features : nn.Module
        ``wav [B, T] -> [B, N, F]`` (e.g. ``speechbrain.lobes.features.Fbank``);
        the same object must serve clean, noisy and enhanced speech.
    enhancer : nn.Module, optional
        G; see the module docstring for the two accepted kinds.
    domain : {"mel", "wave"}
        Where G works.

    Example
    -------
    >>> from speechbrain.lobes.features import Fbank
    >>> from speechbrain_dyncp.lobes.unet import mask_unet_small
    >>> fbank = Fbank(n_mels=24)
    >>> wav = torch.randn(2, 4000)
    >>> plain = EnhancedFeatures(fbank)
    >>> torch.equal(plain(wav), fbank(wav))
    True
    >>> g = EnhancedFeatures(fbank, mask_unet_small(24), domain="mel")
    >>> bool((g(wav) <= fbank(wav) + 1e-5).all())  # a mask in (0, 1) only removes power
    True
    """

    def __init__(self, features: nn.Module, enhancer: Optional[nn.Module] = None, domain: str = "mel"):
        super().__init__()
        if domain not in DOMAINS:
            raise ValueError(f"Unknown enhancer domain {domain!r}; choose from {list(DOMAINS)}.")
        self.features = features
        self.enhancer = enhancer
        self.domain = domain

    def forward(self, wav: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Features ``[B, N, F]`` of the (enhanced) waveforms ``wav [B, T]``."""
        if wav.ndim != 2:
            raise ValueError(
                f"EnhancedFeatures expects waveforms [batch, time], got {tuple(wav.shape)}; "
                "for one file use wav.unsqueeze(0)."
            )
        if self.enhancer is None:
            return self.features(wav)
        if self.domain == "wave":
            out = self.enhancer(wav, lengths)
            enhanced = out.wav if hasattr(out, "wav") else out
            return self.features(enhanced)
        out = self.enhancer(self.features(wav), lengths)
        return out.feats if hasattr(out, "feats") else out

