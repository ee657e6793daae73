"""The engine bridge on the real engine and the tiny synthetic Gemma 3n: typed signals on the GUI thread,
stale events dropped, errors as values, shutdown without blocking the GUI thread."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import gui_support  # noqa: F401  (offscreen Qt, PySide6 fixes)
import pytest
from PySide6.QtCore import QCoreApplication, QThread
from pytestqt.qtbot import QtBot

from app.gui.bridge import EngineBridge
from model_io.events import Done, EngineError, LoadProgress, ModelLoaded, Stats, TextDelta
from model_io.prompt import ChatMessage
from model_io.settings import LoadSettings, SamplingSettings

GREEDY = SamplingSettings.greedy_decoding()
HELLO = (ChatMessage("user", "Hello there"),)


class Recorder:
    """Every signal the bridge emits, in order, with the thread it arrived on."""

    def __init__(self, bridge: EngineBridge):
        self.events: list[object] = []
        self.threads: set[QThread] = set()
        for signal in (
            bridge.loadProgress,
            bridge.modelLoaded,
            bridge.textDelta,
            bridge.statsReady,
            bridge.finished,
            bridge.failed,
        ):
            signal.connect(self._record)

    def _record(self, event: object) -> None:
        self.threads.add(QThread.currentThread())
        self.events.append(event)

    def ids(self) -> set[int]:
        return {e.request_id for e in self.events}  # type: ignore[attr-defined]


@pytest.fixture
def bridge(qtbot: QtBot) -> Iterator[EngineBridge]:
    bridge = EngineBridge()
    yield bridge
    if not bridge.is_closed:
        with qtbot.waitSignal(bridge.closed, timeout=15_000):
            bridge.shutdown()


def load(qtbot: QtBot, bridge: EngineBridge, model: Path) -> ModelLoaded:
    with qtbot.waitSignal(bridge.modelLoaded, timeout=60_000) as blocker:
        bridge.load(model, LoadSettings(n_ctx=2048, n_threads=1))
    return blocker.args[0]


def test_load_reports_progress_then_loaded_on_the_gui_thread(
    qtbot: QtBot, bridge: EngineBridge, tiny_model: Path
) -> None:
    recorder = Recorder(bridge)
    loaded = load(qtbot, bridge, tiny_model)
    assert loaded.info.architecture == "gemma3n" and loaded.info.n_ctx == 2048
    assert isinstance(recorder.events[0], LoadProgress) and recorder.events[-1] is loaded
    app = QCoreApplication.instance()
    assert app is not None and recorder.threads == {app.thread()}
    assert not bridge.loading


def test_answer_streams_deltas_then_stats_then_done(
    qtbot: QtBot, bridge: EngineBridge, tiny_model: Path
) -> None:
    load(qtbot, bridge, tiny_model)
    recorder = Recorder(bridge)
    with qtbot.waitSignal(bridge.finished, timeout=60_000):
        rid = bridge.chat(HELLO, GREEDY, max_tokens=12)
    kinds = [type(e) for e in recorder.events]
    assert kinds[-2:] == [Stats, Done] and set(kinds[:-2]) == {TextDelta}
    assert recorder.ids() == {rid}
    done = recorder.events[-1]
    assert isinstance(done, Done) and done.text == "".join(e.text for e in recorder.events[:-2])  # type: ignore[attr-defined]
    assert not bridge.generating


def test_superseded_answer_never_reaches_the_gui(
    qtbot: QtBot, bridge: EngineBridge, tiny_model: Path
) -> None:
    load(qtbot, bridge, tiny_model)
    recorder = Recorder(bridge)
    first = bridge.chat(HELLO, GREEDY, max_tokens=400)
    with qtbot.waitSignal(bridge.finished, timeout=60_000):
        second = bridge.chat((ChatMessage("user", "Something else"),), GREEDY, max_tokens=8)
    assert recorder.ids() == {second}, "events of the superseded request leaked"
    assert bridge.dropped_events >= 1  # at least the first request's Done("cancelled")
    assert first != second


def test_cancel_mid_stream_stops_all_signals(qtbot: QtBot, bridge: EngineBridge, tiny_model: Path) -> None:
    load(qtbot, bridge, tiny_model)
    recorder = Recorder(bridge)
    with qtbot.waitSignal(bridge.textDelta, timeout=60_000):
        rid = bridge.chat(HELLO, SamplingSettings(seed=1), max_tokens=2000)
    assert bridge.cancel_chat() == rid
    seen = len(recorder.events)
    dropped_before = bridge.dropped_events
    qtbot.waitUntil(lambda: bridge.dropped_events > dropped_before, timeout=10_000)  # the engine's Done
    assert len(recorder.events) == seen
    assert not any(isinstance(e, Done) for e in recorder.events)


def test_corrupt_model_is_an_error_value(qtbot: QtBot, bridge: EngineBridge, tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with qtbot.waitSignal(bridge.failed, timeout=30_000) as blocker:
        rid = bridge.load(bad, LoadSettings(n_ctx=2048))
    error = blocker.args[0]
    assert isinstance(error, EngineError) and error.request_id == rid
    assert error.kind == "model" and "broken.gguf" in error.message


def test_chat_without_model_fails_cleanly(qtbot: QtBot, bridge: EngineBridge) -> None:
    with qtbot.waitSignal(bridge.failed, timeout=30_000) as blocker:
        bridge.chat(HELLO, GREEDY, max_tokens=4)
    assert blocker.args[0].kind == "model" and "no model" in blocker.args[0].message


def test_shutdown_during_generation_does_not_block(qtbot: QtBot, tiny_model: Path) -> None:
    bridge = EngineBridge()
    load(qtbot, bridge, tiny_model)
    with qtbot.waitSignal(bridge.textDelta, timeout=60_000):
        bridge.chat(HELLO, SamplingSettings(seed=3), max_tokens=4000)
    started = time.perf_counter()
    with qtbot.waitSignal(bridge.closed, timeout=5_000):
        bridge.shutdown()
        returned = time.perf_counter() - started
    assert returned < 0.05, f"shutdown() blocked the GUI thread for {returned:.3f} s"
    assert time.perf_counter() - started < 2.0
    assert bridge.is_closed and not bridge.generating
