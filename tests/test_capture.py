"""Microphone capture: device choice, pre-roll, streaming reads, levels, resampling, overflow, and a real
PulseAudio null-sink recording of espeak-ng speech played with paplay."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from pulse_support import PulseServer, pulse_missing, pulse_session

from model_io.audio import decode_audio
from model_io.capture import (
    SILENCE_DBFS,
    InputDevice,
    Microphone,
    SoundDeviceBackend,
    list_input_devices,
    load_sounddevice,
    select_input_device,
)
from model_io.capture_fakes import FakeAudioBackend, FakeMicrophoneStream
from model_io.errors import InputError

RATE = 16_000
DEVICES = [
    InputDevice(0, "HDA Intel PCH: ALC3246 Analog (hw:0,0)", 2, 48000.0, "ALSA"),
    InputDevice(3, "USB Headset Mic", 1, 44100.0, "ALSA"),
    InputDevice(7, "default", 32, 44100.0, "ALSA", is_default=True),
]


def noise(seconds: float, rate: int = RATE, seed: int = 0, amplitude: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.uniform(-amplitude, amplitude, round(seconds * rate))).astype(np.float32)


def sine(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def fake_mic(**kwargs: Any) -> tuple[Microphone, FakeMicrophoneStream]:
    backend = kwargs.pop("backend", None) or FakeAudioBackend()
    mic = Microphone(backend=backend, **kwargs)
    mic.start()
    return mic, backend.streams[-1]


def best_lag(haystack: np.ndarray, needle: np.ndarray) -> tuple[int, float]:
    """Offset of ``needle`` in ``haystack`` by FFT cross-correlation, and the normalised correlation there."""
    size = 1 << math.ceil(math.log2(len(haystack) + len(needle)))
    spectrum = np.fft.rfft(haystack, size) * np.conj(np.fft.rfft(needle, size))
    lag = int(np.argmax(np.fft.irfft(spectrum, size)[: len(haystack)]))
    window = haystack[lag : lag + len(needle)]
    ref = needle[: len(window)]
    return lag, float(np.dot(window, ref) / (np.linalg.norm(window) * np.linalg.norm(ref) + 1e-12))


# -- device choice ---------------------------------------------------------------------------------


def test_default_device_is_the_one_flagged_default() -> None:
    assert select_input_device(DEVICES).index == 7
    assert select_input_device(DEVICES, "  ").index == 7
    assert select_input_device(DEVICES[:2]).index == 0


def test_device_by_name_exact_then_case_insensitive_substring_or_index() -> None:
    assert select_input_device(DEVICES, "DEFAULT").index == 7
    assert select_input_device(DEVICES, "usb headset").index == 3
    assert select_input_device(DEVICES, "alc3246").index == 0
    assert select_input_device(DEVICES, 3).name == "USB Headset Mic"


def test_missing_device_error_lists_the_available_ones() -> None:
    with pytest.raises(InputError) as caught:
        select_input_device(DEVICES, "Blue Yeti")
    message = str(caught.value)
    assert "'Blue Yeti'" in message
    assert "'USB Headset Mic'" in message and "'default' (default)" in message
    with pytest.raises(InputError, match="No input device number 5"):
        select_input_device(DEVICES, 5)


def test_no_input_device_at_all() -> None:
    with pytest.raises(InputError, match="No microphone found"):
        Microphone(backend=FakeAudioBackend(devices=[]))


def test_missing_portaudio_library_is_actionable() -> None:
    def no_portaudio(name: str) -> Any:
        raise OSError("PortAudio library not found")

    with pytest.raises(InputError) as caught:
        load_sounddevice(no_portaudio)
    assert "PortAudio library not found" in str(caught.value)
    assert "apt install libportaudio2" in str(caught.value)


def test_missing_sounddevice_package() -> None:
    def no_module(name: str) -> Any:
        raise ModuleNotFoundError("No module named 'sounddevice'")

    with pytest.raises(InputError, match="'sounddevice' package is missing"):
        load_sounddevice(no_module)


class FakeSoundDeviceModule:
    """The slice of the ``sounddevice`` module the backend calls, for device listing without hardware."""

    class PortAudioError(Exception):
        pass

    def __init__(self, devices: list[dict[str, Any]], accepted_rates: set[int]) -> None:
        self.devices = devices
        self.accepted_rates = accepted_rates
        self.opened: list[dict[str, Any]] = []

    def query_devices(self, kind: str | None = None) -> Any:
        if kind == "input":
            if not self.devices:
                raise self.PortAudioError("Error querying device -1")
            return self.devices[-1]
        return self.devices

    def query_hostapis(self) -> list[dict[str, Any]]:
        return [{"name": "ALSA"}]

    def check_input_settings(self, *, device: int, samplerate: int, channels: int, dtype: str) -> None:
        if samplerate not in self.accepted_rates:
            raise self.PortAudioError("Invalid sample rate")

    def InputStream(self, **kwargs: Any) -> Any:  # sounddevice's name
        if kwargs["device"] == 99:
            raise self.PortAudioError("Device unavailable [PaErrorCode -9985]")
        self.opened.append(kwargs)
        return FakeMicrophoneStream(**kwargs)


def device_dict(index: int, name: str, inputs: int, rate: float = 44100.0) -> dict[str, Any]:
    return {
        "index": index,
        "name": name,
        "hostapi": 0,
        "max_input_channels": inputs,
        "max_output_channels": 2,
        "default_samplerate": rate,
    }


def test_sounddevice_backend_lists_only_inputs_and_marks_the_default() -> None:
    module = FakeSoundDeviceModule(
        [device_dict(0, "HDMI out", 0), device_dict(1, "pulse", 32), device_dict(2, "default", 32)], {16000}
    )
    devices = list_input_devices(SoundDeviceBackend(module=module))
    assert [(d.index, d.name, d.channels, d.is_default, d.host_api) for d in devices] == [
        (1, "pulse", 32, False, "ALSA"),
        (2, "default", 32, True, "ALSA"),
    ]


def test_sounddevice_backend_opens_at_16k_when_accepted() -> None:
    module = FakeSoundDeviceModule([device_dict(2, "default", 32)], {16000, 44100})
    mic = Microphone("default", backend=SoundDeviceBackend(module=module))
    mic.start()
    assert (mic.rate, mic.channels) == (16000, 1)
    assert module.opened[0]["samplerate"] == 16000 and module.opened[0]["dtype"] == "float32"
    mic.close()


def test_sounddevice_backend_falls_back_to_the_device_rate() -> None:
    module = FakeSoundDeviceModule([device_dict(2, "default", 2, 48000.0)], {48000})
    assert Microphone(backend=SoundDeviceBackend(module=module)).rate == 48000


def test_device_that_accepts_no_rate() -> None:
    module = FakeSoundDeviceModule([device_dict(2, "Odd card", 2, 96000.0)], {8000})
    with pytest.raises(InputError, match="'Odd card' accepts neither 16000 Hz or 96000 Hz"):
        Microphone(backend=SoundDeviceBackend(module=module))


def test_stream_open_failure_is_an_input_error() -> None:
    module = FakeSoundDeviceModule([device_dict(99, "Busy Mic", 1, 16000.0)], {16000})
    mic = Microphone(backend=SoundDeviceBackend(module=module))
    with pytest.raises(InputError, match=r"Cannot open the microphone 'Busy Mic'.*PaErrorCode -9985"):
        mic.start()
    assert not mic.is_running


def test_no_devices_through_sounddevice() -> None:
    with pytest.raises(InputError, match="No microphone found"):
        Microphone(backend=SoundDeviceBackend(module=FakeSoundDeviceModule([], {16000})))


# -- pre-roll and recording --------------------------------------------------------------------------


def test_preroll_holds_the_audio_from_before_key_down() -> None:
    mic, stream = fake_mic(preroll_seconds=0.3)
    before, held = noise(1.0, seed=1), noise(0.5, seed=2)
    stream.feed(before)
    mic.start_recording()
    stream.feed(held)
    utterance = mic.stop_recording()
    assert utterance.dtype == np.float32 and utterance.ndim == 1
    np.testing.assert_array_equal(utterance, np.concatenate([before[-4800:], held]))


def test_preroll_is_configurable_and_limited_to_what_was_heard() -> None:
    mic, stream = fake_mic(preroll_seconds=0.5)
    stream.feed(noise(0.2, seed=3))
    mic.start_recording()
    assert mic.recorded_seconds == pytest.approx(0.2)
    stream.feed(noise(0.1, seed=4))
    assert len(mic.stop_recording()) == round(0.3 * RATE)

    mic2, stream2 = fake_mic(preroll_seconds=0.0)
    stream2.feed(noise(1.0, seed=5))
    mic2.start_recording()
    assert mic2.stop_recording().size == 0


def test_stop_without_start_returns_nothing_and_recording_state() -> None:
    mic, _ = fake_mic()
    assert mic.stop_recording().size == 0 and mic.read_new().size == 0
    mic.start_recording()
    assert mic.is_recording
    mic.stop_recording()
    assert not mic.is_recording


def test_read_new_streams_the_utterance_incrementally() -> None:
    mic, stream = fake_mic(preroll_seconds=0.3)
    before = noise(1.0, seed=6)
    stream.feed(before)
    mic.start_recording()
    chunks = [mic.read_new()]
    assert len(chunks[0]) == 4800  # the pre-roll first
    parts = [noise(0.25, seed=seed) for seed in (7, 8, 9)]
    for part in parts:
        stream.feed(part)
        chunks.append(mic.read_new())
        assert mic.read_new().size == 0  # nothing new, returns at once
    stream.feed(noise(0.1, seed=10))
    whole = mic.stop_recording()
    chunks.append(mic.read_new())  # the tail after key up
    assert mic.read_new().size == 0
    np.testing.assert_array_equal(np.concatenate(chunks), whole)
    assert len(whole) == 4800 + 3 * 4000 + 1600


def test_a_new_recording_starts_afresh() -> None:
    mic, stream = fake_mic(preroll_seconds=0.1)
    stream.feed(noise(0.5, seed=11))
    mic.start_recording()
    stream.feed(noise(0.5, seed=12))
    first = mic.stop_recording()
    stream.feed(noise(0.5, seed=13))
    mic.start_recording()
    second_part = noise(0.2, seed=14)
    stream.feed(second_part)
    second = mic.stop_recording()
    assert len(first) == 9600 and len(second) == 4800
    np.testing.assert_array_equal(second[1600:], second_part)


# -- resampling and channels -----------------------------------------------------------------------


@pytest.mark.parametrize("device_rate", [44100, 48000])
def test_resamples_device_rate_to_16k(device_rate: int) -> None:
    device = InputDevice(1, "Studio Mic", 1, float(device_rate), is_default=True)
    backend = FakeAudioBackend([device], rates={"Studio Mic": [device_rate]})
    mic, stream = fake_mic(backend=backend, preroll_seconds=0.3)
    assert mic.rate == device_rate
    stream.feed(sine(1.0, device_rate, 440.0))
    mic.start_recording()
    stream.feed(sine(1.0, device_rate, 1000.0))
    chunks = [mic.read_new()]
    utterance = mic.stop_recording()
    chunks.append(mic.read_new())
    assert abs(len(utterance) - round(1.3 * RATE)) <= 2
    streamed = np.concatenate(chunks)
    assert abs(len(streamed) - len(utterance)) <= 2
    n = min(len(streamed), len(utterance))
    assert np.max(np.abs(streamed[:n] - utterance[:n])[200:-200]) < 1e-3
    held = utterance[6000:20000]
    spectrum = np.abs(np.fft.rfft(held))
    assert np.argmax(spectrum) * RATE / len(held) == pytest.approx(1000.0, abs=2.0)
    pre = utterance[500:4300]
    assert np.argmax(np.abs(np.fft.rfft(pre))) * RATE / len(pre) == pytest.approx(440.0, abs=5.0)
    assert np.sqrt(np.mean(held**2)) == pytest.approx(0.5 / math.sqrt(2), rel=0.01)


class StereoOnlyBackend(FakeAudioBackend):
    def supports(self, device: InputDevice, rate: int, channels: int) -> bool:
        return channels == 2


def test_stereo_only_device_is_downmixed() -> None:
    device = InputDevice(0, "hw:0,0", 2, 16000.0, is_default=True)
    backend = StereoOnlyBackend([device])
    mic, stream = fake_mic(backend=backend)
    assert mic.channels == 2
    mic.start_recording()
    stream.feed(noise(0.2, seed=15))  # the fake copies mono to both channels
    np.testing.assert_allclose(mic.stop_recording(), noise(0.2, seed=15), atol=1e-7)


# -- levels ---------------------------------------------------------------------------------------------


def test_level_is_rms_dbfs_since_the_last_poll() -> None:
    mic, stream = fake_mic()
    assert mic.level_dbfs() == SILENCE_DBFS
    stream.feed(sine(0.05, RATE, 1000.0, amplitude=0.5))
    assert mic.level_dbfs() == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.05)
    assert mic.level_dbfs() == pytest.approx(-9.03, abs=0.05)  # nothing new: the last value holds
    stream.feed(sine(0.05, RATE, 1000.0, amplitude=0.01))
    assert mic.level_dbfs() == pytest.approx(-43.0, abs=0.1)
    stream.feed(np.zeros(800, dtype=np.float32))
    assert mic.level_dbfs() == SILENCE_DBFS


def test_level_polling_is_cheap() -> None:
    mic, stream = fake_mic()
    stream.feed(noise(1.0))
    started = time.perf_counter()
    for _ in range(1000):
        stream.feed(noise(0.02, seed=1))
        mic.level_dbfs()
    assert (time.perf_counter() - started) / 1000 < 2e-3


# -- overflow ------------------------------------------------------------------------------------------


def test_recording_past_the_limit_keeps_the_beginning_and_counts_the_drop() -> None:
    mic, stream = fake_mic(preroll_seconds=0.1, max_seconds=0.5)
    stream.feed(noise(1.0, seed=16))
    mic.start_recording()
    spoken = noise(2.0, seed=17)
    started = time.perf_counter()
    stream.feed(spoken)  # 100 callbacks; none may block or grow memory
    elapsed = time.perf_counter() - started
    assert mic.limit_reached
    utterance = mic.stop_recording()
    kept = len(utterance)
    assert kept == mic._ring.capacity
    np.testing.assert_array_equal(utterance[1600:], spoken[: kept - 1600])
    assert mic.dropped_frames == len(spoken) - (kept - 1600)
    assert elapsed < 0.5
    assert not mic.limit_reached
    # after key up the ring overwrites old audio again, so pre-roll keeps working
    mic.start_recording()
    fresh = noise(0.2, seed=18)
    stream.feed(fresh)
    np.testing.assert_array_equal(mic.stop_recording()[1600:], fresh)
    assert mic.dropped_frames == 0


def test_driver_overflow_flags_are_counted() -> None:
    mic, stream = fake_mic()
    stream.feed(noise(0.1), overflow=True)
    stream.feed(noise(0.1))
    stream.feed(noise(0.1), overflow=True)
    assert mic.driver_overflows == 2


def test_long_idle_capture_keeps_memory_fixed() -> None:
    mic, stream = fake_mic(preroll_seconds=0.3, max_seconds=1.0)
    ring = mic._ring.data
    stream.feed(noise(5.0, seed=19))
    assert mic._ring.data is ring and mic.captured_seconds == pytest.approx(5.0)
    mic.start_recording()
    np.testing.assert_array_equal(mic.stop_recording(), noise(5.0, seed=19)[-4800:])


# -- real-time fake stream (the GUI's stand-in) -------------------------------------------------------


def test_fake_stream_feeds_in_real_time_from_a_thread() -> None:
    source = noise(3.0, seed=20)
    backend = FakeAudioBackend(source=source, speed=2.0)
    mic = Microphone(backend=backend, preroll_seconds=0.3)
    with mic:
        deadline = time.monotonic() + 5
        while mic.captured_seconds < 0.6 and time.monotonic() < deadline:
            time.sleep(0.01)
        heard_at_key_down = mic.captured_seconds
        mic.start_recording()
        time.sleep(0.25)  # ≈ 0.5 s of audio at 2x speed
        utterance = mic.stop_recording()
        stream = backend.streams[0]
    assert stream.closed and stream.started
    assert 0.6 <= len(utterance) / RATE <= 2.5
    lag, corr = best_lag(source, utterance)
    assert corr > 0.999
    # the utterance begins 0.3 s before key down (one 20 ms block may land in between)
    assert lag / RATE == pytest.approx(heard_at_key_down - 0.3, abs=0.045)


def test_fake_backend_from_file(tmp_path: Path) -> None:
    wav = tmp_path / "tone.wav"
    sf.write(wav, sine(0.5, 22050, 300.0), 22050, subtype="PCM_16")
    backend = FakeAudioBackend.from_file(wav, speed=4.0)
    with Microphone(backend=backend) as mic:
        mic.start_recording()
        deadline = time.monotonic() + 5
        while mic.recorded_seconds < 0.6 and time.monotonic() < deadline:
            time.sleep(0.01)
        utterance = mic.stop_recording()
    _, corr = best_lag(utterance, decode_audio(wav))
    assert corr > 0.99


# -- real PulseAudio: null sink + virtual mic, fed by paplay ---------------------------------------------


def unavailable(reason: str) -> None:
    """Skip on a developer machine without the packages; in CI (which installs them) it is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide this: {reason} (see scripts/system-packages.sh)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseServer]:
    reason = pulse_missing()
    if reason:
        unavailable(reason)
    try:
        load_sounddevice()
    except InputError as exc:
        unavailable(str(exc))
    with pulse_session(tmp_path_factory.mktemp("pulse")) as server:
        yield server


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wav = tmp_path_factory.mktemp("speech") / "speech.wav"
    text = "Gemma Desk is listening. One, two, three."
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, timeout=30)
    elif shutil.which("sox"):
        subprocess.run(
            ["sox", "-n", "-r", "22050", "-c", "1", str(wav), "synth", "2.5", "pinknoise", "vol", "0.3"],
            check=True,
            timeout=30,
        )
    else:
        unavailable("needs espeak-ng or sox to make a test recording")
    return wav


