"""A microphone without a sound card: :class:`FakeAudioBackend` plays a waveform into :class:`Microphone`.

:class:`FakeMicrophoneStream` stands in for ``sounddevice.InputStream`` and calls the microphone's
callback from its own thread at the device's pace, block by block, as PortAudio does, so tests
exercise the real ring buffer, pre-roll and resampling paths.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from model_io.capture import AudioCallback, InputDevice
from model_io.speech import SAMPLE_RATE


@dataclass(frozen=True)
class FakeStatus:
    """Mimics ``sounddevice.CallbackFlags`` for the fields the microphone reads."""

    input_overflow: bool = False

    def __bool__(self) -> bool:
        return self.input_overflow


class FakeMicrophoneStream:
    """Stands in for ``sounddevice.InputStream``: feeds a waveform to the callback like a sound card.

    With a ``source``, ``start()`` runs a thread that delivers ``blocksize`` frames every
    ``blocksize / samplerate / speed`` seconds (then silence, or the waveform again with
    ``loop``); ``feed()`` delivers samples synchronously for deterministic tests.  One
    ``indata`` buffer is reused for every block, as PortAudio does, so consumers must copy.
    """

    def __init__(
        self,
        *,
        samplerate: float,
        callback: AudioCallback,
        channels: int = 1,
        blocksize: int = 0,
        source: np.ndarray | None = None,
        source_rate: float | None = None,
        speed: float = 1.0,
        loop: bool = False,
        **_sounddevice_kwargs: Any,
    ) -> None:
        self.samplerate = float(samplerate)
        self.channels = channels
        self.blocksize = blocksize or max(1, round(self.samplerate / 50))
        self._callback = callback
        self._source = _prepare_source(source, source_rate or self.samplerate, self.samplerate)
        self._speed = speed
        self._loop = loop
        self._position = 0
        self._buffer = np.zeros((self.blocksize, channels), dtype=np.float32)
        self._feed_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = False
        self.closed = False
        self.blocks_delivered = 0

    def start(self) -> None:
        self.started = True
        if self._source is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fake-microphone", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self.closed = True

    def feed(self, samples: np.ndarray, *, overflow: bool = False) -> None:
        """Deliver ``samples`` (mono, stream rate) now, in ``blocksize`` blocks (the last may be short)."""
        flat = np.asarray(samples, dtype=np.float32).reshape(-1)
        for start in range(0, flat.size, self.blocksize):
            self._deliver(flat[start : start + self.blocksize], FakeStatus(overflow and start == 0))

    def _deliver(self, mono: np.ndarray, status: FakeStatus) -> None:
        with self._feed_lock:
            block = self._buffer[: mono.size]
            block[:] = mono[:, None]
            self._callback(block, mono.size, None, status)
            self.blocks_delivered += 1

    def _run(self) -> None:
        period = self.blocksize / self.samplerate / self._speed
        deadline = time.monotonic()
        while not self._stop.is_set():
            self._deliver(self._next_block(), FakeStatus())
            deadline += period
            self._stop.wait(max(0.0, deadline - time.monotonic()))

    def _next_block(self) -> np.ndarray:
        source = self._source
        assert source is not None
        if self._loop and self._position >= source.size:
            self._position = 0
        block = source[self._position : self._position + self.blocksize]
        self._position += self.blocksize
        if block.size < self.blocksize:
            block = np.concatenate([block, np.zeros(self.blocksize - block.size, dtype=np.float32)])
        return block


def _prepare_source(source: np.ndarray | None, source_rate: float, rate: float) -> np.ndarray | None:
    if source is None:
        return None
    mono = np.asarray(source, dtype=np.float32)
    if mono.ndim == 2:
        mono = mono.mean(axis=1, dtype=np.float32)
    if round(source_rate) != round(rate):
        mono = soxr.resample(mono, source_rate, rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


FAKE_DEVICE = InputDevice(index=0, name="Fake Microphone", channels=1, default_rate=16000.0, is_default=True)


class FakeAudioBackend:
    """An :class:`AudioBackend` over :class:`FakeMicrophoneStream`, for tests and GUI runs without hardware.

    ``rates`` maps a device name to the rates it accepts (default: any); ``source`` is the
    waveform (at ``source_rate``) every opened stream plays; opened streams are kept in ``streams``.
    """

    def __init__(
        self,
        devices: Sequence[InputDevice] = (FAKE_DEVICE,),
        *,
        rates: dict[str, Sequence[int]] | None = None,
        source: np.ndarray | None = None,
        source_rate: float = SAMPLE_RATE,
        speed: float = 1.0,
        loop: bool = False,
    ) -> None:
        self.devices = list(devices)
        self.rates = dict(rates or {})
        self.source = source
        self.source_rate = source_rate
        self.speed = speed
        self.loop = loop
        self.streams: list[FakeMicrophoneStream] = []

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> FakeAudioBackend:
        """A fake microphone that "hears" an audio file (decoded with :func:`model_io.audio.decode_audio`)."""
        from model_io.audio import decode_audio

        return cls(source=decode_audio(path), source_rate=SAMPLE_RATE, **kwargs)

    def input_devices(self) -> list[InputDevice]:
        return list(self.devices)

    def supports(self, device: InputDevice, rate: int, channels: int) -> bool:
        accepted = self.rates.get(device.name)
        return channels <= device.channels and (accepted is None or rate in accepted)

    def open_stream(
        self, device: InputDevice, rate: int, channels: int, blocksize: int, callback: AudioCallback
    ) -> FakeMicrophoneStream:
        stream = FakeMicrophoneStream(
            samplerate=rate,
            channels=channels,
            blocksize=blocksize,
            callback=callback,
            source=self.source,
            source_rate=self.source_rate,
            speed=self.speed,
            loop=self.loop,
        )
        self.streams.append(stream)
        return stream
