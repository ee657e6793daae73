"""Push-to-talk microphone capture: device choice, a pre-roll ring buffer, streaming reads, a level meter.

The PortAudio callback only copies each block into a preallocated ring under a lock, so it
never allocates, waits on a consumer or grows memory.  The ring always holds the last few
hundred milliseconds, so ``start_recording`` (key down) keeps the syllable the user began
before the key registered.  Downmixing and resampling to 16 kHz mono float32 (what the audio
tower takes) happen on the caller's side, never in the callback.

Hardware is injected: :class:`SoundDeviceBackend` wraps ``sounddevice`` (imported on first use,
so a missing libportaudio is an :class:`InputError`, not an import crash), and
:mod:`model_io.capture_fakes` feeds a waveform instead, for tests and runs without a sound card.
"""

from __future__ import annotations

import importlib
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import soxr

from model_io.errors import InputError
from model_io.speech import SAMPLE_RATE

SILENCE_DBFS = -100.0
"""Floor of :meth:`Microphone.level_dbfs` (digital silence has no finite level)."""

AudioCallback = Callable[[np.ndarray, int, Any, Any], None]
"""PortAudio's input callback: ``(indata[frames, channels], frames, time_info, status)``."""

_PORTAUDIO_HINT = (
    "Cannot use the microphone: the PortAudio library could not be loaded ({reason}). "
    "On Debian/Ubuntu install it with 'sudo apt install libportaudio2' "
    "(Fedora: 'sudo dnf install portaudio')."
)
_NO_DEVICE = (
    "No microphone found: the audio system reports no input devices. Connect a microphone and try again; "
    "on Linux also check that PulseAudio or PipeWire is running and that libasound2-plugins is installed."
)


class AudioStream(Protocol):
    """The part of ``sounddevice.InputStream`` the microphone uses."""

    def start(self) -> None: ...

    def close(self) -> None: ...


StreamFactory = Callable[..., AudioStream]
"""Called like ``sounddevice.InputStream(device=, samplerate=, channels=, dtype=, blocksize=, callback=)``."""


@dataclass(frozen=True)
class InputDevice:
    """One capture device as the audio system lists it."""

    index: int
    name: str
    channels: int
    default_rate: float
    host_api: str = ""
    is_default: bool = False


class AudioBackend(Protocol):
    """Device listing, rate checks and stream opening: what differs between PortAudio and a fake."""

    def input_devices(self) -> list[InputDevice]: ...

    def supports(self, device: InputDevice, rate: int, channels: int) -> bool: ...

    def open_stream(
        self, device: InputDevice, rate: int, channels: int, blocksize: int, callback: AudioCallback
    ) -> AudioStream: ...


# -- PortAudio -----------------------------------------------------------------------------------


def load_sounddevice(import_module: Callable[[str], Any] = importlib.import_module) -> Any:
    """Import ``sounddevice``; its Linux wheel has no PortAudio, so a missing library becomes advice."""
    try:
        return import_module("sounddevice")
    except OSError as exc:
        raise InputError(_PORTAUDIO_HINT.format(reason=exc)) from exc
    except ImportError as exc:
        raise InputError(f"Cannot use the microphone: the 'sounddevice' package is missing ({exc})") from exc


