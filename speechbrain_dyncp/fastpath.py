"""Low-overhead per-frame streaming (batch 1) of a causal :class:`DynCPEnhancer`.

Same contract as :mod:`speechbrain_dyncp.streaming` (any chunk size, output
delayed by ``latency = n_fft - 1`` samples, ``finish()`` flushes the end like
the offline centred STFT), but the per-frame work runs in NumPy, and the
network itself either in NumPy (``backend="numpy"``) or in a small C kernel
(``backend="c"``, ``dyncp_frame.c``, compiled with gcc on first use into a
private per-user cache folder, :func:`kernel_cache_dir`; :func:`c_available`
says whether that works here).

Why: one frame of the base model is ~0.66 M MACs in ~250 tiny ops. PyTorch
spends far more time dispatching those ops than multiplying, so skipping 75% of
the channels saves MACs but no wall-clock time. NumPy dispatch is cheaper;
the C kernel has no per-op cost at all, so its time tracks the MACs.

Authors
 * speechbrain-dyncp contributors
"""

import copy
import ctypes
import hashlib
import os
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from speechbrain_dyncp.streaming import block_plans

_SRC = Path(__file__).with_name("dyncp_frame.c")
_LIBS = {}
# Not -ffast-math: gcc then links crtfastmath.o, whose constructor sets flush-to-zero /
# denormals-are-zero for the whole process when the kernel is loaded, silently changing
# every later torch/numpy result. The individual flags below still let gcc vectorise the
# dot-product reductions (reassociation), without touching the FPU state.
_CFLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math",
           "-fno-signed-zeros", "-freciprocal-math", "-shared", "-fPIC")


class UnsafeKernelCache(PermissionError):
    """A kernel cache folder or library that another user could have written."""


def kernel_cache_dir() -> Path:
    """Private per-user folder of compiled kernels (created 0700; checked by :func:`_check_private`).

    ``$DYNCP_KERNEL_CACHE`` if set, else ``$XDG_CACHE_HOME/speechbrain_dyncp`` (``~/.cache``), else a
    per-user folder in the temp dir. Never a shared, predictable temp path: a library planted
    there would be loaded into this process.
    """
    env = os.environ.get("DYNCP_KERNEL_CACHE")
    candidates = [Path(env)] if env else [
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "speechbrain_dyncp",
        Path(tempfile.gettempdir()) / f"dyncp_kernels_{_uid()}",
    ]
    for cache in candidates:
        try:
            cache.mkdir(parents=True, exist_ok=True, mode=0o700)
            return cache
        except OSError:  # e.g. a read-only home: try the next one
            continue
    raise OSError(f"cannot create a kernel cache folder ({', '.join(map(str, candidates))})")


def _uid() -> Optional[int]:
    return os.getuid() if hasattr(os, "getuid") else None


def _check_private(path: Path) -> None:
    """Raise :class:`UnsafeKernelCache` unless ``path`` is ours and only we can write it."""
    st = os.lstat(path)
    uid = _uid()
    if uid is None:  # no POSIX ownership (Windows): nothing to check
        return
    if st.st_uid != uid:
        raise UnsafeKernelCache(f"{path} is owned by uid {st.st_uid}, not by this user ({uid})")
    if st.st_mode & 0o022:
        raise UnsafeKernelCache(f"{path} can be written by other users (mode {st.st_mode & 0o777:o})")


def _compile(real: str) -> Optional[ctypes.CDLL]:
    """Build (once, cached by source hash) and load the kernel for ``real`` = float/double.

    The cached library is loaded only when it and its folder belong to this user and
    nobody else can write them; otherwise a warning names it and the NumPy path is used.
    """
    if real in _LIBS:
        return _LIBS[real]
    try:
        src = _SRC.read_bytes()
    except OSError:  # source not shipped (e.g. a wheel without package data)
        _LIBS[real] = None
        return None
    tag = hashlib.sha1(src + real.encode() + " ".join(_CFLAGS).encode()).hexdigest()[:12]
    lib = None
    try:
        cache = kernel_cache_dir()
        _check_private(cache)
        so = cache / f"dyncp_frame_{real}_{tag}.so"
        if not so.exists():
            tmp = so.with_suffix(f".{os.getpid()}.tmp")
            subprocess.run(["gcc", *_CFLAGS, f"-DREAL={real}", str(_SRC), "-o", str(tmp), "-lm"],
                           check=True, capture_output=True, timeout=120)
            os.chmod(tmp, 0o700)
            os.replace(tmp, so)
        _check_private(so)
        lib = ctypes.CDLL(str(so))
    except UnsafeKernelCache as exc:
        warnings.warn(f"not loading the C kernel: {exc}; using the NumPy path", RuntimeWarning, stacklevel=2)
    except (OSError, subprocess.SubprocessError):
        lib = None
    _LIBS[real] = lib
    return lib


