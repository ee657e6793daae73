"""The window around the conversation: first run, choosing and loading models, errors, keyboard and
screen-reader access, audio modes, translations, light/dark screenshots, and the CLI entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import gui_support
import pytest
from gguf_fixtures import write_tiny_clip
from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QTextEdit,
    QWidget,
)
from pytestqt.qtbot import QtBot

import app.cli
from app.gui import i18n, theme
from app.gui.conversation import Message
from app.gui.history.store import HistoryStore
from app.gui.i18n import build
from app.gui.resources import icon_path
from app.gui.widgets.composer import Mode
from model_io.engine import Engine
from model_io.events import EngineError, LoadRequest
from model_io.paths import models_dir

MARKDOWN_ANSWER = """Here is **bold**, *italic* and `inline code`:

```python
def greet(name: str) -> str:
    return f"Hello, {name}!"
```

1. first point
2. second point
"""


@pytest.fixture
def gui(qtbot: QtBot) -> Iterator[gui_support.GuiHarness]:
    harness = gui_support.GuiHarness(qtbot)
    yield harness
    harness.close_all()


def test_first_run_explains_how_to_get_a_model(gui: gui_support.GuiHarness) -> None:
    window = gui.open()
    assert window.pages.currentWidget() is window.model_manager and not window.composer.isVisible()
    body = window.model_manager.intro.text()
    assert "model file" in body and str(models_dir()) in body and "Download one below" in body
    assert window.status_panel.model_label.text() == "No model loaded"
    gui_support.screenshot(window, "window-empty-state")


@pytest.mark.parametrize("kind", ["corrupt", "projector", "missing"])
def test_unusable_model_files_are_refused_clearly(
    gui: gui_support.GuiHarness, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / f"{kind}.gguf"
    if kind == "corrupt":
        path.write_bytes(b"<html>not a model</html>" * 40)
    elif kind == "projector":
        write_tiny_clip(path)
    dialogs = gui_support.FakeDialogs(model_file=path)
    window = gui.open(dialogs=dialogs)
    window.commands.open_model.trigger()
    gui.qtbot.waitUntil(lambda: bool(window.notice.text()), timeout=10_000)
    notice = window.notice.text()
    assert notice.startswith("The model could not be loaded:") and window.notice.kind == "error"
    assert {"corrupt": "corrupt.gguf", "projector": "mmproj", "missing": "not found"}[kind] in notice
    assert not window.model.ready and window.pages.currentWidget() is window.model_manager
    assert window.settings.load().model_path == ""  # a refused file is not remembered
    if kind == "corrupt":
        gui_support.screenshot(window, "window-load-error")


class NativeLoadFailure(Engine):
    """The real engine, except that llama.cpp "fails" every load (as with too little memory)."""

    def load(self, request: LoadRequest) -> int:
        self._sink(
            EngineError(request.request_id, "model", f"llama.cpp could not load {request.model_path.name}")
        )
        return request.request_id


def test_engine_load_failure_is_shown_and_leaves_no_model(
    gui: gui_support.GuiHarness, tiny_model: Path
) -> None:
    window = gui.open(model_path=str(tiny_model), engine_factory=NativeLoadFailure)
    gui.qtbot.waitUntil(lambda: bool(window.notice.text()), timeout=10_000)
    assert f"llama.cpp could not load {tiny_model.name}" in window.notice.text()
    assert not window.model.ready and not window.model.loading
    assert window.pages.currentWidget() is window.model_manager
    assert window.status_panel.model_label.text() == "No model loaded"


def test_saved_model_that_disappeared_is_reported(gui: gui_support.GuiHarness, tmp_path: Path) -> None:
    window = gui.open(model_path=str(tmp_path / "gone.gguf"))
    gui.qtbot.waitUntil(lambda: "not found" in window.notice.text(), timeout=10_000)
    assert window.pages.currentWidget() is window.model_manager


def test_choosing_a_model_loads_it_with_progress(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    window = gui.open(dialogs=gui_support.FakeDialogs(model_file=tiny_model))
    progress: list[float] = []
    window.bridge.loadProgress.connect(lambda event: progress.append(event.fraction))
    window.commands.open_model.trigger()
    gui.wait_ready(window)
    assert progress and progress[-1] == 1.0 and not window.status_panel.progress.isVisible()
    assert window.pages.currentWidget() is window.conversation_view and window.composer.isVisible()
    assert window.status_panel.model_label.text() == "Gemma 3n synthetic tiny (random weights)"
    assert window.status_panel.backend_label.text() == "CPU, threads: 1"
    assert window.settings.load().model_path == str(tiny_model)


def test_the_only_model_in_the_models_folder_is_found(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    models_dir().mkdir(parents=True)
    (models_dir() / tiny_model.name).symlink_to(tiny_model)
    write_tiny_clip(models_dir() / "mmproj-tiny.gguf")  # projectors are not candidates
    window = gui.open()
    gui.wait_ready(window)
    assert window.settings.load().model_path == str(models_dir() / tiny_model.name)


def test_keyboard_shortcuts(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    window = gui.open(tiny_model, max_tokens=4000)
    gui_support.activate(gui.qtbot, window)
    window.sidebar.search.setFocus()
    gui.qtbot.keyClick(window.sidebar.search, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert window.composer.editor.hasFocus()
    window.composer.editor.setPlainText("via Ctrl+Enter")
    window.sidebar.search.setFocus()
    gui.qtbot.keyClick(window.sidebar.search, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert window.chat.busy
    gui.qtbot.waitUntil(lambda: bool(window.chat.conversation.messages[-1].text), timeout=30_000)
    gui.qtbot.keyClick(window.composer.editor, Qt.Key.Key_Escape)
    assert not window.chat.busy and window.chat.conversation.messages[-1].state == "stopped"
    gui.qtbot.keyClick(window.composer.editor, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert not window.chat.conversation.messages and window.sidebar.list.count() == 1


def test_shift_enter_adds_a_line_instead_of_sending(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    window = gui.open(tiny_model)
    editor = window.composer.editor
    gui.qtbot.keyClicks(editor, "line one")
    gui.qtbot.keyClick(editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    gui.qtbot.keyClicks(editor, "line two")
    assert editor.toPlainText() == "line one\nline two" and not window.chat.busy


def test_tab_reaches_every_control_in_order(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    window = gui.open(tiny_model)
    gui.send(window, "Hi")
    gui.wait_answer(window)
    gui_support.activate(gui.qtbot, window)
    visited = gui_support.tab_walk(gui.qtbot, window.sidebar.new_button, 30)
    order = [window.sidebar.new_button, window.sidebar.search, window.sidebar.list, window.composer.editor]
    order += [window.composer.mode_box, window.composer.send_button]
    positions = [visited.index(widget) for widget in order]
    assert positions == sorted(positions), "tab order is not sidebar → conversation → composer"
    message_buttons = [w.copy_button for w in window.conversation_view.widgets]
    assert all(button in visited for button in message_buttons)


def test_every_control_has_an_accessible_name(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    window = gui.open(tiny_model)
    gui.send(window, "Hi")
    gui.wait_answer(window)
    kinds = (
        QAbstractButton,
        QLineEdit,
        QPlainTextEdit,
        QTextEdit,
        QComboBox,
        QAbstractItemView,
        QProgressBar,
    )
    controls = [
        w
        for w in window.findChildren(QWidget)
        if isinstance(w, kinds)
        and w.window() is window  # not the combo boxes' popup lists
        and not w.objectName().startswith("qt_")
        and not isinstance(w.parent(), QAbstractSpinBox | QComboBox | QLineEdit)  # Qt's internal parts
    ]
    unnamed = [f"{type(w).__name__} {w.objectName()!r}" for w in controls if not w.accessibleName()]
    assert len(controls) > 15 and not unnamed


def test_audio_modes_are_disabled_and_say_why(gui: gui_support.GuiHarness) -> None:
    window = gui.open()
    model = window.composer.mode_box.model()
    for row, mode in enumerate(Mode):
        item = model.item(row)  # type: ignore[attr-defined]
        assert item.isEnabled() == (mode is Mode.CHAT)
        if mode is not Mode.CHAT:
            assert "mmproj" in item.toolTip() and "audio" in item.toolTip()
    assert not window.composer.language_box.isEnabled()
    window.composer.set_audio_available(True)  # what the audio issue will call
    window.composer.mode_box.setCurrentIndex(2)
    assert window.composer.mode is Mode.TRANSLATE and window.composer.language_box.isEnabled()
    window.composer.set_audio_available(False)
    assert window.composer.mode is Mode.CHAT


def test_spanish_translation_is_complete_and_current(tmp_path: Path) -> None:
    ts = ET.parse(build.ts_path("es"))
    unfinished = [
        m.findtext("source") for m in ts.iter("message") if m.find("translation[@type]") is not None
    ]
    assert not unfinished
    fresh = ET.parse(build.update("es", target=tmp_path / "fresh.ts"))
    sources = {m.findtext("source") for m in fresh.iter("message")}
    assert sources == {m.findtext("source") for m in ts.iter("message")}, "run python -m app.gui.i18n.build"
    assert i18n.qm_path("es").stat().st_mtime >= build.ts_path("es").stat().st_mtime - 1


def test_window_in_spanish(gui: gui_support.GuiHarness) -> None:
    i18n.apply_language("es")
    try:
        window = gui.open()
        assert window.model_manager.title.text() == "Modelos"
        assert window.composer.send_button.text() == "Enviar"
        gui_support.screenshot(window, "window-empty-state-es")
    finally:
        i18n.apply_language("en")


def test_screenshots_light_and_dark(gui: gui_support.GuiHarness) -> None:
    store = HistoryStore()
    cid = store.create_conversation("Markdown sample")
    store.replace_messages(
        cid, 0, [Message("user", "Show me some code"), Message("assistant", MARKDOWN_ANSWER)]
    )
    store.close()
    window = gui.open()
    window.history.open(cid)
    answer = window.conversation_view.widgets[1].plain_text()
    assert "def greet(name: str) -> str:" in answer and "**" not in answer  # rendered, not raw
    light = gui_support.screenshot(window, "window-markdown-light")
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    original = app.palette()
    app.setPalette(theme.dark_palette())
    try:
        gui.qtbot.waitUntil(lambda: theme.is_dark(window.conversation_view.widgets[1].palette()))
        dark = gui_support.screenshot(window, "window-markdown-dark")
    finally:
        app.setPalette(original)
    gui.qtbot.waitUntil(lambda: not theme.is_dark(window.conversation_view.widgets[1].palette()))
    image = window.grab().toImage()
    assert image.pixelColor(5, image.height() // 2).lightness() > 128  # back to light
    assert light.stat().st_size > 10_000 and dark.stat().st_size > 10_000


def test_theme_fills_in_a_dark_palette_only_when_the_style_does_not() -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    original = app.palette()
    try:
        theme.apply_scheme(app, Qt.ColorScheme.Dark)
        assert theme.is_dark(app.palette())
        theme.apply_scheme(app, Qt.ColorScheme.Light)
        assert not theme.is_dark(app.palette())
        theme.apply_scheme(app, Qt.ColorScheme.Unknown)
        assert not theme.is_dark(app.palette())
    finally:
        app.setPalette(original)


def test_app_icon_ships_with_the_package() -> None:
    packaged = icon_path()
    assert packaged.read_bytes() == (Path(__file__).parents[1] / "assets" / "gemma-desk.svg").read_bytes()
    assert not QIcon(str(packaged)).pixmap(64, 64).isNull()


def test_cli_without_display_fails_in_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run(
        [sys.executable, "-m", "app"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 2
    assert (
        result.stderr.startswith("gemma-desk: error: cannot open the desktop window")
        and "Traceback" not in result.stderr
    )


def test_cli_without_arguments_starts_the_gui(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr("app.gui.run", lambda argv=None: 42)
    assert app.cli.main([]) == 42


def test_cli_never_imports_qt() -> None:
    code = "import sys, app.cli; assert not [m for m in sys.modules if m.startswith('PySide6')]"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
