"""The audio tower as a resource: loaded on first use, released on demand, its RAM accounted.

At full size the weights take ≈1.4 GB in their compact 16-bit form (2.7 GB as
float32), so the app must be able to drop them when audio is idle and say how much
it holds.  A lock serialises load, release and encoding, because the engine
encodes on its worker thread while the tower manager may release idle towers from
another.  The tower also owns the small thread team its products run on
(``threads``), with NumPy's OpenBLAS held single-threaded while it computes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from model_io.audio import spec
from model_io.audio.conformer import Team, blas_threads, default_threads, embed_soft, encode_mel
from model_io.audio.features import log_mel
from model_io.audio.weights import COMPACT, AudioDims, AudioWeights, WeightDtype, load_audio_weights
from model_io.errors import InputError

DEFAULT_WEIGHT_DTYPE: WeightDtype = COMPACT


class AudioTower:
    """Gemma 3n's audio encoder and embedder, read from an mmproj GGUF when first needed."""

    def __init__(
        self,
        mmproj_path: str | Path,
        *,
        weight_dtype: WeightDtype = DEFAULT_WEIGHT_DTYPE,
        threads: int | None = None,
    ) -> None:
        """``weight_dtype``: ``"compact"`` (default: the file's own 16-bit precision, ≈1.4 GB at full
        size), ``np.float32`` (≈2.7 GB, a few % faster) or ``np.float16``; see ``weights.py``.
        ``threads``: worker threads for the products (default: ``conformer.default_threads()``)."""
        self.path = Path(mmproj_path)
        self.weight_dtype = weight_dtype
        self.threads = default_threads() if threads is None else max(1, int(threads))
        self._weights: AudioWeights | None = None
        self._team: Team | None = None
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- lifecycle

    @property
    def loaded(self) -> bool:
        return self._weights is not None

    def load(self) -> AudioWeights:
        """Read and dequantise the weights now (a no-op when already loaded)."""
        with self._lock:
            if self._weights is None:
                self._weights = load_audio_weights(self.path, dtype=self.weight_dtype)
            return self._weights

    def release(self) -> None:
        """Drop the weights (and stop the worker threads); the next call that needs them loads them again."""
        with self._lock:
            self._weights = None
            if self._team is not None:
                self._team.close()
                self._team = None

    close = release

    @property
    def resident_bytes(self) -> int:
        """Bytes of weights held in RAM now (0 when released)."""
        weights = self._weights
        return weights.nbytes if weights is not None else 0

    @property
    def dims(self) -> AudioDims:
        return self.load().dims

    @property
    def n_embd(self) -> int:
        """Width of the rows fed to the language model (its hidden size)."""
        return self.dims.n_embd_text

    # ---------------------------------------------------------------- computation

    @contextlib.contextmanager
    def computing(self) -> Iterator[tuple[AudioWeights, Team]]:
        """Hold the tower (loaded) for a computation: its weights and thread team, BLAS single-threaded.

        The streaming encoder runs its chunks inside this too.
        """
        with self._lock:
            weights = self.load()
            if self._team is None:
                self._team = Team(self.threads)
            with blas_threads(1):
                yield weights, self._team

    def encode(self, waveform: np.ndarray) -> np.ndarray:
        """Encoder output [n_real, d_model] for a 16 kHz mono clip of at most 30 s (before the embedder)."""
        mel = log_mel(_checked_clip(waveform))
        with self.computing() as (weights, team):
            return encode_mel(mel, weights, team)

    def embed(self, waveform: np.ndarray) -> np.ndarray:
        """The clip's real soft-token rows [n_real, n_embd] in language-model space (no padding rows)."""
        mel = log_mel(_checked_clip(waveform))
        with self.computing() as (weights, team):
            return embed_soft(encode_mel(mel, weights, team), weights, team)

    def special_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Hard-embedding rows (padding id 262399, ``<end_of_audio>`` 262272), float32 [n_embd] each."""
        emb = self.load().embedder
        return emb.pad_row, emb.end_of_audio_row

    def clip_rows(self, waveform: np.ndarray) -> np.ndarray:
        """All 189 rows one clip occupies: real soft rows, padding rows up to 188, then ``<end_of_audio>``."""
        with self._lock:
            real = self.embed(waveform)
            return self.pad_rows(real)

    def pad_rows(self, real: np.ndarray) -> np.ndarray:
        """A clip's real soft rows completed to its 189 rows: padding rows up to 188, ``<end_of_audio>``."""
        pad, end = self.special_rows()
        n_pad = spec.SOFT_TOKENS_PER_CLIP - len(real)
        rows = np.concatenate([real, np.broadcast_to(pad, (n_pad, len(pad))), end[None, :]])
        return np.ascontiguousarray(rows, dtype=np.float32)


def _checked_clip(waveform: np.ndarray) -> np.ndarray:
    wave = check_samples(waveform)
    if wave.size == 0:
        raise InputError("the audio clip is empty")
    if wave.size > spec.MAX_SAMPLES:
        raise InputError(
            f"an audio clip is at most 30 s ({spec.MAX_SAMPLES} samples at 16 kHz); "
            f"this one has {wave.size}; split it first"
        )
    return wave


def check_samples(waveform: np.ndarray) -> np.ndarray:
    """Mono, finite floating-point samples as float32 (InputError otherwise); may be empty."""
    wave = np.asarray(waveform)
    if wave.ndim != 1:
        raise InputError(f"audio must be a mono waveform (1-D), got an array of shape {wave.shape}")
    if not np.issubdtype(wave.dtype, np.floating) or not np.isfinite(wave).all():
        raise InputError("audio samples must be finite floating-point values")
    return wave.astype(np.float32, copy=False)


def embed_clip(mmproj_path: str | Path, waveform: np.ndarray) -> np.ndarray:
    """One-shot: the real soft-token rows [n_real, n_embd] of a ≤ 30 s clip (loads and frees the tower).

    Use an :class:`AudioTower` to encode several clips without reloading the weights.
    """
    tower = AudioTower(mmproj_path)
    try:
        return tower.embed(waveform)
    finally:
        tower.release()
