"""Image inputs: every format, orientation, transparency, size limits and every kind of bad file."""

from __future__ import annotations

import io
import json
import re
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from model_io.errors import InputError
from model_io.images import MAX_SIDE, image_from_bytes, image_from_frame, load_image

REPO = Path(__file__).resolve().parents[1]
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def _pattern(width: int = 64, height: int = 48) -> np.ndarray:
    """A deterministic RGB test picture (gradients plus a solid block, so orientation is visible)."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) % 256], axis=2)
    rgb[: height // 4, : width // 4] = RED
    return rgb.astype(np.uint8)


def _save(tmp_path: Path, name: str, image: Image.Image, **params: Any) -> Path:
    path = tmp_path / name
    image.save(path, **params)
    return path


# -- formats ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params"),
    [("a.png", {}), ("a.bmp", {}), ("a.webp", {"lossless": True}), ("a.tiff", {})],
)
def test_lossless_formats_decode_exactly(tmp_path: Path, name: str, params: dict[str, object]) -> None:
    pixels = _pattern()
    media = load_image(_save(tmp_path, name, Image.fromarray(pixels), **params))
    assert media.kind == "image" and media.label == name
    assert media.payload.dtype == np.uint8 and media.payload.shape == (48, 64, 3)
    np.testing.assert_array_equal(media.payload, pixels)


@pytest.mark.parametrize(("name", "params"), [("a.jpg", {"quality": 95}), ("a.webp", {"quality": 90})])
def test_lossy_formats_decode_close(tmp_path: Path, name: str, params: dict[str, object]) -> None:
    pixels = _pattern()
    media = load_image(_save(tmp_path, name, Image.fromarray(pixels), **params))
    assert media.payload.shape == (48, 64, 3)
    assert np.abs(media.payload.astype(int) - pixels).mean() < 6


def test_gif_takes_the_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (20, 10), colour) for colour in (RED, BLUE)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(path) as written:
        assert getattr(written, "n_frames", 1) == 2
    np.testing.assert_array_equal(load_image(path).payload, np.full((10, 20, 3), RED, np.uint8))


def test_transparency_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 0)  # fully transparent red → white
    rgba[0, 1] = (0, 0, 255, 255)  # opaque blue stays blue
    rgba[0, 2] = (0, 0, 0, 128)  # half-transparent black → mid grey
    payload = load_image(_save(tmp_path, "alpha.png", Image.fromarray(rgba, "RGBA"))).payload
    assert tuple(payload[0, 0]) == WHITE
    assert tuple(payload[0, 1]) == BLUE
    assert all(abs(int(v) - 127) <= 1 for v in payload[0, 2])


def test_palette_transparency_and_grey_alpha(tmp_path: Path) -> None:
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 0, 255])
    palette.putpixel((1, 0), 1)
    palette_path = _save(tmp_path, "p.png", palette, transparency=0)
    grey_alpha = Image.fromarray(np.array([[[0, 0], [0, 255]]], np.uint8), "LA")
    assert load_image(palette_path).payload.tolist() == [[list(WHITE), list(BLUE)]]
    assert load_image(_save(tmp_path, "la.png", grey_alpha)).payload.tolist() == [[[255] * 3, [0] * 3]]


def test_sixteen_bit_grey_and_cmyk(tmp_path: Path) -> None:
    grey16 = Image.fromarray(np.array([[0, 32768, 65535]], np.uint16))
    assert load_image(_save(tmp_path, "g16.png", grey16)).payload[0, :, 0].tolist() == [0, 128, 255]
    cmyk = load_image(_save(tmp_path, "c.jpg", Image.new("CMYK", (8, 8), (0, 255, 255, 0)), quality=95))
    assert cmyk.payload.shape == (8, 8, 3)
    assert cmyk.payload[4, 4, 0] > 200 and cmyk.payload[4, 4, 2] < 60  # red


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    """Orientation 6 (camera held upright): stored landscape, shown rotated 90° clockwise."""
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20], stored[:, 20:] = RED, BLUE
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(tmp_path, "rotated.jpg", Image.fromarray(stored), quality=95, exif=exif.tobytes())
    payload = load_image(path).payload.astype(int)
    assert payload.shape == (40, 20, 3)
    assert np.abs(payload[:18] - RED).max() < 40  # the stored left half is now on top
    assert np.abs(payload[22:] - BLUE).max() < 40


@pytest.mark.parametrize(
    ("orientation", "transpose"), [(3, Image.Transpose.ROTATE_180), (8, Image.Transpose.ROTATE_90)]
)
def test_other_orientations_match_pillow(
    tmp_path: Path, orientation: int, transpose: Image.Transpose
) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(tmp_path, "o.png", Image.fromarray(_pattern()), exif=exif.tobytes())
    expected = np.asarray(Image.fromarray(_pattern()).transpose(transpose))
    np.testing.assert_array_equal(load_image(path).payload, expected)


# -- size limits ---------------------------------------------------------------------------------------


def test_big_images_are_bounded_to_max_side(tmp_path: Path) -> None:
    media = load_image(_save(tmp_path, "wide.png", Image.new("RGB", (4000, 1000), BLUE)))
    assert media.payload.shape == (MAX_SIDE // 4, MAX_SIDE, 3)
    assert tuple(media.payload[100, 100]) == BLUE


def _giant_jpeg(path: Path, width: int, height: int) -> Path:
    """A valid baseline grey JPEG of any size, written without ever holding its pixels.

    A uniform mid-grey 8x8 block is DC 0 + end-of-block: six bits, so four blocks are
    exactly the three bytes 28 a2 8a.  Pillow supplies the headers, the SOF size is patched.
    """
    assert width % 16 == 0 and height % 16 == 0
    buffer = io.BytesIO()
    Image.new("L", (32, 8), 128).save(buffer, "JPEG", quality=90)
    data, head, pos = buffer.getvalue(), bytearray(b"\xff\xd8"), 2
    while True:
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        segment = bytearray(data[pos : pos + 2 + length])
        if marker == 0xC0:
            segment[5:9] = struct.pack(">HH", height, width)
        head += segment
        pos += 2 + length
        if marker == 0xDA:
            break
    assert data[pos:] == b"\x28\xa2\x8a\xff\xd9"
    path.write_bytes(bytes(head) + b"\x28\xa2\x8a" * (width * height // 256) + b"\xff\xd9")
    return path


@pytest.mark.slow
def test_a_20000_px_jpeg_decodes_in_bounded_memory(tmp_path: Path) -> None:
    path = _giant_jpeg(tmp_path / "giant.jpg", 20000, 20000)  # 400 MP: 1.2 GB as RGB at full size
    script = textwrap.dedent(
        """
        import json, re, sys
        from pathlib import Path
        from model_io.images import load_image
        media = load_image(sys.argv[1])
        # VmHWM is this process image's peak; ru_maxrss would include the parent's RSS at fork time.
        status = Path("/proc/self/status").read_text()
        peak_mb = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024
        print(json.dumps([media.payload.shape, int(media.payload.min()), int(media.payload.max()), peak_mb]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    shape, low, high, peak_mb = json.loads(done.stdout)
    assert shape == [MAX_SIDE, MAX_SIDE, 3]
    assert (low, high) == (128, 128)
    assert peak_mb < 250, f"peak RSS {peak_mb:.0f} MB"


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares a huge size but carries almost no data (a decompression bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (12_000, 10_000)])
def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path, width: int, height: int) -> None:
    """Above Pillow's hard limit and between its warning limit and ours: both refused from the header."""
    path = _png_header_only(tmp_path / "bomb.png", width, height)
    with pytest.raises(InputError, match=r"bomb\.png: .*too large"):
        load_image(path)


