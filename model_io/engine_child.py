"""One engine worker process as the app sees it: its pipes, its stderr tail, and how it ended.

:class:`~model_io.engine_process.ProcessEngine` decides *when* to start and restart workers;
this module knows *how*: the environment that turns the launched program into a worker, the
handshake, killing and reaping (so no zombie is left), and a short description of a death
("was killed by SIGSEGV (Segmentation fault)" plus its last error output) for the user.

**Why not multiprocessing.** Its spawn mode re-runs ``sys.executable``, and in a Briefcase app
that is the launcher stub, which always runs the app's main module, so spawn starts a second
app instead of the worker.  The worker is therefore started with :mod:`subprocess` and told
what it is by the environment variable ``GEMMA_DESK_ENGINE_WORKER=1``:

* from a Python interpreter (development, pip installs): ``python -m model_io.engine_worker``;
* from anything else (Briefcase's macOS, Windows and Linux stubs, frozen apps): the executable
  itself, without arguments.  The stub runs the app's main module; its ``app.cli.main`` sees
  the variable and serves the engine before importing anything else, Qt included.  The stub
  may print before Python starts (Briefcase's console stub does with ``BRIEFCASE_DEBUG``): the
  handshake skips anything before the wire's magic.

The command is injectable (``ProcessEngine(command=...)``), and ``GEMMA_DESK_ENGINE_COMMAND``
(a JSON list of strings) overrides the default for packaging experiments.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from model_io.engine_wire import (
    GENERATION_ENV,
    PROTOCOL_VERSION,
    WORKER_ENV,
    Hello,
    ProtocolError,
    encode_frame,
    read_frame,
    skip_to_magic,
    write_frame,
)
from model_io.errors import InputError

log = logging.getLogger("gemma_desk.engine.worker")
COMMAND_ENV = "GEMMA_DESK_ENGINE_COMMAND"
STDERR_TAIL_LINES = 80
EXIT_WAIT_S = 5.0
MAX_OUTPUT_CHARS = 300

# Windows reports a crash as an NTSTATUS exit code rather than a signal.
_WINDOWS_CRASHES = {
    0xC0000005: "access violation",
    0xC00000FD: "stack overflow",
    0xC0000409: "stack buffer overrun / abort",
    0xC000001D: "illegal instruction",
    0xC0000094: "integer division by zero",
    0x40000015: "abort",  # STATUS_FATAL_APP_EXIT, from abort()
}
_FRAME_NOISE = re.compile(
    r"^(Thread 0x|Current thread 0x|Stack \(most recent call first\)|Extension modules:|<no Python frame>)"
)
_NOTABLE = re.compile(r"error|assert|fail|abort|fatal|exception|segmentation|killed", re.IGNORECASE)


def default_worker_command(executable: str | None = None) -> list[str]:
    """How to start the worker from ``executable`` (default: ``sys.executable``); see engine_process."""
    override = os.environ.get(COMMAND_ENV, "").strip() if executable is None else ""
    if override:
        try:
            command = json.loads(override)
        except json.JSONDecodeError as exc:
            raise InputError(f"{COMMAND_ENV} must be a JSON list of strings: {exc}") from exc
        if not (isinstance(command, list) and command and all(isinstance(a, str) for a in command)):
            raise InputError(f"{COMMAND_ENV} must be a non-empty JSON list of strings")
        return command
    exe = executable or sys.executable
    if _is_python(exe):
        return [exe, "-m", "model_io.engine_worker"]
    return [exe]


def _is_python(executable: str) -> bool:
    if getattr(sys, "frozen", False) and executable == sys.executable:
        return False
    return Path(executable).name.lower().startswith("python")


class WorkerProcess:
    """A started worker: frames in and out, the last lines of its stderr, its death described."""

    def __init__(self, process: subprocess.Popen[bytes], generation: int):
        self.generation = generation
        self.ready = False
        self._process = process
        self._stdin = cast(BinaryIO, process.stdin)
        self._stdout = cast(BinaryIO, process.stdout)
        self._write_lock = threading.Lock()
        self._timed_out = False
        self._channel_error: BaseException | None = None
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_thread = threading.Thread(
            target=self._read_stderr, args=(process.stderr,), name=f"gemma-desk-worker-{generation}-stderr"
        )
        self._stderr_thread.daemon = True
        self._stderr_thread.start()

    @classmethod
    def start(cls, command: Sequence[str], env: Mapping[str, str], generation: int) -> WorkerProcess:
        """Launch ``command`` as worker number ``generation``; raises ``OSError`` if it cannot run."""
        environment = {
            **os.environ,
            **env,
            WORKER_ENV: "1",
            GENERATION_ENV: str(generation),
        }
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # Windows: no console window for the worker
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            bufsize=0,
            close_fds=True,
            creationflags=flags,
        )
        return cls(process, generation)

    @property
    def pid(self) -> int:
        return self._process.pid

    def send(self, message: object) -> None:
        with self._write_lock:
            write_frame(self._stdin, message)

    def try_send_now(self, message: object) -> bool:
        """Write a small message at once, only if that cannot block; False: queue it instead.

        Cancel uses this to skip the writer thread's wake-up.  It never waits: not for the channel
        (another frame being written) nor for room in the pipe (a worker too busy to read).
        """
        frame = b"".join(encode_frame(message))
        if sys.platform == "win32" or len(frame) > select.PIPE_BUF:
            return False  # Windows cannot poll a pipe for room
        if not self._write_lock.acquire(blocking=False):
            return False
        try:
            if not select.select([], [self._stdin], [], 0)[1]:
                return False
            self._stdin.write(frame)  # at most PIPE_BUF bytes into a pipe with room: one atomic write
            return True
        except (OSError, ValueError):
            return False  # the worker died; the supervisor answers for it
        finally:
            self._write_lock.release()

    def read(self) -> object:
        return read_frame(self._stdout)

    def handshake(self) -> Hello:
        """Skip whatever a launcher printed, then expect :class:`Hello`."""
        skipped = skip_to_magic(self._stdout)
        if skipped.strip():
            log.info("worker %d printed before the handshake: %r", self.generation, skipped[:200])
        hello = self.read()
        if not isinstance(hello, Hello) or hello.protocol != PROTOCOL_VERSION:
            raise ProtocolError(f"expected the worker's hello, got {hello!r:.100}")
        return hello

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self._process.kill()

    def kill_if_not_ready(self) -> None:
        """The startup timer: a worker that never said hello is killed (and reported as such)."""
        if not self.ready:
            self._timed_out = True
            self.kill()

    def channel_ended(self, error: BaseException) -> None:
        """The reader stopped; a protocol error means the worker is unusable even if it still runs."""
        self._channel_error = error
        if not isinstance(error, EOFError):
            log.error("engine worker %d: %s: %s", self.generation, type(error).__name__, error)
            self.kill()

    def finish(self) -> tuple[str, str]:
        """Reap the process (killing it if it lingers); how it ended and its last error output."""
        try:
            code = self._process.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self._process.wait()
        self._stderr_thread.join(1.0)
        for stream in (self._stdin, self._stdout):
            with contextlib.suppress(OSError):
                stream.close()
        return self._describe(code), notable_output(self._stderr_tail)

    def _describe(self, code: int) -> str:
        if self._timed_out:
            return "did not start in time and was stopped"
        if isinstance(self._channel_error, ProtocolError):
            return f"sent unreadable data ({self._channel_error}) and was stopped"
        return describe_exit(code)

    def _read_stderr(self, stream: IO[bytes] | None) -> None:
        """Keep the tail for crash messages; pass every line to logging (shown with GEMMA_DESK_DEBUG)."""
        if stream is None:
            return
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip()
                if line:
                    self._stderr_tail.append(line)
                    log.debug("worker %d: %s", self.generation, line)


def describe_exit(code: int) -> str:
    """``was killed by SIGSEGV (Segmentation fault)``, ``crashed (access violation, 0xC0000005)``, ..."""
    if code < 0:
        try:
            sig = signal.Signals(-code)
        except ValueError:
            return f"was killed by signal {-code}"
        return f"was killed by {sig.name} ({signal.strsignal(sig) or sig.name})"
    if code in _WINDOWS_CRASHES:
        return f"crashed ({_WINDOWS_CRASHES[code]}, 0x{code:08X})"
    if code == 0:
        return "exited unexpectedly"
    return f"exited unexpectedly with code {code}"


def notable_output(lines: Any) -> str:
    """The last one or two error-looking lines of stderr (not Python stack frames), shortened."""
    kept = [line for line in lines if line.strip() and not line[0].isspace() and not _FRAME_NOISE.match(line)]
    notable = [line for line in kept if _NOTABLE.search(line)]
    text = " | ".join((notable or kept)[-2:])
    return text if len(text) <= MAX_OUTPUT_CHARS else text[: MAX_OUTPUT_CHARS - 1] + "…"
