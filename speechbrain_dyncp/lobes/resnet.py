"""ResNet34-style 2-D trunk, shared by the Grad-W U-Net encoder and the ResNet speaker net.

Grad-W (Ma et al., ICASSP 2024) uses the same trunk twice: as the frozen
speaker network E (trunk -> temporal statistics pooling -> 256-d embedding) and
as the trainable encoder of the enhancement U-Net G, whose four stage outputs
are the skip connections. Both live here so the trunk is defined once.

Input maps are ``[B, 1, F, T]`` (log-Mel bins x frames); stage ``i`` has
``base_width * 2**i`` channels and strides 1/2/2/2 in both axes, so stage 4 is
``[B, 8 * base_width, F/8, T/8]`` (ceil).

Authors
 * speechbrain-dyncp contributors
"""

from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from speechbrain_dyncp.lengths import length_mask


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm and an identity (or 1x1-conv) shortcut.

    Arguments
    ---------
    in_channels : int
        Input channels.
    out_channels : int
        Output channels.
    stride : int
        Stride of the first conv (and of the shortcut), in both axes.

    Example
    -------
    >>> block = BasicBlock(8, 16, stride=2)
    >>> block(torch.rand(2, 8, 10, 7)).shape
    torch.Size([2, 16, 5, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        """Residual block output ``[B, out_channels, F', T']``."""
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.shortcut(x))


class ResNetTrunk(nn.Module):
    """Stem conv + four residual stages; returns every stage's output.

    Arguments
    ---------
    in_channels : int
        Channels of the input map (1 for a log-Mel image).
    base_width : int
        Channels of stage 1 (32 in Grad-W); stage i has ``base_width * 2**i``.
    num_blocks : sequence of int
        BasicBlocks per stage ([3, 4, 6, 3] = ResNet34).
    strides : sequence of int
        Stride of each stage's first block ([1, 2, 2, 2]).

    Example
    -------
    >>> trunk = ResNetTrunk(base_width=4, num_blocks=[1, 1, 1, 1])
    >>> [tuple(o.shape) for o in trunk(torch.rand(2, 1, 16, 24))]
    [(2, 4, 16, 24), (2, 8, 8, 12), (2, 16, 4, 6), (2, 32, 2, 3)]
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_width: int = 32,
        num_blocks: Sequence[int] = (3, 4, 6, 3),
        strides: Sequence[int] = (1, 2, 2, 2),
    ):
        super().__init__()
        if len(num_blocks) != 4 or len(strides) != 4:
            raise ValueError(
                f"ResNetTrunk expects 4 stages, got num_blocks={list(num_blocks)}, "
                f"strides={list(strides)}."
            )
        self.channels = [base_width * 2**i for i in range(4)]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, base_width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(base_width),
            nn.ReLU(),
        )
        layers, c_in = [], base_width
        for c_out, n, s in zip(self.channels, num_blocks, strides):
            blocks = [BasicBlock(c_in, c_out, s)]
            blocks += [BasicBlock(c_out, c_out, 1) for _ in range(n - 1)]
            layers.append(nn.Sequential(*blocks))
            c_in = c_out
        # Named layer1..layer4 so a forward hook can target e.g. "trunk.layer4".
        self.layer1, self.layer2, self.layer3, self.layer4 = layers

    def forward(self, x: Tensor) -> List[Tensor]:
        """Stage outputs ``[out1, out2, out3, out4]`` for an input ``[B, C, F, T]``."""
        x = self.stem(x)
        outs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            outs.append(x)
        return outs


class ResNetSpeaker(nn.Module):
    """ResNet34 speaker embedder (Grad-W's E): trunk -> TSTP -> Linear.

    Same call convention as SpeechBrain's ``ECAPA_TDNN``: features ``[B, T, F]``
    and relative lengths in, embedding ``[B, 1, D]`` out, so either network can
    be E, trained by the same recipe and read by the same classifier head.
    Temporal statistics pooling (mean and std over time of the flattened
    ``C x F/8`` map) ignores padded frames.

    Arguments
    ---------
    n_mels : int
        Feature bins F.
    base_width : int
        Trunk width (32 in Grad-W).
    num_blocks : sequence of int
        Blocks per stage.
    lin_neurons : int
        Embedding size (256 in Grad-W).

    Example
    -------
    >>> net = ResNetSpeaker(n_mels=16, base_width=4, num_blocks=[1, 1, 1, 1], lin_neurons=8)
    >>> net(torch.rand(3, 20, 16), torch.tensor([1.0, 0.5, 0.8])).shape
    torch.Size([3, 1, 8])
    """

    def __init__(
        self,
        n_mels: int = 80,
        base_width: int = 32,
        num_blocks: Sequence[int] = (3, 4, 6, 3),
        lin_neurons: int = 256,
    ):
        super().__init__()
        self.trunk = ResNetTrunk(1, base_width, num_blocks)
        f_out = -(-n_mels // 8)  # ceil: three stride-2 stages
        self.n_mels = n_mels
        self.fc = nn.Linear(2 * self.trunk.channels[-1] * f_out, lin_neurons)

    def forward(self, x: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Embedding ``[B, 1, lin_neurons]`` of features ``[B, T, F]``."""
        if x.ndim != 3 or x.shape[-1] != self.n_mels:
            raise ValueError(
                f"ResNetSpeaker expects features [batch, time, {self.n_mels}], "
                f"got {tuple(x.shape)}."
            )
        a = self.trunk(x.transpose(1, 2).unsqueeze(1))[-1]  # B, C, F', T'
        a = a.flatten(1, 2)  # B, C*F', T'
        mask = length_mask(lengths, a.shape[-1], a.shape[0], a.device).unsqueeze(1)
        n = mask.sum(-1, keepdim=True)
        mean = (a * mask).sum(-1, keepdim=True) / n
        var = (((a - mean) * mask) ** 2).sum(-1, keepdim=True) / n
        stats = torch.cat([mean, var.clamp(min=1e-8).sqrt()], dim=1).squeeze(-1)
        return self.fc(stats).unsqueeze(1)
