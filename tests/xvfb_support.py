"""A real X display for end-to-end tests: Xvfb, the X server's own pixels (xwd), OCR (tesseract),
keyboard and mouse (xdotool) and the clipboard (xclip).

Screenshots come from ``xwd -root``, never from Qt, so they show what the X server shows: if the app
painted into a buffer that never reached the screen, the checks see that.  Every helper that waits
polls with a deadline and raises :class:`StepFailed`, which names the step and the last screenshot.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

TOOLS = {
    "Xvfb": "xvfb",
    "xdotool": "xdotool",
    "xclip": "xclip",
    "xwd": "x11-apps",
    "tesseract": "tesseract-ocr",
}
SCREEN_SIZE = (1280, 800)
T = TypeVar("T")


def missing_tools() -> list[str]:
    """``tool (debian-package)`` for each X tool that is not installed."""
    return [f"{tool} ({package})" for tool, package in TOOLS.items() if shutil.which(tool) is None]


class StepFailed(AssertionError):
    """A named step of the walk-through failed; the message ends with the last screenshot's path."""


# -- the X server --------------------------------------------------------------------------------------


@dataclass
class Xvfb:
    """A private X server; ``display`` is ``:N`` (Xvfb picks a free N itself with ``-displayfd``)."""

    process: subprocess.Popen[bytes]
    display: str
    log: Path

    def stop(self) -> None:
        stop_process(self.process)


