"""MaskUNet: the Grad-W enhancer G, a Mel-domain mask U-Net with a ResNet34 encoder.

G reads the noisy log-Mel (after per-utterance mean normalisation), encodes it
with its own ResNet34 trunk (``lobes/resnet.py``), decodes with transposed
convs and skip connections, and predicts a sigmoid mask M at the input's
``n_mels x T`` resolution. The mask multiplies the **Mel power**, which in the
log domain is an addition, exactly as the official Grad-W code does::

    log E = log X_mel + log(M + 1e-6)

The features here are SpeechBrain ``Fbank`` dB (10 log10), so the added term is
``log_scale * ln(M + 1e-6)`` with ``log_scale = 10 / ln 10``; pass
``log_scale=1`` for natural-log features. The enhanced features then go
through the speaker network's own normalisation, like clean input.

Authors
 * speechbrain-dyncp contributors
"""

import math
from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from speechbrain.processing.features import InputNormalization
from torch import Tensor, nn

from speechbrain_dyncp.lobes.resnet import ResNetTrunk

DB_PER_NEPER = 10.0 / math.log(10.0)  # Fbank's 10*log10 in units of ln


class UNetOutput(NamedTuple):
    """Enhanced features and the mask that made them."""

    feats: Tensor  # B, T, F: enhanced log-Mel (same units as the input)
    mask: Tensor  # B, T, F: Mel-power mask in (0, 1)


class _UpBlock(nn.Module):
    """``n_convs`` transposed 3x3 convs (the first one x2 up-sampling) + IN + ReLU."""

    def __init__(self, c_in: int, c_out: int, n_convs: int):
        super().__init__()
        layers = []
        for i in range(n_convs):
            first = i == 0
            layers += [
                nn.ConvTranspose2d(
                    c_in if first else c_out, c_out, 3,
                    stride=2 if first else 1, padding=1, output_padding=1 if first else 0,
                ),
                nn.InstanceNorm2d(c_out, affine=True),
                nn.ReLU(),
            ]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Up-sampled map ``[B, c_out, 2F, 2T]``."""
        return self.net(x)


class _ResBlockIN(nn.Module):
    """Two 3x3 convs with InstanceNorm and a 1x1 shortcut, used after each skip concat."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(c_out, affine=True),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            nn.InstanceNorm2d(c_out, affine=True),
        )
        self.shortcut = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Residual output ``[B, c_out, F, T]``."""
        return torch.relu(self.body(x) + self.shortcut(x))


class MaskUNet(nn.Module):
    """Grad-W's G: ResNet34 encoder, 3-block transposed-conv decoder, sigmoid Mel mask.

    Arguments
    ---------
    n_mels : int
        Mel bins F of the features.
    base_width : int
        Encoder stage-1 channels (32 in Grad-W; 8 is a CPU-sized variant).
    num_blocks : sequence of int
        Encoder BasicBlocks per stage ([3, 4, 6, 3] = ResNet34).
    up_convs : sequence of int
        Transposed convs in the three up-blocks (3, 4, 6 in Grad-W).
    log_scale : float
        Units of the features per natural-log unit (10/ln 10 for Fbank dB).
    mask_floor : float
        The 1e-6 inside ``log(M + 1e-6)``.

    Example
    -------
    >>> g = MaskUNet(n_mels=16, base_width=4, num_blocks=[1, 1, 1, 1], up_convs=[1, 1, 1])
    >>> noisy = torch.randn(2, 21, 16)
    >>> out = g(noisy)
    >>> out.feats.shape, out.mask.shape
    (torch.Size([2, 21, 16]), torch.Size([2, 21, 16]))
    >>> bool(((out.mask > 0) & (out.mask < 1)).all())
    True
    >>> torch.allclose(out.feats - noisy, DB_PER_NEPER * torch.log(out.mask + 1e-6))
    True
    """

    def __init__(
        self,
        n_mels: int = 80,
        base_width: int = 32,
        num_blocks: Sequence[int] = (3, 4, 6, 3),
        up_convs: Sequence[int] = (3, 4, 6),
        log_scale: float = DB_PER_NEPER,
        mask_floor: float = 1e-6,
    ):
        super().__init__()
        if len(up_convs) != 3:
            raise ValueError(f"MaskUNet expects 3 up-blocks, got up_convs={list(up_convs)}.")
        self.n_mels = n_mels
        self.log_scale = log_scale
        self.mask_floor = mask_floor
        self.cmn = InputNormalization(norm_type="sentence", std_norm=False)
        self.encoder = ResNetTrunk(1, base_width, num_blocks)
        c1, c2, c3, c4 = self.encoder.channels
        self.up = nn.ModuleList([_UpBlock(c4, c3, up_convs[0]), _UpBlock(c3, c2, up_convs[1]),
                                 _UpBlock(c2, c1, up_convs[2])])
        self.skip_norm = nn.ModuleList([nn.InstanceNorm2d(c, affine=True) for c in (c3, c2, c1)])
        self.fuse = nn.ModuleList([_ResBlockIN(2 * c, c) for c in (c3, c2, c1)])
        self.head = nn.Conv2d(c1, 1, 1, bias=False)

    def predict_mask(self, feats: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Mask ``[B, T, F]`` in (0, 1) for noisy log-Mel ``feats [B, T, F]``."""
        if feats.ndim != 3 or feats.shape[-1] != self.n_mels:
            raise ValueError(
                f"MaskUNet expects log-Mel features [batch, time, {self.n_mels}], "
                f"got {tuple(feats.shape)}."
            )
        n_t, n_f = feats.shape[1], feats.shape[2]
        x = self.cmn(feats, lengths).transpose(1, 2).unsqueeze(1)  # B, 1, F, T
        # Three x2 up-samplings must land back on the input grid: pad F, T to x8.
        x = F.pad(x, (0, -n_t % 8, 0, -n_f % 8))
        out1, out2, out3, out4 = self.encoder(x)
        y = out4
        for up, norm, fuse, skip in zip(self.up, self.skip_norm, self.fuse, (out3, out2, out1)):
            y = fuse(torch.cat([up(y), norm(skip)], dim=1))
        mask = torch.sigmoid(self.head(y))[:, 0, :n_f, :n_t]  # B, F, T
        return mask.transpose(1, 2)

    def apply_mask(self, feats: Tensor, mask: Tensor) -> Tensor:
        """Multiply the Mel power by ``mask``: add ``log_scale * ln(mask + floor)``."""
        return feats + self.log_scale * torch.log(mask + self.mask_floor)

    def forward(self, feats: Tensor, lengths: Optional[Tensor] = None) -> UNetOutput:
        """Enhanced log-Mel and mask, both ``[B, T, F]``."""
        mask = self.predict_mask(feats, lengths)
        return UNetOutput(self.apply_mask(feats, mask), mask)


def mask_unet_small(n_mels: int = 80) -> MaskUNet:
    """CPU-sized G: width 8, one block per stage, one transposed conv per up-block.

    Example
    -------
    >>> sum(p.numel() for p in mask_unet_small(40).parameters()) < 200_000
    True
    """
    return MaskUNet(n_mels, base_width=8, num_blocks=(1, 1, 1, 1), up_convs=(1, 1, 1))
