"""Enhance audio files of any length in bounded memory.

The file is read block by block with soundfile, down-mixed, checked
(NaN/inf raise :class:`~speechbrain_dyncp.data.audio.AudioError` naming the
file and the sample), resampled blockwise if its rate differs, enhanced, and
written block by block to ``<out>.part``, renamed to ``out`` at the end (an
interrupted run never leaves a half-written output; an existing output is
never replaced unless ``overwrite=True``). Memory is O(block), not O(file).

* A causal model runs through its streaming path
  (``make_streaming_context`` / ``forward_streaming`` / ``finish_streaming``),
  which equals the offline ``model(wav)`` sample for sample; the fixed
  streaming latency is removed, so the output is aligned with the input.
* A non-causal model runs on overlapping windows (``block + 2 * context``
  samples) and keeps each window's middle part; the result is exact only
  where the context covers the model's receptive field, otherwise the
  approximation error sits at the block edges.

Blockwise resampling keeps ``resample_margin`` input samples of context on
each side of a block, which makes it equal to resampling the whole file up
to float rounding (torchaudio's sinc kernel is much shorter than the margin).

Authors
 * speechbrain-dyncp contributors
"""

import math
import os
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
import soundfile as sf
import torch
import torchaudio

from speechbrain_dyncp.data.audio import AudioError, check_resample_ratio


def _blocks(path: Path, block: int) -> Iterator[np.ndarray]:
    """Mono float32 blocks of ``block`` samples (the last may be shorter)."""
    try:
        f = sf.SoundFile(str(path))
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise AudioError(f"Cannot read audio file {path}: {exc}") from exc
    with f:
        offset = 0
        while True:
            try:
                data = f.read(block, dtype="float32", always_2d=True)
            except Exception as exc:
                raise AudioError(f"Cannot read audio file {path} after sample {offset}: {exc}") from exc
            if data.shape[0] == 0:
                return
            if not np.isfinite(data).all():
                bad = offset + int(np.argwhere(~np.isfinite(data))[0, 0])
                raise AudioError(f"Audio file {path} contains NaN or infinite samples (first at sample {bad})")
            offset += data.shape[0]
            yield data.mean(axis=1)


