"""DNSMOS P.835 as a differentiable PyTorch module: a perceptual training term (MetricGAN-U style).

DNSMOS P.835 (Reddy et al., ICASSP 2022) is a CNN that predicts the SIG / BAK / OVRL opinion
scores of ITU-T P.835 from 9.01 s of 16 kHz audio. Its ONNX graph (the one ``speechmos`` ships
and ``benchmarks/bench_real.py`` scores with) is small: 320-sample frames with a 160-sample hop,
a DFT as a 1x1 convolution, log10 power, seven 3x3 convolutions with three 2x2 max-pools, a
global max-pool and three dense layers. :class:`DNSMOSP835` rebuilds that graph from the ONNX
file's own weights, so it gives the same scores (tested against onnxruntime) and gradients with
respect to the waveform. Written here because ``onnx2torch`` needs torchvision, which this
project does not otherwise install, for ops this graph does not use.

The network is fully convolutional up to the global max-pool, so it runs on any length of at
least 320 samples. The official code tiles a clip shorter than 9.01 s to that length and averages
1 s hops over longer ones; on the 2 s training crops the untiled score differs from the official
one by about 0.05-0.15 MOS (zero padding at the convolutions' edges), which a training term can
live with. Scores reported as DNSMOS come from the official code (``bench_real.py``).

:func:`dnsmos_loss` is minus the mean OVRL score. Using the evaluation metric as a training term
makes DNSMOS figures of a model trained with it no longer independent: report an independent
check beside them (DNSMOS P.808, a separate network on log-mel input, plus PESQ / SI-SDR).

Authors
 * speechbrain-dyncp contributors
"""
import os
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

SAMPLE_RATE = 16000
FRAME, HOP = 320, 160
# Non-personalised polynomial maps from the network's raw outputs to MOS (speechmos / DNS-Challenge
# dnsmos_local.py), highest power first: SIG, BAK, OVRL.
POLYFIT = (
    (-0.08397278, 1.22083953, 0.0052439),
    (-0.13166888, 1.60915514, -0.39604546),
    (-0.06766283, 1.11546468, 0.04602535),
)
CONV_NAMES = [f"conv2d{'' if i == 0 else f'_{i}'}" for i in range(7)]
POOL_AFTER = {3, 4, 5}  # 2x2 max-pool after these convolutions (0-based)
DENSE_NAMES = ("dense", "dense_1", "dense_3")


def speechmos_model_path() -> str:
    """Path of the DNSMOS P.835 ONNX file inside the installed ``speechmos`` package."""
    try:
        import speechmos
    except ImportError as exc:  # the [perceptual] (and [bench]) extra installs it
        raise ImportError("DNSMOS needs the 'speechmos' package: pip install -e '.[perceptual]'") from exc
    return os.path.join(os.path.dirname(speechmos.__file__), "dnsmos_models", "sig_bak_ovr.onnx")


def _onnx_weights(path: str) -> dict:
    import onnx
    from onnx import numpy_helper

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no DNSMOS ONNX model there")
    return {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
            for i in onnx.load(path).graph.initializer}


