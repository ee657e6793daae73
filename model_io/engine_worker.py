"""The engine's worker process: one :class:`~model_io.engine.Engine` serving the app over stdin/stdout.

Started by :class:`~model_io.engine_process.ProcessEngine` either as
``python -m model_io.engine_worker`` or, inside a packaged app whose ``sys.executable`` is the
launcher stub, as the app itself with ``GEMMA_DESK_ENGINE_WORKER=1`` (``app.cli.main`` calls
:func:`serve` before anything else, Qt included).

The channel is the process's original stdin and stdout, moved to private file descriptors at
once: fd 1 is then pointed at stderr and fd 0 at the null device, so a stray ``print`` or a C
``printf`` in llama.cpp can never corrupt a frame.  Requests are read on the main thread and
handed to the engine, whose own worker thread runs the model and writes events back, so
``cancel`` is applied immediately even while a token is being decoded.  The process exits when
the app closes the pipe (the app died, or closed us) and, on Linux, when its parent dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from model_io.engine_wire import (
    GENERATION_ENV,
    MAGIC,
    TEST_CRASH_ENV,
    Call,
    Configure,
    Hello,
    ProtocolError,
    Reply,
    binary_fd,
    read_frame,
    write_frame,
)

log = logging.getLogger("gemma_desk.engine.worker")
EXIT_BAD_SETUP = 2
CRASH_EXIT_CODE = 70
CRASH_MODES = ("abort", "segfault", "exit")
CRASH_POINTS = ("start", "load", "decode", "audio-encode")


class Channel:
    """Frames out to the app; written from the engine thread (events) and the main thread (replies)."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, message: object) -> None:
        with self._lock:
            write_frame(self._stream, message)


def serve() -> NoReturn:
    """Run the worker until the app closes the channel or asks it to close; never returns."""
    requests, events = _claim_stdio()
    _die_with_parent()
    _ignore_interrupts()
    if os.environ.get("GEMMA_DESK_DEBUG"):
        logging.basicConfig(level=logging.DEBUG)  # to stderr, which the app logs line by line
    with contextlib.suppress(Exception):  # fd 2 may be missing (a Windows GUI launcher without handles)
        faulthandler.enable(file=2, all_threads=True)  # a native crash leaves a Python stack in stderr
    try:
        engine, channel = _start(requests, events)
    except BaseException:  # never let an exception reach a launcher stub (Briefcase shows a crash dialog)
        _fail(traceback.format_exc())
    _serve_calls(engine, requests, channel)


def _start(requests: BinaryIO, events: BinaryIO) -> tuple[Any, Channel]:
    """Handshake and build the engine as the app configures it."""
    try:
        crash = CrashPlan.from_environment(os.environ)
    except ValueError as exc:
        _fail(str(exc))
    crash.at("start")
    events.write(MAGIC)
    channel = Channel(events)
    try:
        configure = read_frame(requests)
    except (EOFError, ProtocolError):
        os._exit(0)  # the app went away before configuring us
    if not isinstance(configure, Configure):
        _fail(f"expected a Configure message first, got {type(configure).__name__}")

    from model_io.engine import Engine
    from model_io.towers import default_factories

    options = dict(configure.engine_options)
    options["tower_factories"] = crash.wrap_factories(options.get("tower_factories") or default_factories())
    engine = Engine(crash.wrap_sink(channel.send), **options)
    channel.send(Hello(os.getpid()))
    return engine, channel


def _serve_calls(engine: Any, requests: BinaryIO, channel: Channel) -> NoReturn:
    while True:
        try:
            message = read_frame(requests)
        except (EOFError, ProtocolError, OSError):
            os._exit(0)  # the app is gone: nothing to save, the OS frees the model
        if not isinstance(message, Call) or message.method.startswith("_"):
            log.error("ignoring unexpected message %r", type(message).__name__)
            continue
        if message.method == "close":
            with contextlib.suppress(Exception):
                engine.close(*message.args)
            os._exit(0)  # skip interpreter teardown: the engine has freed its native state already
        value: Any = None
        error: BaseException | None = None
        try:
            value = getattr(engine, message.method)(*message.args)
        except Exception as exc:  # errors are values: the caller decides
            error = exc
        if message.reply_to is not None:
            _reply(channel, Reply(message.reply_to, value, error))


