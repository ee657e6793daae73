"""Audio files to the 16 kHz mono float32 waveform Gemma 3n's front end expects.

libsndfile (bundled with soundfile) reads WAV, FLAC, Ogg Vorbis/Opus and MP3 at
any rate and channel count; soxr resamples with its "HQ" filter.  The file is
streamed in blocks and each block is mixed down to mono and resampled before
the next is read, so memory never holds more than the 16 kHz mono result
(64 KB per second) plus one block, however many channels or samples per second
the file has.  Every failure a user can cause becomes one ``InputError`` that
names the file; headers claiming absurd rates, channel counts or lengths (a few
KB of FLAC can claim hours of silence) are refused before they cost memory.
"""

from __future__ import annotations

import math
import os
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from model_io.audio.spec import SAMPLE_RATE
from model_io.errors import InputError

BLOCK_FRAMES = 1 << 16  # per read: 64k frames of the file's own rate and channels...
BLOCK_SAMPLES = 1 << 18  # ...but at most 256k samples (1 MB), however many channels the header claims
RESAMPLE_QUALITY = "HQ"
SUPPORTED = "WAV, FLAC, Ogg or MP3"
# Below this a header is corrupt or hostile: a 4 KB WAV "at 1 Hz" resamples to 32M samples (128 MB).
MIN_SAMPLE_RATE = 1000
# Decoded audio is held in memory (64 KB per second), and FLAC/Ogg encode silence in a few bytes per
# second, so a small file can claim days; three hours (≈690 MB) bounds memory and covers long interviews.
MAX_SECONDS = 3 * 3600
_INITIAL_SECONDS = 600  # the buffer starts at most this big and doubles as audio arrives
_STDERR_LOCK = threading.Lock()


def decode_audio(path: str | os.PathLike[str], *, max_seconds: float | None = None) -> np.ndarray:
    """Decode ``path`` to float32 mono at 16 kHz; ``max_seconds`` stops reading after that much audio.

    Without ``max_seconds``, audio longer than :data:`MAX_SECONDS` is refused with an ``InputError``.
    """
    file_path = Path(path)
    label = str(file_path)
    _check_file(file_path, label)
    with _native_stderr_muted():
        try:
            handle = _SequentialSoundFile(file_path)
        except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as exc:
            raise InputError(f"{label}: cannot decode the audio ({_reason(exc)}); use {SUPPORTED}") from exc
        with handle:
            wave = _read_mono_16k(handle, label, max_seconds)
    if wave.size == 0:
        raise InputError(f"{label}: the file contains no audio samples (zero length)")
    return wave


@contextmanager
def _native_stderr_muted() -> Iterator[None]:
    """libmpg123 (inside libsndfile) prints a line to file descriptor 2 for every damaged MP3 frame,
    burying the CLI's one-line error; fd 2 is pointed at the null device while libsndfile runs.
    Failures still arrive as exceptions.  (The GUI decodes no audio files; the CLI decodes before
    the engine starts, so nothing else is writing then.)"""
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, AttributeError, ValueError):  # no usable stderr (a windowed app): nothing to mute
            yield
            return
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.close(null)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


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
    if "does not exist or is not a regular file" in text:  # libsndfile's words for unrecognised data
        return "the data is not in a recognised audio format"
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
    rate, channels = int(handle.samplerate), int(handle.channels)
    _check_header(handle, label, rate, channels, max_seconds)
    seconds = MAX_SECONDS if max_seconds is None else max_seconds
    in_limit = max(0, math.ceil(seconds * rate))
    out_limit = max(0, math.ceil(seconds * SAMPLE_RATE))
    expected = min(
        handle.frames if 0 < handle.frames < 1 << 40 else rate * 60, in_limit, rate * _INITIAL_SECONDS
    )
    out = _Growable(math.ceil(expected * SAMPLE_RATE / rate) + 64)
    resampler = (
        None
        if rate == SAMPLE_RATE
        else soxr.ResampleStream(rate, SAMPLE_RATE, 1, "float32", RESAMPLE_QUALITY)
    )
    block_frames = max(1, min(BLOCK_FRAMES, BLOCK_SAMPLES // channels))
    consumed = 0
    while consumed < in_limit:
        want = min(block_frames, in_limit - consumed)
        block = _read_block(handle, want, label)
        last = len(block) < want or consumed + len(block) >= in_limit
        consumed += len(block)
        mono = _to_mono(block)
        out.append(mono if resampler is None else resampler.resample_chunk(mono, last=last))
        if last:
            break
    if max_seconds is None and consumed >= in_limit and len(_read_block(handle, 1, label)):
        raise _too_long(label)  # the header understated the length
    return out.result(out_limit)


def _check_header(
    handle: sf.SoundFile, label: str, rate: int, channels: int, max_seconds: float | None
) -> None:
    if channels <= 0:
        raise InputError(f"{label}: the audio header is invalid ({channels} channels)")
    if rate < MIN_SAMPLE_RATE:
        raise InputError(
            f"{label}: the audio header claims {rate} Hz, too low for real audio "
            f"(at least {MIN_SAMPLE_RATE} Hz); the file is damaged"
        )
    if max_seconds is None and 0 < handle.frames < 1 << 62 and handle.frames / rate > MAX_SECONDS:
        raise _too_long(label)


def _too_long(label: str) -> InputError:
    limit = f"{MAX_SECONDS / 3600:g} hours" if MAX_SECONDS >= 3600 else f"{MAX_SECONDS:g} seconds"
    return InputError(f"{label}: the recording is longer than {limit}; split it into shorter files")


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
