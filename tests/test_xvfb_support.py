"""The screenshot decoder and the OCR phrase matching of tests/xvfb_support.py, without an X server."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import xvfb_support as xs

RGB_MASKS = (0xFF0000, 0x00FF00, 0x0000FF)


def xwd_dump(
    rgb: np.ndarray, bits_per_pixel: int, *, msb_first: bool = False, name: bytes = b"root\0"
) -> bytes:
    """An XWD file as ``xwd -root`` writes it: rows padded to 32 bits per pixel, masks for the channels."""
    height, width, _ = rgb.shape
    size = bits_per_pixel // 8
    bytes_per_line = 4 * width  # Xvfb pads 24-bit rows as if pixels were 32-bit
    header = [100 + len(name), 7, 2, 24, width, height, 0, int(msb_first), 32, int(msb_first), 32]
    header += [bits_per_pixel, bytes_per_line, 4, *RGB_MASKS, 8, 256, 0, width, height, 0, 0, 0]
    words = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    order = ">" if msb_first else "<"
    as_bytes = words.astype(f"{order}u4").view(np.uint8).reshape(height, width, 4)
    pixels = as_bytes[..., 4 - size :] if msb_first else as_bytes[..., :size]
    rows = np.zeros((height, bytes_per_line), np.uint8)
    rows[:, : width * size] = pixels.reshape(height, width * size)
    return struct.pack(">25I", *header) + name + rows.tobytes()


@pytest.mark.parametrize("bits_per_pixel", [24, 32])
@pytest.mark.parametrize("msb_first", [False, True])
def test_xwd_dumps_decode_to_the_exact_pixels(bits_per_pixel: int, msb_first: bool) -> None:
    rgb = np.random.default_rng(bits_per_pixel).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    decoded = xs.parse_xwd(xwd_dump(rgb, bits_per_pixel, msb_first=msb_first))
    assert decoded.shape == (5, 7, 3) and np.array_equal(decoded, rgb)


def test_an_unsupported_dump_is_refused() -> None:
    dump = bytearray(xwd_dump(np.zeros((2, 2, 3), np.uint8), 32))
    dump[8:12] = struct.pack(">I", 1)  # XYPixmap, not ZPixmap
    with pytest.raises(ValueError, match="unsupported XWD"):
        xs.parse_xwd(bytes(dump))


def word(text: str, left: int, line: int = 1) -> xs.Word:
    return xs.Word(text, left, 10 * line, 8 * len(text), 10, (1, 1, line))


def test_phrases_match_on_one_line_ignoring_case_punctuation_and_lone_symbols() -> None:
    words = [word("images", 0), word("+", 50), word("speech", 60), word("Recording...", 0, line=2)]
    assert xs.find_phrase(words, "images + speech") == words[0]
    assert xs.find_phrase(words, "Recording…") == words[3]
    assert xs.find_phrase(words, "speech Recording") is None  # across two lines
    assert xs.find_phrase(words, "images speech video") is None
