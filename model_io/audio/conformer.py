"""The Gemma 3n audio tower's forward pass in NumPy (float32 arithmetic, one clip at a time).

A port of transformers' ``Gemma3nAudioEncoder`` and the audio
``Gemma3nMultimodalEmbedder`` (gemma3n-audio.md §2-§3), organised for speed and
for streaming:

* Every projection is a float32 BLAS product ``x @ W.T`` over all frames of a
  chunk, written straight into its destination (:func:`matmul_t`).  16-bit
  matrices (float16, bfloat16 bits) are widened a cache-sized block of rows at a
  time right before their product, so they are never held twice.
* A :class:`Team` of threads splits each product by output columns (and the
  attention by heads, the light convolution by channels); BLAS itself is kept
  single-threaded meanwhile (:func:`blas_threads`).  Splitting in Python degrades
  gracefully when another process takes a core, where OpenBLAS's own threads
  spin and lose up to 6x.
* The whole encoder is causal except at the very end of a clip (the SSCP
  convolutions look two frames ahead, padded with zeros there), so it runs on
  chunks of frames with small caches: :class:`SubsampleStream` keeps the SSCP
  convolutions' pending rows and cumulative group-norm sums, and
  :class:`EncoderState` the last 12 keys/values per layer (chunked local
  attention: each frame sees itself and 12 past frames) and the last 4 GLU rows
  (causal depthwise kernel 5).  A one-shot encode is one chunk.
* The chunked local attention is computed from its meaning (frame t attends to
  frames t-12..t) with strided windows instead of HF's 12-frame blocks, which
  gives the same result without Python loops.
* Only every 4th frame of the last block leaves the encoder (``x[::4]``), so the
  last block's frame-wise tail (light-conv output projection, second FFN, final
  norm) runs on those frames only.

A single clip has no padded frames (the extractor's padding stays within the
last frame), so the validity masks of the batched HF code are all true and omitted.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import itertools
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from model_io.audio import spec
from model_io.audio.weights import (
    BF16_BITS,
    AudioDims,
    AudioWeights,
    ConformerLayer,
    FeedForward,
    Subsampler,
    widen,
)

F32 = np.float32
_MASKED = np.finfo(np.float32).min
_F16_TO_F32_SCALE = F32(2.0**112)  # float16 exponent bias 15 -> float32 bias 127
_CLEAR_SIGN_COPIES = np.int32(-0x70000001)  # ~0x70000000: clears float32 bits 30..28

# A 16-bit matrix is widened this many elements at a time (4 MiB of float32, in L3), twice that for
# long inputs: smaller blocks make thinner products that re-pack x each time (256 Ki: +12 % at 30 s).
WIDEN_BLOCK_ELEMENTS = 1 << 20
_LONG_INPUT_ROWS = 384
WIDE_BY_COLUMNS = True  # widen n_in >> n_out matrices in column blocks (see _matmul_t_k_blocks)
_ELEMENTWISE_BLOCK = 1 << 16  # rows of this many elements for cache-friendly element-wise passes


# ------------------------------------------------------------------ BLAS threads


class _OpenBlas:
    """NumPy's bundled OpenBLAS (scipy-openblas), found by file name; None where NumPy uses another BLAS."""

    def __init__(self, lib: ctypes.CDLL, prefix: str, path: str) -> None:
        self.path = path
        self._set = getattr(lib, f"{prefix}openblas_set_num_threads{self._suffix(lib, prefix)}")
        self._get = getattr(lib, f"{prefix}openblas_get_num_threads{self._suffix(lib, prefix)}")
        self._get.restype = ctypes.c_int
        self._corename = getattr(lib, f"{prefix}openblas_get_corename{self._suffix(lib, prefix)}", None)
        self._config = getattr(lib, f"{prefix}openblas_get_config{self._suffix(lib, prefix)}", None)
        for fn in (self._corename, self._config):
            if fn is not None:
                fn.restype = ctypes.c_char_p

    @staticmethod
    def _suffix(lib: ctypes.CDLL, prefix: str) -> str:
        return "64_" if hasattr(lib, f"{prefix}openblas_get_num_threads64_") else ""

    @classmethod
    def find(cls) -> _OpenBlas | None:
        base = os.path.dirname(np.__file__)
        patterns = [
            os.path.join(base + ".libs", "*openblas*"),  # Linux / Windows wheels
            os.path.join(base, ".dylibs", "*openblas*"),  # macOS x86 wheels
            os.path.join(base, "_core", "*openblas*"),
        ]
        for path in sorted(p for pattern in patterns for p in glob.glob(pattern)):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix in ("scipy_", ""):
                with contextlib.suppress(AttributeError):
                    return cls(lib, prefix, path)
        return None

    @property
    def threads(self) -> int:
        return int(self._get())

    @threads.setter
    def threads(self, n: int) -> None:
        self._set(ctypes.c_int(n))

    @property
    def corename(self) -> str:
        return self._corename().decode() if self._corename is not None else "?"

    @property
    def config(self) -> str:
        return self._config().decode() if self._config is not None else "?"