def start_xvfb(folder: Path, size: tuple[int, int] = SCREEN_SIZE, timeout: float = 15.0) -> Xvfb:
    """Start Xvfb at 96 dpi (Qt's reference density, so the window has its designed size)."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "xvfb.log"
    read_end, write_end = os.pipe()
    command = ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{size[0]}x{size[1]}x24"]
    command += ["-dpi", "96", "-nolisten", "tcp"]
    try:
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command, pass_fds=(write_end,), stdout=sink, stderr=sink, start_new_session=True
            )
        os.close(write_end)
        number = _read_display_number(read_end, process, timeout)
    finally:
        os.close(read_end)
        with contextlib.suppress(OSError):
            os.close(write_end)
    if number is None:
        stop_process(process)
        raise RuntimeError(f"Xvfb did not report a display within {timeout} s:\n{tail(log)}")
    return Xvfb(process, f":{number}", log)


def _read_display_number(fd: int, process: subprocess.Popen[bytes], timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline and process.poll() is None:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 64)
            if not chunk:
                break
            data += chunk
            if data.endswith(b"\n"):
                return int(data.strip())
    return None


def stop_process(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL; bounded in time, quiet if it has already gone."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


# -- screenshots ------------------------------------------------------------------------------------


def grab_screen(display: str) -> np.ndarray:
    """The root window as an H x W x 3 uint8 RGB array, read from the X server with ``xwd``."""
    done = subprocess.run(
        ["xwd", "-root", "-silent", "-display", display], capture_output=True, timeout=20, check=True
    )
    return parse_xwd(done.stdout)


def parse_xwd(data: bytes) -> np.ndarray:
    """Decode an XWD (version 7, ZPixmap, TrueColor) dump into RGB, for any 16/24/32 bits per pixel.

    Xvfb's 24-bit screen dumps as 24 bits per pixel with 32-bit-aligned rows, so the row stride
    (``bytes_per_line``) and the pixel size must both come from the header.
    """
    fields = struct.unpack(">25I", data[:100])
    header_size, version, pixmap_format = fields[0:3]
    width, height, byte_order = fields[4], fields[5], fields[7]
    bits_per_pixel, bytes_per_line = fields[11], fields[12]
    masks, ncolors = fields[14:17], fields[19]
    if version != 7 or pixmap_format != 2 or bits_per_pixel not in (16, 24, 32):
        raise ValueError(
            f"unsupported XWD dump: version {version}, format {pixmap_format}, {bits_per_pixel} bpp"
        )
    size = bits_per_pixel // 8
    offset = header_size + 12 * ncolors
    rows = np.frombuffer(data, np.uint8, height * bytes_per_line, offset).reshape(height, bytes_per_line)
    pixels = rows[:, : width * size].reshape(height, width, size).astype(np.uint32)
    order = range(size) if byte_order == 1 else range(size - 1, -1, -1)  # 1 = MSBFirst
    word = np.zeros((height, width), np.uint32)
    for index in order:
        word = (word << 8) | pixels[..., index]
    channels = []
    for mask in masks:
        shift = (mask & -mask).bit_length() - 1
        channels.append(((word & mask) >> shift) * 255 // (mask >> shift))
    return np.dstack(channels).astype(np.uint8)


def save_png(rgb: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb, "RGB").save(path)
    return path


# -- OCR --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Word:
    """A word tesseract read, in screen coordinates."""

    text: str
    left: int
    top: int
    width: int
    height: int
    line: tuple[int, int, int]  # (block, paragraph, line): words of one line share it

    @property
    def center(self) -> tuple[int, int]:
        return self.left + self.width // 2, self.top + self.height // 2

    @property
    def right(self) -> int:
        return self.left + self.width


def read_words(rgb: np.ndarray, box: tuple[int, int, int, int] | None = None, scale: int = 1) -> list[Word]:
    """Tesseract's words in ``box`` (left, top, right, bottom) of the screenshot, sparse-text mode."""
    left, top, right, bottom = box or (0, 0, rgb.shape[1], rgb.shape[0])
    image = Image.fromarray(np.ascontiguousarray(rgb[top:bottom, left:right]), "RGB")
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.LANCZOS)
    done = subprocess.run(
        ["tesseract", "stdin", "stdout", "--psm", "11", "tsv"],
        input=_png_bytes(image),
        capture_output=True,
        timeout=60,
        check=True,
    )
    words = []
    for row in done.stdout.decode("utf-8", "replace").splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) != 12 or cells[0] != "5" or not cells[11].strip():
            continue
        x, y, w, h = (int(value) // scale for value in cells[6:10])
        line = (int(cells[2]), int(cells[3]), int(cells[4]))
        words.append(Word(cells[11].strip(), left + x, top + y, w, h, line))
    return words


def _png_bytes(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def normalise(text: str) -> str:
    """Lower case, letters and digits only: OCR punctuation is unreliable."""
    return re.sub(r"[^0-9a-z]+", "", text.casefold())


def find_phrase(words: Sequence[Word], phrase: str) -> Word | None:
    """The first word of ``phrase`` where its words appear consecutively on one OCR line."""
    wanted = [normalise(part) for part in phrase.split() if normalise(part)]
    words = [word for word in words if normalise(word.text)]  # lone punctuation ("+", "—") is skipped
    for start, word in enumerate(words):
        candidates = words[start : start + len(wanted)]
        if len(candidates) < len(wanted) or any(w.line != word.line for w in candidates):
            continue
        if all(normalise(w.text) == part for w, part in zip(candidates, wanted, strict=True)):
            return word
    return None


def ocr_text(words: Sequence[Word]) -> str:
    return " ".join(word.text for word in words)


# -- input ------------------------------------------------------------------------------------------


class XInput:
    """xdotool on one display: the XTEST events a real keyboard and mouse would produce."""

    def __init__(self, display: str):
        self.env = {**os.environ, "DISPLAY": display}

    def run(self, *args: str) -> str:
        done = subprocess.run(["xdotool", *args], env=self.env, capture_output=True, text=True, timeout=20)
        if done.returncode != 0:
            raise RuntimeError(f"xdotool {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def click(self, x: int, y: int) -> None:
        self.run("mousemove", "--sync", str(x), str(y), "click", "1")

    def drag(self, start: tuple[int, int], end: tuple[int, int], steps: int = 8) -> None:
        """Press the left button at ``start``, move there in steps (as a hand does), release."""
        self.run("mousemove", "--sync", str(start[0]), str(start[1]))
        self.run("mousedown", "1")
        for step in range(1, steps + 1):
            x = start[0] + (end[0] - start[0]) * step // steps
            y = start[1] + (end[1] - start[1]) * step // steps
            self.run("mousemove", "--sync", str(x), str(y))
            time.sleep(0.05)  # drag sources and targets exchange XDND messages per motion
        self.run("mouseup", "1")

    def type(self, text: str) -> None:
        self.run("type", "--delay", "15", "--", text)

    def key(self, *keys: str) -> None:
        self.run("key", "--delay", "30", *keys)

    def key_down(self, *keys: str) -> None:
        for key in keys:
            self.run("keydown", key)

    def key_up(self, *keys: str) -> None:
        for key in keys:
            self.run("keyup", key)

    def windows(self, name: str) -> list[str]:
        """Visible top-level windows whose title matches the regular expression ``name``."""
        done = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--name", name],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=20,
        )
        return done.stdout.split()

    def geometry(self, window: str) -> tuple[int, int, int, int]:
        """``(x, y, width, height)`` of a window."""
        values = dict(line.split("=", 1) for line in self.run("getwindowgeometry", "--shell", window).split())
        return int(values["X"]), int(values["Y"]), int(values["WIDTH"]), int(values["HEIGHT"])


@contextlib.contextmanager
def clipboard_image(display: str, png: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Own the CLIPBOARD selection with ``png`` as ``image/png`` (xclip in the foreground, ended after)."""
    process = subprocess.Popen(
        ["xclip", "-quiet", "-selection", "clipboard", "-target", "image/png", "-in", str(png)],
        env={**os.environ, "DISPLAY": display},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        stop_process(process)


# -- waiting ----------------------------------------------------------------------------------------


def poll(check: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T | None:
    """Call ``check`` until it returns something other than None/False, or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)