class SoundDeviceBackend:
    """PortAudio through ``sounddevice``; ``stream_factory`` replaces ``sounddevice.InputStream``."""

    def __init__(self, stream_factory: StreamFactory | None = None, module: Any = None) -> None:
        self._module = module
        self._factory = stream_factory

    def _sd(self) -> Any:
        if self._module is None:
            self._module = load_sounddevice()
        return self._module

    def input_devices(self) -> list[InputDevice]:
        sd = self._sd()
        try:
            devices = list(sd.query_devices())
            apis = [str(api["name"]) for api in sd.query_hostapis()]
        except sd.PortAudioError as exc:
            raise InputError(f"Cannot list audio devices: {exc}") from exc
        default = _default_input_index(sd)
        return [
            InputDevice(
                index=int(info["index"]),
                name=str(info["name"]),
                channels=int(info["max_input_channels"]),
                default_rate=float(info["default_samplerate"]),
                host_api=apis[info["hostapi"]] if 0 <= info["hostapi"] < len(apis) else "",
                is_default=int(info["index"]) == default,
            )
            for info in devices
            if info["max_input_channels"] > 0
        ]

    def supports(self, device: InputDevice, rate: int, channels: int) -> bool:
        sd = self._sd()
        try:
            sd.check_input_settings(device=device.index, samplerate=rate, channels=channels, dtype="float32")
        except (sd.PortAudioError, ValueError):
            return False
        return True

    def open_stream(
        self, device: InputDevice, rate: int, channels: int, blocksize: int, callback: AudioCallback
    ) -> AudioStream:
        sd = self._sd()
        factory = self._factory or sd.InputStream
        try:
            stream: AudioStream = factory(
                device=device.index,
                samplerate=rate,
                channels=channels,
                dtype="float32",
                blocksize=blocksize,
                callback=callback,
            )
        except (sd.PortAudioError, OSError, ValueError) as exc:
            raise InputError(_open_failed(device, exc)) from exc
        return stream


def _default_input_index(sd: Any) -> int:
    try:
        return int(sd.query_devices(kind="input")["index"])
    except (sd.PortAudioError, ValueError, KeyError, TypeError):
        return -1


def _open_failed(device: InputDevice, exc: BaseException) -> str:
    return (
        f"Cannot open the microphone '{device.name}': {exc}. "
        "It may be disconnected, in use by another application, or blocked by the system's privacy settings."
    )


# -- device choice -------------------------------------------------------------------------------


def list_input_devices(backend: AudioBackend | None = None) -> list[InputDevice]:
    """Every device that can record (the system default flagged), for a device picker."""
    return (backend or SoundDeviceBackend()).input_devices()


def select_input_device(devices: Sequence[InputDevice], wanted: str | int | None = None) -> InputDevice:
    """Pick by index, by name (exact, then substring; case-insensitive; first in list order) or default."""
    if not devices:
        raise InputError(_NO_DEVICE)
    if wanted is None or (isinstance(wanted, str) and not wanted.strip()):
        return next((d for d in devices if d.is_default), devices[0])
    if isinstance(wanted, int):
        for device in devices:
            if device.index == wanted:
                return device
        raise InputError(f"No input device number {wanted}. Available microphones: {_describe(devices)}")
    key = wanted.strip().casefold()
    exact = [d for d in devices if d.name.casefold() == key]
    partial = [d for d in devices if key in d.name.casefold()]
    if exact or partial:
        return (exact or partial)[0]
    raise InputError(f"No microphone matches '{wanted}'. Available microphones: {_describe(devices)}")


def _describe(devices: Sequence[InputDevice]) -> str:
    return ", ".join(f"'{d.name}'" + (" (default)" if d.is_default else "") for d in devices)


def negotiate_format(backend: AudioBackend, device: InputDevice) -> tuple[int, int]:
    """``(rate, channels)``: 16 kHz mono if the device takes it, else its own rate (resampled later)."""
    default_rate = round(device.default_rate)
    rates = [SAMPLE_RATE] + ([default_rate] if default_rate > 0 and default_rate != SAMPLE_RATE else [])
    layouts = [1] + ([device.channels] if device.channels > 1 else [])
    for channels in layouts:
        for rate in rates:
            if backend.supports(device, rate, channels):
                return rate, channels
    tried = " or ".join(f"{rate} Hz" for rate in rates)
    raise InputError(f"The microphone '{device.name}' accepts neither {tried}; choose another input device")


# -- ring buffer ---------------------------------------------------------------------------------