_openblas: _OpenBlas | None = None
_openblas_searched = False
_blas_lock = threading.RLock()
_blas_depth = 0
_blas_saved = 0


def openblas() -> _OpenBlas | None:
    """NumPy's OpenBLAS, if that is its BLAS (thread count, core and build), else None."""
    global _openblas, _openblas_searched
    if not _openblas_searched:
        _openblas_searched = True
        try:
            _openblas = _OpenBlas.find()
        except Exception:  # any ctypes surprise: behave as if there were no OpenBLAS
            _openblas = None
    return _openblas


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Within the block, NumPy's OpenBLAS uses ``n`` threads (restored afterwards).

    A no-op when ``n`` is None or NumPy's BLAS is not OpenBLAS.  OpenBLAS's count is
    process-wide, so nested and concurrent users share one setting: the first sets it,
    the last restores it.
    """
    global _blas_depth, _blas_saved
    lib = openblas() if n is not None else None
    if lib is None or n is None:
        yield
        return
    with _blas_lock:
        if _blas_depth == 0:
            _blas_saved = lib.threads
            lib.threads = n
        _blas_depth += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                lib.threads = _blas_saved


def default_threads() -> int:
    """Worker threads for the tower: every core on small machines, half the logical CPUs (SMT) beyond."""
    if openblas() is None:
        return 1  # another BLAS (Accelerate, MKL) threads itself; adding ours would oversubscribe
    count = os.cpu_count() or 1
    return max(1, min(8, count if count <= 2 else count // 2))


# ------------------------------------------------------------------ worker team


class Team:
    """Runs a function on disjoint parts ``[lo, hi)`` of a range, in the caller and ``size - 1`` workers.

    NumPy releases the GIL inside BLAS and element-wise loops, so the parts run in
    parallel.  Each part does whole products (with BLAS single-threaded), which keeps
    synchronisation to one hand-over per product.
    """

    def __init__(self, size: int = 1, keep_buffers: bool = True) -> None:
        self.size = max(1, int(size))
        self._pool = (
            ThreadPoolExecutor(self.size - 1, thread_name_prefix="audio-tower") if self.size > 1 else None
        )
        self._keep_buffers = keep_buffers
        self._buffers: dict[str, np.ndarray] = {}
        self._buffers_lock = threading.Lock()

    def buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 scratch array for one named temporary, reused from call to call.

        Fresh multi-MB arrays for every temporary cost the kernel zeroing new pages
        (0.5 s of system time per 30 s clip); reusing them keeps that at ~0.  Each name
        has one live use at a time; parts running in parallel use their own names.
        """
        n = math.prod(shape)
        if not self._keep_buffers:
            return np.empty(shape, dtype=F32)
        with self._buffers_lock:
            buf = self._buffers.get(name)
            if buf is None or buf.size < n:
                buf = np.empty(n, dtype=F32)
                self._buffers[name] = buf
        return buf[:n].reshape(shape)

    @property
    def buffer_bytes(self) -> int:
        return sum(b.nbytes for b in self._buffers.values())

    def bounds(self, total: int, align: int = 1) -> list[tuple[int, int]]:
        """``total`` split into at most ``size`` nearly equal parts on multiples of ``align``."""
        units = max(1, math.ceil(total / align))
        n = min(self.size, units)
        edges = [min(total, (units * i // n) * align) for i in range(n + 1)]
        return [(lo, hi) for lo, hi in itertools.pairwise(edges) if hi > lo]

    def run(self, fn: Callable[[int, int], object], total: int, align: int = 1) -> None:
        parts = self.bounds(total, align)
        if self._pool is None or len(parts) <= 1:
            for lo, hi in parts:
                fn(lo, hi)
            return
        futures = [self._pool.submit(fn, lo, hi) for lo, hi in parts[1:]]
        try:
            fn(*parts[0])
        finally:
            errors = []
            for future in futures:
                try:
                    future.result()
                except BaseException as exc:  # wait for every part before raising
                    errors.append(exc)
        if errors:
            raise errors[0]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
            self.size = 1
        self._buffers.clear()


SERIAL = Team(1, keep_buffers=False)


# ------------------------------------------------------------------ products and element-wise helpers

_scratch_local = threading.local()


def _scratch(n: int) -> np.ndarray:
    """A per-thread float32 buffer of at least ``n`` elements (reused: no page faults per block)."""
    buf = getattr(_scratch_local, "buf", None)
    if buf is None or buf.size < n:
        buf = np.empty(max(n, WIDEN_BLOCK_ELEMENTS), dtype=F32)
        _scratch_local.buf = buf
    return buf[:n]


_CV_32F = 5  # cv2.CV_32F
_cv2_add: Callable[..., np.ndarray] | None = None
_cv2_searched = False


def _opencv_add() -> Callable[..., np.ndarray] | None:
    """``cv2.add`` (imported on first need: 16 MB, 60 ms), or None without OpenCV."""
    global _cv2_add, _cv2_searched
    if not _cv2_searched:
        _cv2_searched = True
        try:
            import cv2

            _cv2_add = cv2.add
        except Exception:
            _cv2_add = None
    return _cv2_add


def widen_into(src: np.ndarray, dst: np.ndarray) -> None:
    """float16 or bfloat16-bit rows ``src`` into the float32 array ``dst`` of the same shape, exactly.

    float16 goes through OpenCV (a project dependency, for the camera) when it imports,
    else through integer ops (sign/exponent/mantissa moved into float32 position, then
    one multiply by 2^112 fixes the exponent bias and handles subnormals), 1.6x faster
    than NumPy's own cast.  Weights are finite, so inf/nan need no care.
    """
    bits = dst.view(np.uint32)
    if src.dtype == BF16_BITS:
        np.left_shift(src, 16, out=bits, dtype=np.uint32)
        return
    if src.dtype != np.float16:
        np.copyto(dst, src)
        return
    add = _opencv_add()
    if add is not None:
        # OpenCV's F16C conversion, ~4x NumPy's; + 0.0 is exact (it only turns -0.0 into +0.0)
        result = add(src, 0.0, dst=dst, dtype=_CV_32F)
        if result is not dst and not np.shares_memory(result, dst):
            np.copyto(dst, result)  # OpenCV made its own array (never for a matching contiguous dst)
        return
    signed = dst.view(np.int32)
    np.left_shift(src.view(np.uint16), 16, out=bits, dtype=np.uint32)
    np.right_shift(signed, 3, out=signed)  # arithmetic: copies the sign into bits 30..28
    np.bitwise_and(signed, _CLEAR_SIGN_COPIES, out=signed)
    np.multiply(dst, _F16_TO_F32_SCALE, out=dst)


def matmul_t(
    x: np.ndarray,
    weight: np.ndarray,
    out: np.ndarray,
    lo: int = 0,
    hi: int | None = None,
    epilogue: Callable[[np.ndarray], object] | None = None,
) -> np.ndarray:
    """``out = x @ weight[lo:hi].T`` in float32 for a float32, float16 or bfloat16-bit weight.

    ``out`` may be a column slice of a larger array (BLAS writes it in place).  A
    16-bit weight is widened ``WIDEN_BLOCK_ELEMENTS`` at a time into a per-thread
    buffer, each block multiplied while it is in cache; ``epilogue`` (an in-place
    element-wise op) is applied to each block of the output while it is hot.
    """
    hi = weight.shape[0] if hi is None else hi
    if weight.dtype == F32:
        np.matmul(x, weight[lo:hi].T, out=out)
        if epilogue is not None:
            step = max(1, _ELEMENTWISE_BLOCK // max(1, out.shape[1]))
            for r in range(0, out.shape[0], step):
                epilogue(out[r : r + step])
        return out
    n, k = hi - lo, weight.shape[1]
    elements = WIDEN_BLOCK_ELEMENTS * (2 if x.shape[0] >= _LONG_INPUT_ROWS else 1)
    if WIDE_BY_COLUMNS and k > 2 * n and k * n > elements:
        return _matmul_t_k_blocks(x, weight[lo:hi], out, epilogue, elements)
    step = max(16, elements // k)
    buf = _scratch(step * k)
    for start in range(lo, hi, step):
        stop = min(start + step, hi)
        widened = buf[: (stop - start) * k].reshape(stop - start, k)
        widen_into(weight[start:stop], widened)
        part = out[:, start - lo : stop - lo]
        np.matmul(x, widened.T, out=part)
        if epilogue is not None:
            epilogue(part)
    return out


def _matmul_t_k_blocks(
    x: np.ndarray,
    weight: np.ndarray,
    out: np.ndarray,
    epilogue: Callable[[np.ndarray], object] | None,
    elements: int,
) -> np.ndarray:
    """``out = x @ weight.T`` for a wide 16-bit weight (n_in >> n_out): widened in column blocks.

    Row blocks of a [1536, 6144] matrix would be only ~40 rows each, too thin for an
    efficient product (and x would be re-packed for each); column blocks keep every
    product full-width and accumulate into ``out``.
    """
    n, k = weight.shape
    step = max(256, elements // n)
    buf = _scratch(step * n + x.shape[0] * n)
    partial = buf[step * n :].reshape(x.shape[0], n)
    for start in range(0, k, step):
        stop = min(start + step, k)
        widened = buf[: n * (stop - start)].reshape(n, stop - start)
        widen_into(weight[:, start:stop], widened)
        if start == 0:
            np.matmul(x[:, start:stop], widened.T, out=out)
        else:
            np.matmul(x[:, start:stop], widened.T, out=partial)
            out += partial
    if epilogue is not None:
        epilogue(out)
    return out


def linear(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``x @ weight.T`` in float32 (a 16-bit weight is widened for this product only)."""
    x = np.ascontiguousarray(x, dtype=F32)
    out = np.empty((*x.shape[:-1], weight.shape[0]), dtype=F32)
    matmul_t(x.reshape(-1, x.shape[-1]), weight, out.reshape(-1, weight.shape[0]))
    return out


def rms_norm(x: np.ndarray, weight: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Gemma 3n's RMSNorm: ``x * (mean(x²) + eps)^-½ * w`` (the weight itself, no ``1 + w``)."""
    mean_square = np.einsum("...i,...i->...", x, x)[..., None] / F32(x.shape[-1])
    out = np.multiply(x, (mean_square + F32(spec.RMS_EPS)) ** F32(-0.5), out=out)
    if weight is not None:
        out *= weight
    return out


def _silu_block(x: np.ndarray) -> None:
    tmp = np.negative(x)
    with np.errstate(over="ignore"):  # exp(-x) = inf for x < -88 gives x / inf = -0, as it should
        np.exp(tmp, out=tmp)
    tmp += F32(1.0)
    np.divide(x, tmp, out=x)


def silu(x: np.ndarray) -> np.ndarray:
    """x·sigmoid(x) = x / (1 + exp(-x)) in place, in cache-sized row blocks."""
    if x.ndim != 2:
        _silu_block(x)
        return x
    rows = x
    step = max(1, _ELEMENTWISE_BLOCK // max(1, rows.shape[1]))
    for r in range(0, rows.shape[0], step):
        _silu_block(rows[r : r + step])
    return x


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """1 / (1 + exp(-x)) (``out`` may be ``x``)."""
    out = np.negative(x, out=out)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += F32(1.0)
    return np.reciprocal(out, out=out)


# ------------------------------------------------------------------ sub-sample convolution projection


def _conv_matrix(weight: np.ndarray) -> np.ndarray:
    """[C_out, C_in, 3 (time), 3 (freq)] → [9 C_in, C_out] matching the im2col patch order (kt, kf, c)."""
    c_out, c_in, kt, kf = weight.shape
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(kt * kf * c_in, c_out), dtype=F32)


def _conv_rows(
    pieces: Sequence[np.ndarray], matrix: np.ndarray, n_out: int, team: Team = SERIAL
) -> np.ndarray:
    """Outputs 0..n_out-1 of a 3x3 stride-2 convolution over time rows [2 n_out + 1, F, C].

    The input rows are the concatenation of ``pieces`` (never materialised).  Output t
    reads rows 2t..2t+2; frequency is padded by (1, 1) as ``Gemma3nAudioSSCPConvBlock``
    does.  One im2col product per call.
    """
    k, s = spec.SSCP_KERNEL, spec.SSCP_STRIDE
    _, f_in, c_in = pieces[0].shape
    f_out = (f_in + 2 - k) // s + 1
    n_in = s * n_out + 1
    padded = team.buffer(f"sscp.padded{c_in}", (n_in, f_in + 2, c_in))
    padded[:, 0] = 0.0
    padded[:, -1] = 0.0
    row = 0
    for piece in pieces:
        take = min(len(piece), n_in - row)
        if take > 0:
            padded[row : row + take, 1 : f_in + 1] = piece[:take]
            row += take
    if row != n_in:
        raise ValueError(f"the convolution needs {n_in} input rows, got {row}")
    s0, s1, s2 = padded.strides
    patches = np.lib.stride_tricks.as_strided(
        padded, shape=(n_out, f_out, k, k, c_in), strides=(s * s0, s * s1, s0, s1, s2)
    )
    cols = team.buffer(f"sscp.cols{c_in}", (n_out, f_out, k, k, c_in))
    np.copyto(cols, patches)
    out = cols.reshape(n_out * f_out, k * k * c_in) @ matrix
    return out.reshape(n_out, f_out, -1)


class _CumulativeNorm:
    """``Gemma3nAudioCumulativeGroupNorm`` on x [T, F, C], continued across chunks.

    Statistics over (F, C), cumulative over time; the variance sums each step's squared
    deviations from *that step's* running mean (the JAX-compatible quirk), so it is
    not the plain running variance.  The running float64 sums carry over between
    calls, accumulated in the same order as one call over the whole clip.
    """

    def __init__(self, weight: np.ndarray) -> None:
        self.weight = weight
        self.steps = 0
        self.total = 0.0
        self.square_total = 0.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        t, f, c = x.shape
        if t == 0:
            return x
        count = np.arange(self.steps + 1, self.steps + t + 1, dtype=np.float64) * (f * c)
        sums = np.cumsum(np.concatenate([[self.total], x.sum(axis=(1, 2), dtype=np.float64)]))[1:]
        mean = sums / count
        centred = x - mean.astype(F32)[:, None, None]
        square_sums = np.einsum("tfc,tfc->t", centred, centred, dtype=np.float64)
        square_cum = np.cumsum(np.concatenate([[self.square_total], square_sums]))[1:]
        variance = square_cum / count
        centred *= (1.0 / np.sqrt(variance + spec.GROUP_NORM_EPS)).astype(F32)[:, None, None]
        centred *= self.weight
        self.steps += t
        self.total = float(sums[-1])
        self.square_total = float(square_cum[-1])
        return centred


def cumulative_group_norm(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The cumulative group norm over a whole sequence x [T, F, C] (see :class:`_CumulativeNorm`)."""
    return _CumulativeNorm(weight)(x)


class SubsampleStream:
    """The SSCP (two conv / cumulative-norm / ReLU blocks, then a projection) over a growing log-mel.

    Each convolution pads time by (0, 2) at the end ("reverse causal"), so output t
    needs input rows 2t..2t+2: it is computed as soon as those rows exist, and only at
    the end of the clip (``final``) from the zero padding.  Feeding the mel of a clip
    in any pieces gives the rows one call with the whole mel gives.
    """

    def __init__(self, sscp: Subsampler, block_rows: int = 128) -> None:
        self.sscp = sscp
        self.block_rows = block_rows  # conv outputs per im2col product (bounds the temporaries)
        self._matrices = (_conv_matrix(sscp.conv0), _conv_matrix(sscp.conv1))
        self._norms = (_CumulativeNorm(sscp.norm0), _CumulativeNorm(sscp.norm1))
        f0 = spec.N_MELS
        self._pending = [
            np.zeros((0, f0, 1), dtype=F32),
            np.zeros((0, (f0 + 2 - spec.SSCP_KERNEL) // spec.SSCP_STRIDE + 1, sscp.conv0.shape[0]), F32),
        ]
        self.rows_out = 0
        self.finished = False

    def push(self, mel: np.ndarray, final: bool = False, team: Team = SERIAL) -> np.ndarray:
        """Append log-mel rows [n, 128]; returns the newly final SSCP outputs [k, d_model].

        ``final`` marks the end of the clip: the remaining outputs are computed from the
        zero padding, and the stream is closed.
        """
        if self.finished:
            raise RuntimeError("the subsampler has already finished its clip")
        mel_rows = np.asarray(mel, dtype=F32)[:, :, None]
        blocks = []  # stage-0 outputs go on to stage 1 a block at a time
        for block in self._stage(0, mel_rows, final, team):
            blocks += self._stage(1, block, False, team)
        if final:
            blocks += self._stage(1, mel_rows[:0], True, team)
        self.finished = final
        x = blocks[0] if len(blocks) == 1 else np.concatenate(blocks) if blocks else None
        d_model = self.sscp.proj.shape[0]
        n = 0 if x is None else len(x)
        out = np.empty((n, d_model), dtype=F32)
        if x is not None and n:
            flat = np.ascontiguousarray(x.reshape(n, -1))
            team.run(lambda lo, hi: matmul_t(flat, self.sscp.proj, out[:, lo:hi], lo, hi), d_model, 64)
        self.rows_out += n
        return out

    def _stage(self, stage: int, new_rows: np.ndarray, final: bool, team: Team) -> list[np.ndarray]:
        """Conv/norm/ReLU outputs that ``new_rows`` make final, in blocks; keeps the ≤ 2 rows left over."""
        s, k = spec.SSCP_STRIDE, spec.SSCP_KERNEL
        rest = self._pending[stage]
        pieces = [rest, new_rows]
        if final and len(rest) + len(new_rows):
            pieces.append(np.zeros((k - 1, *rest.shape[1:]), dtype=F32))  # the end padding
        total = sum(len(p) for p in pieces)
        n_out = (total - k) // s + 1 if total >= k else 0
        outputs = []
        for start in range(0, n_out, self.block_rows):
            count = min(self.block_rows, n_out - start)
            window = _row_range(pieces, s * start, s * (start + count) + 1)
            rows = self._norms[stage](_conv_rows(window, self._matrices[stage], count, team))
            np.maximum(rows, F32(0.0), out=rows)
            outputs.append(rows)
        left = _row_range(pieces, s * n_out, total) if not final else []
        self._pending[stage] = np.concatenate(left) if left else rest[:0]
        return outputs


def _row_range(pieces: Sequence[np.ndarray], start: int, stop: int) -> list[np.ndarray]:
    """Rows ``start:stop`` of the concatenation of ``pieces``, as views of the pieces."""
    out, offset = [], 0
    for piece in pieces:
        lo, hi = max(start - offset, 0), min(stop - offset, len(piece))
        if hi > lo:
            out.append(piece[lo:hi])
        offset += len(piece)
    return out


def subsample(mel: np.ndarray, sscp: Subsampler, team: Team = SERIAL) -> np.ndarray:
    """Log-mel [T, 128] → [ceil(ceil(T/2)/2), d_model]: two conv/norm/ReLU blocks and a projection."""
    return SubsampleStream(sscp).push(mel, final=True, team=team)


# ------------------------------------------------------------------ conformer


@dataclass
class LayerCache:
    """What one block keeps from earlier chunks: the last 12 keys and values, the last 4 GLU rows."""

    keys: np.ndarray  # [max_past, n_head, head_dim], oldest first
    values: np.ndarray  # [max_past, n_head, head_dim]
    conv: np.ndarray  # [kernel - 1, d_model]: GLU outputs feeding the causal depthwise conv


class EncoderState:
    """The conformer's memory of one clip's frames so far.

    :func:`conformer_chunk` advances every block at once; the streaming encoder advances
    blocks one at a time (:func:`conformer_layer_step`), so each counts its own frames.
    """

    def __init__(self, dims: AudioDims) -> None:
        past = spec.MAX_PAST
        self.layer_frames = [0] * dims.n_layer  # frames already through each block
        self.layers = [
            LayerCache(
                keys=np.zeros((past, dims.n_head, dims.head_dim), dtype=F32),
                values=np.zeros((past, dims.n_head, dims.head_dim), dtype=F32),
                conv=np.zeros((dims.conv_kernel - 1, dims.d_model), dtype=F32),
            )
            for _ in range(dims.n_layer)
        ]

    @property
    def frames(self) -> int:
        """Frames already through every block."""
        return self.layer_frames[-1]


def feed_forward(x: np.ndarray, ffn: FeedForward, team: Team = SERIAL) -> np.ndarray:
    """Half-step macaron FFN, in place on x: ``x += 0.5 * post_norm(W2 silu(W1 pre_norm(x)))``."""
    m, d = x.shape
    if m == 0:
        return x
    hidden = team.buffer("ffn.hidden", (m, ffn.up.shape[0]))
    normed = rms_norm(x, ffn.pre_norm, out=team.buffer("normed", (m, d)))
    team.run(lambda lo, hi: matmul_t(normed, ffn.up, hidden[:, lo:hi], lo, hi, silu), ffn.up.shape[0], 64)
    down = team.buffer("projected", (m, d))
    team.run(lambda lo, hi: matmul_t(hidden, ffn.down, down[:, lo:hi], lo, hi), d, 64)
    x += rms_norm(down, ffn.post_norm * F32(spec.RESIDUAL_WEIGHT), out=down)
    return x


def local_attention(
    q: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    rel: np.ndarray,
    n_before_start: int = spec.MAX_PAST,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Each query frame attends to itself and the 12 frames before it.

    q [m, N, H] (pre-scaled); keys, values [12 + m, N, H]: the 12 frames before the
    chunk, then the chunk's own; rel [13, N, H] (index j is the key 12 - j frames back).
    The first ``n_before_start`` key rows lie before the clip start and are masked, as
    HF's zero-padded context blocks are.  Logit = q·k + q·rel[j], soft-capped at ±50.
    Returns [m, N, H] (into ``out`` when given).
    """
    m, n, h = q.shape
    span = spec.MAX_PAST + 1
    key_windows = np.lib.stride_tricks.sliding_window_view(keys, span, axis=0)  # [m, N, H, span]
    value_windows = np.lib.stride_tricks.sliding_window_view(values, span, axis=0)
    logits = np.einsum("tnh,tnhj->tnj", q, key_windows, optimize=False)
    logits += np.matmul(q.transpose(1, 0, 2), rel.transpose(1, 2, 0)).transpose(1, 0, 2)
    logits /= F32(spec.LOGIT_CAP)
    np.tanh(logits, out=logits)
    logits *= F32(spec.LOGIT_CAP)
    first = min(m, n_before_start)  # only these query rows have keys before the clip start
    if first:
        before_start = np.arange(span)[None, :] < (n_before_start - np.arange(first))[:, None]
        logits[:first] = np.where(before_start[:, None, :], _MASKED, logits[:first])
    logits -= logits.max(axis=-1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=-1, keepdims=True)
    if out is None:
        out = np.empty((m, n, h), dtype=F32)
    return np.einsum("tnj,tnhj->tnh", logits, value_windows, optimize=False, out=out)


def attention_block(
    x: np.ndarray, layer: ConformerLayer, cache: LayerCache, n_before_start: int, team: Team = SERIAL
) -> np.ndarray:
    """``x += ln2(W_post · attention(ln1(x)))`` in place, the team splitting by heads; updates the cache."""
    m, d = x.shape
    past, n_head, head_dim = cache.keys.shape
    normed = rms_norm(x, layer.attn_norm, out=team.buffer("normed", (m, d)))
    attended = team.buffer("attended", (m, d))

    def heads(h0: int, h1: int) -> None:
        c0, c1, g = h0 * head_dim, h1 * head_dim, h1 - h0
        q = team.buffer(f"attn.q{h0}", (m, g, head_dim))
        keys = team.buffer(f"attn.k{h0}", (past + m, g, head_dim))
        values = team.buffer(f"attn.v{h0}", (past + m, g, head_dim))
        keys[:past] = cache.keys[:, h0:h1]
        values[:past] = cache.values[:, h0:h1]
        matmul_t(normed, layer.qkv, q.reshape(m, -1), c0, c1)
        matmul_t(normed, layer.qkv, keys[past:].reshape(m, -1), d + c0, d + c1)
        matmul_t(normed, layer.qkv, values[past:].reshape(m, -1), 2 * d + c0, 2 * d + c1)
        q *= layer.q_scale
        out = attended[:, c0:c1].reshape(m, g, head_dim)
        local_attention(q, keys, values, layer.rel[:, h0:h1], n_before_start, out=out)
        cache.keys[:, h0:h1] = keys[m:]
        cache.values[:, h0:h1] = values[m:]

    team.run(heads, n_head)
    projected = team.buffer("projected", (m, d))
    team.run(lambda lo, hi: matmul_t(attended, layer.attn_out, projected[:, lo:hi], lo, hi), d, 64)
    x += rms_norm(projected, layer.attn_post_norm, out=projected)
    return x


def light_conv(
    x: np.ndarray, layer: ConformerLayer, cache: LayerCache, team: Team = SERIAL, keep: slice | None = None
) -> np.ndarray:
    """Pointwise GLU, causal depthwise conv (kernel K over the cached K-1 rows), norm, SiLU, pointwise.

    The team splits the GLU and depthwise conv by channels.  With ``keep``, only those
    rows come back (the rest of the block is frame-wise, so nothing else needs them).
    """
    m, d = x.shape
    kernel = layer.conv_dw.shape[0]
    normed = rms_norm(x, layer.conv_pre_norm, out=team.buffer("normed", (m, d)))
    conv = team.buffer("conv", (m, d))

    def channels(c0: int, c1: int) -> None:
        width = c1 - c0
        gated = team.buffer(f"conv.gated{c0}", (kernel - 1 + m, width))
        gated[: kernel - 1] = cache.conv[:, c0:c1]
        matmul_t(normed, layer.conv_start, gated[kernel - 1 :], c0, c1)
        gate = team.buffer(f"conv.gate{c0}", (m, width))
        matmul_t(normed, layer.conv_start, gate, d + c0, d + c1)
        gated[kernel - 1 :] *= sigmoid(gate, out=gate)
        out = conv[:, c0:c1]
        np.multiply(gated[:m], layer.conv_dw[0, c0:c1], out=out)
        for j in range(1, kernel):
            np.multiply(gated[j : j + m], layer.conv_dw[j, c0:c1], out=gate)
            out += gate
        cache.conv[:, c0:c1] = gated[m:]

    team.run(channels, d, 64)
    if keep is not None:
        x, conv = x[keep], conv[keep]
    conv = silu(rms_norm(conv, layer.conv_norm, out=conv))
    projected = team.buffer("projected", (len(x), d))
    if len(x):
        team.run(lambda lo, hi: matmul_t(conv, layer.conv_end, projected[:, lo:hi], lo, hi), d, 64)
    out = team.buffer("x.kept", (len(x), d)) if keep is not None else x
    return np.add(x, projected, out=out)


def conformer_block(
    x: np.ndarray,
    layer: ConformerLayer,
    n_head: int | None = None,
    *,
    cache: LayerCache | None = None,
    n_before_start: int = spec.MAX_PAST,
    team: Team = SERIAL,
    keep: slice | None = None,
    profile: dict[str, float] | None = None,
) -> np.ndarray:
    """One conformer block on frames x [m, d] (a whole clip when no ``cache`` is given).

    ``profile`` accumulates the seconds spent in each part (for ``tools/bench_audio.py``).
    """
    if cache is None:
        head_dim = layer.q_scale.shape[0]
        cache = LayerCache(
            keys=np.zeros((spec.MAX_PAST, x.shape[1] // head_dim, head_dim), dtype=F32),
            values=np.zeros((spec.MAX_PAST, x.shape[1] // head_dim, head_dim), dtype=F32),
            conv=np.zeros((layer.conv_dw.shape[0] - 1, x.shape[1]), dtype=F32),
        )
    lap = _Laps(profile)
    work = team.buffer("x", x.shape)  # the block works in place on a copy of its input
    np.copyto(work, x)
    x = work
    x = feed_forward(x, layer.ffn_start, team)
    lap("ffn_start")
    x = attention_block(x, layer, cache, n_before_start, team)
    lap("attention")
    x = light_conv(x, layer, cache, team, keep)
    lap("light_conv")
    x = feed_forward(x, layer.ffn_end, team)
    lap("ffn_end")
    x = rms_norm(x, layer.final_norm)  # a fresh array: the next block's input, or queued
    lap("final_norm")
    return x


class _Laps:
    """Adds the time since the previous lap to ``profile[name]``; does nothing without a profile."""

    def __init__(self, profile: dict[str, float] | None) -> None:
        self.profile = profile
        self.last = time.perf_counter() if profile is not None else 0.0

    def __call__(self, name: str) -> None:
        if self.profile is not None:
            now = time.perf_counter()
            self.profile[name] = self.profile.get(name, 0.0) + now - self.last
            self.last = now


def conformer_chunk(
    x: np.ndarray,
    weights: AudioWeights,
    state: EncoderState,
    team: Team = SERIAL,
    reduce: bool = True,
    profile: dict[str, float] | None = None,
) -> np.ndarray:
    """The next ``m`` frames x [m, d] of a clip through every block, continuing ``state``.

    Returns the last block's output for the frames the encoder keeps (absolute index a
    multiple of 4, ``reduce``) or for all m frames.
    """
    if x.shape[0] == 0:
        return np.zeros((0, x.shape[1]), dtype=F32)
    if len(set(state.layer_frames)) != 1:
        raise ValueError("conformer_chunk needs every block at the same frame (see conformer_layer_step)")
    for i in range(len(weights.layers)):
        x = conformer_layer_step(x, weights, state, i, team, reduce, profile)
    return np.ascontiguousarray(x)


def conformer_layer_step(
    x: np.ndarray,
    weights: AudioWeights,
    state: EncoderState,
    index: int,
    team: Team = SERIAL,
    reduce: bool = True,
    profile: dict[str, float] | None = None,
) -> np.ndarray:
    """The next ``m`` frames of block ``index`` (its input x [m, d]), continuing ``state``.

    The last block returns only the frames the encoder keeps (absolute index a multiple
    of 4) when ``reduce``; the others return all m frames, the next block's input.
    """
    first = state.layer_frames[index]
    last = index == len(weights.layers) - 1
    keep = slice((-first) % spec.REDUCTION, None, spec.REDUCTION) if reduce and last else None
    out = conformer_block(
        x,
        weights.layers[index],
        cache=state.layers[index],
        n_before_start=max(0, spec.MAX_PAST - first),
        team=team,
        keep=keep,
        profile=profile,
    )
    state.layer_frames[index] += x.shape[0]
    return out


def encode_mel(mel: np.ndarray, weights: AudioWeights, team: Team = SERIAL) -> np.ndarray:
    """Log-mel [T, 128] → encoder output [n_real, d_model] (``Gemma3nAudioEncoder.last_hidden_state``)."""
    x = subsample(mel, weights.sscp, team)
    return conformer_chunk(x, weights, EncoderState(weights.dims), team)


# ------------------------------------------------------------------ embedder


def embed_soft(encoded: np.ndarray, weights: AudioWeights, team: Team = SERIAL) -> np.ndarray:
    """Encoder rows → language-model rows: soft norm, projection, weightless RMSNorm (no √d scaling)."""
    emb = weights.embedder
    normed = rms_norm(encoded, emb.soft_norm)
    out = np.empty((len(encoded), emb.projection.shape[0]), dtype=F32)
    if len(encoded):
        team.run(lambda lo, hi: matmul_t(normed, emb.projection, out[:, lo:hi], lo, hi), out.shape[1], 64)
    return rms_norm(out, out=out)


def embed_hard(
    table: np.ndarray, hard_norm: np.ndarray, projection: np.ndarray, token_ids: Sequence[int]
) -> np.ndarray:
    """Rows of audio-vocabulary ids (262272..262399) through the embedder's hard path."""
    rows = np.asarray(token_ids) - spec.AUDIO_VOCAB_OFFSET
    if rows.min() < 0 or rows.max() >= table.shape[0]:
        raise ValueError(f"token ids {list(token_ids)} are outside the audio vocabulary")
    return rms_norm(linear(rms_norm(widen(table[rows]), hard_norm), projection)).astype(F32)
