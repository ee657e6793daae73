"""The engine bridge: the only GUI object that talks to :class:`model_io.engine.Engine`.

The engine calls its sink on its own worker thread; the bridge relays each event to the GUI thread
with a queued signal and re-emits it there as a typed signal, after checking that the event's
request is still wanted.
A request stops being wanted when it is cancelled or superseded by a newer one, so a stopped answer
never bleeds into the next.  Shutdown never waits on the GUI thread: ``engine.close()`` runs on a
helper thread and ``closed`` is emitted when it returns.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject, Qt, Signal, SignalInstance

from model_io.engine import Engine, EventSink
from model_io.events import (
    AudioStreamFeed,
    ChatRequest,
    Done,
    EngineError,
    EngineEvent,
    EngineRestart,
    LoadProgress,
    LoadRequest,
    MemoryUsage,
    ModelLoaded,
    Stats,
    TextDelta,
)
from model_io.prompt import ChatMessage
from model_io.settings import LoadSettings, SamplingSettings

log = logging.getLogger("gemma_desk.gui.bridge")
ENGINE_CLOSE_TIMEOUT_S = 10.0


class EngineLike(Protocol):
    """What the bridge needs from an engine (the real one, or a fake in tests)."""

    def load(self, request: LoadRequest) -> int: ...
    def submit(self, request: ChatRequest) -> int: ...
    def cancel(self, request_id: int) -> None: ...
    def new_conversation(self) -> None: ...
    def feed_audio(self, feed: AudioStreamFeed) -> None: ...
    def close(self, timeout: float = ...) -> None: ...


EngineFactory = Callable[[EventSink], EngineLike]


class EngineBridge(QObject):
    """Owns the engine; turns its worker-thread events into GUI-thread signals, minus stale ones."""

    loadProgress = Signal(LoadProgress)
    modelLoaded = Signal(ModelLoaded)
    textDelta = Signal(TextDelta)
    statsReady = Signal(Stats)
    finished = Signal(Done)
    failed = Signal(EngineError)
    memoryUsage = Signal(object)  # MemoryUsage: the engine's state, not part of a request's stream
    engineRestarted = Signal(object)  # EngineRestart: the engine process crashed, came back or gave up
    closed = Signal()

    _relay = Signal(object)  # emitted on the engine thread, delivered queued on the GUI thread
    _engineClosed = Signal()

    def __init__(self, engine_factory: EngineFactory = Engine, parent: QObject | None = None):
        super().__init__(parent)
        self._relay.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)
        self._engineClosed.connect(self._on_engine_closed, Qt.ConnectionType.QueuedConnection)
        self._close_thread: threading.Thread | None = None
        self._load_id: int | None = None
        self._chat_id: int | None = None
        self._shutting_down = False
        self._closed = False
        self.dropped_events = 0
        self._engine = engine_factory(self._sink)

    # -- requests (GUI thread) ------------------------------------------------------------------

    def load(self, model_path: Path, settings: LoadSettings, mmproj_path: Path | None = None) -> int:
        """Load a model (and its projector), superseding any load or answer in progress.

        Ignored once shutting down.
        """
        if self._shutting_down:
            return 0
        self.cancel_chat()
        self.cancel_load()
        request = LoadRequest(Path(model_path), settings, mmproj_path=mmproj_path)
        self._load_id = request.request_id
        return self._engine.load(request)

    def chat(self, messages: Sequence[ChatMessage], sampling: SamplingSettings, max_tokens: int) -> int:
        """Start an answer; an answer still streaming is cancelled (newest request wins)."""
        if self._shutting_down:
            return 0
        self.cancel_chat()
        request = ChatRequest(tuple(messages), sampling, max_tokens=max_tokens)
        self._chat_id = request.request_id
        return self._engine.submit(request)

    def cancel_chat(self) -> int | None:
        """Stop the current answer; from now on its events are dropped.  Returns its id, if any."""
        rid, self._chat_id = self._chat_id, None
        if rid is not None:
            self._engine.cancel(rid)
        return rid

    def cancel_load(self) -> None:
        rid, self._load_id = self._load_id, None
        if rid is not None:
            self._engine.cancel(rid)

    def feed_audio(self, feed: AudioStreamFeed) -> None:
        """Hand the engine a piece of the clip being recorded (encoded while the user speaks)."""
        if not self._shutting_down:
            self._engine.feed_audio(feed)

    def new_conversation(self) -> None:
        """Forget the KV cache: the next answer starts from a different history."""
        self.cancel_chat()
        self._engine.new_conversation()

    @property
    def generating(self) -> bool:
        return self._chat_id is not None

    @property
    def loading(self) -> bool:
        return self._load_id is not None

    @property
    def is_closed(self) -> bool:
        return self._closed

    # -- shutdown -----------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Cancel everything and close the engine on a helper thread; ``closed`` follows."""
        if self._shutting_down:
            return
        self._shutting_down = True
        self._load_id = self._chat_id = None
        self._close_thread = threading.Thread(
            target=self._close_engine, name="gemma-desk-engine-close", daemon=True
        )
        self._close_thread.start()

    def _close_engine(self) -> None:
        try:
            self._engine.close(ENGINE_CLOSE_TIMEOUT_S)
        except Exception:  # closing must always end in `closed`, or the window could never close
            log.exception("closing the engine failed")
        self._emit_safely(self._engineClosed)

    def _on_engine_closed(self) -> None:
        if self._close_thread is not None:
            self._close_thread.join(1.0)  # it has finished its work and is only returning
        self._closed = True
        self.closed.emit()

    # -- events (engine thread → GUI thread) ------------------------------------------------------

    def _sink(self, event: EngineEvent) -> None:
        self._emit_safely(self._relay, event)

    @staticmethod
    def _emit_safely(signal: SignalInstance, *args: object) -> None:
        # RuntimeError: the bridge was deleted (bounded-shutdown fallback), so nobody listens any more.
        with contextlib.suppress(RuntimeError):
            signal.emit(*args)

    def _dispatch(self, event: EngineEvent) -> None:
        if isinstance(event, MemoryUsage):  # whatever caused it, it is how memory stands now
            self.memoryUsage.emit(event)
        elif isinstance(event, EngineRestart):  # the engine's own news, after its requests' errors
            self.engineRestarted.emit(event)
        elif event.request_id == self._load_id:
            self._dispatch_load(event)
        elif event.request_id == self._chat_id:
            self._dispatch_chat(event)
        else:
            self.dropped_events += 1

    def _dispatch_load(self, event: EngineEvent) -> None:
        if isinstance(event, LoadProgress):
            self.loadProgress.emit(event)
        elif isinstance(event, ModelLoaded):
            self._load_id = None
            self.modelLoaded.emit(event)
        elif isinstance(event, EngineError):
            self._load_id = None
            self.failed.emit(event)
        elif isinstance(event, Done):  # the load was cancelled inside the engine
            self._load_id = None

    def _dispatch_chat(self, event: EngineEvent) -> None:
        if isinstance(event, TextDelta):
            self.textDelta.emit(event)
        elif isinstance(event, Stats):
            self.statsReady.emit(event)
        elif isinstance(event, Done):
            self._chat_id = None
            self.finished.emit(event)
        elif isinstance(event, EngineError):
            self._chat_id = None
            self.failed.emit(event)
