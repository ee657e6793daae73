"""Webcam core: a video file (MJPG AVI whose frames encode their index) stands in for the camera; fakes for
drivers that refuse, hang or stop; sysfs listing from a fake tree."""

from __future__ import annotations

import errno
import itertools
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from model_io.camera import (
    CAP_PROP_FPS,
    CAP_PROP_FRAME_HEIGHT,
    CAP_PROP_FRAME_WIDTH,
    Camera,
    CameraInfo,
    Frame,
    check_device_node,
    list_cameras,
    normalise_source,
    probe_cameras,
    v4l2_cameras,
)
from model_io.errors import InputError

WIDTH, HEIGHT = 160, 120
N_FRAMES = 40
FPS = 50.0
CELL = 20


def encode_index(index: int) -> np.ndarray:
    """A BGR frame whose top row of 8 cells spells ``index`` in binary (robust to JPEG compression)."""
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    frame[:, :, 2] = 180
    for bit in range(8):
        value = 255 if (index >> bit) & 1 else 0
        frame[:CELL, bit * CELL : (bit + 1) * CELL] = value
    return frame


def decode_index(image: np.ndarray) -> int:
    cells = [image[4 : CELL - 4, bit * CELL + 4 : (bit + 1) * CELL - 4].mean() for bit in range(8)]
    return sum(1 << bit for bit, mean in enumerate(cells) if mean > 128)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("camera") / "camera.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for index in range(N_FRAMES):
        writer.write(encode_index(index))
    writer.release()
    return path


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class FakeSource:
    """A driver double: frames of a given size; ``gate`` makes ``grab`` block; ``grabs`` limits delivery."""

    def __init__(
        self,
        *,
        opened: bool = True,
        grabs: int | None = None,
        gate: threading.Event | None = None,
        block_after: int = 0,
        honour_size: bool = True,
    ) -> None:
        self.opened = opened
        self.grabs = grabs
        self.gate = gate
        self.block_after = block_after
        self.honour_size = honour_size
        self.size = (64, 48)
        self.count = 0
        self.released = threading.Event()
        self.props: dict[int, float] = {}

    def isOpened(self) -> bool:
        return self.opened

    def grab(self) -> bool:
        if self.gate is not None and self.count >= self.block_after:
            self.gate.wait()
        if self.grabs is not None and self.count >= self.grabs:
            return False
        self.count += 1
        time.sleep(0.005)
        return True

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        width, height = self.size
        return True, np.full((height, width, 3), self.count % 256, np.uint8)

    def set(self, prop_id: int, value: float) -> bool:
        self.props[prop_id] = value
        if self.honour_size and prop_id == CAP_PROP_FRAME_WIDTH:
            self.size = (int(value), self.size[1])
        if self.honour_size and prop_id == CAP_PROP_FRAME_HEIGHT:
            self.size = (self.size[0], int(value))
        return self.honour_size

    def get(self, prop_id: int) -> float:
        return 0.0 if prop_id == CAP_PROP_FPS else self.props.get(prop_id, 0.0)

    def release(self) -> None:
        self.released.set()


def fake_camera(source: FakeSource, **kwargs: Any) -> Camera:
    return Camera("fake://camera", opener=lambda spec: source, **kwargs)


# -- a video file as the camera ---------------------------------------------------------------------


def test_every_frame_in_order_without_rate_limit(video: Path) -> None:
    frames: list[Frame] = []
    errors: list[InputError] = []
    camera = Camera(video, fps_limit=None, on_frame=frames.append, on_error=errors.append)
    camera.start()
    wait_until(lambda: errors)
    assert [frame.index for frame in frames] == list(range(N_FRAMES))
    assert [decode_index(frame.image) for frame in frames] == list(range(N_FRAMES))
    assert "end of the video" in str(errors[0]) and len(errors) == 1
    with pytest.raises(InputError, match="end of the video"):
        camera.latest()
    assert camera.close(timeout=1.0)
    # paced like a camera at the file's 50 fps, not read as fast as possible
    assert frames[-1].timestamp - frames[0].timestamp == pytest.approx((N_FRAMES - 1) / FPS, rel=0.25)


def test_preview_rate_limit_skips_frames_but_keeps_order(video: Path) -> None:
    frames: list[Frame] = []
    camera = Camera(video, fps_limit=10.0, on_frame=frames.append, loop=True)
    with camera:
        wait_until(lambda: len(frames) >= 8)
    indices = [frame.index for frame in frames]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    gaps = np.diff(indices)
    assert 4 <= np.median(gaps) <= 6  # 50 fps source, 10 fps preview
    assert all(decode_index(frame.image) == frame.index % N_FRAMES for frame in frames)
    span = frames[-1].timestamp - frames[0].timestamp
    assert (len(frames) - 1) / span == pytest.approx(10.0, rel=0.3)


