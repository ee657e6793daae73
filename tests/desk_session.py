"""Driving the Gemma Desk process on an X display: its settings, its window, its history database.

Used by tests/test_gui_xvfb_e2e.py.  :class:`Desk` launches ``python -m app`` with an isolated
GEMMA_DESK_HOME and the PulseAudio client variables, takes the X server's screenshots into the
artifacts folder, waits with deadlines and turns every failure into a :class:`StepFailed` naming the
step, the last screenshot and the app's log.  The pixel checks below read those screenshots.
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import xvfb_support as xs
from PIL import Image
from pulse_support import PulseServer

ROOT = Path(__file__).resolve().parent.parent
QUADRANTS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (30, 60, 220), "yellow": (240, 200, 20)}


def artifacts() -> Path:
    """test-artifacts/xvfb-e2e/ (gitignored; CI keeps it): the last run's screenshots and logs only."""
    base = Path(os.environ.get("GEMMA_DESK_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    folder = base / "xvfb-e2e"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def write_settings(home: Path, model: Path, max_tokens: int) -> None:
    """The settings a user would have after choosing the model: no first-run manager, English UI."""
    config = home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "settings.ini").write_text(
        f"[model]\npath={model}\nthreads=1\ncontext=2048\n"
        f"[sampling]\nseed=7\nmax_tokens={max_tokens}\n"
        "[ui]\nlanguage=en\n"
        "[media]\ntalk_shortcut=Ctrl+Space\n"
    )


def speech(folder: Path, voice: str, text: str) -> Path:
    wav = folder / f"speech-{voice}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True, timeout=60)
    return wav


def quadrant_picture(path: Path, width: int = 160) -> np.ndarray:
    """Four solid colours (4:3), so the thumbnail is recognisable on screen at any size."""
    height = width * 3 // 4
    pixels = np.zeros((height, width, 3), np.uint8)
    top, left = height // 2, width // 2
    pixels[:top, :left], pixels[:top, left:] = QUADRANTS["red"], QUADRANTS["green"]
    pixels[top:, :left], pixels[top:, left:] = QUADRANTS["blue"], QUADRANTS["yellow"]
    Image.fromarray(pixels, "RGB").save(path)
    return pixels


class Desk:
    """The running app plus the means to look at it, drive it and read its history."""

    def __init__(self, xvfb: xs.Xvfb, pulse: PulseServer, home: Path, out: Path):
        self.xvfb, self.pulse, self.home, self.out = xvfb, pulse, home, out
        self.input = xs.XInput(xvfb.display)
        self.log = out / "app.log"
        self.last_shot: Path | None = None
        self._steps: list[tuple[str, float]] = []
        self._notes: list[str] = []
        self.step = "start"
        self.window = (0, 0, *xs.SCREEN_SIZE)
        self.process = self._launch()

    @property
    def step(self) -> str:
        """The step under way: failures name it, and ``timings`` reports how long each one took."""
        return self._steps[-1][0]

    @step.setter
    def step(self, name: str) -> None:
        self._steps.append((name, time.monotonic()))

    def note(self, text: str) -> None:
        """A measurement worth keeping with the artifacts (written with the timings)."""
        self._notes.append(text)

    def timings(self) -> str:
        ends = [start for _, start in self._steps[1:]] + [time.monotonic()]
        lines = [
            f"{end - start:6.1f} s  {name}" for (name, start), end in zip(self._steps, ends, strict=True)
        ]
        return "\n".join([*lines, *self._notes, ""])

    def _launch(self) -> subprocess.Popen[bytes]:
        runtime = self.home.parent / "xdg-runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QT_", "PYTEST_", "WAYLAND"))}
        env.update(self.pulse.client_vars)
        env.update(DISPLAY=self.xvfb.display, QT_QPA_PLATFORM="xcb", XDG_RUNTIME_DIR=str(runtime))
        env.update(GEMMA_DESK_HOME=str(self.home), LANG="C.UTF-8")
        env.update(QT_LOGGING_RULES="qt.text.font.db=false")  # keep the app's log readable
        with self.log.open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "app"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    # -- looking ------------------------------------------------------------------------------------

    def shot(self, name: str) -> np.ndarray:
        rgb = xs.grab_screen(self.xvfb.display)
        self.last_shot = xs.save_png(rgb, self.out / f"{name}.png")
        return rgb

    def fail(self, message: str) -> xs.StepFailed:
        alive = "running" if self.process.poll() is None else f"exited with {self.process.returncode}"
        return xs.StepFailed(
            f"step '{self.step}': {message}\n  last screenshot: {self.last_shot}\n"
            f"  app ({alive}) log {self.log}:\n{xs.tail(self.log, 1500)}"
        )

    def check(self, condition: object, message: str) -> None:
        if not condition:
            raise self.fail(message)

    def words(
        self, rgb: np.ndarray, box: tuple[int, int, int, int] | None = None, scale: int = 1
    ) -> list[xs.Word]:
        """OCR of the window, or of ``box``; small boxes read better enlarged (``scale`` 2)."""
        return xs.read_words(rgb, box or self.window_box(), scale)

    def find(
        self, rgb: np.ndarray, box: tuple[int, int, int, int], phrase: str
    ) -> tuple[xs.Word | None, str]:
        """``phrase`` in a small ``box``, read enlarged 2x, then 3x (tesseract misses a word now and
        then at one size); also returns what was read, for the failure message."""
        texts = []
        for scale in (2, 3):
            words = self.words(rgb, box, scale)
            found = xs.find_phrase(words, phrase)
            if found is not None:
                return found, xs.ocr_text(words)
            texts.append(xs.ocr_text(words))
        return None, " / ".join(texts)

    def window_box(self) -> tuple[int, int, int, int]:
        x, y, width, height = self.window
        return x, y, x + width, y + height

    def wait(self, what: str, check: Callable[[], object], timeout: float, interval: float = 0.2) -> object:
        def alive_check() -> object:
            if self.process.poll() is not None:
                raise self.fail(f"the app exited while waiting for {what}")
            return check()

        result = xs.poll(alive_check, timeout, interval)
        if not result:
            raise self.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        return result

    def wait_for_text(
        self, name: str, phrase: str, timeout: float = 30.0, box: tuple[int, int, int, int] | None = None
    ) -> tuple[np.ndarray, xs.Word]:
        """Screenshots until OCR reads ``phrase`` (in ``box``, enlarged); the last is saved as ``name``."""
        found: list[tuple[np.ndarray, xs.Word]] = []

        def seen() -> bool:
            rgb = self.shot(name)
            word = xs.find_phrase(self.words(rgb, box, scale=2 if box else 1), phrase)
            if word is not None:
                found.append((rgb, word))
            return word is not None

        self.wait(f"the text {phrase!r} on screen", seen, timeout, interval=0.3)
        return found[-1]

    # -- history ------------------------------------------------------------------------------------

    @property
    def database(self) -> Path:
        return self.home / "data" / "history.sqlite3"

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        if not self.database.exists():
            return []
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(sql, params).fetchall()

    def messages(self) -> list[tuple[int, str, str, str | None]]:
        rows = self.query("SELECT position, role, text, finish_reason FROM messages ORDER BY position")
        return [(int(str(p)), str(r), str(t), None if f is None else str(f)) for p, r, t, f in rows]

    def answered(self, count: int) -> bool:
        """``count`` finished answers are stored (an answer is written once it has finished)."""
        done = [m for m in self.messages() if m[1] == "assistant" and m[3] is not None]
        return len(done) >= count

    def attachments(self, position: int) -> list[tuple[str, np.ndarray]]:
        """The stored media of turn ``position``, in order: (kind, the decoded pixels or samples)."""
        rows = self.query(
            "SELECT a.kind, a.path FROM messages m JOIN message_attachments ma ON ma.message_id = m.id "
            "JOIN attachments a ON a.digest = ma.digest WHERE m.position = ? ORDER BY ma.position",
            position,
        )
        return [(str(kind), np.load(str(path), allow_pickle=False)) for kind, path in rows]

    # -- ending -------------------------------------------------------------------------------------

    def quit(self, timeout: float = 30.0) -> int | None:
        """Ctrl+Q like a user; the exit code, or None if the app had to be killed."""
        if self.process.poll() is None:
            try:
                self.input.key("ctrl+q")
                return self.process.wait(timeout=timeout)
            except (subprocess.TimeoutExpired, RuntimeError):
                pass
        xs.stop_process(self.process)
        return None