def _resampled(blocks: Iterator[np.ndarray], orig: int, new: int, margin: int) -> Iterator[torch.Tensor]:
    """Blockwise resampling equal to resampling the concatenation (see module doc)."""
    g = math.gcd(orig, new)
    o, n = orig // g, new // g
    margin = math.ceil(margin / o) * o
    pending = np.zeros(0, np.float32)  # input not yet emitted, preceded by `left` context samples
    left, emitted = 0, 0
    for blk in blocks:
        pending = np.concatenate([pending, blk])
        usable = (len(pending) - left - margin) // o * o  # keep `margin` of right context
        if usable <= 0:
            continue
        out = torchaudio.functional.resample(torch.from_numpy(pending[: left + usable + margin]), orig, new)
        yield out[left // o * n : (left + usable) // o * n]
        emitted += usable
        keep_from = max(0, left + usable - margin)
        pending, left = pending[keep_from:], left + usable - keep_from
    # the end: zero padding as in the whole-file resample
    total = emitted + len(pending) - left
    expected = math.ceil(total * new / orig)
    out = torchaudio.functional.resample(torch.from_numpy(pending), orig, new)
    done = emitted // o * n
    yield out[left // o * n : left // o * n + expected - done]


@torch.inference_mode()
def enhance_file_chunked(
    model,
    in_path: Union[str, os.PathLike],
    out_path: Union[str, os.PathLike],
    sample_rate: int = 16000,
    block_seconds: float = 10.0,
    context_seconds: float = 1.0,
    group_frames: int = 64,
    resample_margin: int = 2048,
    overwrite: bool = False,
) -> dict:
    """Enhance ``in_path`` into ``out_path`` (16-bit wav) block by block.

    Arguments
    ---------
    model : DynCPEnhancer
        Enhancer in eval mode (``forward(wav [B, T]) -> .wav``; causal models
        also ``make_streaming_context`` / ``forward_streaming`` / ``finish_streaming``).
    in_path, out_path : path-like
        Input audio (any format / rate / channel count libsndfile reads) and output wav.
    sample_rate : int
        The model's rate; other rates are resampled blockwise.
    block_seconds : float
        Samples processed per step: the memory bound is proportional to it.
    context_seconds : float
        Non-causal models only: context on each side of a block.
    group_frames : int
        Causal streaming: frames whose active channels are gathered together
        (speed only; the output does not depend on it).
    resample_margin : int
        Input samples of context for blockwise resampling.
    overwrite : bool
        Replace an existing ``out_path``.

    Returns
    -------
    dict
        ``{"samples": output samples, "sample_rate": ..., "input_rate": ..., "mode": "streaming"|"overlap",
        "clipped": output samples beyond [-1, 1], written clipped}``.

    Example
    -------
    >>> from speechbrain_dyncp.lobes.enhancer import DynCPEnhancer
    >>> d = getfixture("tmp_path")
    >>> model = DynCPEnhancer(channels=8, hidden=8, n_stacks=1, n_blocks=2, gate_hidden=4).eval()
    >>> wav = torch.randn(5000) * 0.1
    >>> sf.write(d / "in.wav", wav.numpy(), 16000, subtype="FLOAT")
    >>> info = enhance_file_chunked(model, d / "in.wav", d / "out.wav", block_seconds=0.05)
    >>> out, _ = sf.read(d / "out.wav", dtype="float32")
    >>> ref = model(wav[None]).wav[0].detach().clamp(-1, 1)
    >>> info["mode"], bool(np.abs(out - ref.numpy()).max() < 1e-4)
    ('streaming', True)
    """
    in_path, out_path = Path(in_path), Path(out_path)
    if not in_path.exists():
        raise FileNotFoundError(f"Audio file not found: {in_path}")
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"Refusing to overwrite existing file {out_path}")
    if model.training:
        raise ValueError("enhance_file_chunked needs model.eval() (eval-mode norms, binary gates)")
    try:
        info = sf.info(str(in_path))
    except Exception as exc:
        raise AudioError(f"Cannot read audio file {in_path}: {exc}") from exc
    if info.frames == 0:
        raise AudioError(f"Audio file {in_path} is empty (0 samples)")
    in_rate = info.samplerate
    raw = _blocks(in_path, max(1, int(block_seconds * in_rate)))
    if in_rate != sample_rate:
        check_resample_ratio(in_rate, sample_rate, in_path)
        blocks = _resampled(raw, in_rate, sample_rate, resample_margin)
    else:
        blocks = (torch.from_numpy(b) for b in raw)
    causal = getattr(model, "causal", False) and hasattr(model, "make_streaming_context")
    if causal:
        enhanced = _streamed(model, blocks, group_frames)
    else:  # windows start on the STFT grid, so their frames are the whole file's frames
        hop = getattr(model, "hop_length", 1)
        grid = lambda seconds: max(1, round(seconds * sample_rate / hop)) * hop  # noqa: E731
        enhanced = _overlapped(model, blocks, grid(block_seconds), grid(context_seconds))

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".part")
    written = clipped = 0
    try:
        with sf.SoundFile(str(tmp), "w", samplerate=sample_rate, channels=1, subtype="PCM_16", format="WAV") as fo:
            for piece in enhanced:
                piece = piece.float().reshape(-1)
                if not bool(torch.isfinite(piece).all()):
                    raise AudioError(f"The enhancer produced NaN/inf for {in_path} near output sample {written}")
                clipped += int((piece.abs() > 1.0).sum())  # reported: 16-bit output cannot hold them
                fo.write(piece.clamp(-1.0, 1.0).numpy())
                written += piece.numel()
    except BaseException:
        tmp.unlink(missing_ok=True)  # no half-written output left behind
        raise
    os.replace(tmp, out_path)
    return {"samples": written, "sample_rate": sample_rate, "input_rate": in_rate,
            "mode": "streaming" if causal else "overlap", "clipped": clipped}


def _streamed(model, blocks: Iterator[torch.Tensor], group_frames: int) -> Iterator[torch.Tensor]:
    """Causal streaming with the latency removed: output sample i is input sample i's."""
    ctx = model.make_streaming_context(batch_size=1, group_frames=group_frames)
    skip = ctx.latency
    for blk in blocks:
        out = model.forward_streaming(blk[None], ctx)[0]
        drop = min(skip, out.numel())
        skip -= drop
        yield out[drop:]
    tail = model.finish_streaming(ctx)[0]
    yield tail[skip:]


def _overlapped(model, blocks: Iterator[torch.Tensor], block: int, context: int) -> Iterator[torch.Tensor]:
    """Windows of ``context + block + context`` samples; each keeps its middle ``block``."""
    buf = torch.zeros(0)
    start = 0  # index in buf of the first sample not yet emitted
    for blk in blocks:
        buf = torch.cat([buf, blk])
        while buf.numel() - start >= block + context:
            lo = max(0, start - context)
            out = model(buf[lo : start + block + context][None]).wav[0]
            yield out[start - lo : start - lo + block]
            start += block
            cut = max(0, start - context)
            buf, start = buf[cut:], start - cut
    if buf.numel() > start:
        lo = max(0, start - context)
        yield model(buf[lo:][None]).wav[0][start - lo :]


def peak_rss_mb() -> Optional[float]:
    """Peak resident memory of this process in MiB (Linux / macOS), None elsewhere."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if os.uname().sysname == "Darwin" else peak / 1024
