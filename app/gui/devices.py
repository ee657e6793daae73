"""The hardware the window uses, injected: microphone and camera factories and their listings.

The defaults open real devices (sounddevice, OpenCV); tests pass microphones over
``model_io.capture_fakes.FakeAudioBackend`` and a video file as the camera.  Every factory may
raise :class:`InputError` with a user-facing message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from model_io.camera import Camera, Frame, SourceSpec, list_cameras
from model_io.capture import Microphone, list_input_devices
from model_io.errors import InputError

MAX_CLIP_SECONDS = 30.0  # Gemma 3n hears at most 30 s per clip; recording stops there

MicrophoneFactory = Callable[[str], Microphone]  # device name ("" = default) -> microphone
FrameCallback = Callable[[Frame], None]
ErrorCallback = Callable[[InputError], None]
CameraFactory = Callable[[SourceSpec, FrameCallback, ErrorCallback], Camera]
CameraLister = Callable[[], list[tuple[str, SourceSpec]]]
MicrophoneLister = Callable[[], list[str]]


def default_microphone(device: str) -> Microphone:
    return Microphone(device or None, preroll_seconds=0.3, max_seconds=MAX_CLIP_SECONDS)


def default_camera(source: SourceSpec, on_frame: FrameCallback, on_error: ErrorCallback) -> Camera:
    return Camera(source, fps_limit=15, on_frame=on_frame, on_error=on_error)


def default_cameras() -> list[tuple[str, SourceSpec]]:
    return [(info.name or f"Camera {info.index}", info.index) for info in list_cameras() if info.accessible]


def default_microphones() -> list[str]:
    """Input device names for the settings picker; empty when there is no audio system."""
    try:
        return [device.name for device in list_input_devices()]
    except InputError:
        return []


def camera_source(setting: str) -> SourceSpec:
    """The camera setting as a source: "" is the first camera, digits an index, anything else a path."""
    text = setting.strip()
    if not text:
        return 0
    return int(text) if text.isdigit() else text


@dataclass(frozen=True)
class Devices:
    microphone: MicrophoneFactory = default_microphone
    camera: CameraFactory = default_camera
    cameras: CameraLister = default_cameras
    microphones: MicrophoneLister = default_microphones
