"""Causal frame-in / frame-out streaming of :class:`DynCPEnhancer`, skipping pruned channels.

One framer and overlap-add for every path, several ways to compute a frame:

* :mod:`~speechbrain_dyncp.streaming.framing`: :class:`OverlapAdd`, input buffer, STFT
  framing (``torch.stft(center=True)`` alignment), overlap-add and the fixed
  ``n_fft - 1`` samples latency, on NumPy arrays or torch tensors;
* :mod:`~speechbrain_dyncp.streaming.engine`: the batched PyTorch engine behind
  :meth:`DynCPEnhancer.forward_streaming` (``make_context``, ``forward_streaming``,
  ``finish_streaming``), gathering only the active channels per frame group;
* :mod:`~speechbrain_dyncp.streaming.fast`: :class:`FastStreamer` (batch 1), the network
  in NumPy (:mod:`~speechbrain_dyncp.streaming.numpy_net`) or in the C kernel built at
  install time (:mod:`~speechbrain_dyncp.streaming.kernel`, ``dyncp_frame.c``);
* :mod:`~speechbrain_dyncp.streaming.onnx_step`: the frame step with explicit state that
  ``step.onnx`` holds, and :class:`OnnxStreamingEnhancer` that runs it;
* :mod:`~speechbrain_dyncp.streaming.union`: :func:`union_skipping`, offline batches that
  leave out the channels pruned in the whole batch.

Use::

    ctx = model.make_streaming_context(batch_size=1)
    for chunk in chunks:                      # any size in samples, [B, S]
        out = model.forward_streaming(chunk, ctx)   # [B, S]
    tail = model.finish_streaming(ctx)        # [B, latency]

Authors
 * speechbrain-dyncp contributors
"""

from speechbrain_dyncp.streaming.engine import (
    BlockPlan,
    BlockState,
    StreamingContext,
    block_plans,
    finish_streaming,
    forward_streaming,
    make_context,
)
from speechbrain_dyncp.streaming.fast import FastStreamer
from speechbrain_dyncp.streaming.framing import OverlapAdd
from speechbrain_dyncp.streaming.kernel import c_available
from speechbrain_dyncp.streaming.union import union_skipping

__all__ = ["BlockPlan", "BlockState", "FastStreamer", "OverlapAdd", "StreamingContext", "block_plans",
           "c_available", "finish_streaming", "forward_streaming", "make_context", "union_skipping"]
