"""The window survives a native crash of the engine: it says what happened, the engine comes back,
the conversation (on screen and in history) is kept, and Retry answers the failed turn.

The engine is the real process-isolated one on the tiny synthetic Gemma 3n; the crash is a real
segfault injected into its worker with ``GEMMA_DESK_TEST_CRASH``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import gui_support
import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.gui.main_window import MainWindow
from model_io.engine import EventSink
from model_io.engine_process import ProcessEngine
from model_io.events import EngineRestart

RESTART_TIMEOUT_MS = 30_000  # generous: the restart is measured (and reported) below, not raced


@pytest.fixture
def gui(qtbot: QtBot) -> Iterator[gui_support.GuiHarness]:
    harness = gui_support.GuiHarness(qtbot)
    yield harness
    harness.close_all()


class Engines:
    """An engine factory for the window that remembers the engines it made (to find their workers)."""

    def __init__(self, **options: object):
        self.options = options
        self.made: list[ProcessEngine] = []

    def __call__(self, sink: EventSink) -> ProcessEngine:
        engine = ProcessEngine(sink, **self.options)  # type: ignore[arg-type]
        self.made.append(engine)
        return engine


def restarts_of(window: MainWindow) -> list[EngineRestart]:
    seen: list[EngineRestart] = []
    window.bridge.engineRestarted.connect(seen.append)
    return seen


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def last_state(window: MainWindow) -> Callable[[], str]:
    return lambda: window.chat.conversation.messages[-1].state if window.chat.conversation.messages else ""


def test_a_segfault_while_answering_is_survived_and_retried(
    gui: gui_support.GuiHarness, tiny_model: Path
) -> None:
    engines = Engines(env={"GEMMA_DESK_TEST_CRASH": "segfault:decode:1"})  # the first worker only
    window = gui.open(tiny_model, engine_factory=engines)
    restarts = restarts_of(window)
    first_worker = engines.made[0].pid
    gui.send(window, "Hello there")
    gui.qtbot.waitUntil(lambda: last_state(window)() == "error", timeout=gui_support.ANSWER_TIMEOUT_MS)
    failed = window.chat.conversation.messages[-1]
    assert "SIGSEGV" in failed.text and "while answering" in failed.text
    assert window.isVisible() and not window.chat.busy

    gui.qtbot.waitUntil(lambda: any(r.phase == "ready" for r in restarts), timeout=RESTART_TIMEOUT_MS)
    ready = next(r for r in restarts if r.phase == "ready")
    print(f"\nGUI restart after SIGSEGV: {ready.elapsed_ms:.0f} ms")
    assert [r.phase for r in restarts] == ["restarting", "ready"] and ready.info is not None
    notice = window.notice.text()
    assert "restarted" in notice and "SIGSEGV" in notice and "conversation is kept" in notice
    assert window.model.ready and first_worker is not None and gone(first_worker)

    conversation = window.chat.conversation
    assert conversation.conversation_id is not None
    stored = window.store.load(conversation.conversation_id).messages
    assert [(m.role, m.text) for m in stored] == [("user", "Hello there")]  # failed answers are not saved

    retry = window.conversation_view.message_widget(1).regenerate_button
    gui.qtbot.waitUntil(retry.isVisible, timeout=5_000)
    assert retry.text() == "Retry"
    gui_support.screenshot(window, "window-engine-restarted")
    gui.qtbot.mouseClick(retry, Qt.MouseButton.LeftButton)
    gui.wait_answer(window)
    assert [(m.role, m.state) for m in conversation.messages] == [("user", "done"), ("assistant", "done")]
    assert window.conversation_view.message_widget(1).regenerate_button.text() == "Regenerate"

    gui.send(window, "And once more?")  # the conversation goes on in the new worker
    gui.wait_answer(window)
    assert [m.state for m in conversation.messages] == ["done"] * 4
    assert len(window.store.load(conversation.conversation_id).messages) == 4
    worker = engines.made[0].pid
    gui.close(window)
    assert worker is not None and gone(worker), "closing the window left the engine process running"


def test_an_engine_that_cannot_start_is_reported_and_the_window_stays(
    gui: gui_support.GuiHarness, tiny_model: Path
) -> None:
    engines = Engines(command=["/nonexistent/Gemma Desk"])
    window = gui.open(model_path=str(tiny_model), engine_factory=engines)
    gui.qtbot.waitUntil(lambda: "could not be started" in window.notice.text(), timeout=10_000)
    assert "/nonexistent/Gemma Desk" in window.notice.text()
    assert window.isVisible() and not window.model.ready and not window.model.loading
