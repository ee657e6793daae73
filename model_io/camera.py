"""Webcam capture that never blocks the caller: one reader thread owns the device, keeps the newest frame.

Camera drivers block in ``open`` and ``read`` (sometimes for seconds, sometimes forever when a
camera is unplugged), and OpenCV's ``VideoCapture`` is not thread-safe.  So a single reader
thread opens, configures, reads and releases the source; the caller only swaps references
(``latest()``), gets a rate-limited ``on_frame`` callback, and every wait is bounded.  Frames
beyond the preview rate are grabbed (draining the driver's queue, keeping latency low) but not
decoded.  The source is injected: OpenCV by default, a video file or a fake in tests.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from model_io.errors import InputError
from model_io.images import image_from_frame
from model_io.media import MediaInput

log = logging.getLogger(__name__)

# OpenCV's property ids (stable across 4.x/5.x), so this module imports cv2 only to open a device.
CAP_PROP_POS_FRAMES = 1
CAP_PROP_FRAME_WIDTH = 3
CAP_PROP_FRAME_HEIGHT = 4
CAP_PROP_FPS = 5

SYS_VIDEO4LINUX = Path("/sys/class/video4linux")
DEV = Path("/dev")

SourceSpec = int | str | os.PathLike[str]


class FrameSource(Protocol):
    """The part of ``cv2.VideoCapture`` the camera uses; only the reader thread touches it."""

    def isOpened(self) -> bool: ...  # OpenCV's name

    def grab(self) -> bool: ...

    def retrieve(self) -> tuple[bool, np.ndarray | None]: ...

    def set(self, prop_id: int, value: float) -> bool: ...

    def get(self, prop_id: int) -> float: ...

    def release(self) -> None: ...


Opener = Callable[[int | str], FrameSource]


@dataclass(frozen=True)
class Frame:
    """One delivered frame: read-only BGR uint8 ``image``; ``index`` counts frames grabbed from the source."""

    image: np.ndarray
    index: int
    timestamp: float

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])

    def rgb(self) -> np.ndarray:
        """A contiguous RGB copy (row stride ``3 * width``) that a ``QImage`` may wrap safely."""
        return np.ascontiguousarray(self.image[:, :, 2::-1])


@dataclass(frozen=True)
class CameraInfo:
    """A camera a user can pick; ``accessible`` is false when the device node refuses us (permissions)."""

    index: int
    name: str
    path: str = ""
    accessible: bool = True


def default_opener(spec: int | str) -> FrameSource:
    """``cv2.VideoCapture`` (imported here, so a missing OpenCV is an InputError, not an import crash)."""
    try:
        import cv2
    except ImportError as exc:
        raise InputError(f"Camera support needs OpenCV: pip install opencv-python-headless ({exc})") from exc
    capture: FrameSource = cv2.VideoCapture(spec)
    return capture


# -- listing -------------------------------------------------------------------------------------


def list_cameras(
    *,
    max_index: int = 8,
    timeout: float = 3.0,
    opener: Opener | None = None,
    sys_root: Path = SYS_VIDEO4LINUX,
    dev_root: Path = DEV,
) -> list[CameraInfo]:
    """Cameras with names: from sysfs on Linux (no device is opened), else by probing indices."""
    if sys.platform.startswith("linux"):
        return v4l2_cameras(sys_root, dev_root) if sys_root.is_dir() else []
    return probe_cameras(max_index=max_index, timeout=timeout, opener=opener)


def v4l2_cameras(sys_root: Path = SYS_VIDEO4LINUX, dev_root: Path = DEV) -> list[CameraInfo]:
    """``/sys/class/video4linux/videoN``; nodes with ``index`` > 0 are a camera's metadata nodes, skipped."""
    cameras = []
    for entry in sys_root.glob("video*"):
        number = entry.name.removeprefix("video")
        if not number.isdigit() or _read_int(entry / "index", 0) != 0:
            continue
        node = dev_root / entry.name
        name = _read_text(entry / "name") or f"Camera {number}"
        cameras.append(CameraInfo(int(number), name, str(node), os.access(node, os.R_OK | os.W_OK)))
    return sorted(cameras, key=lambda camera: camera.index)