class DNSMOSP835(torch.nn.Module):
    """DNSMOS P.835 (SIG, BAK, OVRL) of waveforms, differentiable; weights frozen.

    Arguments
    ---------
    onnx_path : str, optional
        The ``sig_bak_ovr.onnx`` file (default: the one in ``speechmos``).

    Example
    -------
    >>> import numpy as np
    >>> from speechmos import dnsmos
    >>> model = DNSMOSP835()
    >>> wav = 0.05 * torch.randn(1, 9 * 16000 + 160)
    >>> ours = model(wav)[0, 2].item()
    >>> official = dnsmos.run(wav[0].numpy(), 16000)["ovrl_mos"]
    >>> bool(abs(ours - official) < 1e-3)
    True
    """

    def __init__(self, onnx_path: Optional[str] = None):
        super().__init__()
        w = _onnx_weights(onnx_path or speechmos_model_path())
        # DFT kernels [161, 320, 1] -> one [322, 1, 320] conv over the raw waveform, stride HOP.
        dft = torch.cat([w["time2freq/stft-real/kernel:0"], w["time2freq/stft-imag/kernel:0"]])
        self.register_buffer("dft", dft.squeeze(-1).unsqueeze(1))
        for i, name in enumerate(CONV_NAMES):
            self.register_buffer(f"conv{i}_w", w[f"{name}/kernel:0"])
            self.register_buffer(f"conv{i}_b", w[f"{name}/bias:0"])
        for i, name in enumerate(DENSE_NAMES):
            prefix = f"mos_estimator_logpow/{name}"
            self.register_buffer(f"dense{i}_w", w[f"{prefix}/MatMul/ReadVariableOp/resource:0"])
            self.register_buffer(f"dense{i}_b", w[f"{prefix}/BiasAdd/ReadVariableOp/resource:0"])
        self.register_buffer("poly", torch.tensor(POLYFIT))
        self.requires_grad_(False)

    def raw(self, wav: Tensor) -> Tensor:
        """The network's raw outputs ``[B, 3]`` (before the polynomial map) for ``wav`` ``[B, T]``."""
        if wav.shape[-1] < FRAME:
            raise ValueError(f"DNSMOS needs at least {FRAME} samples, got {wav.shape[-1]}")
        spec = F.conv1d(wav.unsqueeze(1), self.dft, stride=HOP)  # [B, 322, frames]
        re, im = spec.chunk(2, dim=1)
        # the graph's sqrt then square: |X|^2, floored at 1e-12 before log10
        power = (re * re + im * im).clamp(min=1e-12)
        x = torch.log10(power).transpose(1, 2).unsqueeze(1)  # [B, 1, frames, 161]
        for i in range(len(CONV_NAMES)):
            x = F.relu(F.conv2d(x, getattr(self, f"conv{i}_w"), getattr(self, f"conv{i}_b"), padding=1))
            if i in POOL_AFTER:
                x = F.max_pool2d(x, 2)
        x = x.amax(dim=(2, 3))
        for i in range(len(DENSE_NAMES)):
            x = x @ getattr(self, f"dense{i}_w") + getattr(self, f"dense{i}_b")
            if i < len(DENSE_NAMES) - 1:
                x = F.relu(x)
        return x

    def forward(self, wav: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """MOS ``[B, 3]`` (SIG, BAK, OVRL) of ``wav`` ``[B, T]``; ``lengths`` relative, padding left out."""
        if lengths is None:
            raw = self.raw(wav)
        else:  # padded frames would enter the global max-pool: score each item on its own samples
            n = (lengths * wav.shape[-1]).round().long().clamp(min=FRAME, max=wav.shape[-1])
            raw = torch.cat([self.raw(wav[i : i + 1, : int(n[i])]) for i in range(wav.shape[0])])
        p = self.poly
        return p[:, 0] * raw ** 2 + p[:, 1] * raw + p[:, 2]


def dnsmos_loss(model: DNSMOSP835, wav: Tensor, lengths: Optional[Tensor] = None,
                max_items: Optional[int] = None) -> Tensor:
    """Minus the mean DNSMOS OVRL of ``wav`` (``[B, T]``), on its first ``max_items`` items.

    ``max_items`` bounds the cost: the network costs about as much per second of audio as a
    small enhancer's whole training step, so a share of each batch carries the term.

    Example
    -------
    >>> model = DNSMOSP835()
    >>> wav = (0.05 * torch.randn(2, 16000)).requires_grad_()
    >>> loss = dnsmos_loss(model, wav, max_items=1)
    >>> loss.backward()
    >>> bool(wav.grad[0].abs().sum() > 0), bool(wav.grad[1].abs().sum() == 0)
    (True, True)
    """
    k = wav.shape[0] if max_items is None else min(max_items, wav.shape[0])
    return -model(wav[:k], None if lengths is None else lengths[:k])[:, 2].mean()
