"""ctypes binding of the C frame kernel ``dyncp_frame.c``, compiled when the package is installed.

``setup.py`` builds the kernel twice, as ``_dyncp_frame_float`` and
``_dyncp_frame_double`` (``-DREAL=float`` / ``double``), next to this module;
both extensions are optional, so an install without a C compiler succeeds and
the streamers fall back to NumPy (:func:`c_available` is then False). Nothing
is compiled at run time. A kernel built from another version of the source
(an editable install whose ``dyncp_frame.c`` changed since) is not loaded:
its struct layout may differ; re-run ``pip install -e .`` (``make venv`` does).

Authors
 * speechbrain-dyncp contributors
"""

import ctypes
import hashlib
import warnings
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Dict, Optional

import numpy as np

_HERE = Path(__file__).parent
_SRC = _HERE / "dyncp_frame.c"
_LIBS: Dict[str, Optional[ctypes.CDLL]] = {}


def library_path(real: str) -> Optional[Path]:
    """The installed kernel for ``real`` = ``"float"`` / ``"double"``, or None where it was not built."""
    for suffix in EXTENSION_SUFFIXES:
        path = _HERE / f"_dyncp_frame_{real}{suffix}"
        if path.is_file():
            return path
    return None


def load(real: str) -> Optional[ctypes.CDLL]:
    """The kernel library for ``real`` (loaded once), or None: not built, not loadable or stale."""
    if real not in _LIBS:
        lib, path = None, library_path(real)
        if path is not None:
            try:
                lib = ctypes.CDLL(str(path))
            except OSError as exc:
                warnings.warn(f"cannot load the C kernel {path.name}: {exc}; using the NumPy path",
                              RuntimeWarning, stacklevel=2)
        if lib is not None and _SRC.is_file():
            lib.dyncp_source_sha1.restype = ctypes.c_char_p
            if lib.dyncp_source_sha1().decode() != hashlib.sha1(_SRC.read_bytes()).hexdigest():
                warnings.warn(f"{path.name} was built from another version of dyncp_frame.c; using the NumPy "
                              "path (re-run `pip install -e .` to rebuild it)", RuntimeWarning, stacklevel=2)
                lib = None
        _LIBS[real] = lib
    return _LIBS[real]


def c_available() -> bool:
    """True when the C kernel was built at install time and loads here.

    Example
    -------
    >>> c_available() in (True, False)
    True
    """
    return load("float") is not None and load("double") is not None


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
            (n, P) for n in ("WfT", "WbT")] + [("floor", real_t)] + [
            ("vad_w", ctypes.POINTER(ctypes.c_double)), ("vad_b", ctypes.c_double), ("vad_thr", ctypes.c_double),
            ("pause_floor", real_t), ("hang", ctypes.c_int), ("credit", ctypes.c_int),
            ("low_ring", ctypes.POINTER(ctypes.c_double))] + [(n, ctypes.c_int) for n in ("low_win", "low_pos", "low_min")] + [
            ("low_factor", ctypes.c_double), ("power", P)]

    class Fft(ctypes.Structure):
        _fields_ = [("n", ctypes.c_int), ("hop", ctypes.c_int), ("rev", ctypes.POINTER(ctypes.c_int))] + [
            (n, P) for n in ("twr", "twi", "rtw", "window", "inv_env", "zr", "zi", "spec", "y")]

    return Block, Net, Fft