class _Ring:
    """Preallocated circular store of the newest frames; ``total`` counts every frame ever written."""

    def __init__(self, capacity: int, channels: int) -> None:
        self.capacity = capacity
        self.data = np.zeros((capacity, channels), dtype=np.float32)
        self.total = 0

    def write(self, block: np.ndarray) -> None:
        n = len(block)
        if n > self.capacity:
            self.total += n - self.capacity
            block, n = block[n - self.capacity :], self.capacity
        start = self.total % self.capacity
        first = min(n, self.capacity - start)
        self.data[start : start + first] = block[:first]
        if first < n:
            self.data[: n - first] = block[first:]
        self.total += n

    def oldest(self) -> int:
        return max(0, self.total - self.capacity)

    def read(self, begin: int, end: int) -> np.ndarray:
        """A copy of frames ``[begin, end)`` (absolute counts, clamped to what the ring still holds)."""
        begin = max(begin, self.oldest())
        end = min(end, self.total)
        if end <= begin:
            return np.zeros((0, self.data.shape[1]), dtype=np.float32)
        start = begin % self.capacity
        first = min(end - begin, self.capacity - start)
        head = self.data[start : start + first]
        if first == end - begin:
            return head.copy()
        return np.concatenate([head, self.data[: end - begin - first]])


# -- microphone ----------------------------------------------------------------------------------


