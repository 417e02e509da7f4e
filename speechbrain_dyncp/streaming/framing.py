"""The one framer and overlap-add of every streaming path (PyTorch engine, NumPy / C streamer, ONNX step).

Alignment is the offline model's ``torch.stft(center=True)``: frame t covers
samples ``[t*hop - n_fft/2, t*hop + n_fft/2)``, so the input starts with
``n_fft/2`` zeros. A frame can be computed once its last sample has arrived,
and after it the output before sample ``(t+1)*hop - n_fft/2`` is final. Output
leaves with a fixed delay of ``latency = n_fft - 1`` samples (31.9 ms at 16 kHz
for n_fft 512; the smallest fixed delay that always has final samples ready),
so ``cat(outputs + [tail])[..., latency:]`` is the offline output sample for
sample. :meth:`OverlapAdd.end` zero-pads the end exactly like the offline
centred STFT. The overlap-add is the weighted one of ``torch.istft``: the sum
of the windowed output frames divided by the sum of the squared windows.

The arrays are those of ``window``: NumPy (the batch-1 streamers, samples
``[S]``) or torch (the batched engine, samples ``[B, S]``).

Authors
 * speechbrain-dyncp contributors
"""

import numpy as np
import torch


class OverlapAdd:
    """Input buffer, STFT framing and overlap-add of one (batch of) stream(s).

    The caller computes each frame: it takes the complete input frames from
    :meth:`frames`, and gives back each windowed output frame with :meth:`add`
    (or adds it into :attr:`num` itself and calls :meth:`advance`, as the C
    step does).

    Arguments
    ---------
    window : numpy.ndarray or torch.Tensor
        ``[n_fft]`` analysis (= synthesis) window; sets the array type and dtype.
    hop : int
        Hop length; must divide ``n_fft``.
    batch : tuple
        Leading shape of the samples (``()`` for one NumPy stream, ``(B,)`` for torch).

    Example
    -------
    >>> n, hop = 8, 4
    >>> window = np.hanning(n + 1)[:n]
    >>> ola = OverlapAdd(window, hop)
    >>> x = np.random.default_rng(0).standard_normal(30)
    >>> def run():
    ...     for frame in ola.frames():
    ...         ola.add(frame * window * window)  # an identity "network"
    >>> outs = []
    >>> for chunk in np.array_split(x, 4):
    ...     ola.push(chunk)
    ...     run()
    ...     outs.append(ola.pull(len(chunk)))
    >>> ola.end(); run()
    >>> y = np.concatenate(outs + [ola.tail()])
    >>> len(y) == len(x) + ola.latency and bool(np.allclose(y[ola.latency:], x))
    True
    """

    def __init__(self, window, hop: int, batch: tuple = ()):
        n = window.shape[-1]
        if n % hop:
            raise ValueError(f"the stream framer needs n_fft divisible by the hop, got {n} and {hop}.")
        self.n_fft, self.hop, self.latency = n, hop, n - 1
        self.window, self.win2 = window, window**2
        self.inv_env = 1 / self.win2.reshape(-1, hop).sum(0)  # interior window energy, inverted
        self._numpy = isinstance(window, np.ndarray)
        self._cat = np.concatenate if self._numpy else torch.cat
        if self._numpy:
            self._zeros = lambda size: np.zeros((*batch, size), window.dtype)  # noqa: E731
        else:
            self._zeros = lambda size: window.new_zeros((*batch, size))  # noqa: E731
        self.in_buf = self._zeros(n // 2)  # the centre padding
        self.num, self.den = self._zeros(n), self._zeros(n)
        self.out_buf, self._pending = self._zeros(self.latency), []
        self.trim = n // 2  # output samples still to drop (the centre padding)
        self.samples_in = self.frames_done = 0
        self.steady = False
        """True once each next hop of output is interior: every frame over it is in, the padding dropped."""

    def push(self, chunk) -> None:
        """Append input samples ``[..., S]``."""
        self.in_buf = self._cat([self.in_buf, chunk], -1)
        self.samples_in += chunk.shape[-1]

    def frames(self):
        """Every complete input frame not taken yet, oldest first, as views: a list of ``[n_fft]``
        arrays (NumPy; cheaper than a strided view per call) or one
        ``[B, F, n_fft]`` tensor (torch)."""
        n, hop, buf = self.n_fft, self.hop, self.in_buf
        if self._numpy:  # the per-chunk cost of the C streamer: plain slices
            pos, frames, size = 0, [], buf.shape[-1]
            while size - pos >= n:
                frames.append(buf[..., pos: pos + n])
                pos += hop
            self.in_buf = buf[..., pos:]
            return frames
        count = max(0, (buf.shape[-1] - n) // hop + 1)
        self.in_buf = buf[..., count * hop:]
        return buf[..., : (count - 1) * hop + n].unfold(-1, n, hop) if count else buf.new_empty((*buf.shape[:-1], 0, n))

    def add(self, y) -> None:
        """Overlap-add one windowed output frame ``[..., n_fft]`` and move one hop on."""
        self.num += y
        self.advance()

    def advance(self, out=None) -> None:
        """Move one hop on after a frame was added into :attr:`num`.

        ``out``: the hop of output the caller already normalised and took out of
        :attr:`num` (the C step does so in the :attr:`steady` state).
        """
        if out is not None:  # the C step's steady state: the hot path
            self._pending.append(out)
            self.frames_done += 1
            return
        hop, num = self.hop, self.num
        if self.steady:  # den is needed only at the start and at the end of the stream
            self._pending.append(num[..., :hop] * self.inv_env)
        else:
            self.den += self.win2
            self._emit(num[..., :hop], self.den[..., :hop])
            self._shift(self.den)
        self._shift(num)  # in place: the C step holds its address
        self.frames_done += 1
        if not self.steady:
            self.steady = self.frames_done * hop >= self.n_fft - hop and not self.trim

    def _shift(self, a) -> None:
        """Shift a buffer by one hop towards its start, in place, zeros at the end."""
        hop = self.hop
        a[..., :-hop] = a[..., hop:] if self._numpy else a[..., hop:].clone()  # NumPy handles the overlap
        a[..., -hop:] = 0

    def _emit(self, num, den) -> None:
        drop = min(self.trim, num.shape[-1])
        self.trim -= drop
        num, den = num[..., drop:], den[..., drop:]
        self._pending.append(num / den.clip(min=1e-11) * (den > 1e-11))

    def _collect(self) -> None:
        if self._pending:  # one concatenation per call, not per frame (a whole file at once was quadratic)
            self.out_buf = self._cat([self.out_buf, *self._pending], -1)
            self._pending = []

    def pull(self, size: int):
        """The next ``size`` output samples ``[..., size]``."""
        self._collect()
        out, self.out_buf = self.out_buf[..., :size], self.out_buf[..., size:]
        return out

    def end(self) -> None:
        """End of input: zero-pad so the frames of the offline centred STFT are all complete."""
        todo = 1 + self.samples_in // self.hop - self.frames_done  # offline frame count minus frames done
        if todo > 0:
            need = (todo - 1) * self.hop + self.n_fft - self.in_buf.shape[-1]
            self.in_buf = self._cat([self.in_buf, self._zeros(max(0, need))], -1)

    def tail(self):
        """After :meth:`end` and the last frames: every output sample still owed (``latency`` of them)."""
        self._collect()
        n, hop = self.n_fft, self.hop
        left = self.latency + self.trim - self.out_buf.shape[-1]
        den = self._zeros(n)  # window energy of the frames already added over the samples left
        for k in range(1, n // hop):
            if self.frames_done - k >= 0:
                den[..., : n - k * hop] += self.win2[k * hop:]
        self._emit(self.num[..., :left], den[..., :left])
        self._collect()
        out, self.out_buf = self.out_buf, self.out_buf[..., :0]
        return out


class Framed:
    """The stream position of anything that owns an :class:`OverlapAdd` as ``self.ola``."""

    @property
    def latency(self) -> int:
        """Delay in samples between input and output (``n_fft - 1``)."""
        return self.ola.latency

    @property
    def frames_done(self) -> int:
        """STFT frames computed so far."""
        return self.ola.frames_done


class FrameStream(Framed):
    """Chunks in, enhanced chunks out, for the batch-1 NumPy streamers: a subclass sets
    ``self.ola`` (an :class:`OverlapAdd` over NumPy arrays) and ``self.dtype``, and computes
    one frame in ``_frame(frame)`` (adding its output to ``self.ola``)."""

    def _run(self) -> None:
        for frame in self.ola.frames():
            self._frame(frame)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Feed samples ``[S]``; returns ``[S]`` output delayed by ``latency`` samples."""
        chunk = np.asarray(chunk, self.dtype)
        self.ola.push(chunk)
        self._run()
        return self.ola.pull(len(chunk))

    def finish(self) -> np.ndarray:
        """Flush the end (zero padding as the offline centred STFT); returns the last ``latency`` samples."""
        self.ola.end()
        self._run()
        return self.ola.tail()