# -- what the screen must show -----------------------------------------------------------------------


def dark_pixels(rgb: np.ndarray, box: tuple[int, int, int, int]) -> int:
    """Text ink in ``box``: pixels much darker than the light bubble and window backgrounds."""
    left, top, right, bottom = box
    region = rgb[max(top, 0) : bottom, max(left, 0) : right].astype(np.int32)
    return int((region.sum(axis=2) < 3 * 110).sum())


def colour_blobs(rgb: np.ndarray, tolerance: int = 14) -> dict[str, tuple[float, float, int]]:
    """Centroid (x, y) and size of the pixels of each quadrant colour on screen."""
    found = {}
    for name, colour in QUADRANTS.items():
        mask = (np.abs(rgb.astype(np.int32) - np.array(colour)) <= tolerance).all(axis=2)
        ys, xs_ = np.nonzero(mask)
        if len(xs_):
            found[name] = (float(xs_.mean()), float(ys.mean()), len(xs_))
    return found


def thumbnail_shown(rgb: np.ndarray) -> bool:
    """The pasted picture's four colours, each a solid patch, laid out as in the picture, thumbnail-sized."""
    blobs = colour_blobs(rgb)
    if len(blobs) != 4 or min(size for _, _, size in blobs.values()) < 150:
        return False
    (rx, ry, _), (gx, gy, _) = blobs["red"], blobs["green"]
    (bx, by, _), (yx, yy, _) = blobs["blue"], blobs["yellow"]
    layout = rx < gx and bx < yx and ry < by and gy < yy
    return layout and max(gx - rx, yx - bx) < 60 and max(by - ry, yy - gy) < 60