class Microphone:
    """A push-to-talk microphone: always-on pre-roll, ``start_recording``/``stop_recording``, ``read_new``.

    ``start()`` arms the stream (pre-roll fills from then on); the callback thread only
    copies into the ring.  A recording longer than ``max_seconds`` keeps its beginning and
    drops the rest (counted in :attr:`dropped_frames`) rather than overwriting what was said.
    Not re-entrant: one GUI/worker thread drives it while PortAudio's thread feeds it.
    """

    def __init__(
        self,
        device: str | int | None = None,
        *,
        backend: AudioBackend | None = None,
        preroll_seconds: float = 0.3,
        max_seconds: float = 120.0,
        block_seconds: float = 0.02,
    ) -> None:
        if preroll_seconds < 0 or max_seconds <= 0 or block_seconds <= 0:
            raise ValueError("preroll_seconds must be >= 0, max_seconds and block_seconds > 0")
        self._backend = backend or SoundDeviceBackend()
        self.device = select_input_device(self._backend.input_devices(), device)
        self.rate, self.channels = negotiate_format(self._backend, self.device)
        self.blocksize = max(1, round(block_seconds * self.rate))
        self._preroll = round(preroll_seconds * self.rate)
        self._ring = _Ring(self._preroll + round(max_seconds * self.rate) + self.blocksize, self.channels)
        self._lock = threading.Lock()
        self._consumer_lock = threading.Lock()
        self._stream: AudioStream | None = None
        self._record_from: int | None = None
        self._stream_pos: int | None = None
        self._stream_end: int | None = None
        self._resampler: soxr.ResampleStream | None = None
        self._dropped = 0
        self._driver_overflows = 0
        self._sumsq = 0.0
        self._level_samples = 0
        self._level = SILENCE_DBFS

    # -- stream lifetime --

    def start(self) -> None:
        """Open and start the input stream (idempotent); pre-roll is available from here on."""
        if self._stream is not None:
            return
        stream = self._backend.open_stream(
            self.device, self.rate, self.channels, self.blocksize, self._on_audio
        )
        try:
            stream.start()
        except Exception as exc:
            stream.close()
            raise InputError(_open_failed(self.device, exc)) from exc
        self._stream = stream

    def close(self) -> None:
        """Stop capturing and release the device (PortAudio's close discards pending buffers)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def __enter__(self) -> Microphone:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_running(self) -> bool:
        return self._stream is not None

    @property
    def captured_seconds(self) -> float:
        """Audio stored since ``start()``: stays 0 when a stream "runs" but the device delivers nothing."""
        return self._ring.total / self.rate

    # -- the audio callback (PortAudio's thread) --

    def _on_audio(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """Copy the block into the ring; O(block) work, no allocation, never waits on a consumer."""
        with self._lock:
            if status is not None and getattr(status, "input_overflow", False):
                self._driver_overflows += 1
            self._sumsq += float(np.vdot(indata, indata))
            self._level_samples += indata.size
            room = frames
            if self._record_from is not None:
                room = max(0, self._record_from + self._ring.capacity - self._ring.total)
            if room < frames:
                self._dropped += frames - room
                if room:
                    self._ring.write(indata[:room])
            else:
                self._ring.write(indata)

    # -- recording --

    def start_recording(self) -> None:
        """Key down: the utterance starts ``preroll_seconds`` before now (as much as was captured)."""
        self.start()
        with self._consumer_lock, self._lock:
            self._record_from = max(self._ring.oldest(), self._ring.total - self._preroll)
            self._stream_pos = self._record_from
            self._stream_end = None
            self._dropped = 0
            self._resampler = self._new_resampler()

    def stop_recording(self) -> np.ndarray:
        """Key up: the whole utterance (pre-roll + held part) as float32 mono at 16 kHz."""
        with self._lock:
            if self._record_from is None:
                return np.zeros(0, dtype=np.float32)
            raw = self._ring.read(self._record_from, self._ring.total)
            self._stream_end = self._ring.total
            self._record_from = None
        return self._convert(raw)

    def read_new(self) -> np.ndarray:
        """The utterance's samples not returned yet (16 kHz mono), for encoding while the user speaks.

        Never waits: empty when nothing arrived.  The first call after ``start_recording`` includes
        the pre-roll; the first call after ``stop_recording`` returns the tail and flushes the
        resampler, so the chunks concatenate to (nearly sample-exactly) ``stop_recording``'s result.
        """
        with self._consumer_lock:
            with self._lock:
                if self._stream_pos is None:
                    return np.zeros(0, dtype=np.float32)
                finished = self._record_from is None
                end = self._stream_end if finished and self._stream_end is not None else self._ring.total
                raw = self._ring.read(self._stream_pos, end)
                self._stream_pos = None if finished else end
            return self._convert_chunk(raw, last=finished)

    @property
    def is_recording(self) -> bool:
        return self._record_from is not None

    @property
    def recorded_seconds(self) -> float:
        """Length of the current utterance so far, pre-roll included."""
        with self._lock:
            start = self._record_from
            return 0.0 if start is None else (self._ring.total - start) / self.rate

    @property
    def limit_reached(self) -> bool:
        """The recording hit ``max_seconds`` and newer audio is being dropped; the GUI should stop it."""
        return self.is_recording and self._dropped > 0

    @property
    def dropped_frames(self) -> int:
        """Device-rate frames dropped by the current or last recording because it exceeded ``max_seconds``."""
        return self._dropped

    @property
    def driver_overflows(self) -> int:
        """Callbacks in which PortAudio reported lost input (the system could not keep up)."""
        return self._driver_overflows

    # -- level meter --

    def level_dbfs(self) -> float:
        """RMS level in dBFS (1.0 = 0 dBFS) of everything captured since the previous call.

        Meant for one ~20 Hz meter: each call averages exactly the audio between two polls.
        Returns the previous value when no audio arrived, :data:`SILENCE_DBFS` at most quiet.
        """
        with self._lock:
            sumsq, count = self._sumsq, self._level_samples
            self._sumsq, self._level_samples = 0.0, 0
        if count:
            self._level = to_dbfs(math.sqrt(sumsq / count))
        return self._level

    # -- conversion (caller's thread) --

    def _new_resampler(self) -> soxr.ResampleStream | None:
        if self.rate == SAMPLE_RATE:
            return None
        return soxr.ResampleStream(self.rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")

    def _convert(self, raw: np.ndarray) -> np.ndarray:
        mono = _mono(raw)
        if self.rate != SAMPLE_RATE and mono.size:
            mono = soxr.resample(mono, self.rate, SAMPLE_RATE, quality="HQ")
        return np.ascontiguousarray(mono, dtype=np.float32)

    def _convert_chunk(self, raw: np.ndarray, *, last: bool) -> np.ndarray:
        mono = _mono(raw)
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono, last=last)
        return np.ascontiguousarray(mono, dtype=np.float32)


def _mono(raw: np.ndarray) -> np.ndarray:
    return raw[:, 0].copy() if raw.shape[1] == 1 else raw.mean(axis=1, dtype=np.float32)


def to_dbfs(rms: float) -> float:
    """``20·log10(rms)`` with a floor at :data:`SILENCE_DBFS`."""
    return SILENCE_DBFS if rms <= 10 ** (SILENCE_DBFS / 20) else max(SILENCE_DBFS, 20 * math.log10(rms))
