"""Decode user images (files, clipboard bytes, webcam frames) into bounded RGB :class:`MediaInput`.

Every source ends up as an owned, read-only uint8 RGB array of at most
:data:`MAX_SIDE` pixels per side: the vision encoder resizes to 768x768 anyway, so
keeping more only costs memory and hashing time.  Big images are never decoded at
full size when it can be avoided: JPEG is decoded at 1/2, 1/4 or 1/8 scale by
libjpeg itself (Pillow's ``draft``), and every format's pixel count is checked
from the header before any pixel is decoded, so a decompression bomb is refused
instead of allocating gigabytes.  Only well-known raster formats are opened;
Pillow's other plugins (EPS runs Ghostscript, for one) are never reached.
"""

from __future__ import annotations

import io
import stat
import warnings
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
from PIL import Image, JpegImagePlugin, UnidentifiedImageError

from model_io.errors import InputError
from model_io.media import MediaInput

MAX_SIDE = 1536
# The most pixels ever decoded at once: Pillow's own decompression-bomb threshold (≈89.5 MP, ≈358 MB RGBA).
MAX_DECODED_PIXELS = 1024 * 1024 * 1024 // 4 // 3
# JPEG decodes at 1/8 scale, so a declared size up to 64x the decoded limit is still cheap to read...
MAX_JPEG_PIXELS = 64 * MAX_DECODED_PIXELS
# ...except progressive JPEGs, where libjpeg buffers every full-size coefficient (≈3 bytes per pixel).
MAX_PROGRESSIVE_JPEG_PIXELS = MAX_DECODED_PIXELS
# Opened through Pillow when its plugin is registered (HEIF only with pillow-heif); JPEG is opened directly.
SUPPORTED_FORMATS = ("PNG", "WEBP", "GIF", "BMP", "DIB", "TIFF", "AVIF", "HEIF")
SUPPORTED_NAMES = "PNG, JPEG, WebP, GIF, BMP, TIFF or AVIF"

_ORIENTATION_TAG = 0x0112
_EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_STRIP_PIXELS = 1 << 22  # big frames are flattened 4 MP at a time (16 MB as RGBA)
_WIDE_GREY_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


def load_image(path: str | Path) -> MediaInput:
    """Decode an image file; ``InputError`` names the file for anything unusable."""
    file_path = Path(path)
    label = file_path.name or str(file_path)
    size = _check_file(file_path, str(file_path))
    try:
        with _ClampedReader(io.FileIO(file_path, "r"), size) as handle:
            head = handle.read(64)
            handle.seek(0)
            rgb = _decode(handle, head, label)
    except OSError as exc:
        raise InputError(f"{file_path}: cannot read the file ({exc.strerror or exc})") from exc
    return _media(rgb, label)


class _ClampedReader(io.BufferedReader):
    """A file whose ``read(n)`` never asks for more than is left in it.

    Pillow reads chunk lengths from the file and passes them to ``read``, and CPython allocates the
    whole requested size up front: a 112-byte PNG claiming a 117 MB chunk allocated 117 MB (and a
    2 GB claim can raise MemoryError where memory is not overcommitted).
    """

    def __init__(self, raw: io.FileIO, size: int) -> None:
        super().__init__(raw)
        self._size = size

    def read(self, n: int | None = -1) -> bytes:
        if n is not None and n > 0:
            n = min(n, max(0, self._size - self.tell()))
            if n == 0:
                return b""
        return super().read(n)


def image_from_bytes(data: bytes, label: str = "pasted image") -> MediaInput:
    """Decode encoded image bytes from the clipboard or a drag-and-drop."""
    if not data:
        raise InputError(f"{label}: no image data (0 bytes)")
    return _media(_decode(io.BytesIO(data), bytes(data[:64]), label), label)


def image_from_frame(
    frame: np.ndarray, label: str = "camera frame", *, order: Literal["bgr", "rgb"] = "bgr"
) -> MediaInput:
    """Copy a camera frame (OpenCV's BGR by default; grey or 4-channel accepted) into a bounded RGB input."""
    array = np.asarray(frame)
    if array.size == 0 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise InputError(f"{label}: expected an HxW, HxWx3 or HxWx4 image array, got shape {array.shape}")
    array = _to_uint8(array, label)
    if array.ndim == 2 or array.shape[2] == 1:
        array = np.repeat(array.reshape(array.shape[0], array.shape[1], 1), 3, axis=2)
    rgb = array[:, :, 2::-1] if order == "bgr" else array[:, :, :3]
    image = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    return _media(_bounded_rgb(image), label)


# -- decoding ------------------------------------------------------------------------------------