def test_latest_keeps_only_the_newest_frame(video: Path) -> None:
    with Camera(video, fps_limit=None, loop=True) as camera:
        camera.wait_ready(timeout=5)
        seen: list[tuple[float, int]] = []
        for _ in range(4):
            time.sleep(0.2)  # a slow consumer: about ten frames arrive between polls
            frame = camera.latest()
            assert frame is not None
            seen.append((frame.timestamp, frame.index))
            assert decode_index(frame.image) == frame.index % N_FRAMES
        for (t0, earlier), (t1, later) in itertools.pairwise(seen):
            assert later - earlier >= 5  # not the next queued frame: the newest one
            assert abs((later - earlier) - (t1 - t0) * FPS) <= 2
        assert frame is not None and not frame.image.flags.writeable


def test_loop_rewinds_a_video_file(video: Path) -> None:
    frames: list[Frame] = []
    with Camera(video, fps_limit=None, loop=True, on_frame=frames.append) as camera:
        wait_until(lambda: len(frames) > N_FRAMES + 5)
        assert camera.error is None
    assert [decode_index(f.image) for f in frames[: N_FRAMES + 5]] == [
        i % N_FRAMES for i in range(N_FRAMES + 5)
    ]


def test_resolution_reports_what_the_source_gives(video: Path) -> None:
    with Camera(video, resolution=(640, 480)) as camera:
        assert camera.wait_ready(timeout=5) == (WIDTH, HEIGHT)
        assert camera.resolution == (WIDTH, HEIGHT)
        assert camera.requested_resolution == (640, 480)
    source = FakeSource()
    with fake_camera(source, resolution=(320, 240)) as camera:
        assert camera.wait_ready(timeout=5) == (320, 240)
    assert source.props[CAP_PROP_FRAME_WIDTH] == 320 and source.props[CAP_PROP_FRAME_HEIGHT] == 240
    stubborn = FakeSource(honour_size=False)
    with fake_camera(stubborn, resolution=(1920, 1080)) as camera:
        assert camera.wait_ready(timeout=5) == (64, 48)


def test_snapshot_round_trip(video: Path) -> None:
    camera = Camera(video, loop=True)
    with pytest.raises(InputError, match="no picture yet"):
        camera.snapshot()
    camera.start()
    camera.wait_ready(timeout=5)
    assert camera.close()
    frame = camera.latest()
    assert frame is not None
    media = camera.snapshot("webcam")
    assert media.kind == "image" and media.label == "webcam"
    assert media.payload.shape == (HEIGHT, WIDTH, 3) and media.payload.dtype == np.uint8
    np.testing.assert_array_equal(media.payload, frame.image[:, :, ::-1])
    assert decode_index(media.payload[:, :, ::-1]) == frame.index % N_FRAMES
    assert media == camera.snapshot("again")  # same pixels, same digest


def test_frame_rgb_is_a_contiguous_copy() -> None:
    image = encode_index(5)
    frame = Frame(image, 5, 0.0)
    rgb = frame.rgb()
    assert rgb.flags.c_contiguous and rgb.strides[0] == 3 * WIDTH
    np.testing.assert_array_equal(rgb[..., 0], image[..., 2])
    assert frame.size == (WIDTH, HEIGHT)


# -- refusals and failures -----------------------------------------------------------------------------


def test_no_camera_device(tmp_path: Path) -> None:
    camera = Camera(0, dev_root=tmp_path)
    with pytest.raises(
        InputError, match=r"No camera found: .*video0 does not exist \(no /dev/video\* devices"
    ):
        camera.wait_ready(timeout=5)
    (tmp_path / "video0").touch()
    with pytest.raises(InputError, match=r"video2 does not exist \(present: video0\)"):
        Camera("/dev/video2", dev_root=tmp_path).wait_ready(timeout=5)


def test_permission_denied_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "video0").touch()

    def denied(path: Any, flags: int, *args: Any) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr("model_io.camera.os.open", denied)
    with pytest.raises(InputError, match=r"Permission denied .*'video' group"):
        check_device_node(0, tmp_path)


def test_busy_device_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "video0").touch()

    def busy(path: Any, flags: int, *args: Any) -> int:
        raise OSError(errno.EBUSY, "Device or resource busy", str(path))

    monkeypatch.setattr("model_io.camera.os.open", busy)
    with pytest.raises(InputError, match="in use by another application"):
        check_device_node(0, tmp_path)


def test_unopenable_device_index(tmp_path: Path) -> None:
    (tmp_path / "video0").touch()
    source = FakeSource(opened=False)
    camera = Camera(0, opener=lambda spec: source, dev_root=tmp_path)
    with pytest.raises(InputError, match="Cannot open camera 0: there is no such camera"):
        camera.wait_ready(timeout=5)
    assert source.released.is_set()


def test_missing_and_corrupt_video_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="video file not found"):
        Camera(tmp_path / "nope.avi").wait_ready(timeout=5)
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InputError, match="cannot decode the video"):
        Camera(garbage).wait_ready(timeout=5)


def test_real_opencv_cannot_open_a_missing_camera(tmp_path: Path) -> None:
    """Without the Linux pre-check, OpenCV's own failure still becomes a clear error."""
    (tmp_path / "video9").touch()
    with pytest.raises(InputError, match="Cannot open camera 9"):
        Camera(9, dev_root=tmp_path).wait_ready(timeout=8)


