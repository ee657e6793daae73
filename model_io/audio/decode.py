"""Audio files to the 16 kHz mono float32 waveform Gemma 3n's front end expects.

libsndfile (bundled with soundfile) reads WAV, FLAC, Ogg Vorbis/Opus and MP3 at
any rate and channel count; soxr resamples with its "HQ" filter.  The file is
streamed in blocks and each block is mixed down to mono and resampled before
the next is read, so memory never holds more than the 16 kHz mono result
(64 KB per second) plus one block, however many channels or samples per second
the file has.  Every failure a user can cause becomes one ``InputError`` that
names the file.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from model_io.audio.spec import SAMPLE_RATE
from model_io.errors import InputError

BLOCK_FRAMES = 1 << 16  # per read: 64k frames of the file's own rate and channels
RESAMPLE_QUALITY = "HQ"
SUPPORTED = "WAV, FLAC, Ogg or MP3"


def decode_audio(path: str | os.PathLike[str], *, max_seconds: float | None = None) -> np.ndarray:
    """Decode ``path`` to float32 mono at 16 kHz; ``max_seconds`` stops reading after that much audio."""
    file_path = Path(path)
    label = str(file_path)
    _check_file(file_path, label)
    try:
        handle = _SequentialSoundFile(file_path)
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
        raise InputError(f"{label}: cannot decode the audio ({_reason(exc)}); use {SUPPORTED}") from exc
    with handle:
        wave = _read_mono_16k(handle, label, max_seconds)
    if wave.size == 0:
        raise InputError(f"{label}: the file contains no audio samples (zero length)")
    return wave


class _SequentialSoundFile(sf.SoundFile):
    """A SoundFile that never seeks: soundfile 0.14 seeks back to "where it is" after every read,
    and libsndfile 1.2.2's MP3 decoder lands somewhere else, so block-wise MP3 reads came back
    scrambled.  Reading strictly forward keeps every format sample-exact."""

    def seekable(self) -> bool:
        return False


def _check_file(path: Path, label: str) -> None:
    """Missing, folder and empty files get their own messages before libsndfile sees them."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"{label}: audio file not found") from None
    except OSError as exc:
        raise InputError(f"{label}: cannot access the audio file ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{label}: is a folder, not an audio file")
    if info.st_size == 0:
        raise InputError(f"{label}: the audio file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise InputError(f"{label}: cannot read the audio file (permission denied)")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].rstrip(".")


class _Growable:
    """A float32 buffer that grows by doubling, so no list of blocks is concatenated at the end."""

    def __init__(self, capacity: int) -> None:
        self.data = np.empty(max(capacity, 1024), dtype=np.float32)
        self.size = 0

    def append(self, values: np.ndarray) -> None:
        end = self.size + len(values)
        if end > len(self.data):
            grown = np.empty(max(end, 2 * len(self.data)), dtype=np.float32)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : end] = values
        self.size = end

    def result(self, limit: int | None) -> np.ndarray:
        size = self.size if limit is None else min(self.size, limit)
        if size == len(self.data):
            return self.data
        return self.data[:size].copy()


def _read_mono_16k(handle: sf.SoundFile, label: str, max_seconds: float | None) -> np.ndarray:
    rate = int(handle.samplerate)
    if rate <= 0 or handle.channels <= 0:
        raise InputError(f"{label}: the audio header is invalid (rate {rate} Hz, {handle.channels} channels)")
    in_limit = None if max_seconds is None else max(0, math.ceil(max_seconds * rate))
    out_limit = None if max_seconds is None else max(0, math.ceil(max_seconds * SAMPLE_RATE))
    expected = handle.frames if 0 < handle.frames < 1 << 40 else rate * 60
    if in_limit is not None:
        expected = min(expected, in_limit)
    out = _Growable(math.ceil(expected * SAMPLE_RATE / rate) + 64)
    resampler = (
        None
        if rate == SAMPLE_RATE
        else soxr.ResampleStream(rate, SAMPLE_RATE, 1, "float32", RESAMPLE_QUALITY)
    )
    consumed = 0
    while in_limit is None or consumed < in_limit:
        want = BLOCK_FRAMES if in_limit is None else min(BLOCK_FRAMES, in_limit - consumed)
        block = _read_block(handle, want, label)
        last = len(block) < want or (in_limit is not None and consumed + len(block) >= in_limit)
        consumed += len(block)
        mono = _to_mono(block)
        out.append(mono if resampler is None else resampler.resample_chunk(mono, last=last))
        if last:
            break
    return out.result(out_limit)


def _read_block(handle: sf.SoundFile, frames: int, label: str) -> np.ndarray:
    try:
        return handle.read(frames, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError) as exc:
        raise InputError(f"{label}: the audio data is damaged ({_reason(exc)})") from exc


def _to_mono(block: np.ndarray) -> np.ndarray:
    """Average the channels (what librosa and the HF pipelines do); NaN/inf samples become silence."""
    mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if not np.isfinite(mono).all():
        mono = np.nan_to_num(mono, nan=0.0, posinf=0.0, neginf=0.0)
    return mono