def probe_cameras(
    *, max_index: int = 8, timeout: float = 3.0, opener: Opener | None = None
) -> list[CameraInfo]:
    """Try indices ``0..max_index-1`` in a helper thread; a hanging driver costs ``timeout`` in all."""
    found: list[CameraInfo] = []
    open_source = opener or default_opener

    def probe() -> None:
        for index in range(max_index):
            try:
                source = open_source(index)
                usable = source.isOpened()
                source.release()
            except Exception:  # one broken driver must not hide the other cameras
                usable = False
            if usable:
                found.append(CameraInfo(index, f"Camera {index}"))

    thread = threading.Thread(target=probe, name="camera-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return list(found)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def _read_int(path: Path, default: int) -> int:
    text = _read_text(path)
    return int(text) if text.lstrip("-").isdigit() else default


def check_device_node(index: int, dev_root: Path = DEV) -> None:
    """On Linux, tell "no camera", "permission denied" and "busy" apart before OpenCV's generic failure."""
    node = dev_root / f"video{index}"
    if not node.exists():
        others = sorted(path.name for path in dev_root.glob("video*"))
        present = f"present: {', '.join(others)}" if others else "no /dev/video* devices at all"
        raise InputError(
            f"No camera found: {node} does not exist ({present}). Connect a camera and try again."
        )
    try:
        os.close(os.open(node, os.O_RDWR | os.O_NONBLOCK))
    except PermissionError as exc:
        raise InputError(
            f"Permission denied opening the camera {node}: add your user to the 'video' group "
            "(sudo usermod -aG video $USER, then log out and in again)"
        ) from exc
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise InputError(f"The camera {node} is in use by another application") from exc
        raise InputError(f"Cannot open the camera {node}: {exc.strerror or exc}") from exc


def normalise_source(source: SourceSpec) -> int | str:
    """``2``, ``"2"`` and (on Linux) ``"/dev/video2"`` name device 2; anything else is a file or URL."""
    if isinstance(source, int):
        return source
    text = os.fspath(source)
    if text.isdigit():
        return int(text)
    number = text.removeprefix("/dev/video")
    return int(number) if text.startswith("/dev/video") and number.isdigit() else text


# -- the camera ----------------------------------------------------------------------------------


class Camera:
    """A webcam (or a video file standing in for one) read by a background thread.

    ``start()`` returns at once; ``wait_ready()`` is the one bounded blocking call.  Errors from
    the reader (cannot open, permission denied, stopped delivering) are kept: ``latest()`` and
    ``snapshot()`` raise them, ``on_error`` hears them once.  ``on_frame`` runs on the reader
    thread at most ``fps_limit`` times a second: GUIs must hand frames to their own thread.
    One use only: after ``close()`` make a new ``Camera`` (the old reader may still be in the driver).
    """

    def __init__(
        self,
        source: SourceSpec = 0,
        *,
        opener: Opener | None = None,
        resolution: tuple[int, int] | None = None,
        fps_limit: float | None = 15.0,
        on_frame: Callable[[Frame], None] | None = None,
        on_error: Callable[[InputError], None] | None = None,
        open_timeout: float = 8.0,
        stall_timeout: float = 3.0,
        loop: bool = False,
        pace: bool | None = None,
        dev_root: Path = DEV,
    ) -> None:
        self._spec = normalise_source(source)
        spec = self._spec
        self._is_file = isinstance(spec, str) and "://" not in spec
        self.label = (
            f"video {Path(spec).name}" if isinstance(spec, str) and self._is_file else f"camera {spec}"
        )
        self._opener = opener or default_opener
        self.requested_resolution = resolution
        self._period = 1.0 / fps_limit if fps_limit else 0.0
        self._on_frame = on_frame
        self._on_error = on_error
        self._open_timeout = open_timeout
        self._stall_timeout = stall_timeout
        self._loop = loop
        self._pace = self._is_file if pace is None else pace
        self._dev_root = dev_root
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest: Frame | None = None
        self._error: InputError | None = None
        self._started_at = 0.0
        self._opened_at: float | None = None
        self.source_fps = 0.0

    # -- caller side --

    def start(self) -> None:
        """Open the source and start reading in the background (returns immediately)."""
        if self._thread is not None:
            return
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"{self.label} reader", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: float | None = None) -> tuple[int, int]:
        """Block until the first frame (at most ``timeout``, default ``open_timeout``); its size."""
        self.start()
        limit = self._open_timeout if timeout is None else timeout
        self._ready.wait(limit)
        frame = self.latest()
        if frame is None:
            self._fail(
                InputError(f"{self.label}: no picture within {limit:g} s (the camera did not respond)")
            )
            raise self._error or InputError(f"{self.label}: no picture")
        return frame.size

    def latest(self) -> Frame | None:
        """The newest frame (``None`` before the first); raises the reader's error once it has failed."""
        self._check_stalled()
        with self._lock:
            frame, error = self._latest, self._error
        if error is not None:
            raise error
        return frame

    @property
    def resolution(self) -> tuple[int, int] | None:
        """What the driver really delivers (from the frames), which may differ from the request."""
        with self._lock:
            return None if self._latest is None else self._latest.size

    @property
    def error(self) -> InputError | None:
        return self._error

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def snapshot(self, label: str = "camera snapshot") -> MediaInput:
        """The newest frame as an RGB image input for the model (an owned copy)."""
        frame = self.latest()
        if frame is None:
            raise InputError(f"{self.label}: no picture yet; the camera is still starting")
        return image_from_frame(frame.image, label, order="bgr")

    def close(self, timeout: float = 1.0) -> bool:
        """Stop reading, waiting at most ``timeout``; False if the driver is stuck (it releases on return)."""
        self._stop.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        if thread.is_alive():
            log.warning(
                "%s: reader still blocked in the driver after %.1f s; left to finish", self.label, timeout
            )
            return False
        return True

    def __enter__(self) -> Camera:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_stalled(self) -> None:
        """Catch a driver blocked inside ``read`` (the reader cannot notice that itself)."""
        if self._thread is None or self._error is not None or self._stop.is_set():
            return
        now = time.monotonic()
        with self._lock:
            last = self._latest.timestamp if self._latest is not None else self._opened_at
        if last is None and now - self._started_at > self._open_timeout:
            self._fail(InputError(f"{self.label}: the camera did not open within {self._open_timeout:g} s"))
        elif last is not None and now - last > self._stall_timeout:
            self._fail(self._stalled_error())

    def _stalled_error(self) -> InputError:
        return InputError(
            f"{self.label}: the camera stopped delivering frames (nothing for {self._stall_timeout:g} s); "
            "it may have been unplugged or taken by another application"
        )

    def _fail(self, error: InputError) -> None:
        with self._lock:
            if self._error is not None:
                return
            self._error = error
        self._stop.set()
        self._ready.set()
        if self._on_error is not None:
            self._on_error(error)

    # -- reader thread --

    def _run(self) -> None:
        source: FrameSource | None = None
        try:
            source = self._open()
            if not self._stop.is_set():
                self._configure(source)
                self._opened_at = time.monotonic()
                self._read_loop(source)
        except InputError as exc:
            self._fail(exc)
        except Exception as exc:  # a driver or OpenCV failure must reach the user, not vanish with the thread
            log.exception("%s: reader failed", self.label)
            self._fail(InputError(f"{self.label}: the camera failed ({exc})"))
        finally:
            if source is not None:
                _release(source, self.label)

    def _open(self) -> FrameSource:
        spec = self._spec
        if isinstance(spec, str) and self._is_file and not Path(spec).is_file():
            raise InputError(f"{self.label}: video file not found: {spec}")
        if isinstance(spec, int) and sys.platform.startswith("linux"):
            check_device_node(spec, self._dev_root)
        source = self._opener(spec)
        if not source.isOpened():
            _release(source, self.label)
            raise InputError(self._cannot_open())
        return source

    def _cannot_open(self) -> str:
        if self._is_file:
            return f"{self.label}: cannot decode the video (unsupported or corrupt file)"
        return (
            f"Cannot open {self.label}: there is no such camera, it is in use by another application, "
            "or camera access is denied in the system's privacy settings"
        )

    def _configure(self, source: FrameSource) -> None:
        if self.requested_resolution is not None:
            width, height = self.requested_resolution
            source.set(CAP_PROP_FRAME_WIDTH, width)
            source.set(CAP_PROP_FRAME_HEIGHT, height)
        fps = source.get(CAP_PROP_FPS)
        self.source_fps = fps if 0 < fps < 1000 else 30.0

    def _read_loop(self, source: FrameSource) -> None:
        index = 0
        next_publish = 0.0
        next_grab = time.monotonic()
        failing_since: float | None = None
        while not self._stop.is_set():
            if not source.grab():
                failing_since = self._handle_miss(source, index, failing_since)
                continue
            failing_since = None
            now = time.monotonic()
            if now >= next_publish - self._period / 4:
                next_publish = max(next_publish + self._period, now + self._period * 3 / 4)
                self._publish(source, index, now)
            index += 1
            if self._pace:
                next_grab += 1.0 / self.source_fps
                self._stop.wait(max(0.0, next_grab - time.monotonic()))

    def _handle_miss(self, source: FrameSource, index: int, failing_since: float | None) -> float:
        """A failed grab: rewind a looping file, end a file, or give a camera ``stall_timeout`` to recover."""
        now = time.monotonic()
        if self._is_file:
            if self._loop and index > 0 and failing_since is None:  # a second miss in a row: unreadable
                source.set(CAP_PROP_POS_FRAMES, 0)
                return now
            raise InputError(f"{self.label}: stopped delivering frames (end of the video)")
        started = now if failing_since is None else failing_since
        if now - started > self._stall_timeout:
            raise self._stalled_error()
        self._stop.wait(0.02)
        return started

    def _publish(self, source: FrameSource, index: int, now: float) -> None:
        ok, image = source.retrieve()
        if not ok or image is None:
            return
        frame = Frame(_owned(image), index, now)
        with self._lock:
            self._latest = frame
        self._ready.set()
        if self._on_frame is not None:
            try:
                self._on_frame(frame)
            except Exception:  # a broken preview must not stop the camera
                log.exception("%s: on_frame callback failed", self.label)


def _owned(image: np.ndarray) -> np.ndarray:
    """Copy and freeze the pixels: backends may reuse their buffer, and consumers share the frame."""
    owned = np.array(image, dtype=np.uint8, order="C", copy=True)
    owned.setflags(write=False)
    return owned


def _release(source: FrameSource, label: str) -> None:
    try:
        source.release()
    except Exception:
        log.exception("%s: release failed", label)
