"""Helpers for the GUI tests: offscreen Qt, windows on the real engine, dialogs replaced by answers.

A plain module imported by ``tests/test_gui_*.py`` (tests/conftest.py belongs to the runtime).
Importing it selects the offscreen platform and applies :mod:`app.gui.qt_fixes` before pytest-qt
creates the QApplication.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTEST_QT_API", "pyside6")

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from app.gui import qt_fixes
from app.gui.devices import Devices
from app.gui.dialogs.standard import Dialogs
from app.gui.main_window import MainWindow
from app.gui.settings import AppSettings, GuiSettings
from model_io.engine import Engine
from model_io.errors import InputError

qt_fixes.apply()

LOAD_TIMEOUT_MS = 60_000
ANSWER_TIMEOUT_MS = 60_000
CLOSE_TIMEOUT_MS = 15_000
# One llama.cpp thread: the tests run on 2 cores and the GUI thread needs one (see gui_default_threads).
TEST_SETTINGS: dict[str, Any] = {"threads": 1, "context": 2048, "max_tokens": 16, "seed": 7}


def artifacts_dir() -> Path:
    """Screenshots land here (outside pytest's per-test tmp dirs, so they can be looked at afterwards)."""
    folder = Path(os.environ.get("GEMMA_DESK_TEST_ARTIFACTS", Path(tempfile.gettempdir()) / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class FakeDialogs:
    """Scripted answers for every modal dialog, and a record of which were asked."""

    model_file: Path | None = None
    export_target: Path | None = None
    confirm: bool = True
    settings_result: GuiSettings | None = None
    projector_file: Path | None = None
    image_files: list[Path] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)

    def dialogs(self) -> Dialogs:
        return Dialogs(
            self._choose_model,
            self._choose_export,
            self._confirm_delete,
            self._edit_settings,
            self._choose_projector,
            self._choose_images,
        )

    def _choose_projector(self) -> Path | None:
        self.asked.append("projector")
        return self.projector_file

    def _choose_images(self) -> list[Path]:
        self.asked.append("images")
        return list(self.image_files)

    def _choose_model(self) -> Path | None:
        self.asked.append("model")
        return self.model_file

    def _choose_export(self, suggested: str, fmt: str) -> Path | None:
        self.asked.append(f"export:{fmt}:{suggested}")
        return self.export_target

    def _confirm_delete(self, title: str) -> bool:
        self.asked.append(f"delete:{title}")
        return self.confirm

    def _edit_settings(self, current: GuiSettings) -> GuiSettings | None:
        self.asked.append("settings")
        return self.settings_result


def no_devices() -> Devices:
    """No real hardware in tests: no microphone, no camera (the tests that need them pass fakes)."""
    from model_io.capture import Microphone
    from model_io.capture_fakes import FakeAudioBackend

    def microphone(device: str) -> Microphone:
        return Microphone(device or None, backend=FakeAudioBackend(devices=()))

    def camera(*_args: Any) -> Any:
        raise InputError("no camera in this test")

    return Devices(microphone=microphone, camera=camera, cameras=list, microphones=list)


class CountingEngine(Engine):
    """The real engine, counting ``new_conversation`` calls (reopening history must reset the KV cache)."""

    resets = 0

    def new_conversation(self) -> None:
        CountingEngine.resets += 1
        super().new_conversation()


class GuiHarness:
    """Opens windows on the real engine and always closes them the way a user would."""

    def __init__(self, qtbot: QtBot):
        self.qtbot = qtbot
        self.windows: list[MainWindow] = []

    def open(
        self,
        model: Path | None = None,
        *,
        dialogs: FakeDialogs | None = None,
        engine_factory: Any = Engine,
        devices: Devices | None = None,
        **settings: Any,
    ) -> MainWindow:
        app_settings = AppSettings()
        app_settings.update(**{**TEST_SETTINGS, "model_path": str(model or ""), **settings})
        window = MainWindow(
            app_settings,
            dialogs=(dialogs or FakeDialogs()).dialogs(),
            engine_factory=engine_factory,
            devices=devices or no_devices(),
        )
        return self.show(window, ready=model is not None)

    def show(
        self, window: MainWindow, size: tuple[int, int] = (1000, 680), *, ready: bool = False
    ) -> MainWindow:
        """Show and start a window this harness will close; ``ready``: wait until its model loaded."""
        self.windows.append(window)
        window.resize(*size)
        window.show()
        self.qtbot.waitExposed(window)
        window.start()
        if ready:
            self.wait_ready(window)
        return window

    def wait_ready(self, window: MainWindow) -> None:
        self.qtbot.waitUntil(lambda: window.model.ready, timeout=LOAD_TIMEOUT_MS)

    def close(self, window: MainWindow) -> None:
        window.close()
        self.qtbot.waitUntil(lambda: window.isHidden() and window.bridge.is_closed, timeout=CLOSE_TIMEOUT_MS)
        self.windows.remove(window)
        window.deleteLater()

    def close_all(self) -> None:
        for window in list(self.windows):
            self.close(window)

    def send(self, window: MainWindow, text: str, *, typed: bool = False) -> None:
        """Put ``text`` in the composer and press Enter, as a user would."""
        editor = window.composer.editor
        editor.clear()
        if typed:
            self.qtbot.keyClicks(editor, text)
        else:
            editor.setPlainText(text)
        self.qtbot.keyClick(editor, Qt.Key.Key_Return)

    def wait_answer(self, window: MainWindow) -> None:
        self.qtbot.waitUntil(lambda: not window.chat.busy, timeout=ANSWER_TIMEOUT_MS)


def screenshot(widget: QWidget, name: str) -> Path:
    path = artifacts_dir() / f"{name}.png"
    assert widget.grab().save(str(path)), path
    return path


def activate(qtbot: QtBot, window: QWidget) -> None:
    """Focus, mnemonics and window-context shortcuts work only in the active window."""
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)


def tab_walk(qtbot: QtBot, start: QWidget, presses: int) -> list[QWidget]:
    """The widgets that hold the focus, from ``start``, over ``presses`` presses of Tab."""
    start.setFocus()
    visited: list[QWidget] = []
    for _ in range(presses):
        focused = QApplication.focusWidget()
        assert focused is not None
        visited.append(focused)
        qtbot.keyClick(focused, Qt.Key.Key_Tab)
    return visited