def c_available() -> bool:
    """True when the C kernel compiles and loads here (needs gcc)."""
    return _compile("float") is not None


def _structs(real_t):
    P = ctypes.POINTER(real_t)

    class Block(ctypes.Structure):
        _fields_ = [(n, ctypes.c_int) for n in ("C", "H", "P", "dil", "K", "R", "ring", "gate_src")] + [
            (n, real_t) for n in ("thr", "a1", "a2")] + [
            (n, P) for n in ("W1", "W1T", "b1", "s1", "t1", "dw", "s2", "t2", "W2T", "G1T", "gb1", "G2T", "gb2",
                             "hist", "gbuf", "pooled", "gh", "work")] + [
            ("active", ctypes.POINTER(ctypes.c_int)), ("pos", ctypes.c_int), ("gpos", ctypes.c_int),
            ("computed", ctypes.c_longlong)]

    class Net(ctypes.Structure):
        _fields_ = [("F", ctypes.c_int), ("C", ctypes.c_int), ("L", ctypes.c_int)] + [
            (n, P) for n in ("Wf", "bf", "Wb", "bb", "x", "y", "x0")] + [("blocks", ctypes.POINTER(Block))] + [
            (n, P) for n in ("WfT", "WbT")] + [("floor", real_t)]

    class Fft(ctypes.Structure):
        _fields_ = [("n", ctypes.c_int), ("hop", ctypes.c_int), ("rev", ctypes.POINTER(ctypes.c_int))] + [
            (n, P) for n in ("twr", "twi", "rtw", "window", "inv_env", "zr", "zi", "spec", "y")]

    return Block, Net, Fft