def meter_active(rgb: np.ndarray, row: tuple[int, int, int, int]) -> bool:
    """The level meter's bar is filled: a solid block of the highlight colour (blue-ish), at least
    10 x 10 px, in the controls row.  Focus frames in that colour are lines and do not count."""
    left, top, right, bottom = row
    region = rgb[top:bottom, left:right].astype(np.int32)
    bluish = (region[..., 2] - region[..., 0] > 60) & (region[..., 2] > 150)
    tall = np.concatenate([[0], (bluish.sum(axis=0) >= 10).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(tall))
    widest = int((edges[1::2] - edges[::2]).max()) if len(edges) else 0
    return widest >= 10


def speech_position(clip: np.ndarray, wav: Path) -> tuple[float, float, float]:
    """Where the played utterance starts in the recorded clip (s), its correlation there, its length (s)."""
    played, rate = sf.read(str(wav), dtype="float32")
    reference = soxr.resample(played, rate, 16_000).astype(np.float32)
    size = 1 << math.ceil(math.log2(len(clip) + len(reference)))
    correlation = np.fft.irfft(np.fft.rfft(clip, size) * np.conj(np.fft.rfft(reference, size)), size)
    lag = int(np.argmax(correlation))
    lag = lag - size if lag > size // 2 else lag
    window = clip[max(lag, 0) : lag + len(reference)]
    matched = reference[max(-lag, 0) : max(-lag, 0) + len(window)]
    score = float(np.dot(window, matched) / (np.linalg.norm(window) * np.linalg.norm(matched) + 1e-12))
    return lag / 16_000, score, len(reference) / 16_000
