"""Hostile images: load_image and image_from_bytes end in a one-line InputError or a bounded RGB array.

Seeds are small real PNG (RGB, RGBA, palette with transparency, 16-bit grey), JPEG (baseline and
progressive), WebP (lossy and lossless), GIF (animated), BMP and TIFF files; Hypothesis cuts and
flips them, puts garbage behind each format's magic, and writes PNG, GIF, BMP, JPEG and WebP
headers declaring zero, huge or negative sizes.  Decompression bombs run in a child process with
their peak RSS measured.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzz_support import check_user_error, fuzz_settings, linux_only, run_bounded, within
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from model_io.errors import InputError
from model_io.images import MAX_SIDE, image_from_bytes, load_image

BOUND_SECONDS = 5.0  # a few-KB image decodes in milliseconds; this only catches hangs
PEAK_BYTES = 96 << 20  # Python-visible allocations (numpy) for one small hostile file
SIZES = (0, 1, 2, 16, 65535, 65536, (1 << 31) - 1, 1 << 31, (1 << 32) - 1)
MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0",
    b"GIF89a",
    b"RIFF\x00\x01\x00\x00WEBPVP8 ",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"\x00\x00\x00\x1cftypavif",
    b"<svg",
)


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    """48x32 pictures in every supported format and the awkward modes."""
    y, x = np.mgrid[0:32, 0:48]
    rgb = np.stack([x * 5, y * 7, (x + y) % 256], axis=2).astype(np.uint8)
    rgba = np.dstack([rgb, (x * 5).astype(np.uint8)])
    images: dict[str, tuple[Image.Image, dict[str, Any]]] = {
        "rgb.png": (Image.fromarray(rgb), {}),
        "rgba.png": (Image.fromarray(rgba, "RGBA"), {}),
        "palette.png": (Image.fromarray(rgb).convert("P"), {"transparency": 3}),
        "grey16.png": (Image.fromarray((x * 1000).astype(np.uint16)), {}),
        "base.jpg": (Image.fromarray(rgb), {"quality": 90}),
        "prog.jpg": (Image.fromarray(rgb), {"quality": 90, "progressive": True}),
        "lossy.webp": (Image.fromarray(rgb), {"quality": 80}),
        "lossless.webp": (Image.fromarray(rgba, "RGBA"), {"lossless": True}),
        "anim.gif": (
            Image.fromarray(rgb).convert("P"),
            {"save_all": True, "append_images": [Image.new("P", (48, 32))]},
        ),
        "plain.bmp": (Image.fromarray(rgb), {}),
        "plain.tiff": (Image.fromarray(rgb), {}),
    }
    out = {}
    for name, (image, params) in images.items():
        buffer = io.BytesIO()
        image.save(buffer, Image.registered_extensions()["." + name.rsplit(".", 1)[1]], **params)
        out[name] = buffer.getvalue()
    return out


def outcome(path: Path) -> str:
    """'ok' for a bounded, frozen RGB array (same as from bytes), 'error' for a proper InputError."""
    tracemalloc.start()
    try:
        with within(BOUND_SECONDS, f"decoding {path.name}"), warnings.catch_warnings(record=True) as caught:
            try:
                media = load_image(path)
            except InputError as exc:
                check_user_error(exc, InputError, path.name)
                from_bytes = _bytes_outcome(path.read_bytes())
                assert from_bytes == "error", "image_from_bytes accepted what load_image refused"
                return "error"
            finally:  # Pillow's warnings would print extra lines next to the CLI's one-line error
                assert not [w for w in caught if "PIL" in w.filename], [str(w.message) for w in caught]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"decoding {path.stat().st_size} bytes peaked at {peak >> 20} MB"
    pixels = media.payload
    assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
    assert 0 < max(pixels.shape[:2]) <= MAX_SIDE and not pixels.flags.writeable
    return "ok"


def _bytes_outcome(data: bytes) -> str:
    try:
        image_from_bytes(data, "pasted image")
    except InputError as exc:
        check_user_error(exc, InputError, "pasted image")
        return "error"
    return "ok"


# -- headers declaring hostile sizes ------------------------------------------------------------------


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int, height: int, depth: int, colour: int, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


def gif(screen: tuple[int, int], frame: tuple[int, int], data: bytes) -> bytes:
    head = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + bytes(6)  # 2-colour global table
    descriptor = b"," + struct.pack("<HHHHB", 0, 0, *frame, 0)
    return head + descriptor + b"\x02" + bytes([len(data[:255])]) + data[:255] + b"\x00;"


def bmp(width: int, height: int, bits: int, data: bytes) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, len(data), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info) + len(data), 0, 0, 14 + len(info)) + info + data


def jpeg_with_size(base: bytes, width: int, height: int) -> bytes:
    data = bytearray(base)
    sof = data.find(b"\xff\xc0") if b"\xff\xc0" in data else data.find(b"\xff\xc2")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)
    return bytes(data)


def webp_vp8x(width: int, height: int) -> bytes:
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little")
    vp8x += (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


sizes = st.sampled_from(SIZES)
small_payload = st.binary(max_size=256)


def hostile_headers(jpeg: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.builds(png, sizes, sizes, st.sampled_from((1, 8, 16, 3, 0)), st.sampled_from((0, 2, 3, 4, 6, 7)),
                  st.one_of(small_payload, small_payload.map(zlib.compress))),
        st.builds(gif, st.tuples(sizes, sizes).map(lambda s: (min(s[0], 65535), min(s[1], 65535))),
                  st.tuples(sizes, sizes).map(lambda s: (min(s[0], 65535), min(s[1], 65535))), small_payload),
        st.builds(bmp, st.sampled_from((0, 1, -1, 65536, -(1 << 31), (1 << 31) - 1)),
                  st.sampled_from((0, 1, -1, 65536, -(1 << 31), (1 << 31) - 1)),
                  st.sampled_from((0, 1, 4, 8, 24, 32, 64)), small_payload),
        st.builds(jpeg_with_size, st.just(jpeg), sizes, sizes),
        st.builds(webp_vp8x, st.integers(1, 1 << 24), st.integers(1, 1 << 24)),
    )  # fmt: skip


# -- the properties --------------------------------------------------------------------------------


def test_garbage_behind_each_format_magic(tmp_path: Path) -> None:
    outcomes = []

    @fuzz_settings(120)
    @given(st.sampled_from(MAGIC), st.binary(max_size=1024))
    def check(magic: bytes, body: bytes) -> None:
        path = tmp_path / "garbage.img"
        path.write_bytes(magic + body)
        outcomes.append(outcome(path))

    check()
    assert "error" in outcomes


def test_cut_and_flipped_real_images(tmp_path: Path, seeds: dict[str, bytes]) -> None:
    outcomes = []

    @fuzz_settings(250)
    @given(st.sampled_from(sorted(seeds)), st.data())
    def check(name: str, data: st.DataObject) -> None:
        content = bytearray(seeds[name])
        for _ in range(data.draw(st.integers(0, 4))):
            content[data.draw(st.integers(0, len(content) - 1))] = data.draw(st.integers(0, 255))
        cut = data.draw(st.one_of(st.none(), st.integers(1, len(content))))
        path = tmp_path / f"damaged-{name}"
        path.write_bytes(bytes(content[:cut]))
        outcomes.append(outcome(path))

    check()
    assert {"ok", "error"} <= set(outcomes)


@pytest.mark.parametrize(
    "name", ["rgba.png", "palette.png", "prog.jpg", "lossless.webp", "anim.gif", "plain.tiff"]
)
def test_every_cut_of_a_real_image(tmp_path: Path, seeds: dict[str, bytes], name: str) -> None:
    """Each of the first 96 bytes (headers), then every 1/48 of the file."""
    content = seeds[name]
    path = tmp_path / f"cut-{name}"
    for size in sorted({*range(1, 96), *range(96, len(content), max(1, len(content) // 48))}):
        path.write_bytes(content[:size])
        outcome(path)


def test_headers_declaring_hostile_sizes(tmp_path: Path, seeds: dict[str, bytes]) -> None:
    outcomes = []

    @fuzz_settings(250)
    @given(hostile_headers(seeds["base.jpg"]))
    def check(content: bytes) -> None:
        path = tmp_path / "declared.img"
        path.write_bytes(content)
        outcomes.append(outcome(path))

    check()
    assert "error" in outcomes


@pytest.mark.parametrize("claim", [0x07000000, 0x7FFFFFFF])
def test_chunk_lengths_claiming_gigabytes_allocate_nothing(
    tmp_path: Path, seeds: dict[str, bytes], claim: int
) -> None:
    """Found by the long fuzz profile: Pillow passes a PNG chunk's length to read(), and CPython
    allocated the whole claim up front (117 MB for a 112-byte file)."""
    content = bytearray(seeds["rgb.png"])
    idat = content.index(b"IDAT") - 4
    content[idat : idat + 4] = claim.to_bytes(4, "big")
    path = tmp_path / "claims.png"
    path.write_bytes(bytes(content))
    outcome(path)  # decoded or refused, within PEAK_BYTES


@linux_only
def test_decompression_bombs_within_the_pixel_limit_decode_in_bounded_memory(tmp_path: Path) -> None:
    """36 MP in a few hundred KB (RGBA, palette with transparency, 16-bit grey): decoded, shrunk to
    MAX_SIDE, at a peak of about the decoded frame itself (88 MP RGBA, Pillow's limit, peaked at
    1.7 GB before images.py flattened big frames in strips); 400 MP is refused from the header."""

    def bomb(name: str, side: int, depth: int, colour: int, channels: int, extra: bytes = b"") -> None:
        row = b"\0" + b"\x80" * (side * channels * depth // 8)
        packer = zlib.compressobj(1)
        idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
        ihdr = struct.pack(">IIBBBBB", side, side, depth, colour, 0, 0, 0)
        body = png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
        (tmp_path / name).write_bytes(b"\x89PNG\r\n\x1a\n" + body)

    palette = png_chunk(b"PLTE", bytes(range(256)) * 3) + png_chunk(b"tRNS", bytes(128))
    bomb("rgba.png", 6000, 8, 6, 4)
    bomb("palette.png", 6000, 8, 3, 1, palette)
    bomb("grey16.png", 6000, 16, 0, 1)
    bomb("huge.png", 20000, 8, 0, 1)
    peaks = {}
    for name in ("rgba", "palette", "grey16", "huge"):
        peaks[name] = run_bounded(
            f"""
            import re
            from pathlib import Path
            from model_io.errors import InputError
            from model_io.images import load_image

            def case():
                try:
                    outcome = list(load_image({str(tmp_path / (name + ".png"))!r}).payload.shape)
                except InputError as exc:
                    outcome = str(exc)
                status = Path("/proc/self/status").read_text()
                peak_kb = int(re.search(r"VmHWM:\\s+(\\d+)", status).group(1))
                return {{"outcome": outcome, "peak_mb": peak_kb / 1024}}
            """,
            timeout=120,
        )
    for name in ("rgba", "palette", "grey16"):
        assert peaks[name]["outcome"] == [MAX_SIDE, MAX_SIDE, 3], peaks
    assert "too large to decode safely" in str(peaks["huge"]["outcome"]), peaks
    assert peaks["huge"]["rss_growth_mb"] < 20, peaks
    # Pillow keeps RGBA (and RGB) at 4 bytes a pixel: 36 MP is 144 MB, and ~90 MB is the interpreter.
    assert max(p["peak_mb"] for p in peaks.values()) < 330, peaks
