"""The chat window end to end on the real engine and the tiny synthetic Gemma 3n: streaming, stop,
regenerate, edit-and-resend, copy, errors, quick close, history across restarts, export."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import gui_support
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot

from app.gui.history.store import HistoryStore
from app.gui.main_window import MainWindow
from model_io.events import AudioStreamFeed, ChatRequest, LoadRequest


@pytest.fixture
def gui(qtbot: QtBot) -> Iterator[gui_support.GuiHarness]:
    harness = gui_support.GuiHarness(qtbot)
    yield harness
    harness.close_all()


def stored(window: MainWindow) -> list[tuple[str, str, str | None]]:
    cid = window.chat.conversation.conversation_id
    assert cid is not None
    return [(m.role, m.text, m.finish_reason) for m in window.store.load(cid).messages]


def start_long_answer(
    gui: gui_support.GuiHarness, window: MainWindow, text: str = "Tell me everything"
) -> None:
    gui.send(window, text)
    gui.qtbot.waitUntil(lambda: len(window.chat.conversation.messages[-1].text) > 10, timeout=30_000)


def test_typed_message_streams_an_answer(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    window = gui.open(tiny_model, max_tokens=48)
    shown: list[str] = []

    def on_delta() -> None:
        widget = window.conversation_view.widgets[-1]
        widget.flush()
        shown.append(widget.plain_text())

    window.bridge.textDelta.connect(on_delta)
    with gui.qtbot.waitSignal(window.bridge.textDelta, timeout=30_000):
        gui.send(window, "Hello Gemma", typed=True)
    assert window.composer.send_button.text() == "Stop" and window.chat.busy
    gui.wait_answer(window)
    answer = window.chat.conversation.messages[-1]
    assert answer.state == "done" and answer.finish_reason == "length" and answer.text
    assert len({len(text) for text in shown if text}) > 2, "the answer did not appear progressively"
    assert window.conversation_view.widgets[-1].plain_text().strip()
    assert stored(window) == [("user", "Hello Gemma", None), ("assistant", answer.text, "length")]
    assert window.sidebar.list.count() == 1 and window.sidebar.list.item(0).text() == "Hello Gemma"
    assert "tok/s" in window.status_panel.stats_label.text()
    assert window.composer.send_button.text() == "Send" and window.composer.editor.toPlainText() == ""
    gui_support.screenshot(window, "window-streamed-answer-light")


def test_stop_mid_stream_keeps_the_partial_answer(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    window = gui.open(tiny_model, max_tokens=4000)
    start_long_answer(gui, window)
    window.composer.send_button.click()  # the send button is the stop button while streaming
    answer = window.chat.conversation.messages[-1]
    frozen = answer.text
    assert not window.chat.busy and answer.state == "stopped"
    gui.qtbot.waitUntil(lambda: window.bridge.dropped_events > 0, timeout=10_000)  # the engine's late events
    gui.qtbot.wait(100)
    assert answer.text == frozen
    assert stored(window)[-1] == ("assistant", frozen, "cancelled")
    assert window.conversation_view.widgets[-1].regenerate_button.isVisibleTo(window)


def test_regenerate_replaces_the_last_answer(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    window = gui.open(tiny_model, seed=-1)
    gui.send(window, "Tell me a story")
    gui.wait_answer(window)
    finished: list[int] = []
    window.bridge.finished.connect(lambda done: finished.append(done.request_id))
    gui.qtbot.mouseClick(window.conversation_view.widgets[-1].regenerate_button, Qt.MouseButton.LeftButton)
    assert window.chat.busy
    gui.wait_answer(window)
    messages = window.chat.conversation.messages
    assert [m.role for m in messages] == ["user", "assistant"] and len(finished) == 1
    assert len(window.conversation_view.widgets) == 2
    assert stored(window) == [("user", "Tell me a story", None), ("assistant", messages[1].text, "length")]


def test_edit_and_resend_replaces_the_last_turn(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    window = gui.open(tiny_model)
    gui.send(window, "first question")
    gui.wait_answer(window)
    user_widget = window.conversation_view.widgets[0]
    assert user_widget.edit_button.isVisibleTo(window)
    gui.qtbot.mouseClick(user_widget.edit_button, Qt.MouseButton.LeftButton)
    assert window.composer.editing and window.composer.editor.toPlainText() == "first question"
    gui.send(window, "second question")
    gui.wait_answer(window)
    messages = window.chat.conversation.messages
    assert (messages[0].role, messages[0].text) == ("user", "second question")
    assert len(messages) == 2 and not window.composer.editing
    assert stored(window)[0][:2] == ("user", "second question") and len(stored(window)) == 2


def test_escape_cancels_an_edit(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    window = gui.open(tiny_model)
    gui.send(window, "keep me")
    gui.wait_answer(window)
    window.commands.edit_last.trigger()
    assert window.composer.editing and window.commands.stop.isEnabled()
    window.commands.stop.trigger()  # Esc
    assert not window.composer.editing and window.composer.editor.toPlainText() == ""
    assert window.chat.conversation.messages[0].text == "keep me"


def test_copy_puts_the_markdown_source_on_the_clipboard(
    gui: gui_support.GuiHarness, tiny_model: Path
) -> None:
    window = gui.open(tiny_model)
    gui.send(window, "Copy **this**")
    gui.wait_answer(window)
    gui.qtbot.mouseClick(window.conversation_view.widgets[0].copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == "Copy **this**"
    gui.qtbot.mouseClick(window.conversation_view.widgets[1].copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == window.chat.conversation.messages[1].text


def test_failed_answer_is_shown_and_can_be_fixed_by_editing(
    gui: gui_support.GuiHarness, tiny_model: Path
) -> None:
    window = gui.open(tiny_model, context=512)
    gui.send(window, "word " * 700)
    gui.wait_answer(window)
    failed = window.chat.conversation.messages[-1]
    assert failed.state == "error" and "context" in failed.text
    assert "The answer failed" in window.notice.text()
    assert len(stored(window)) == 1  # the error is shown, never saved
    window.commands.edit_last.trigger()
    gui.send(window, "short")
    gui.wait_answer(window)
    assert [(m.role, m.state) for m in window.chat.conversation.messages] == [
        ("user", "done"),
        ("assistant", "done"),
    ]
    assert stored(window)[0][:2] == ("user", "short")


def test_closing_during_generation_is_quick(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    window = gui.open(tiny_model, max_tokens=4000)
    start_long_answer(gui, window)
    started = time.perf_counter()
    window.close()
    returned = time.perf_counter() - started
    assert returned < 0.1, f"closeEvent blocked the GUI thread for {returned:.3f} s"
    gui.qtbot.waitUntil(window.isHidden, timeout=5_000)
    assert time.perf_counter() - started < 2.0
    assert window.bridge.is_closed
    reopened = HistoryStore()
    saved = reopened.load(reopened.list_conversations()[0].conversation_id).messages
    assert saved[-1].finish_reason == "cancelled" and saved[-1].text  # the partial answer survived


def test_closing_during_load_is_quick(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    window = gui.open(model_path=str(tiny_model))  # starts loading, does not wait
    gui.qtbot.waitUntil(lambda: window.model.loading, timeout=10_000)
    started = time.perf_counter()
    window.close()
    gui.qtbot.waitUntil(window.isHidden, timeout=5_000)
    assert time.perf_counter() - started < 2.0 and window.bridge.is_closed


class HangingEngine:
    """An engine whose close() never returns on its own: the window must still close."""

    def __init__(self, sink: object):
        self.release = threading.Event()

    def load(self, request: LoadRequest) -> int:
        return request.request_id

    def submit(self, request: ChatRequest) -> int:
        return request.request_id

    def cancel(self, request_id: int) -> None:
        pass

    def new_conversation(self) -> None:
        pass

    def feed_audio(self, feed: AudioStreamFeed) -> None:
        pass

    def close(self, timeout: float = 10.0) -> None:
        self.release.wait(30)


def test_close_falls_back_when_the_engine_hangs(gui: gui_support.GuiHarness) -> None:
    engines: list[HangingEngine] = []

    def factory(sink: object) -> HangingEngine:
        engines.append(HangingEngine(sink))
        return engines[-1]

    window = gui.open(engine_factory=factory)
    window.close_fallback_ms = 300
    started = time.perf_counter()
    window.close()
    assert window.isVisible() and not window.isEnabled()  # first close: shutting down
    gui.qtbot.waitUntil(window.isHidden, timeout=5_000)
    assert 0.25 < time.perf_counter() - started < 3.0 and not window.bridge.is_closed
    engines[0].release.set()  # let the helper thread finish
    gui.qtbot.waitUntil(lambda: window.bridge.is_closed, timeout=5_000)


def test_history_survives_a_restart_and_continues(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    first = gui.open(tiny_model)
    gui.send(first, "Remember me")
    gui.wait_answer(first)
    before = [(m.role, m.text) for m in first.chat.conversation.messages]
    gui.close(first)
    resets = gui_support.CountingEngine.resets
    second = gui.open(tiny_model, engine_factory=gui_support.CountingEngine)
    assert second.sidebar.list.count() == 1 and not second.chat.conversation.messages
    second.sidebar.list.setCurrentRow(0)
    gui.qtbot.keyClick(second.sidebar.list, Qt.Key.Key_Return)  # activate, as from the keyboard
    assert [(m.role, m.text) for m in second.chat.conversation.messages] == before
    assert [w.message.text for w in second.conversation_view.widgets] == [text for _, text in before]
    assert gui_support.CountingEngine.resets == resets + 1, "reopening must reset the engine's KV cache"
    gui.send(second, "And more")
    gui.wait_answer(second)
    assert [role for role, _, _ in stored(second)] == ["user", "assistant", "user", "assistant"]


def test_export_markdown_and_json(gui: gui_support.GuiHarness, tiny_model: Path, tmp_path: Path) -> None:
    dialogs = gui_support.FakeDialogs(export_target=tmp_path / "chat")
    window = gui.open(tiny_model, dialogs=dialogs)
    gui.send(window, "Export me")
    gui.wait_answer(window)
    window.commands.export_markdown.trigger()
    markdown = (tmp_path / "chat.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Export me\n") and "## You\n\nExport me" in markdown
    assert "Exported to" in window.notice.text()
    dialogs.export_target = tmp_path / "chat.json"
    window.sidebar.list.setCurrentRow(0)
    window.sidebar.exportRequested.emit(window.sidebar.current_id(), "json")
    data = json.loads((tmp_path / "chat.json").read_text(encoding="utf-8"))
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert dialogs.asked == ["export:md:Export me.md", "export:json:Export me.json"]


def test_sidebar_search_rename_and_delete(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    dialogs = gui_support.FakeDialogs()
    window = gui.open(tiny_model, dialogs=dialogs)
    for text in ("apples and pears", "bananas"):
        window.commands.new_chat.trigger()
        gui.send(window, text)
        gui.wait_answer(window)
    assert window.sidebar.list.count() == 2
    gui.qtbot.keyClicks(window.sidebar.search, "APPLE")
    assert window.sidebar.list.count() == 1 and window.sidebar.list.item(0).text() == "apples and pears"
    window.sidebar.search.clear()
    item = window.sidebar.list.item(1)
    item.setText("Fruit")  # what finishing an inline (F2) edit does
    assert {s.title for s in window.store.list_conversations()} == {"Fruit", "bananas"}
    window.sidebar.list.setCurrentRow(0)  # the open conversation ("bananas", newest)
    gui.qtbot.keyClick(window.sidebar.list, Qt.Key.Key_Delete)
    assert dialogs.asked[-1] == "delete:bananas"
    assert [s.title for s in window.store.list_conversations()] == ["Fruit"]
    assert not window.chat.conversation.messages  # deleting the open conversation starts a new one