def _check_file(path: Path, label: str) -> int:
    """The file's size, after refusing what is not a readable, non-empty regular file."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"{label}: file not found") from None
    except OSError as exc:
        raise InputError(f"{label}: cannot access the file ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{label}: is a folder, not an image")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{label}: is not a regular file")
    if info.st_size == 0:
        raise InputError(f"{label}: file is empty (0 bytes)")
    return info.st_size


def _quiet_pillow() -> None:
    """Pillow warns on stderr about damaged tags and oversized images, which would add lines around the
    CLI's one-line error; a bad image is reported as one InputError instead.  Installed per call, as
    test runners and embedding apps reset the warning filters (re-adding an equal filter is a no-op)."""
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _decode(stream: BinaryIO, head: bytes, label: str) -> np.ndarray:
    """Open with size checks first, decode at the smallest sufficient scale, return bounded RGB."""
    _quiet_pillow()
    with _open(stream, head, label) as image:
        orientation = _orientation(image)
        _reduce_while_decoding(image, label)
        try:
            image.load()
            rgb = _bounded_rgb(_flatten(image))
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise InputError(f"{label}: the image data is truncated or corrupt ({exc})") from exc
        except MemoryError as exc:
            raise InputError(f"{label}: not enough memory to decode this image") from exc
    if orientation in _EXIF_TRANSPOSE:
        rgb = np.asarray(Image.fromarray(rgb, "RGB").transpose(_EXIF_TRANSPOSE[orientation]))
    return rgb


def _open(stream: BinaryIO, head: bytes, label: str) -> Image.Image:
    """Read only the header; refuse formats and sizes we will not decode."""
    kind = _sniff(head)
    if kind == "svg":
        raise InputError(f"{label}: SVG vector images are not supported; export it as PNG first")
    try:
        if kind == "jpeg":
            # Pillow's generic open() refuses > 179 MP before draft() could shrink the decode; the JPEG
            # plugin itself reads just the header, and the limits below are applied instead.
            return JpegImagePlugin.JpegImageFile(stream)
        return Image.open(stream, formats=_registered_formats())
    except Image.DecompressionBombError as exc:
        raise InputError(f"{label}: the image is too large to decode safely ({exc})") from exc
    except UnidentifiedImageError as exc:
        if kind == "heif":
            raise InputError(
                f"{label}: HEIC/HEIF photos are not supported (no HEIF decoder); convert it to JPEG or PNG"
            ) from exc
        raise InputError(f"{label}: not a supported image ({SUPPORTED_NAMES} expected)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{label}: the image header is corrupt ({exc})") from exc


def _registered_formats() -> list[str]:
    Image.init()
    return [name for name in SUPPORTED_FORMATS if name in Image.OPEN]


def _sniff(head: bytes) -> str:
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
        return "heif"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml", b"<!doctype svg")):
        return "svg"
    return ""


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # a malformed EXIF block must not make an otherwise good image unusable
        return 1


def _reduce_while_decoding(image: Image.Image, label: str) -> None:
    """Let libjpeg scale big JPEGs down by up to 8x, then enforce the decoded-size limit."""
    width, height = image.size
    if image.format == "JPEG":
        limit = MAX_PROGRESSIVE_JPEG_PIXELS if _is_progressive(image) else MAX_JPEG_PIXELS
        _check_pixels(width, height, limit, label)
        scale = MAX_SIDE / max(width, height)
        if scale < 1:
            image.draft("RGB", (max(1, round(width * scale)), max(1, round(height * scale))))
    _check_pixels(*image.size, MAX_DECODED_PIXELS, label)


def _is_progressive(image: Image.Image) -> bool:
    return bool(image.info.get("progressive") or image.info.get("progression"))


def _check_pixels(width: int, height: int, limit: int, label: str) -> None:
    if width <= 0 or height <= 0:
        raise InputError(f"{label}: the image header declares an empty {width}x{height} image")
    if width * height > limit:
        raise InputError(
            f"{label}: {width}x{height} pixels is too large to decode safely "
            f"(limit {limit / 1e6:.0f} megapixels; possible decompression bomb)"
        )


def _flatten(image: Image.Image) -> Image.Image:
    """The first frame as RGB, transparency composited on white (how a viewer shows it).

    Big frames are converted strip by strip and box-reduced by an integer factor on the way (to
    between 1x and 2x MAX_SIDE), so the only full-size buffer is the decoded frame itself: a 360 KB
    PNG declaring 88 MP of RGBA used to peak at 1.7 GB through full-size RGBA/RGB copies.
    """
    if image.mode in _WIDE_GREY_MODES:
        image = Image.fromarray(_wide_grey_to_uint8(np.asarray(image)), "L")
    alpha = image.mode in _ALPHA_MODES or "transparency" in image.info
    width, height = image.size
    factor = max(1, max(width, height) // MAX_SIDE)
    if factor == 1 and width * height <= _STRIP_PIXELS:
        return _strip_to_rgb(image, alpha)
    out = Image.new("RGB", (-(-width // factor), -(-height // factor)), (255, 255, 255))
    rows = factor * max(1, _STRIP_PIXELS // (width * factor))  # a multiple of factor: boxes never straddle
    for top in range(0, height, rows):
        strip = _strip_to_rgb(image.crop((0, top, width, min(height, top + rows))), alpha)
        out.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
    return out


def _strip_to_rgb(image: Image.Image, alpha: bool) -> Image.Image:
    if not alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, mask=rgba)
    return flat


def _wide_grey_to_uint8(values: np.ndarray) -> np.ndarray:
    """16-bit (and 32-bit integer) greyscale to 8 bits; float images are taken as 0…1.

    Converted a band of rows at a time, so the int64/float temporaries stay small on huge frames.
    """
    out = np.empty(values.shape, np.uint8)
    rows = max(1, _STRIP_PIXELS // max(1, values.shape[1] if values.ndim > 1 else values.size))
    for top in range(0, len(values), rows):
        band = values[top : top + rows]
        if band.dtype.kind == "f":
            out[top : top + rows] = np.clip(np.nan_to_num(band) * 255.0 + 0.5, 0, 255)
        else:
            out[top : top + rows] = np.clip(band.astype(np.int64), 0, 65535) >> 8
    return out


def _bounded_rgb(image: Image.Image) -> np.ndarray:
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _to_uint8(array: np.ndarray, label: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind == "f":
        return np.clip(np.nan_to_num(array) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    raise InputError(f"{label}: unsupported pixel type {array.dtype} (expected uint8, uint16 or float)")


def _media(rgb: np.ndarray, label: str) -> MediaInput:
    """Own the pixels and freeze them: the digest identifies the content for the KV cache."""
    owned = np.array(rgb, dtype=np.uint8, order="C", copy=True)
    owned.setflags(write=False)
    return MediaInput(kind="image", payload=owned, label=label)