class FastStreamer:
    """Per-frame streamer of a causal eval-mode ``DynCPEnhancer`` (batch 1).

    Arguments
    ---------
    model : DynCPEnhancer
        Causal model in eval mode (weights are copied).
    backend : str
        ``"c"`` (compiled kernel) or ``"numpy"``.
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
        if not model.causal or model.training:
            raise ValueError("FastStreamer needs a causal model in eval mode.")
        tcn = model.tcn
        if model.n_fft % model.hop_length:
            raise ValueError(f"FastStreamer needs n_fft divisible by hop_length, got {model.n_fft}, {model.hop_length}.")
        if tcn.gated and any(len(g.convs) != 2 for g in tcn.gates):
            raise ValueError("FastStreamer supports 2-layer gate stacks (gate_layers=2) only.")
        self.dtype, self.backend, self.tcn = np.dtype(dtype), backend, tcn
        arr = lambda t: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=self.dtype)  # noqa: E731
        self.n_fft, self.hop = model.n_fft, model.hop_length
        self.window = arr(model.window)
        self.feature, self.compression = model.feature, model.compression
        self.Wf, self.bf = arr(model.front.weight), arr(model.front.bias)
        self.Wb, self.bb = arr(model.back.weight), arr(model.back.bias)
        self.floor = float(model.mask_floor)  # attenuation limit, read once (see mask_from_logits)
        self.blocks = []
        for p in block_plans(model):
            b = {k: arr(getattr(p, k)) for k in ("w1", "b1", "s1", "t1", "s2", "t2", "w2t")}
            b.update(dw=arr(p.dw[:, 0]), a1=float(p.a1), a2=float(p.a2), dil=p.dilation, K=p.window,
                     thr=p.threshold, gated=bool(p.gate_w))
            if p.gate_w:
                b.update(G1=arr(p.gate_w[0]), gb1=arr(p.gate_b[0]), G2=arr(p.gate_w[1]), gb2=arr(p.gate_b[1]))
            kernel = b["dw"].shape[1]
            b["ring"] = (kernel - 1) * p.dilation + 1
            b["hist"] = np.zeros((b["ring"], b["w1"].shape[0]), self.dtype)
            b["gbuf"] = np.zeros((max(1, p.window), tcn.channels), self.dtype)
            b["pos"] = b["gpos"] = 0
            self.blocks.append(b)
        self.latency = self.n_fft - 1
        self._n_freq, self._wt = model.n_freq, {}
        self._init_state()
        self.win2 = self.window**2
        self.inv_env = (1 / self.win2.reshape(-1, self.hop).sum(0)).astype(self.dtype)
        self._cdtype = np.complex64 if self.dtype == np.float32 else np.complex128
        self._call_full = None
        if backend == "c":
            self._bind()
            if c_fft and self.n_fft >= 4 and self.n_fft & (self.n_fft - 1) == 0:
                self._bind_fft()

    def _init_state(self):
        """Stream state at its start (all zero); weights untouched."""
        self.in_buf = np.zeros(self.n_fft // 2, self.dtype)
        self.out_buf, self._pending = np.zeros(self.latency, self.dtype), []
        self.num = np.zeros(self.n_fft, self.dtype)
        self.den = np.zeros(self.n_fft, self.dtype)
        self.trim, self.samples_in, self.frames_done, self._computed = self.n_fft // 2, 0, 0, 0
        self._mask = np.zeros(self._n_freq, self.dtype)

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
        >>> bool(np.array_equal(other.process(x), a)) and other.blocks[0]["w1"] is fs.blocks[0]["w1"]
        True
        """
        new = copy.copy(self)
        new.blocks = [dict(b, hist=np.zeros_like(b["hist"]), gbuf=np.zeros_like(b["gbuf"]), pos=0, gpos=0)
                      for b in self.blocks]
        new._init_state()
        if self.backend == "c":
            new._bind()
            if self._call_full is not None:
                new._bind_fft()
        return new

    def _transposed(self, key, a: np.ndarray) -> np.ndarray:
        """Contiguous ``a.T``, made once and shared by forks."""
        if key not in self._wt:
            self._wt[key] = np.ascontiguousarray(a.T)
        return self._wt[key]

    def _bind(self):
        real = "float" if self.dtype == np.float32 else "double"
        lib = _compile(real)
        if lib is None:
            raise RuntimeError("C kernel unavailable (gcc failed or missing); use backend='numpy'.")
        real_t = ctypes.c_float if real == "float" else ctypes.c_double
        Block, Net, _ = _structs(real_t)
        ptr = lambda a: a.ctypes.data_as(ctypes.POINTER(real_t))  # noqa: E731
        tcn, self._keep = self.tcn, []
        cblocks = (Block * len(self.blocks))()
        for cb, b in zip(cblocks, self.blocks):
            h, c = b["w1"].shape
            r = b["G1"].shape[0] if b["gated"] else 1
            scratch = dict(pooled=np.zeros(c, self.dtype), gh=np.zeros(r, self.dtype), work=np.zeros(h, self.dtype),
                           W1T=self._transposed(("W1T", id(b["w1"])), b["w1"]))
            if b["gated"]:
                scratch.update(G1T=self._transposed(("G1T", id(b["G1"])), b["G1"]),
                               G2T=self._transposed(("G2T", id(b["G2"])), b["G2"]))
            active = np.zeros(h, np.int32)
            self._keep += [scratch, active]
            cb.C, cb.H, cb.P, cb.dil, cb.ring = c, h, b["dw"].shape[1], b["dil"], b["ring"]
            cb.K, cb.R = b["K"], (r if b["gated"] else 0)
            cb.gate_src = int(tcn.gate_input == "features")
            cb.thr, cb.a1, cb.a2 = b["thr"], b["a1"], b["a2"]
            for name, key in (("W1", "w1"), ("b1", "b1"), ("s1", "s1"), ("t1", "t1"), ("dw", "dw"),
                              ("s2", "s2"), ("t2", "t2"), ("W2T", "w2t"), ("hist", "hist"), ("gbuf", "gbuf")):
                setattr(cb, name, ptr(b[key]))
            if b["gated"]:  # else left NULL: the kernel never reads them (R = 0)
                cb.G1T, cb.G2T = ptr(scratch["G1T"]), ptr(scratch["G2T"])
                cb.gb1, cb.gb2 = ptr(b["gb1"]), ptr(b["gb2"])
            cb.W1T, cb.work = ptr(scratch["W1T"]), ptr(scratch["work"])
            cb.pooled, cb.gh = ptr(scratch["pooled"]), ptr(scratch["gh"])
            cb.active = active.ctypes.data_as(ctypes.POINTER(ctypes.c_int))
        c = tcn.channels
        xs = [np.zeros(c, self.dtype) for _ in range(3)]
        wt = [self._transposed("WfT", self.Wf), self._transposed("WbT", self.Wb)]
        net = Net(F=self.Wf.shape[1], C=c, L=len(self.blocks), Wf=ptr(self.Wf), bf=ptr(self.bf), Wb=ptr(self.Wb),
                  bb=ptr(self.bb), x=ptr(xs[0]), y=ptr(xs[1]), x0=ptr(xs[2]), blocks=cblocks,
                  WfT=ptr(wt[0]), WbT=ptr(wt[1]), floor=self.floor)
        self._keep += [xs, wt, cblocks, net]
        self._cblocks = cblocks
        fn, fn_spec = lib.dyncp_frame, lib.dyncp_frame_spec
        fn.restype = fn_spec.restype = None
        fn_spec.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, real_t]
        self._call = lambda feats: fn(ctypes.byref(net), ptr(feats), ptr(self._mask))
        self._feats = np.zeros(self.Wf.shape[1], self.dtype)
        net_p, feats_p, mask_p = ctypes.addressof(net), self._feats.ctypes.data, self._mask.ctypes.data
        comp = self.compression if self.feature == "compressed" else 0.0
        # masks the complex spectrum in place: one foreign call per frame
        self._call_spec = lambda spec: fn_spec(net_p, spec.ctypes.data, feats_p, mask_p, comp)
        self._net_p, self._comp = net_p, comp

    def _bind_fft(self):
        """Tables and scratch of the C real FFT; sets ``_call_full(frame, out)``."""
        real = "float" if self.dtype == np.float32 else "double"
        real_t = ctypes.c_float if real == "float" else ctypes.c_double
        _, _, Fft = _structs(real_t)
        n, m = self.n_fft, self.n_fft // 2
        bits = m.bit_length() - 1
        rev = np.array([int(f"{i:0{bits}b}"[::-1], 2) if bits else 0 for i in range(m)], np.int32)
        k = np.arange(m)
        turn = lambda a: np.ascontiguousarray(np.stack([np.cos(a), -np.sin(a)], 1), self.dtype)  # noqa: E731
        # butterfly twiddles stage by stage (half = 1, 2, 4, ...), contiguous: exp(-i pi k / half)
        stages = np.concatenate([np.pi * np.arange(h) / h for h in 2 ** np.arange(max(0, bits))] or [np.zeros(0)])
        arrays = dict(twr=np.ascontiguousarray(np.cos(stages), self.dtype),
                      twi=np.ascontiguousarray(-np.sin(stages), self.dtype), rtw=turn(2 * np.pi * k / n),
                      zr=np.zeros(m, self.dtype), zi=np.zeros(m, self.dtype), spec=np.zeros(2 * (m + 1), self.dtype),
                      y=np.zeros(n, self.dtype))
        ptr = lambda a: a.ctypes.data_as(ctypes.POINTER(real_t))  # noqa: E731
        fft = Fft(n=n, hop=self.hop, rev=rev.ctypes.data_as(ctypes.POINTER(ctypes.c_int)), window=ptr(self.window),
                  inv_env=ptr(self.inv_env), **{k: ptr(v) for k, v in arrays.items()})
        self._keep += [rev, arrays, fft]
        fn = _compile(real).dyncp_frame_full
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p] * 7 + [real_t]
        # fixed in / out buffers, their addresses taken once: ``ndarray.ctypes.data`` costs
        # ~1.5 us per access, a tenth of a pruned small-model frame
        self._fbuf, self._obuf = np.zeros(n, self.dtype), np.zeros(self.hop, self.dtype)
        head = (self._net_p, ctypes.addressof(fft), self._fbuf.ctypes.data, self.num.ctypes.data)
        tail = (self._feats.ctypes.data, self._mask.ctypes.data, self._comp)
        with_out, without = head + (self._obuf.ctypes.data,) + tail, head + (None,) + tail

        def call_full(frame, out):
            self._fbuf[:] = frame
            if out is None:
                return fn(*without)
            fn(*with_out)
            out[:] = self._obuf

        self._call_full = call_full

    def _net_numpy(self, feats: np.ndarray) -> np.ndarray:
        x = np.maximum(self.Wf @ feats + self.bf, 0)
        x0 = x
        for b in self.blocks:
            if b["gated"]:
                b["gbuf"][b["gpos"]] = x0 if self.tcn.gate_input == "features" else x
                b["gpos"] = (b["gpos"] + 1) % b["K"]
                h = np.maximum(b["G1"] @ (b["gbuf"].sum(0) / b["K"]) + b["gb1"], 0)
                idx = np.flatnonzero(b["G2"] @ h + b["gb2"] - b["thr"] > 0)
                w1, dw = b["w1"][idx], b["dw"][idx]
            else:
                idx, w1, dw = slice(None), b["w1"], b["dw"]
            u = w1 @ x + b["b1"][idx]
            u = np.where(u > 0, u, b["a1"] * u) * b["s1"][idx] + b["t1"][idx]
            pos, ring, hist = b["pos"], b["ring"], b["hist"]
            hist[pos] = 0
            hist[pos, idx] = u
            taps = dw.shape[1]
            v = dw[:, taps - 1] * u
            for j in range(taps - 1):
                v += dw[:, j] * hist[(pos - (taps - 1 - j) * b["dil"]) % ring, idx]
            v = np.where(v > 0, v, b["a2"] * v) * b["s2"][idx] + b["t2"][idx]
            x = x + v @ b["w2t"][idx]
            b["pos"] = (pos + 1) % ring
            self._computed += len(u)
        return self.floor + (1 - self.floor) / (1 + np.exp(-(self.Wb @ x + self.bb)))

    def _frame_c(self, frame: np.ndarray) -> None:
        """:meth:`_frame` with the whole step in C (same arithmetic order of the overlap-add)."""
        hop = self.hop
        if self.frames_done * hop >= self.n_fft - hop and not self.trim:  # steady state, see _frame
            out = np.empty(hop, self.dtype)
            self._call_full(frame, out)
            self._pending.append(out)
        else:
            self._call_full(frame, None)
            num = self.num
            self.den += self.win2
            self._emit(num[:hop], self.den[:hop])
            self.den[:-hop] = self.den[hop:]
            self.den[-hop:] = 0
            num[:-hop] = num[hop:]
            num[-hop:] = 0
        self.frames_done += 1

    def _frame(self, frame: np.ndarray) -> None:
        if self._call_full is not None:
            return self._frame_c(frame)
        spec = np.fft.rfft(frame * self.window)
        if spec.dtype != self._cdtype:
            spec = spec.astype(self._cdtype)
        if self.backend == "c":
            self._call_spec(spec)
        else:
            feats = np.abs(spec)
            if self.feature == "compressed":
                feats = (feats + 1e-9) ** self.compression
            spec *= self._net_numpy(feats)
        y = np.fft.irfft(spec, self.n_fft)
        y *= self.window
        hop, num = self.hop, self.num
        num += y
        if self.frames_done * hop >= self.n_fft - hop and not self.trim:
            # every frame overlapping these samples has been added: the window energy is the
            # interior one (den is only needed at the start and at the end of the stream)
            self._pending.append(num[:hop] * self.inv_env)
        else:
            self.den += self.win2
            self._emit(num[:hop], self.den[:hop])
            self.den[:-hop] = self.den[hop:]
            self.den[-hop:] = 0
        num[:-hop] = num[hop:]  # shift the overlap-add buffer by one hop
        num[-hop:] = 0
        self.frames_done += 1

    def _emit(self, num, den):
        drop = min(self.trim, len(num))
        if drop:
            self.trim -= drop
            num, den = num[drop:], den[drop:]
        out = np.where(den > 1e-11, num / np.maximum(den, 1e-11), 0) if len(den) and den.min() <= 1e-11 else num / den
        self._pending.append(out.astype(self.dtype, copy=False))

    def _run(self):
        pos = 0
        while len(self.in_buf) - pos >= self.n_fft:
            self._frame(self.in_buf[pos: pos + self.n_fft])
            pos += self.hop
        self.in_buf = self.in_buf[pos:]
        self._flush()

    def _flush(self):
        # one concatenation per call, not one per frame: a whole file in one chunk was quadratic
        if self._pending:
            self.out_buf = np.concatenate([self.out_buf, *self._pending])
            self._pending = []

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Feed samples ``[S]``; returns ``[S]`` output delayed by ``latency`` samples."""
        self.in_buf = np.concatenate([self.in_buf, np.asarray(chunk, self.dtype)])
        self.samples_in += len(chunk)
        self._run()
        out, self.out_buf = self.out_buf[: len(chunk)], self.out_buf[len(chunk):]
        return out

    def finish(self) -> np.ndarray:
        """Flush the end; returns the last ``latency`` output samples."""
        todo = 1 + self.samples_in // self.hop - self.frames_done
        if todo > 0:
            need = (todo - 1) * self.hop + self.n_fft
            self.in_buf = np.concatenate([self.in_buf, np.zeros(max(0, need - len(self.in_buf)), self.dtype)])
            self._run()
        left = self.latency + self.trim - len(self.out_buf)
        den = np.zeros(self.n_fft, self.dtype)  # window energy of the frames already added
        for k in range(1, self.n_fft // self.hop):
            if self.frames_done - k >= 0:
                den[: self.n_fft - k * self.hop] += self.win2[k * self.hop:]
        self._emit(self.num[:left], den[:left])
        self._flush()
        out, self.out_buf = self.out_buf, self.out_buf[:0]
        return out

    @property
    def channel_frames(self) -> int:
        """Hidden channel-frames computed so far (summed over blocks)."""
        if self.backend == "c":
            return int(sum(cb.computed for cb in self._cblocks))
        return self._computed


# ---------------------------------------------------------------- offline batches
# The offline graph (training graph) computes every channel and multiplies by the gates, so
# a gated model pays for its gates and saves nothing. In eval, a channel that is off at every
# valid frame of the batch contributes exactly zero: its W1 row, depthwise taps and W2 column
# can be left out of the batched convs. Trained gates are close to static within a file
# (docs/dynamic_compute.md), so this union of active channels is far below all channels.


def _linear(x, conv, rows=None, cols=None, bias=True):
    """A 1x1 ``conv`` on channels-last ``x`` [..., C] as one GEMM (selected out rows / in columns).

    Why channels-last and not Conv1d: CPU PyTorch runs a 1x1 Conv1d as im2col + GEMM
    and a weight @ [B, C, N] product as a batched GEMM; on [B * N, C] rows it is one plain
    GEMM, and the gathered weights need no copy of the activations.
    """
    import torch

    w = conv.weight[:, :, 0]
    w = w if rows is None else w[rows]
    w = w if cols is None else w[:, cols]
    flat = x.reshape(-1, x.shape[-1])
    if bias and conv.bias is not None:
        y = torch.addmm(conv.bias if rows is None else conv.bias[rows], flat, w.t())
    else:
        y = flat @ w.t()
    return y.reshape(*x.shape[:-1], w.shape[0])


def _time_shifted_sum(x, weights, dilation, left):
    """``y[:, t] = sum_j weights[j] * x[:, t + j * dilation - left]`` (zeros outside), ``x`` [B, N, C]."""
    import torch.nn.functional as F

    n, span = x.shape[1], (len(weights) - 1) * dilation
    xp = F.pad(x, (0, 0, left, span - left))
    y = xp[:, :n] * weights[0]
    for j in range(1, len(weights)):
        y.add_(xp[:, j * dilation: j * dilation + n] * weights[j])
    return y


def _gates_channels_last(gate, x, valid):
    """``gate`` on channels-last ``x`` [B, N, C] (``valid`` [B, N, 1]) -> binary gates [B, N, H].

    The moving average runs as K shifted adds (``avg_pool1d`` with stride 1 cost as much
    as the gate convs); float rounding may differ from the training graph, which can flip a
    gate whose score is within rounding of its threshold, as in streaming.
    """
    import torch

    k = gate.window
    if gate.causal:  # right padding never reaches a valid frame's past-only window: no masking
        h = x.clone() if k > 1 else x
        for j in range(1, k):
            h[:, j:] += x[:, :-j]
    else:
        x = x * valid
        h = _time_shifted_sum(x, [1.0] * k, 1, k // 2) if k > 1 else x
    if k > 1:
        h = h.div_(k)
    for i, conv in enumerate(gate.convs):
        h = _linear(h, conv)
        if i < len(gate.convs) - 1:
            h = h.relu_()
    return (h > gate.threshold).to(x.dtype)  # == (h - threshold > 0): float differences are exact-zero only when equal


def _block_on_channels(blk, h, keep, idx):
    """Residual update of ``blk`` (eval), hidden channels ``idx`` only; ``h`` [B, N, C], ``keep`` [B, N, k]."""
    import torch
    import torch.nn.functional as F

    # MaskedBatchNorm1d.affine() is shadowed on instances by nn.BatchNorm1d's ``affine`` flag
    (s1, t1), (s2, t2) = (type(bn).affine(bn) for bn in (blk.norm1, blk.norm2))
    u = F.prelu(_linear(h, blk.in_conv, rows=idx), blk.act1.weight)
    u = torch.addcmul(t1[idx], u, s1[idx]).mul_(keep)
    pad = blk.history
    v = _time_shifted_sum(u, blk.dw_conv.weight[idx, 0].t(), blk.dilation, pad if blk.causal else pad // 2)
    v = torch.addcmul(t2[idx], F.prelu(v, blk.act2.weight), s2[idx]).mul_(keep)
    return _linear(v, blk.out_conv, cols=idx, bias=False)


def _union_tcn_forward(tcn, x, frame_mask=None):
    """:meth:`GatedTCN.forward` in eval, channels-last, per block only the channels on somewhere."""
    import torch

    from speechbrain_dyncp.lobes.gated_tcn import TCNOutput

    b, n, _ = x.shape
    if frame_mask is None:
        frame_mask = torch.ones(b, n, dtype=torch.bool, device=x.device)
    valid = frame_mask.unsqueeze(-1).to(x.dtype)  # B, N, 1
    h = feats = x
    gates, computed = [], 0
    for i, blk in enumerate(tcn.blocks):
        g = _gates_channels_last(tcn.gates[i], feats if tcn.gate_input == "features" else h, valid)
        gates.append(g)
        keep = g * valid
        idx = keep.amax((0, 1)).nonzero().squeeze(1)
        computed += len(idx)
        if len(idx) == keep.shape[-1]:  # every channel on somewhere: views, no gathers
            h = h + _block_on_channels(blk, h, keep, slice(None))
        elif len(idx):  # a block with every channel off is the identity
            h = h + _block_on_channels(blk, h, keep.index_select(-1, idx), idx)
    tcn._union_channels = computed
    return TCNOutput(h, torch.stack(gates, 1))


def union_skipping(model):
    """An eval view of a gated ``DynCPEnhancer`` whose offline forward skips batch-wide pruned channels.

    Same weights (shared, not copied), same outputs as ``model`` up to float
    rounding (the norms run as their eval affine; gates at padded frames, which
    nothing uses, may differ); per block only the hidden
    channels whose gate is on in at least one valid frame of the batch are
    computed. After a call, ``view.tcn._union_channels`` holds how many
    (block, channel) pairs were computed. For MAC accounting use ``model``.

    Arguments
    ---------
    model : DynCPEnhancer
        A gated model in eval mode.

    Returns
    -------
    DynCPEnhancer
        A shallow copy whose ``tcn`` forward is the union path.

    Example
    -------
    >>> import torch
    >>> from speechbrain_dyncp.lobes.enhancer import dyncp_small
    >>> model = dyncp_small(channels=8, hidden=16, gate_hidden=4, gate_init_bias=-0.2).eval()
    >>> x = torch.randn(2, 4000)
    >>> bool(torch.allclose(union_skipping(model)(x).wav, model(x).wav, atol=1e-6))
    True
    """
    import types

    if model.training or not model.tcn.gated:
        raise ValueError("union_skipping needs a gated model in eval mode.")
    view = copy.copy(model)
    view._modules = dict(model._modules)
    tcn = copy.copy(model.tcn)  # a shallow copy: the original keeps its forward
    tcn.forward = types.MethodType(_union_tcn_forward, tcn)
    view._modules["tcn"] = tcn
    return view