def test_progressive_jpeg_bombs_are_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), RED).save(buffer, "JPEG", progressive=True)
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc2")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 30000, 30000)
    (tmp_path / "prog.jpg").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"prog\.jpg: 30000x30000 pixels is too large"):
        load_image(tmp_path / "prog.jpg")


# -- bad input -------------------------------------------------------------------------------------


def test_missing_folder_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.png: file not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="is a folder"):
        load_image(tmp_path)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.jpg: file is empty"):
        load_image(tmp_path / "empty.jpg")


@pytest.mark.parametrize(("name", "params"), [("t.png", {}), ("t.jpg", {"quality": 90}), ("t.gif", {})])
def test_truncated_files_are_reported(tmp_path: Path, name: str, params: dict[str, object]) -> None:
    good = _save(tmp_path, name, Image.fromarray(_pattern(256, 256)), **params)
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=re.escape(name) + ": .*(truncated|corrupt)"):
        load_image(good)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG vector images"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, "HEIC/HEIF"),
        (b"just some text, not a picture\n" * 4, "not a supported image"),
        (bytes(range(256)) * 4, "not a supported image"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not a supported image"),
    ],
)
def test_unsupported_and_undecodable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "input.dat"
    path.write_bytes(content)
    with pytest.raises(InputError, match=rf"input\.dat: {message}"):
        load_image(path)


# -- clipboard bytes and camera frames ----------------------------------------------------------------


def test_bytes_match_the_file_and_share_its_digest(tmp_path: Path) -> None:
    path = _save(tmp_path, "same.png", Image.fromarray(_pattern()))
    from_file, from_bytes = load_image(path), image_from_bytes(path.read_bytes(), "clipboard")
    np.testing.assert_array_equal(from_file.payload, from_bytes.payload)
    assert from_file == from_bytes and from_file.digest == from_bytes.digest
    assert from_bytes.label == "clipboard"
    with pytest.raises(InputError, match="clipboard: no image data"):
        image_from_bytes(b"", "clipboard")
    with pytest.raises(InputError, match="dropped: not a supported image"):
        image_from_bytes(b"garbage" * 10, "dropped")


def test_frames_are_converted_copied_and_frozen() -> None:
    rgb = _pattern()
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    media = image_from_frame(bgr, "webcam")
    np.testing.assert_array_equal(media.payload, rgb)
    digest = media.digest
    bgr[:] = 0  # the camera reuses its buffer
    np.testing.assert_array_equal(media.payload, rgb)
    assert media.digest == digest and not media.payload.flags.writeable
    np.testing.assert_array_equal(image_from_frame(rgb, order="rgb").payload, rgb)


def test_frames_in_other_layouts() -> None:
    grey = np.full((10, 12), 77, np.uint8)
    assert image_from_frame(grey).payload.shape == (10, 12, 3)
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[..., 0] = 255  # blue in BGRA
    assert tuple(image_from_frame(bgra).payload[0, 0]) == BLUE
    assert tuple(image_from_frame(np.ones((2, 2, 3), np.float32), order="rgb").payload[0, 0]) == WHITE
    big = image_from_frame(np.zeros((3000, 4000, 3), np.uint8))
    assert big.payload.shape == (MAX_SIDE * 3 // 4, MAX_SIDE, 3)
    for bad in (np.zeros((4, 4, 2), np.uint8), np.zeros((0, 4, 3), np.uint8), np.zeros((4, 4, 3), np.int64)):
        with pytest.raises(InputError, match="frame"):
            image_from_frame(bad, "frame")
