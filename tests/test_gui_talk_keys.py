"""The hold-to-talk key as X11 delivers it: auto-repeat arrives as release-press pairs.

Measured under Xvfb with xdotool (tests/test_gui_xvfb_e2e.py): while a key is held, the X server
repeats it as KeyRelease + KeyPress pairs, and Qt 6.11's xcb plugin flags only the first pair as
auto-repeat.  Recording must survive the unflagged pairs, a repeat that comes after Ctrl was let
go, and a press refused while an answer streams must stay refused until the key goes up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import gui_support
import numpy as np
import pytest
from conftest import build_in_test_cache
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.gui.controllers.voice import KEY_RELEASE_GRACE_MS
from app.gui.devices import Devices
from app.gui.main_window import MainWindow
from model_io.capture import Microphone
from model_io.capture_fakes import FakeAudioBackend

TONE = (0.3 * np.sin(np.arange(16_000 * 2) * 2 * np.pi * 300 / 16_000)).astype(np.float32)
CTRL = Qt.KeyboardModifier.ControlModifier


@pytest.fixture(scope="module")
def media_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model_io.synth.mmproj import cached_mmproj

    folder = tmp_path_factory.mktemp("talk-keys")
    (folder / tiny_model.name).symlink_to(tiny_model)
    projector = build_in_test_cache(lambda: cached_mmproj("tiny"))
    (folder / projector.name).symlink_to(projector)
    return folder / tiny_model.name


@pytest.fixture
def gui(qtbot: QtBot) -> Iterator[gui_support.GuiHarness]:
    harness = gui_support.GuiHarness(qtbot)
    yield harness
    harness.close_all()


def with_microphone() -> Devices:
    def microphone(device: str) -> Microphone:
        return Microphone(device or None, backend=FakeAudioBackend(source=TONE, loop=True), max_seconds=30)

    return Devices(microphone=microphone, camera=gui_support.no_devices().camera, cameras=list)


def x11_repeat(qtbot: QtBot, window: MainWindow, modifiers: Qt.KeyboardModifier = CTRL) -> None:
    """One auto-repeat as X11 sends it and Qt reports it: a release and a press, neither flagged."""
    editor = window.composer.editor
    qtbot.keyRelease(editor, Qt.Key.Key_Space, modifiers)
    qtbot.keyPress(editor, Qt.Key.Key_Space, modifiers)


def recorded(window: MainWindow, seconds: float) -> Callable[[], bool]:
    return lambda: window.voice.recorded_seconds >= seconds


def test_x11_auto_repeat_keeps_one_recording_going(gui: gui_support.GuiHarness, media_model: Path) -> None:
    window = gui.open(media_model, devices=with_microphone(), max_tokens=3)
    editor, voice = window.composer.editor, window.voice
    gui.qtbot.keyPress(editor, Qt.Key.Key_Space, CTRL)
    assert voice.recording
    for seconds in (0.2, 0.4, 0.6):
        gui.qtbot.waitUntil(recorded(window, seconds), timeout=10_000)
        x11_repeat(gui.qtbot, window)
        assert voice.recording
    gui.qtbot.keyRelease(editor, Qt.Key.Key_Control)  # Ctrl up first; Space still repeats
    x11_repeat(gui.qtbot, window, Qt.KeyboardModifier.NoModifier)
    assert voice.recording and editor.toPlainText() == ""  # the repeat is ours, not a typed space
    gui.qtbot.waitUntil(lambda: voice.recorded_seconds >= 0.9, timeout=10_000)
    assert voice.recording  # no release was taken for real while the repeats came
    gui.qtbot.keyRelease(editor, Qt.Key.Key_Space)
    assert voice.recording  # the release counts after the grace period, when no repeat press followed
    gui.qtbot.waitUntil(lambda: not voice.recording, timeout=KEY_RELEASE_GRACE_MS + 2_000)
    gui.wait_answer(window)
    turns = [m for m in window.chat.conversation.messages if m.role == "user"]
    assert len(turns) == 1 and turns[0].attachment_kinds == ("audio",)
    assert not window.notice.isVisible()  # no "Too short" from a repeat taken as a release


def test_a_press_refused_while_answering_stays_refused_until_the_key_is_up(
    gui: gui_support.GuiHarness, media_model: Path
) -> None:
    window = gui.open(media_model, devices=with_microphone(), max_tokens=48)
    editor, voice = window.composer.editor, window.voice
    gui.send(window, "Tell me something")
    assert window.chat.busy
    gui.qtbot.keyPress(editor, Qt.Key.Key_Space, CTRL)
    assert not voice.recording and "Wait for the answer" in window.notice.label.text()
    gui.wait_answer(window)  # the key is still held
    x11_repeat(gui.qtbot, window)
    assert not voice.recording  # a repeat is not a new press, even now that talking is possible
    gui.qtbot.keyRelease(editor, Qt.Key.Key_Space, CTRL)
    gui.qtbot.waitUntil(lambda: not voice._key_held, timeout=KEY_RELEASE_GRACE_MS + 2_000)
    gui.qtbot.keyPress(editor, Qt.Key.Key_Space, CTRL)  # a new press after the key went up works
    assert voice.recording
    gui.qtbot.waitUntil(lambda: voice.recorded_seconds >= 1.0, timeout=10_000)  # pre-roll + 0.7 s
    gui.qtbot.keyRelease(editor, Qt.Key.Key_Space, CTRL)
    gui.qtbot.waitUntil(lambda: not voice.recording, timeout=KEY_RELEASE_GRACE_MS + 2_000)
    gui.wait_answer(window)
    kinds = [m.attachment_kinds for m in window.chat.conversation.messages if m.role == "user"]
    assert kinds == [(), ("audio",)]