def wait_for_audio(mic: Microphone, seconds: float, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while mic.captured_seconds < seconds:
        assert time.monotonic() < deadline, "PulseAudio delivered no audio"
        time.sleep(0.02)


def drain_while(
    mic: Microphone, process: subprocess.Popen[bytes], timeout: float
) -> tuple[list[np.ndarray], float]:
    """Poll ``read_new`` and the meter at 20 Hz, as the GUI would, while paplay runs."""
    chunks: list[np.ndarray] = []
    loudest = SILENCE_DBFS
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        assert time.monotonic() < deadline, "paplay did not finish"
        chunks.append(mic.read_new())
        loudest = max(loudest, mic.level_dbfs())
        time.sleep(0.05)
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
    return chunks, loudest


@pytest.mark.timeout(90)
def test_records_what_paplay_plays_into_the_virtual_mic(pulse: PulseServer, speech_wav: Path) -> None:
    reference = decode_audio(speech_wav)
    devices = list_input_devices()
    assert any(d.name in ("default", "pulse") for d in devices), devices
    mic = Microphone("default", preroll_seconds=0.3)
    with mic:
        wait_for_audio(mic, 0.5)
        key_down = time.monotonic()
        mic.start_recording()
        play_start = time.monotonic()
        chunks, loudest = drain_while(mic, pulse.play(speech_wav), timeout=30)
        time.sleep(0.3)
        chunks.append(mic.read_new())
        utterance = mic.stop_recording()
        chunks.append(mic.read_new())
    lag, corr = best_lag(utterance, reference)
    latency = lag / RATE - 0.3 - (play_start - key_down)
    streamed = np.concatenate(chunks)
    _, stream_corr = best_lag(streamed, utterance[: len(streamed)])
    print(
        f"\nPulseAudio capture at {mic.rate} Hz: correlation {corr:.4f}, paplay→capture latency "
        f"{latency * 1000:.0f} ms, peak level {loudest:.1f} dBFS, {len(utterance) / RATE:.2f} s captured, "
        f"driver overflows {mic.driver_overflows}"
    )
    assert corr > 0.9
    assert -0.05 < latency < 1.0
    assert loudest > -40.0
    assert abs(len(streamed) - len(utterance)) <= 2 and stream_corr > 0.999
    quiet = utterance[: int(0.25 * RATE)]
    assert np.sqrt(np.mean(quiet**2)) < 1e-3  # the pre-roll before paplay started is silence


@pytest.mark.timeout(90)
def test_preroll_reaches_back_before_key_down_on_a_real_stream(pulse: PulseServer, speech_wav: Path) -> None:
    reference = decode_audio(speech_wav)
    with Microphone("pulse", preroll_seconds=0.3) as mic:
        wait_for_audio(mic, 0.3)
        process = pulse.play(speech_wav)
        play_start = time.monotonic()
        time.sleep(1.0)  # key down in the middle of the utterance
        key_down = time.monotonic()
        mic.start_recording()
        drain_while(mic, process, timeout=30)
        utterance = mic.stop_recording()
    # where in the reference the recording begins: key-down position minus pre-roll (minus latency)
    size = 1 << math.ceil(math.log2(len(reference) + len(utterance)))
    corr = np.fft.irfft(np.fft.rfft(reference, size) * np.conj(np.fft.rfft(utterance, size)), size)
    offset = int(np.argmax(corr[: len(reference)])) / RATE
    key_position = key_down - play_start
    print(f"\nkey down {key_position:.3f} s into playback; recording begins {offset:.3f} s into it")
    assert offset < key_position - 0.25
    assert offset > key_position - 0.3 - 0.6
