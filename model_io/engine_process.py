"""The engine in its own process, so a native crash in model code cannot take the window with it.

:class:`ProcessEngine` has the public interface of :class:`~model_io.engine.Engine` and runs
one in a worker process (:mod:`model_io.engine_worker`), forwarding requests and events as
frozen dataclasses over the worker's stdin/stdout (:mod:`model_io.engine_wire`).  llama.cpp
aborts on some bad states and our NumPy audio tower runs native BLAS code: if the worker dies,
every request it had in flight is answered with ``EngineError(kind="engine")`` naming the
signal or exit code and its last error output, a fresh worker is started, the model that was
loaded is loaded again, and :class:`~model_io.events.EngineRestart` events tell the app.  The
caller's conversation is untouched: the next request re-sends it (the KV cache starts cold).
Three crashes within a minute stop the restarts until the next explicit :meth:`load`.

**How the worker is launched** (see :mod:`model_io.engine_child`): with :mod:`subprocess`, not
:mod:`multiprocessing`, whose spawn mode re-runs ``sys.executable``: in a Briefcase app that is the
launcher stub, which always runs the app itself.  From a Python interpreter the command is
``python -m model_io.engine_worker``; otherwise it is the app's own executable, and the
environment variable ``GEMMA_DESK_ENGINE_WORKER=1`` makes ``app.cli.main`` serve the engine
before it imports anything else (Qt included).  The command is injectable (``command=``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from model_io.engine import Engine, EventSink
from model_io.engine_child import WorkerProcess, default_worker_command
from model_io.engine_wire import Call, Configure, Reply, encode_frame
from model_io.errors import EngineFailure
from model_io.events import (
    AudioStreamFeed,
    ChatRequest,
    Done,
    EngineError,
    EngineRestart,
    LoadRequest,
    ModelLoaded,
    new_request_id,
)
from model_io.media import MediaKind

log = logging.getLogger("gemma_desk.engine.process")
CLOSE_GRACE_S = 3.0  # a healthy worker closes in well under a second; nothing in it needs saving
STARTUP_TIMEOUT_S = 60.0  # a cold start on a slow disk (imports, code signing checks) may take a while
MAX_CRASHES = 3
CRASH_WINDOW_S = 60.0
Clock = Callable[[], float]


@dataclass
class _Pending:
    """A request that will get a final event; ``generation`` is the worker it went to (None: queued)."""

    request: Any
    generation: int | None = None


@dataclass
class _CallSlot:
    """A synchronous call waiting for its :class:`Reply`."""

    generation: int | None = None
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None

    def resolve(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error
        self.done.set()


_FINAL = (Done, EngineError, ModelLoaded)


class ProcessEngine:
    """:class:`~model_io.engine.Engine`'s interface, with the engine in a supervised worker process.

    ``sink`` is called on the reader thread, or on the caller's thread for requests answered
    without the worker (cancelled before they were sent, refused after the restarts stopped).
    Public :class:`Engine` methods not defined here are forwarded generically (:meth:`__getattr__`),
    and any event the worker sends reaches ``sink`` unchanged, so new methods and events need no
    change here.  A forwarded argument whose class name ends in ``Request`` is expected to end
    with ``Done``, ``EngineError`` or ``ModelLoaded`` and is failed if the worker dies first.
    """

    def __init__(
        self,
        sink: EventSink,
        *,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        engine_options: Mapping[str, Any] | None = None,
        max_crashes: int = MAX_CRASHES,
        crash_window_s: float = CRASH_WINDOW_S,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
        clock: Clock = time.monotonic,
    ):
        self._sink = sink
        self._command = list(command) if command is not None else default_worker_command()
        self._env = dict(env or {})
        self._options = dict(engine_options or {})
        self._max_crashes, self._crash_window_s = max_crashes, crash_window_s
        self._startup_timeout_s = startup_timeout_s
        self._clock = clock
        self._cv = threading.Condition()
        self._outbox: deque[Call] = deque()
        self._pending: dict[int, _Pending] = {}
        self._calls: dict[int, _CallSlot] = {}
        self._call_ids = itertools.count(1)
        self._child: WorkerProcess | None = None
        self._generation = 0
        self._loaded: LoadRequest | None = None
        self._reload_id: int | None = None
        self._restart_began: float | None = None
        self._last_crash = ""
        self._crash_times: list[float] = []
        self._gave_up: str | None = None
        self._closing = False
        self._stopped = False
        self.restarts = 0
        self._supervisor = threading.Thread(target=self._supervise, name="gemma-desk-engine-supervisor")
        self._writer = threading.Thread(target=self._write_loop, name="gemma-desk-engine-writer")
        self._supervisor.daemon = self._writer.daemon = True
        self._supervisor.start()
        self._writer.start()

    # -- Engine's API, for any thread -----------------------------------------------------------

    def load(self, request: LoadRequest) -> int:
        """Load a model; after the restarts were given up, this is the user's "try again"."""
        with self._cv:
            if self._gave_up is not None and not self._closing:
                self._gave_up = None
                self._crash_times.clear()
                self._cv.notify_all()
        self._post("load", request)
        return request.request_id

    def submit(self, request: ChatRequest) -> int:
        self._post("submit", request)
        return request.request_id

    def feed_audio(self, feed: AudioStreamFeed) -> None:
        self._post("feed_audio", feed)

    def new_conversation(self) -> None:
        self._post("new_conversation")

    def cancel(self, request_id: int) -> None:
        """Cancel a request: locally if it is still queued here, else in the worker at once."""
        cancel = Call("cancel", (request_id,))
        with self._cv:
            pending = self._pending.get(request_id)
            if pending is None:
                return
            queued = pending.generation is None
            if queued:
                del self._pending[request_id]
                self._outbox = deque(c for c in self._outbox if request_id not in _request_ids(c.args))
            child = self._child
            sent_to = child if child is not None and child.generation == pending.generation else None
        if queued:
            self._emit(Done(request_id, "cancelled", ""))
        elif sent_to is None or not sent_to.try_send_now(cancel):
            with self._cv:
                self._outbox.appendleft(cancel)  # ahead of anything queued
                self._cv.notify_all()

    def tower_state(self) -> tuple[MediaKind, ...]:
        """The worker's loaded towers; none while it is (re)starting."""
        with self._cv:
            if self._child is None or not self._child.ready or self._closing:
                return ()
        try:
            return tuple(self.call("tower_state", timeout=5.0))
        except EngineFailure:
            return ()

    def close(self, timeout: float = 10.0) -> None:
        """Close the worker: gracefully, then killed after ``min(timeout, CLOSE_GRACE_S)``; reaped."""
        grace = min(timeout, CLOSE_GRACE_S)
        unsent: list[int] = []
        with self._cv:
            if not self._closing:
                self._closing = True
                unsent = [rid for rid, p in self._pending.items() if p.generation is None]
                for rid in unsent:
                    del self._pending[rid]
                self._fail_calls(None, "the engine is closed")
                self._outbox.clear()
                child = self._child
                if child is not None and child.ready:
                    self._outbox.append(Call("close", (grace,)))
                elif child is not None:
                    child.kill()
                self._cv.notify_all()
        for rid in unsent:
            self._emit(Done(rid, "cancelled", ""))
        self._supervisor.join(grace + 1.0)
        if self._supervisor.is_alive():
            with self._cv:
                child = self._child
            if child is not None:
                child.kill()
            self._supervisor.join(5.0)
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
        self._writer.join(1.0)

    @property
    def alive(self) -> bool:
        """Serving (or restarting): not closed and not given up after a crash loop."""
        return not self._closing and self._gave_up is None and self._supervisor.is_alive()

    @property
    def pid(self) -> int | None:
        """The current worker's process id (None between workers)."""
        child = self._child
        return child.pid if child is not None else None

    # -- generic forwarding ---------------------------------------------------------------------

    def call(self, method: str, *args: Any, timeout: float = 10.0) -> Any:
        """Call ``Engine.<method>(*args)`` in the worker and return its result (waits for a restart)."""
        slot = _CallSlot()
        with self._cv:
            if self._closing or self._gave_up is not None:
                raise EngineFailure(self._gave_up or "the engine is closed")
            call_id = next(self._call_ids)
            self._calls[call_id] = slot
            self._outbox.append(Call(method, args, reply_to=call_id))
            self._cv.notify_all()
        if not slot.done.wait(timeout):
            with self._cv:
                self._calls.pop(call_id, None)
            raise EngineFailure(f"the engine did not answer {method} within {timeout:g} s")
        if slot.error is not None:
            raise slot.error
        return slot.value

    def __getattr__(self, name: str) -> Callable[..., Any]:
        """Forward public :class:`Engine` methods this class does not define (see the class docstring)."""
        method = getattr(Engine, name, None)
        if name.startswith("_") or not callable(method):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return functools.partial(self._forward, name, _return_annotation(method))

    def _forward(self, name: str, returns: str, *args: Any) -> Any:
        if returns == "None":
            self._post(name, *args)
            return None
        first_id = getattr(args[0], "request_id", None) if args else None
        if returns == "int" and isinstance(first_id, int):
            self._post(name, *args)
            return first_id
        return self.call(name, *args)

    def _post(self, method: str, *args: Any) -> None:
        """Queue a call without waiting; its answered requests are tracked until their final event."""
        requests = [a for a in args if _is_answered_request(a)]
        refusal: str | None = None
        with self._cv:
            if self._closing:
                refusal = "the engine is closed"
            elif self._gave_up is not None:
                refusal = self._gave_up
            else:
                for request in requests:
                    self._pending[request.request_id] = _Pending(request)
                self._outbox.append(Call(method, args))
                self._cv.notify_all()
        if refusal is not None:
            for request in requests:
                self._emit(EngineError(request.request_id, "engine", refusal))

    def _emit(self, event: Any) -> None:
        """Deliver an event; a failing sink is a bug in the caller, never a reason to drop the worker."""
        try:
            self._sink(event)
        except Exception:
            log.exception("the engine event sink failed on %s", type(event).__name__)

    # -- writer thread --------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            with self._cv:
                while not self._stopped and not self._can_write():
                    self._cv.wait()
                if self._stopped:
                    return
                child = self._child
                assert child is not None
                message = self._outbox.popleft()
                self._mark_sent(message, child.generation)
            try:
                frame = encode_frame(message)
            except Exception as exc:  # unpicklable arguments: nothing was written, fail just this call
                self._unsendable(message, exc)
                continue
            with contextlib.suppress(OSError, ValueError):  # the worker died: the supervisor answers
                child.send(frame)

    def _unsendable(self, message: Call, error: Exception) -> None:
        reason = f"{message.method} could not be sent to the engine: {type(error).__name__}: {error}"
        with self._cv:
            requests = [rid for rid in _request_ids(message.args) if self._pending.pop(rid, None)]
            slot = self._calls.pop(message.reply_to, None) if message.reply_to is not None else None
        if slot is not None:
            slot.resolve(error=EngineFailure(reason))
        for rid in requests:
            self._emit(EngineError(rid, "internal", reason))

    def _can_write(self) -> bool:
        return bool(self._outbox) and self._child is not None and self._child.ready

    def _mark_sent(self, message: Call, generation: int) -> None:
        for rid in _request_ids(message.args):
            if rid in self._pending:
                self._pending[rid].generation = generation
        if message.reply_to is not None and message.reply_to in self._calls:
            self._calls[message.reply_to].generation = generation

    # -- supervisor thread ----------------------------------------------------------------------

    def _supervise(self) -> None:
        try:
            while self._want_worker():
                child = self._spawn()
                if child is not None:
                    self._serve(child)
                    self._after_exit(child)
        except Exception:  # a bug here must not leave callers waiting forever
            log.exception("the engine supervisor failed")
            self._give_up("the engine supervisor failed (internal error); restart Gemma Desk")

    def _want_worker(self) -> bool:
        with self._cv:
            while self._gave_up is not None and not self._closing:
                self._cv.wait()
            return not self._closing

    def _spawn(self) -> WorkerProcess | None:
        with self._cv:
            self._generation += 1
            generation = self._generation
        try:
            child = WorkerProcess.start(self._command, self._env, generation)
        except OSError as exc:
            self._give_up(f"the engine process could not be started ({self._command[0]}: {exc})")
            return None
        with self._cv:
            self._child = child
            if self._closing:
                child.kill()
        with contextlib.suppress(OSError, ValueError):
            child.send(Configure(self._options))
        return child

    def _serve(self, child: WorkerProcess) -> None:
        """Handshake, then read frames until the worker's output ends."""
        timer = threading.Timer(self._startup_timeout_s, child.kill_if_not_ready)
        timer.daemon = True
        timer.start()
        try:
            child.handshake()
            timer.cancel()
            self._on_ready(child)
            while True:
                self._on_message(child.read())
        except Exception as exc:  # EOF, a broken frame or a dead pipe: the worker is gone or unusable
            child.channel_ended(exc)
        finally:
            timer.cancel()

    def _on_ready(self, child: WorkerProcess) -> None:
        restarted: EngineRestart | None = None
        with self._cv:
            child.ready = True
            if self._restart_began is not None:
                user_load_queued = any(c.method == "load" for c in self._outbox)
                if self._loaded is not None and not user_load_queued:
                    reload = dataclasses.replace(self._loaded, request_id=new_request_id())
                    self._reload_id = reload.request_id
                    self._pending[reload.request_id] = _Pending(reload)
                    self._outbox.appendleft(Call("load", (reload,)))
                else:
                    restarted = EngineRestart(0, "ready", self._last_crash, None, self._restart_done())
            self._cv.notify_all()
        if restarted is not None:
            self._emit(restarted)

    def _on_message(self, message: object) -> None:
        if isinstance(message, Reply):
            with self._cv:
                slot = self._calls.pop(message.call_id, None)
            if slot is not None:
                slot.resolve(message.value, message.error)
            return
        restarted: EngineRestart | None = None
        rid = getattr(message, "request_id", None)
        if isinstance(message, _FINAL):
            with self._cv:
                pending = self._pending.pop(message.request_id, None)
                if isinstance(message, ModelLoaded) and pending and isinstance(pending.request, LoadRequest):
                    self._loaded = pending.request
                if rid is not None and rid == self._reload_id:
                    restarted = self._reload_finished(message)
        self._emit(message)  # every other frame is an engine event
        if restarted is not None:
            self._emit(restarted)

    def _reload_finished(self, final: Done | EngineError | ModelLoaded) -> EngineRestart | None:
        """The automatic reload after a crash ended: the restart is complete (or failed)."""
        self._reload_id = None
        elapsed = self._restart_done()
        if isinstance(final, ModelLoaded):
            return EngineRestart(0, "ready", self._last_crash, final.info, elapsed)
        if isinstance(final, EngineError):
            self._loaded = None
            message = f"{self._last_crash}; the model could not be loaded again: {final.message}"
            return EngineRestart(0, "failed", message, None, elapsed)
        return None  # cancelled: only while closing

    def _restart_done(self) -> float:
        began, self._restart_began = self._restart_began, None
        return (self._clock() - began) * 1000.0 if began is not None else 0.0

    def _after_exit(self, child: WorkerProcess) -> None:
        """Reap the worker; unless closing, answer what it had and start the next one (or give up)."""
        what, output = child.finish()
        with self._cv:
            self._child = None
            if self._closing:
                self._cv.notify_all()
                return
            lost = {rid: p.request for rid, p in self._pending.items() if p.generation == child.generation}
            for rid in lost:
                del self._pending[rid]
            if any(isinstance(r, LoadRequest) and rid != self._reload_id for rid, r in lost.items()):
                self._loaded = None  # it crashed loading a new model, which replaces the old one
            lost.pop(self._reload_id or 0, None)  # the automatic reload is ours, nobody waits for it
            self._reload_id = None
            detail = f"; last output: {output}" if output else ""
            self._last_crash = f"the engine process {what}{detail}"
            self._fail_calls(child.generation, self._last_crash)
            now = self._clock()
            self._crash_times = [t for t in self._crash_times if now - t < self._crash_window_s] + [now]
            giving_up = len(self._crash_times) >= self._max_crashes
            if not giving_up:
                self.restarts += 1
                if self._restart_began is None:
                    self._restart_began = now
        state = "was not restarted" if giving_up else "is being restarted"
        for rid, request in lost.items():
            message = f"the engine process {what} while {_doing(request)} and {state}{detail}"
            self._emit(EngineError(rid, "engine", message))
        if giving_up:
            count, window = len(self._crash_times), self._crash_window_s
            self._give_up(
                f"{self._last_crash}. It crashed {count} times within {window:.0f} s, so it was not "
                "restarted again; load a model to try again"
            )
        else:
            self._emit(EngineRestart(0, "restarting", self._last_crash))

    def _give_up(self, message: str) -> None:
        """Stop restarting: fail everything queued, until :meth:`load` asks again."""
        with self._cv:
            if self._closing:
                return
            self._gave_up = message
            self._restart_began = None
            queued = list(self._pending)
            self._pending.clear()
            self._outbox.clear()
            self._fail_calls(None, message)
            self._cv.notify_all()
        for rid in queued:
            self._emit(EngineError(rid, "engine", message))
        self._emit(EngineRestart(0, "failed", message))

    def _fail_calls(self, generation: int | None, message: str) -> None:
        """Fail the synchronous calls sent to ``generation`` (all of them when None); lock held."""
        for call_id, slot in list(self._calls.items()):
            if generation is None or slot.generation == generation:
                del self._calls[call_id]
                slot.resolve(error=EngineFailure(message))


def _is_answered_request(value: object) -> bool:
    return isinstance(getattr(value, "request_id", None), int) and type(value).__name__.endswith("Request")


def _request_ids(args: tuple[Any, ...]) -> list[int]:
    return [a.request_id for a in args if _is_answered_request(a)]


def _doing(request: object) -> str:
    if isinstance(request, LoadRequest):
        return "loading the model"
    if isinstance(request, ChatRequest):
        return "answering"
    return f"handling request {getattr(request, 'request_id', '?')}"


def _return_annotation(method: Callable[..., Any]) -> str:
    annotation = inspect.signature(method).return_annotation
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
