"""The real app in a real X session, driven like a user: Xvfb, xdotool, xclip, a PulseAudio microphone.

``python -m app`` runs as its own process on a private Xvfb display, with an isolated GEMMA_DESK_HOME
whose settings name the tiny synthetic Gemma 3n and its projector (vision + audio), and a PulseAudio
null sink as its default microphone.  The walk-through types a question; pastes a picture from the
clipboard (xclip, Ctrl+V) and asks about it; drops another picture from a second X client (a real
XDND drag, tests/xdnd_source.py) and holds the push-to-talk shortcut while espeak-ng speech plays
into the sink, so picture and clip make one turn; switches to Translate with German as the target and
talks again; quits with Ctrl+Q.  After each step the X server's pixels (xwd) are saved under
test-artifacts/xvfb-e2e/ and checked: OCR (tesseract) for the texts, colours for the thumbnails and
the level meter.  The model's weights are random, so answers are checked for appearing and growing,
not for content.  The history database must hold every turn, the exact pixels and the whole clips.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import xvfb_support as xs
from conftest import build_in_test_cache
from desk_session import (
    Desk,
    artifacts,
    dark_pixels,
    meter_active,
    quadrant_picture,
    speech,
    speech_position,
    thumbnail_shown,
    write_settings,
)
from pulse_support import PulseServer, pulse_missing, start_pulse

pytestmark = pytest.mark.slow

WINDOW_TITLE = "^Gemma Desk$"
QUESTION = "What is the capital of France?"
IMAGE_QUESTION = "Which colours does this picture have?"
ENGLISH_SPEECH = "Please tell me a short story about the sea."
SPANISH_SPEECH = "Buenos días. ¿Dónde está la estación de tren?"
MAX_TOKENS = 96  # long enough to watch an answer grow, short enough to stay quick
START_TIMEOUT = 120.0  # seconds; generous for a loaded 2-core CI machine
ANSWER_TIMEOUT = 90.0
MIC_WARMUP = 2.5  # seconds from a capture stream's opening to a full pre-roll (see Walk.wait_armed)
# The recording time, "0:01.4"; tesseract may read a 0 as "o" or drop the point.
CLOCK = re.compile(r"[0oO]:[0oO]?\d[.,]?\d")


@pytest.fixture(scope="module")
def projector() -> Path:
    from model_io.synth.mmproj import cached_mmproj

    return build_in_test_cache(lambda: cached_mmproj("tiny"))


def require_tools() -> None:
    """CI installs these (scripts/system-packages.sh test); a missing one is a failure, not a skip."""
    missing = xs.missing_tools() + [name for name in ("espeak-ng",) if shutil.which(name) is None]
    reason = pulse_missing()
    if missing or reason:
        pytest.fail(
            f"the Xvfb end-to-end test needs {', '.join(missing) or ''} {reason or ''}; "
            "install them with: sudo bash scripts/system-packages.sh test"
        )


@pytest.fixture
def desk(tiny_model: Path, projector: Path, isolated_home: Path, tmp_path: Path) -> Iterator[Desk]:
    require_tools()
    models = isolated_home / "data" / "models"
    models.mkdir(parents=True)
    (models / tiny_model.name).symlink_to(tiny_model)
    (models / projector.name).symlink_to(projector)
    write_settings(isolated_home, models / tiny_model.name, MAX_TOKENS)
    out = artifacts()
    xvfb = xs.start_xvfb(tmp_path / "xvfb")
    pulse: PulseServer | None = None
    keepalive: subprocess.Popen[bytes] | None = None
    session: Desk | None = None
    try:
        pulse = start_pulse(tmp_path / "pulse")
        # A client for the whole test: the daemon exits when idle, and the app may take long to start.
        keepalive = subprocess.Popen(["pactl", "subscribe"], env=pulse.env, stdout=subprocess.DEVNULL)
        session = Desk(xvfb, pulse, isolated_home, out)
        yield session
    finally:
        if session is not None:
            session.quit(timeout=10.0)
            (out / "timings.txt").write_text(session.timings())
        if keepalive is not None:
            xs.stop_process(keepalive)
        if pulse is not None:
            pulse.stop()
            (out / "pulseaudio.log").write_text(pulse.log_tail(20_000))
        xvfb.stop()
        shutil.copyfile(xvfb.log, out / "xvfb.log")


def crop(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    left, top, right, bottom = box
    return rgb[top:bottom, left:right]


def changed_box(
    before: np.ndarray, after: np.ndarray, within: tuple[int, int, int, int], margin: int = 4
) -> tuple[int, int, int, int] | None:
    """The bounding box of the pixels in ``within`` that differ between two screenshots, or None."""
    left, top, right, bottom = within
    rows, columns = np.nonzero((before[top:bottom, left:right] != after[top:bottom, left:right]).any(axis=2))
    if len(rows) == 0:
        return None
    return (
        max(left + int(columns.min()) - margin, left),
        max(top + int(rows.min()) - margin, top),
        min(left + int(columns.max()) + margin + 1, right),
        min(top + int(rows.max()) + margin + 1, bottom),
    )


# -- the walk-through --------------------------------------------------------------------------------


class Walk:
    """The user's session, step by step; each step saves its screenshots and checks them."""

    def __init__(self, desk: Desk):
        self.desk = desk
        self.send: xs.Word | None = None  # the Send button's label: anchors the composer's controls row
        self.stream = ("", 0.0)  # the app's capture stream (PulseAudio index) and when it was first seen
        self.placeholder: xs.Word | None = None  # the empty conversation's hint: a place to click
        self.pane_left = 0  # left edge of the conversation and composer (right of the history sidebar)

    @property
    def controls_row(self) -> tuple[int, int, int, int]:
        left, _, right, _ = self.desk.window_box()
        assert self.send is not None
        return left, self.send.top - 22, right, self.send.top + self.send.height + 22

    @property
    def conversation_bottom(self) -> int:
        assert self.send is not None
        return self.send.top - 60  # the prompt editor sits between the conversation and the controls

    def conversation_words(self, rgb: np.ndarray) -> list[xs.Word]:
        _, top, right, _ = self.desk.window_box()
        return self.desk.words(rgb, (self.pane_left, top + 20, right, self.conversation_bottom))

    def start(self) -> None:
        desk = self.desk
        desk.step = "the window opens with the model and projector loaded"
        windows = desk.wait("the main window", lambda: desk.input.windows(WINDOW_TITLE), START_TIMEOUT)
        assert isinstance(windows, list)
        desk.wait(
            "the window's size",
            lambda: any(desk.input.geometry(w)[2] > 400 for w in desk.input.windows(WINDOW_TITLE)),
            30,
        )
        desk.window = max(
            (desk.input.geometry(w) for w in desk.input.windows(WINDOW_TITLE)), key=lambda g: g[2]
        )
        left, _, right, bottom = desk.window_box()
        status_bar = (left, bottom - 28, right, bottom)  # read alone (small and enlarged): quick to poll
        desk.wait_for_text("01-ready", "images + speech", START_TIMEOUT, box=status_bar)
        rgb = desk.shot("01-ready")
        words = desk.words(rgb)
        desk.check(xs.find_phrase(words, "synthetic tiny"), "the status bar should name the loaded model")
        self.send = xs.find_phrase(words, "Send")
        desk.check(self.send is not None, "no Send button found")
        desk.check(xs.find_phrase(words, "Hold to talk"), "no push-to-talk button found")
        desk.check(not meter_active(rgb, self.controls_row), "a level meter is shown before any recording")
        self.placeholder = xs.find_phrase(words, "Answers are generated")
        desk.check(self.placeholder is not None, "the empty conversation's hint is missing")
        attach = xs.find_phrase(words, "Image")
        desk.check(attach is not None, "the composer's 'Image…' button is missing")
        assert attach is not None
        self.pane_left = attach.left - 10

    def ask(self) -> None:
        desk = self.desk
        desk.step = "type a question and send it"
        assert self.placeholder is not None and self.send is not None
        desk.input.click(*self.placeholder.center)  # clicking into the window activates it
        desk.input.key("ctrl+l")  # "Focus message box"
        self.wait_armed_soon()
        desk.input.type(QUESTION)
        _, typed = desk.wait_for_text("02-question-typed", QUESTION, 30)
        desk.check(typed.top > self.conversation_bottom, "the question should be in the prompt editor")
        desk.input.key("Return")
        desk.step = "the answer streams in"
        frames = self.frames_until(lambda: desk.answered(1))
        final = desk.shot("04-answer")
        box = self.answer_box(final, QUESTION)
        # Streaming frames: the send button reads "Stop", so its pixels differ from the idle "Send".
        assert self.send is not None
        button = (self.send.left - 16, self.send.top - 8, self.send.right + 16, self.send.top + 22)
        idle = crop(final, button)
        ink = [dark_pixels(frame, box) for frame in frames if not np.array_equal(crop(frame, button), idle)]
        growing = [i for i in range(1, len(ink)) if 0 < ink[i - 1] < ink[i] - 30]
        desk.note(f"answer ink while streaming (dark pixels per screenshot): {ink}")
        desk.check(
            growing, f"no two screenshots showed the answer growing (dark pixels while streaming: {ink})"
        )
        streaming = [f for f in frames if not np.array_equal(crop(f, button), idle)][growing[0]]
        desk.last_shot = xs.save_png(streaming, desk.out / "03-streaming.png")
        stop, read = desk.find(streaming, button, "Stop")
        desk.check(stop, f"while the answer streams the send button should read 'Stop'; OCR: {read!r}")
        writing = xs.find_phrase(self.conversation_words(streaming), "writing")
        desk.check(writing, "the streaming frame should show the answer's 'writing…' state")
        desk.check(dark_pixels(final, box) >= max(ink), "the finished answer should hold all the text")
        messages = desk.messages()
        desk.check(messages[0][1:3] == ("user", QUESTION), f"stored question: {messages[:1]}")
        desk.check(
            messages[1][1] == "assistant" and messages[1][2].strip(), f"stored answer: {messages[1:2]}"
        )

    def frames_until(self, done: Callable[[], bool]) -> list[np.ndarray]:
        frames: list[np.ndarray] = []

        def grab() -> bool:
            frames.append(xs.grab_screen(self.desk.xvfb.display))
            return done()

        self.desk.wait("the finished answer in the history database", grab, ANSWER_TIMEOUT, interval=0.1)
        return frames

    def answer_box(self, rgb: np.ndarray, question: str) -> tuple[int, int, int, int]:
        """Below the user's bubble with ``question``: the answer's bubble."""
        words = self.conversation_words(rgb)
        asked = xs.find_phrase(words, question)
        self.desk.check(asked is not None, f"the question {question!r} should be shown in the conversation")
        assert asked is not None
        _, _, right, _ = self.desk.window_box()
        return asked.left - 12, asked.top + asked.height + 8, right - 20, self.conversation_bottom

    def paste_image(self) -> None:
        desk = self.desk
        desk.step = "paste an image from the clipboard (Ctrl+V)"
        picture = desk.out / "pasted-picture.png"
        pixels = quadrant_picture(picture)
        with xs.clipboard_image(desk.xvfb.display, picture) as owner:
            desk.wait("xclip to own the clipboard", lambda: self.clipboard_has_png(owner), 10)
            desk.input.key("ctrl+l")
            desk.input.key("ctrl+v")
            desk.wait(
                "the thumbnail in the composer", lambda: thumbnail_shown(desk.shot("05-image-attached")), 30
            )
        desk.input.type(IMAGE_QUESTION)
        desk.input.key("Return")
        desk.step = "the answer about the image"
        desk.wait("the image answer in the history database", lambda: desk.answered(2), ANSWER_TIMEOUT)
        rgb = desk.shot("06-image-answer")
        desk.check(not thumbnail_shown(rgb), "the thumbnail should leave the composer once sent")
        words = self.conversation_words(rgb)
        desk.check(xs.find_phrase(words, "1 image"), "the sent turn should be marked '[1 image]'")
        self.answer_box(rgb, IMAGE_QUESTION)
        messages = desk.messages()
        desk.check(messages[2][1:3] == ("user", IMAGE_QUESTION), f"stored image question: {messages[2:3]}")
        desk.check(messages[3][2].strip(), "the stored answer about the image is empty")
        stored = desk.attachments(2)
        desk.check(
            len(stored) == 1 and stored[0][0] == "image" and np.array_equal(stored[0][1], pixels),
            "the stored image is not the pasted one",
        )

    def drop_image(self) -> np.ndarray:
        """Drag a picture from another X client (a file manager's part) and drop it on the window."""
        desk = self.desk
        desk.step = "drop an image on the window (XDND, from another X client)"
        picture = desk.out / "dropped-picture.png"
        pixels = quadrant_picture(picture, width=200)
        source = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("xdnd_source.py")), str(picture)],
            env={**desk.input.env, "QT_QPA_PLATFORM": "xcb"},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            found = desk.wait("the drag source window", lambda: desk.input.windows("^xdnd-source$"), 60)
            assert isinstance(found, list)
            x, y, width, height = desk.input.geometry(found[0])
            left, top, right, _ = desk.window_box()
            target = ((left + right) // 2, top + 300)  # over the conversation
            desk.input.drag((x + width // 2, y + height // 2), target)
            desk.wait("the dropped picture's thumbnail", lambda: thumbnail_shown(desk.shot("07-dropped")), 30)
        finally:
            xs.stop_process(source)
        desk.check(self.app_stream() == self.stream[0], "the drop should leave the microphone armed")
        return pixels

    def clipboard_has_png(self, owner: subprocess.Popen[bytes]) -> bool:
        if owner.poll() is not None:
            raise self.desk.fail(f"xclip exited: {owner.stderr.read() if owner.stderr else b''!r}")
        targets = subprocess.run(
            ["xclip", "-o", "-selection", "clipboard", "-target", "TARGETS"],
            env=self.desk.input.env,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return "image/png" in targets.stdout

    def talk(self, wav: Path, answers: int, name: str) -> list[tuple[str, np.ndarray]]:
        """Hold Ctrl+Space while ``wav`` plays into the microphone; the turn's stored media, clip last."""
        desk = self.desk
        self.wait_armed()
        desk.input.key_down("ctrl", "space")
        pressed = time.monotonic()
        frames: list[np.ndarray] = []
        try:
            player = desk.pulse.play(wav)

            def played() -> bool:
                frames.append(desk.shot(name))  # the recording state, shown while the key is held
                return player.poll() is not None

            desk.wait("the speech to play", played, 60)
            time.sleep(0.4)  # keep holding while the last syllable travels through the sink and capture
        finally:
            desk.input.key_up("space", "ctrl")
            held = time.monotonic() - pressed
        self.check_recording_shown(frames, name)
        desk.step += ": the answer"
        desk.wait(
            "the spoken turn's answer in the history database", lambda: desk.answered(answers), ANSWER_TIMEOUT
        )
        position = 2 * answers - 2
        media = desk.attachments(position)
        desk.check(media and media[-1][0] == "audio", f"turn {position} should end with the recording")
        clip = media[-1][1]
        start, score, length = speech_position(clip, wav)
        desk.note(f"{wav.name}: speech starts {start:.2f} s into the clip, correlation {score:.3f}")
        desk.note(f"{wav.name}: clip {len(clip) / 16000:.2f} s, speech {length:.2f} s, key held {held:.2f} s")
        desk.check(score > 0.9, f"the stored clip does not hold the played speech (correlation {score:.2f})")
        desk.check(start >= 0.0, f"the clip lost the first {-start:.2f} s of speech (no pre-roll)")
        clip_seconds = len(clip) / 16_000
        desk.check(start + length <= clip_seconds + 0.05, f"the clip ({clip_seconds:.2f} s) lost the end")
        return media

    def wait_armed_soon(self) -> None:
        """Once the window is active, the app opens the microphone (so the first press has a pre-roll)."""
        index = self.desk.wait("the microphone armed on activation", self.app_stream, 30)
        self.stream = (str(index), time.monotonic())

    def app_stream(self) -> str | None:
        """The index of the app's capture stream on the PulseAudio source, if it has one open."""
        for line in self.desk.pulse.pactl("list", "short", "source-outputs").splitlines():
            if "protocol-native.c" in line:
                return line.split()[0]
        return None

    def wait_armed(self) -> None:
        """The app listens while its window is active, for the pre-roll.  A new capture stream may
        deliver its first audio only after up to ~2 s (measured: PortAudio's ALSA device through
        the pulse plugin, 0.05-2.1 s), so a stream is trusted once it is MIC_WARMUP old."""
        desk = self.desk
        index = desk.wait("the app's microphone stream on the PulseAudio source", self.app_stream, 30)
        if index != self.stream[0]:
            self.stream = (str(index), time.monotonic())
        time.sleep(max(0.0, MIC_WARMUP - (time.monotonic() - self.stream[1])))

    def check_recording_shown(self, frames: list[np.ndarray], name: str) -> None:
        """While the key is held: the button says so, the clock runs and the meter moves."""
        desk = self.desk
        desk.check(len(frames) >= 3, f"only {len(frames)} screenshots while the speech played")
        frame = frames[len(frames) // 2]
        desk.last_shot = xs.save_png(frame, desk.out / f"{name}.png")
        recording, text = desk.find(frame, self.controls_row, "Recording")
        desk.check(recording, f"the button should say 'Recording…', OCR: {text!r}")
        if not CLOCK.search(text):
            text += " / " + xs.ocr_text(desk.words(frame, self.controls_row, scale=3))
        desk.check(CLOCK.search(text), f"no running recording clock, OCR: {text!r}")
        desk.check(meter_active(frame, self.controls_row), "the level meter shows no level")

    def switch_to_translate(self) -> None:
        desk = self.desk
        desk.step = "switch the mode to Translate, target German"
        rgb = desk.shot("10-mode-menu")
        mode, read = desk.find(rgb, self.controls_row, "Chat")
        desk.check(mode is not None, f"the mode picker ('Chat') is not in the composer, OCR: {read!r}")
        assert mode is not None
        self.pick(mode, "Translate", "10-mode-menu")
        desk.step = "switch to Translate: the target language picker is enabled"
        _, language = desk.wait_for_text("11-language-menu", "English", 20, box=self.controls_row)
        self.pick(language, "Deutsch", "11-language-menu")
        desk.step = "switch to Translate: the composer shows the mode and the target"
        rgb = desk.shot("12-translate-mode")
        for expected in ("Translate", "Deutsch"):
            shown, read = desk.find(rgb, self.controls_row, expected)
            desk.check(shown, f"the composer should show {expected!r}, OCR: {read!r}")

    def pick(self, combo: xs.Word, item: str, name: str) -> None:
        """Open a combo box with a click and click ``item`` in its list."""
        desk = self.desk
        desk.step = f"switch to Translate: pick {item!r} from its list"
        before = xs.grab_screen(desk.xvfb.display)
        desk.input.click(*combo.center)
        found: list[xs.Word] = []

        def listed() -> bool:
            rgb = desk.shot(name)
            column = (max(combo.left - 60, 0), 0, combo.left + 300, rgb.shape[0])  # lists open over the box
            box = changed_box(before, rgb, column)  # the opened list (read alone: quick, and no chat text)
            if box is None:
                return False
            word = xs.find_phrase(desk.words(rgb, box, scale=2), item)
            if word is not None and (word.top, word.left) != (combo.top, combo.left):
                found.append(word)
            return bool(found)

        desk.wait(f"{item!r} in the opened list", listed, 20, interval=0.3)
        desk.input.click(*found[-1].center)

    def translate_speech(self, wav: Path) -> None:
        desk = self.desk
        desk.step = "push-to-talk in Translate mode"
        self.talk(wav, 4, "13-recording-translate")
        rgb = desk.shot("14-translation")
        instruction = "Translate the following speech segment into German"
        desk.check(
            xs.find_phrase(self.conversation_words(rgb), instruction), "the translate turn is not shown"
        )
        messages = desk.messages()
        desk.check(messages[6][2].startswith(instruction), f"stored translate turn: {messages[6:7]}")
        desk.check(messages[7][2].strip(), "the stored translation is empty")

    def check_history(self) -> None:
        desk = self.desk
        desk.step = "the history database holds the session"
        conversations = desk.query("SELECT COUNT(*) FROM conversations")
        desk.check(conversations == [(1,)], f"expected one conversation, found {conversations}")
        messages = desk.messages()
        roles = [role for _, role, _, _ in messages]
        desk.check(roles == ["user", "assistant"] * 4, f"stored turns: {roles}")
        unfinished = [m for m in messages if m[1] == "assistant" and (not m[2].strip() or m[3] is None)]
        desk.check(not unfinished, f"answers stored empty or unfinished: {unfinished}")
        kinds = desk.query("SELECT kind, COUNT(*) FROM attachments GROUP BY kind ORDER BY kind")
        desk.check(kinds == [("audio", 2), ("image", 2)], f"stored attachments: {kinds}")


def test_a_user_session_in_a_real_x_window(desk: Desk, tmp_path: Path) -> None:
    english = speech(tmp_path, "en", ENGLISH_SPEECH)
    spanish = speech(tmp_path, "es", SPANISH_SPEECH)
    walk = Walk(desk)
    walk.start()
    walk.ask()
    walk.paste_image()
    dropped = walk.drop_image()
    desk.step = "push-to-talk in Chat mode: the dropped picture and the clip make one turn"
    media = walk.talk(english, 3, "08-recording-chat")
    kinds = [kind for kind, _ in media]
    desk.check(kinds == ["image", "audio"], f"the spoken turn's stored media: {kinds}")
    desk.check(np.array_equal(media[0][1], dropped), "the stored image is not the dropped one")
    rgb = desk.shot("09-voice-answer")
    marker = xs.find_phrase(walk.conversation_words(rgb), "1 image, 1 audio clip")
    desk.check(marker, "the spoken turn should be marked '[1 image, 1 audio clip]'")
    walk.switch_to_translate()
    walk.translate_speech(spanish)
    walk.check_history()
    desk.step = "quit with Ctrl+Q"
    desk.check(desk.quit() == 0, "the app should close cleanly with exit code 0 on Ctrl+Q")
