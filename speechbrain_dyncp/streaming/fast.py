"""Low-overhead per-frame streaming (batch 1) of a causal :class:`DynCPEnhancer`.

Same contract as the PyTorch engine (:mod:`speechbrain_dyncp.streaming.engine`;
any chunk size, output delayed by ``latency = n_fft - 1`` samples, ``finish()``
flushes the end like the offline centred STFT), with the same framer
(:class:`~speechbrain_dyncp.streaming.framing.OverlapAdd`), but the per-frame
work runs in NumPy, and the network itself either in NumPy
(``backend="numpy"``, :mod:`~speechbrain_dyncp.streaming.numpy_net`) or in the
C kernel built at install time (``backend="c"``,
:mod:`~speechbrain_dyncp.streaming.kernel`; :func:`c_available` says whether it
was built).

Why: one frame of the base model is ~0.66 M MACs in ~250 tiny ops. PyTorch
spends far more time dispatching those ops than multiplying, so skipping 75% of
the channels saves MACs but no wall-clock time. NumPy dispatch is cheaper;
the C kernel has no per-op cost at all, so its time tracks the MACs.

Authors
 * speechbrain-dyncp contributors
"""

import copy

import numpy as np

from speechbrain_dyncp.streaming.framing import FrameStream, OverlapAdd
from speechbrain_dyncp.streaming.kernel import KernelNet
from speechbrain_dyncp.streaming.numpy_net import NumpyNet, spectral_features, stream_weights

class FastStreamer(FrameStream):
    """Per-frame streamer of a causal eval-mode ``DynCPEnhancer`` (batch 1).

    Arguments
    ---------
    model : DynCPEnhancer
        Causal model in eval mode (weights are copied).
    backend : str
        ``"c"`` (the kernel built at install time) or ``"numpy"``.
    dtype : numpy dtype
        ``np.float32`` (default) or ``np.float64``.
    c_fft : bool
        With ``backend="c"`` and a power-of-two ``n_fft``, run the whole frame
        step (window, FFTs, overlap-add) in C: one foreign call and no NumPy
        call per frame in the steady state. False keeps NumPy's FFTs around
        the C network (the kernel-only figure of the benchmark).

    Example
    -------
    >>> import torch
    >>> from speechbrain_dyncp.lobes.enhancer import dyncp_small
    >>> model = dyncp_small(channels=8, hidden=16, gate_hidden=4).eval().double()
    >>> x = torch.randn(1, 2000, dtype=torch.double)
    >>> fs = FastStreamer(model, backend="numpy", dtype=np.float64)
    >>> y = np.concatenate([fs.process(c) for c in np.array_split(x[0].numpy(), 5)] + [fs.finish()])
    >>> bool(np.allclose(y[fs.latency:], model(x).wav[0].detach().numpy(), atol=1e-9))
    True
    """

    def __init__(self, model, backend: str = "c", dtype=np.float32, c_fft: bool = True):
        if backend not in ("c", "numpy"):
            raise ValueError(f"Unknown backend {backend!r}; choose 'c' or 'numpy'.")
        self.weights = stream_weights(model, dtype)
        self.dtype, self.backend, self.c_fft = self.weights["dtype"], backend, c_fft
        self._transposes = {}  # the kernel's transposed weights, shared by forks
        self._start()

    def _start(self):
        """Stream state at its start (all zero); weights untouched."""
        w = self.weights
        self.ola = OverlapAdd(w["window"], w["hop"])
        self._call_full = None
        if self.backend == "numpy":
            self.net = NumpyNet(w)
            return
        self.net = KernelNet(w, self._transposes)
        self._call_spec = self.net.mask_spec
        n = self.ola.n_fft
        if self.c_fft and n >= 4 and n & (n - 1) == 0:
            self._call_full = self.net.frame_step(self.ola)

    def fork(self) -> "FastStreamer":
        """A new stream of the same model: its own state from zero, the weights shared.

        For a server running many streams on one thread: one copy of the weights (and
        of their transposes) stays in cache for all of them.

        Example
        -------
        >>> import torch
        >>> from speechbrain_dyncp.lobes.enhancer import dyncp_small
        >>> fs = FastStreamer(dyncp_small(channels=8, hidden=16, gate_hidden=4).eval(), backend="numpy")
        >>> x = np.random.default_rng(0).standard_normal(3000).astype(np.float32)
        >>> a = fs.process(x)
        >>> other = fs.fork()
        >>> bool(np.array_equal(other.process(x), a)) and other.weights is fs.weights
        True
        """
        new = copy.copy(self)
        new._start()
        return new

    @property
    def channel_frames(self) -> int:
        """Hidden channel-frames computed so far (summed over blocks)."""
        return self.net.computed

    def _run(self) -> None:
        ola, call = self.ola, self._call_full
        if call is None:
            return super()._run()
        hop, dtype = ola.hop, self.dtype
        for frame in ola.frames():  # the whole step in C, overlap-add included
            if ola.steady:
                out = np.empty(hop, dtype)
                call(frame, out)
                ola.advance(out)
            else:  # start of the stream: the framer normalises and shifts
                call(frame, None)
                ola.advance()

    def _frame(self, frame: np.ndarray) -> None:
        """One frame between NumPy's FFTs, the network in C or NumPy."""
        ola = self.ola
        spec = np.fft.rfft(frame * ola.window)
        if spec.dtype != self.weights["cdtype"]:
            spec = spec.astype(self.weights["cdtype"])
        if self.backend == "c":
            self._call_spec(spec)
        else:
            spec *= self.net(spectral_features(spec, self.weights["feature"], self.weights["compression"]))
        y = np.fft.irfft(spec, ola.n_fft)
        y *= ola.window
        ola.add(y)
