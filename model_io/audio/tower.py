"""The audio tower as a resource: loaded on first use, released on demand, its RAM accounted.

At full size the float32 weights take ≈2.6 GB, so the app must be able to drop
them when audio is idle and say how much it holds.  A lock serialises load,
release and encoding, because the engine encodes on its worker thread while the
tower manager may release idle towers from another.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from model_io.audio import spec
from model_io.audio.conformer import embed_soft, encode_mel
from model_io.audio.features import log_mel
from model_io.audio.weights import AudioDims, AudioWeights, load_audio_weights
from model_io.errors import InputError


class AudioTower:
    """Gemma 3n's audio encoder and embedder, read from an mmproj GGUF when first needed."""

    def __init__(self, mmproj_path: str | Path, *, weight_dtype: type[np.floating] = np.float32) -> None:
        """``weight_dtype=np.float16`` halves the resident matrices at some speed cost per clip."""
        self.path = Path(mmproj_path)
        self.weight_dtype = weight_dtype
        self._weights: AudioWeights | None = None
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
        """Drop the weights; the next call that needs them loads them again."""
        with self._lock:
            self._weights = None

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

    def encode(self, waveform: np.ndarray) -> np.ndarray:
        """Encoder output [n_real, d_model] for a 16 kHz mono clip of at most 30 s (before the embedder)."""
        mel = log_mel(_checked_clip(waveform))
        with self._lock:
            return encode_mel(mel, self.load())

    def embed(self, waveform: np.ndarray) -> np.ndarray:
        """The clip's real soft-token rows [n_real, n_embd] in language-model space (no padding rows)."""
        mel = log_mel(_checked_clip(waveform))
        with self._lock:
            weights = self.load()
            return embed_soft(encode_mel(mel, weights), weights)

    def special_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Hard-embedding rows (padding id 262399, ``<end_of_audio>`` 262272), float32 [n_embd] each."""
        emb = self.load().embedder
        return emb.pad_row, emb.end_of_audio_row

    def clip_rows(self, waveform: np.ndarray) -> np.ndarray:
        """All 189 rows one clip occupies: real soft rows, padding rows up to 188, then ``<end_of_audio>``."""
        with self._lock:
            real = self.embed(waveform)
            pad, end = self.special_rows()
        n_pad = spec.SOFT_TOKENS_PER_CLIP - len(real)
        rows = np.concatenate([real, np.broadcast_to(pad, (n_pad, len(pad))), end[None, :]])
        return np.ascontiguousarray(rows, dtype=np.float32)


def _checked_clip(waveform: np.ndarray) -> np.ndarray:
    wave = np.asarray(waveform)
    if wave.ndim != 1:
        raise InputError(f"audio must be a mono waveform (1-D), got an array of shape {wave.shape}")
    if wave.size == 0:
        raise InputError("the audio clip is empty")
    if wave.size > spec.MAX_SAMPLES:
        raise InputError(
            f"an audio clip is at most 30 s ({spec.MAX_SAMPLES} samples at 16 kHz); "
            f"this one has {wave.size}; split it first"
        )
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