def test_opener_exception_becomes_an_input_error() -> None:
    def explode(spec: int | str) -> Any:
        raise RuntimeError("driver crashed")

    errors: list[InputError] = []
    camera = Camera("fake://x", opener=explode, on_error=errors.append)
    with pytest.raises(InputError, match="the camera failed \\(driver crashed\\)"):
        camera.wait_ready(timeout=5)
    assert len(errors) == 1


def test_camera_that_stops_delivering() -> None:
    errors: list[InputError] = []
    source = FakeSource(grabs=3)
    camera = fake_camera(source, stall_timeout=0.3, on_error=errors.append)
    camera.start()
    camera.wait_ready(timeout=5)
    wait_until(lambda: errors)
    assert "stopped delivering frames (nothing for 0.3 s)" in str(errors[0])
    with pytest.raises(InputError, match="stopped delivering"):
        camera.latest()
    wait_until(source.released.is_set)


def test_driver_blocked_in_read_is_caught_and_close_does_not_hang() -> None:
    gate = threading.Event()
    source = FakeSource(gate=gate, block_after=2)
    camera = fake_camera(source, stall_timeout=0.3)
    camera.start()
    camera.wait_ready(timeout=5)
    time.sleep(0.4)
    with pytest.raises(InputError, match="stopped delivering frames"):
        camera.latest()
    started = time.monotonic()
    assert camera.close(timeout=0.2) is False
    assert time.monotonic() - started < 0.5
    assert not source.released.is_set()  # never released under the reader's feet
    gate.set()
    wait_until(source.released.is_set)
    assert not camera.running


def test_open_that_hangs_is_bounded() -> None:
    gate = threading.Event()
    source = FakeSource()

    def slow_open(spec: int | str) -> FakeSource:
        gate.wait()
        return source

    camera = Camera("fake://slow", opener=slow_open, open_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(InputError, match=r"within 0\.3 s"):
        camera.wait_ready()
    assert time.monotonic() - started < 1.0
    assert camera.close(timeout=0.1) is False
    gate.set()
    wait_until(source.released.is_set)  # opened late, released at once, never read
    assert source.count == 0


def test_close_during_streaming(video: Path) -> None:
    frames: list[Frame] = []
    camera = Camera(video, fps_limit=None, loop=True, on_frame=frames.append)
    camera.start()
    wait_until(lambda: len(frames) >= 5)
    started = time.monotonic()
    assert camera.close(timeout=1.0)
    assert time.monotonic() - started < 0.5
    assert not camera.running and camera.error is None
    count = len(frames)
    time.sleep(0.1)
    assert len(frames) == count
    assert camera.latest() is not None  # the last frame stays readable after close


def test_failing_preview_callback_does_not_stop_the_camera() -> None:
    calls: list[int] = []

    def broken(frame: Frame) -> None:
        calls.append(frame.index)
        raise ValueError("widget gone")

    with fake_camera(FakeSource(), fps_limit=None, on_frame=broken) as camera:
        wait_until(lambda: len(calls) >= 5)
        assert camera.error is None


# -- listing -----------------------------------------------------------------------------------------


def make_sysfs(root: Path, entries: dict[str, tuple[str, int]]) -> tuple[Path, Path]:
    sys_root, dev_root = root / "sys", root / "dev"
    dev_root.mkdir(parents=True)
    for node, (name, index) in entries.items():
        (sys_root / node).mkdir(parents=True)
        (sys_root / node / "name").write_text(name + "\n")
        (sys_root / node / "index").write_text(f"{index}\n")
        (dev_root / node).touch()
    return sys_root, dev_root


def test_v4l2_listing_names_cameras_and_skips_metadata_nodes(tmp_path: Path) -> None:
    sys_root, dev_root = make_sysfs(
        tmp_path,
        {
            "video0": ("Integrated Camera: Integrated C", 0),
            "video1": ("Integrated Camera: Integrated C", 1),
            "video10": ("USB Cam", 0),
            "video2": ("Logitech BRIO", 0),
        },
    )
    assert v4l2_cameras(sys_root, dev_root) == [
        CameraInfo(0, "Integrated Camera: Integrated C", str(dev_root / "video0"), True),
        CameraInfo(2, "Logitech BRIO", str(dev_root / "video2"), True),
        CameraInfo(10, "USB Cam", str(dev_root / "video10"), True),
    ]
    assert list_cameras(sys_root=tmp_path / "absent") == []


def test_probing_indices_is_bounded_even_when_a_driver_hangs() -> None:
    hang = threading.Event()

    def opener(spec: int | str) -> FakeSource:
        if spec == 3:
            hang.wait()
        return FakeSource(opened=spec in (0, 2))

    started = time.monotonic()
    found = probe_cameras(max_index=6, timeout=0.5, opener=opener)
    assert time.monotonic() - started < 1.0
    assert [camera.index for camera in found] == [0, 2]
    hang.set()


def test_source_normalisation() -> None:
    assert normalise_source(1) == 1
    assert normalise_source("2") == 2
    assert normalise_source("/dev/video4") == 4
    assert normalise_source(Path("clip.mp4")) == "clip.mp4"
    assert normalise_source("rtsp://host/stream") == "rtsp://host/stream"