class KernelNet:
    """The network of one stream in the C kernel: ctypes structs over NumPy weights and state.

    Arguments
    ---------
    weights : dict
        From :func:`~speechbrain_dyncp.streaming.numpy_net.stream_weights` (shared, never written).
    transposes : dict
        Cache of the transposed weight copies the kernel sweeps, shared by the streams of one model.

    Example
    -------
    >>> from speechbrain_dyncp.lobes.enhancer import dyncp_small
    >>> from speechbrain_dyncp.streaming.numpy_net import NumpyNet, stream_weights
    >>> w = stream_weights(dyncp_small(channels=8, hidden=16, gate_hidden=4).eval())
    >>> spec = np.fft.rfft(np.random.default_rng(0).standard_normal(512)).astype(np.complex64)
    >>> if c_available():
    ...     net, ref = KernelNet(w, {}), NumpyNet(w)
    ...     masked = spec.copy(); net.mask_spec(masked)
    ...     assert np.allclose(masked, spec * ref(np.abs(spec)), atol=1e-4)
    """

    def __init__(self, weights: Dict, transposes: Dict):
        from speechbrain_dyncp.streaming.numpy_net import block_states

        dtype, self.weights = weights["dtype"], weights
        self.real = "float" if dtype == np.float32 else "double"
        self.lib = load(self.real)
        if self.lib is None:
            raise RuntimeError("C kernel unavailable (not built at install time); use backend='numpy'.")
        self.real_t = real_t = ctypes.c_float if self.real == "float" else ctypes.c_double
        Block, Net, _ = _structs(real_t)
        ptr = self._ptr

        def transposed(key, a):  # contiguous a.T, made once per model and shared
            if key not in transposes:
                transposes[key] = np.ascontiguousarray(a.T)
            return transposes[key]

        self.state, self._keep = block_states(weights), [transposes]  # the kernel holds raw pointers
        self.blocks = cblocks = (Block * len(weights["blocks"]))()
        for cb, b, st in zip(cblocks, weights["blocks"], self.state):
            h, c = b["w1"].shape
            r = b["G1"].shape[0] if b["gated"] else 1
            scratch = dict(pooled=np.zeros(c, dtype), gh=np.zeros(r, dtype), work=np.zeros(h, dtype),
                           active=np.zeros(h, np.int32), W1T=transposed(("W1T", id(b["w1"])), b["w1"]))
            if b["gated"]:  # else left NULL: the kernel never reads them (R = 0)
                cb.G1T = ptr(transposed(("G1T", id(b["G1"])), b["G1"]))
                cb.G2T = ptr(transposed(("G2T", id(b["G2"])), b["G2"]))
                cb.gb1, cb.gb2 = ptr(b["gb1"]), ptr(b["gb2"])
            self._keep.append(scratch)
            cb.C, cb.H, cb.P, cb.dil, cb.ring = c, h, b["dw"].shape[1], b["dil"], b["ring"]
            cb.K, cb.R = b["K"], (r if b["gated"] else 0)
            cb.gate_src = int(weights["gate_from_features"])
            cb.thr, cb.a1, cb.a2 = b["thr"], b["a1"], b["a2"]
            for name, key in (("W1", "w1"), ("b1", "b1"), ("s1", "s1"), ("t1", "t1"), ("dw", "dw"),
                              ("s2", "s2"), ("t2", "t2"), ("W2T", "w2t")):
                setattr(cb, name, ptr(b[key]))
            cb.hist, cb.gbuf = ptr(st["hist"]), ptr(st["gbuf"])
            for name in ("W1T", "work", "pooled", "gh"):
                setattr(cb, name, ptr(scratch[name]))
            cb.active = scratch["active"].ctypes.data_as(ctypes.POINTER(ctypes.c_int))
        c = weights["channels"]
        xs = [np.zeros(c, dtype) for _ in range(3)]
        w = weights
        self.net = Net(F=w["Wf"].shape[1], C=c, L=len(cblocks), Wf=ptr(w["Wf"]), bf=ptr(w["bf"]), Wb=ptr(w["Wb"]),
                       bb=ptr(w["bb"]), x=ptr(xs[0]), y=ptr(xs[1]), x0=ptr(xs[2]), blocks=cblocks,
                       WfT=ptr(transposed("WfT", w["Wf"])), WbT=ptr(transposed("WbT", w["Wb"])), floor=w["floor"])
        self._keep.append(xs)
        if w["pause"] is not None:  # the pause floor (lobes/pause_floor.py); else vad_w stays NULL
            p = w["pause"]
            vad_w = np.ascontiguousarray(p["w"], np.float64)
            self._keep.append(vad_w)
            self.net.vad_w = vad_w.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
            self.net.vad_b, self.net.vad_thr, self.net.pause_floor = p["b"], p["thr"], p["floor"]
            self.net.hang, self.net.credit = p["hang"], 0
            if p["low"] is not None:  # its low-SNR part: a zero window (a stream starts in a pause)
                ring, power = np.zeros(3 * p["low"]["win"], np.float64), np.zeros(w["n_freq"], dtype)
                self._keep += [ring, power]
                self.net.low_ring = ring.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
                self.net.low_win, self.net.low_pos, self.net.low_min = p["low"]["win"], 0, p["low"]["min"]
                self.net.low_factor, self.net.power = p["low"]["factor"], ptr(power)
        self.feats, self.mask = np.zeros(w["n_freq"], dtype), np.zeros(w["n_freq"], dtype)
        self.compression = w["compression"] if w["feature"] == "compressed" else 0.0
        fn = self.lib.dyncp_frame_spec
        fn.restype, fn.argtypes = None, [ctypes.c_void_p] * 4 + [real_t]
        args = (ctypes.addressof(self.net), self.feats.ctypes.data, self.mask.ctypes.data, self.compression)
        # masks the complex spectrum in place: one foreign call per frame
        self.mask_spec = lambda spec: fn(args[0], spec.ctypes.data, *args[1:])

    def _ptr(self, a: np.ndarray):
        return a.ctypes.data_as(ctypes.POINTER(self.real_t))

    @property
    def computed(self) -> int:
        """Hidden channel-frames computed so far (summed over blocks)."""
        return int(sum(cb.computed for cb in self.blocks))

    def frame_step(self, ola):
        """The whole stream step in C (window, real FFT, network, inverse, overlap-add into ``ola.num``).

        Returns ``step(frame, out)``: with ``out`` ([hop]) the hop of output now complete is
        normalised into it and ``ola.num`` shifted (the framer's steady state); with None the
        framer normalises and shifts. Needs a power-of-two ``n_fft``.
        """
        dtype, n, hop = self.weights["dtype"], ola.n_fft, ola.hop
        m, (_, _, Fft) = n // 2, _structs(self.real_t)
        bits = m.bit_length() - 1
        rev = np.array([int(f"{i:0{bits}b}"[::-1], 2) if bits else 0 for i in range(m)], np.int32)
        k = np.arange(m)
        turn = lambda a: np.ascontiguousarray(np.stack([np.cos(a), -np.sin(a)], 1), dtype)  # noqa: E731
        # butterfly twiddles stage by stage (half = 1, 2, 4, ...), contiguous: exp(-i pi k / half)
        stages = np.concatenate([np.pi * np.arange(h) / h for h in 2 ** np.arange(max(0, bits))] or [np.zeros(0)])
        arrays = dict(twr=np.ascontiguousarray(np.cos(stages), dtype), twi=np.ascontiguousarray(-np.sin(stages), dtype),
                      rtw=turn(2 * np.pi * k / n), zr=np.zeros(m, dtype), zi=np.zeros(m, dtype),
                      spec=np.zeros(2 * (m + 1), dtype), y=np.zeros(n, dtype), window=ola.window, inv_env=ola.inv_env)
        fft = Fft(n=n, hop=hop, rev=rev.ctypes.data_as(ctypes.POINTER(ctypes.c_int)),
                  **{k: self._ptr(v) for k, v in arrays.items()})
        fn = self.lib.dyncp_frame_full
        fn.restype, fn.argtypes = None, [ctypes.c_void_p] * 7 + [self.real_t]
        # fixed in / out buffers, their addresses taken once: ``ndarray.ctypes.data`` costs
        # ~1.5 us per access, a tenth of a pruned small-model frame
        fbuf, obuf = np.zeros(n, dtype), np.zeros(hop, dtype)
        self._keep += [rev, arrays, fft, fbuf, obuf]
        head = (ctypes.addressof(self.net), ctypes.addressof(fft), fbuf.ctypes.data, ola.num.ctypes.data)
        tail = (self.feats.ctypes.data, self.mask.ctypes.data, self.compression)
        with_out, without = head + (obuf.ctypes.data,) + tail, head + (None,) + tail

        def step(frame, out):
            fbuf[:] = frame
            if out is None:
                return fn(*without)
            fn(*with_out)
            out[:] = obuf

        return step