def _reply(channel: Channel, reply: Reply) -> None:
    try:
        channel.send(reply)
    except Exception as exc:  # an unpicklable value or exception: say so instead of dying
        from model_io.errors import EngineFailure

        failure = EngineFailure(f"the engine's answer could not be sent: {type(exc).__name__}: {exc}")
        channel.send(Reply(reply.call_id, None, failure))


def _claim_stdio() -> tuple[BinaryIO, BinaryIO]:
    """Move the channel off fds 0 and 1, so nothing else in the process can read or write it."""
    requests_fd, events_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return binary_fd(requests_fd, "r"), binary_fd(events_fd, "w")


def _die_with_parent() -> None:
    """On Linux, ask the kernel for SIGKILL when the app dies (stdin EOF covers the other systems)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def _ignore_interrupts() -> None:
    """Ctrl+C in a terminal reaches the whole process group; the app, not the worker, decides."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _fail(message: str) -> NoReturn:
    with contextlib.suppress(OSError):
        os.write(2, f"gemma-desk engine worker: {message}\n".encode())
    os._exit(EXIT_BAD_SETUP)


# -- test-only crash injection ----------------------------------------------------------------------


@dataclass(frozen=True)
class CrashPlan:
    """Where the worker crashes on purpose, from ``GEMMA_DESK_TEST_CRASH=MODE:POINT[:GENERATIONS]``.

    MODE is ``abort`` (``os.abort``), ``segfault`` (a real invalid memory read) or ``exit``
    (``os._exit(70)``); POINT is ``start`` (before the handshake), ``load`` (in llama.cpp's load
    progress callback), ``decode`` (after the first streamed token) or ``audio-encode`` (in the
    audio tower); GENERATIONS, e.g. ``1`` or ``1,2``, limits it to those workers (the first worker
    is 1, its replacement 2, ...).  Only this worker reads the variable: the app and the
    in-process engine never crash on purpose.
    """

    mode: str = ""
    point: str = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> CrashPlan:
        spec = environ.get(TEST_CRASH_ENV, "").strip()
        if not spec:
            return cls()
        parts = spec.split(":")
        if len(parts) not in (2, 3) or parts[0] not in CRASH_MODES or parts[1] not in CRASH_POINTS:
            raise ValueError(
                f"{TEST_CRASH_ENV}={spec!r} is not MODE:POINT[:GENERATIONS] with MODE in "
                f"{', '.join(CRASH_MODES)} and POINT in {', '.join(CRASH_POINTS)}"
            )
        if len(parts) == 3:
            generation = environ.get(GENERATION_ENV, "1")
            if generation not in [g.strip() for g in parts[2].split(",")]:
                return cls()
        return cls(parts[0], parts[1])

    def at(self, point: str) -> None:
        """Crash now if the plan names ``point``."""
        if point == self.point:
            crash(self.mode)

    def wrap_sink(self, sink: Callable[[Any], None]) -> Callable[[Any], None]:
        if self.point not in ("load", "decode"):
            return sink
        from model_io.events import LoadProgress, TextDelta

        trigger = LoadProgress if self.point == "load" else TextDelta

        def crashing_sink(event: Any) -> None:
            sink(event)
            if isinstance(event, trigger):
                crash(self.mode)

        return crashing_sink

    def wrap_factories(self, factories: Mapping[Any, Any]) -> dict[Any, Any]:
        if self.point != "audio-encode" or "audio" not in factories:
            return dict(factories)
        real = factories["audio"]

        def crashing_audio(path: Path, model: Any) -> Any:
            return _CrashingEncoder(real(path, model), self.mode)

        return {**factories, "audio": crashing_audio}


class _CrashingEncoder:
    """The real audio encoder, except that encoding crashes the process."""

    def __init__(self, encoder: Any, mode: str):
        self._encoder = encoder
        self._mode = mode
        self.kind = encoder.kind

    def layout(self, media: Any) -> Any:
        return self._encoder.layout(media)

    def encode(self, media: Any, abort_check: Any = None) -> Any:
        crash(self._mode)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)


def crash(mode: str) -> NoReturn:
    """Die the way native code does; for the crash-isolation tests only."""
    if mode == "abort":
        os.abort()
    if mode == "segfault":
        if sys.platform == "win32":
            faulthandler._sigsegv()  # type: ignore[attr-defined]  # ctypes turns reads of 0 into OSError
        ctypes.string_at(0)
    os._exit(CRASH_EXIT_CODE)


if __name__ == "__main__":
    serve()
