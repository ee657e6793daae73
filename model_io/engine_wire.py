"""The wire between :class:`~model_io.engine_process.ProcessEngine` and its worker process.

Messages are the engine's own frozen requests and events, pickled (protocol 5) into
length-prefixed frames.  NumPy arrays (images, audio) travel as out-of-band buffers, written
straight from the array's memory and read straight into the receiving array's, so a 30 s clip
or a photo costs no extra copies.  Pickle is safe here because both ends are this program,
talking over a private pipe that nothing else can write to.

The worker writes :data:`MAGIC` once before its first frame: a launcher stub (Briefcase's
console stub with ``BRIEFCASE_DEBUG``, say) may print to stdout before our code runs, and the
parent skips anything before the magic instead of misreading it as a frame.

This module is imported by the worker before anything heavy, so it needs only the stdlib.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeGuard, cast

PROTOCOL_VERSION = 1
MAGIC = b"\x00GEMMA-DESK-ENGINE-WIRE-1\n"
MAX_PREAMBLE_BYTES = 1 << 20
MAX_BUFFERS = 4096
MAX_PART_BYTES = 1 << 34  # 16 GiB: anything larger is a corrupt header, not a real message

WORKER_ENV = "GEMMA_DESK_ENGINE_WORKER"
"""Set to ``"1"`` in the worker's environment; the app's entry point then serves the engine."""
GENERATION_ENV = "GEMMA_DESK_ENGINE_GENERATION"
"""1 for the first worker a :class:`ProcessEngine` starts, 2 after the first restart, ..."""
TEST_CRASH_ENV = "GEMMA_DESK_TEST_CRASH"
"""Test-only crash injection, read by the worker only: ``MODE:POINT[:GENERATIONS]`` (see engine_worker)."""

_COUNT = struct.Struct("!I")
_LENGTH = struct.Struct("!Q")


class ProtocolError(Exception):
    """The other end sent something that is not a frame (corrupt, truncated or foreign output)."""


@dataclass(frozen=True)
class Configure:
    """First message to a worker: keyword arguments for its :class:`~model_io.engine.Engine`."""

    engine_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hello:
    """First frame from a worker: it has built its engine and is ready for calls."""

    pid: int
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Call:
    """Call ``Engine.<method>(*args)`` in the worker; ``reply_to`` asks for a :class:`Reply`."""

    method: str
    args: tuple[Any, ...] = ()
    reply_to: int | None = None


@dataclass(frozen=True)
class Reply:
    """The return value of a :class:`Call`, or the exception it raised."""

    call_id: int
    value: Any = None
    error: BaseException | None = None


Frame = list[memoryview]


def encode_frame(message: object) -> Frame:
    """Pickle ``message`` into a frame's parts (header, pickle, then each array's own memory).

    Raises whatever pickling raises, before anything is written, so a bad message never
    leaves half a frame on the wire.
    """
    buffers: list[pickle.PickleBuffer] = []
    payload = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    views = [memoryview(payload), *(buffer.raw() for buffer in buffers)]
    header = _COUNT.pack(len(views)) + b"".join(_LENGTH.pack(view.nbytes) for view in views)
    return [memoryview(header), *views]


def write_frame(stream: BinaryIO, message: object | Frame) -> None:
    """Write a message (or the parts :func:`encode_frame` made of it) as one frame."""
    parts = message if _is_frame(message) else encode_frame(message)
    for view in parts:
        _write_all(stream, view)
    stream.flush()


def _is_frame(value: object) -> TypeGuard[Frame]:
    return isinstance(value, list) and bool(value) and all(isinstance(v, memoryview) for v in value)


def read_frame(stream: BinaryIO) -> object:
    """Read one frame; ``EOFError`` at a clean end of stream, ``ProtocolError`` on garbage or truncation."""
    first = stream.read(_COUNT.size)
    if not first:
        raise EOFError("the stream ended")
    count_bytes = first + _read_exact(stream, _COUNT.size - len(first))
    (count,) = _COUNT.unpack(count_bytes)
    if not 1 <= count <= MAX_BUFFERS:
        raise ProtocolError(f"bad frame header (claims {count} parts)")
    lengths = struct.unpack(f"!{count}Q", _read_exact(stream, _LENGTH.size * count))
    if any(length > MAX_PART_BYTES for length in lengths):
        raise ProtocolError("bad frame header (a part is larger than 16 GiB)")
    payload = _read_exact(stream, lengths[0])
    buffers = [_read_exact(stream, length) for length in lengths[1:]]
    try:
        return pickle.loads(payload, buffers=buffers)
    except Exception as exc:  # a frame that does not unpickle is corrupt, whatever the exception
        raise ProtocolError(f"undecodable frame: {type(exc).__name__}: {exc}") from exc


def skip_to_magic(stream: BinaryIO) -> bytes:
    """Consume the stream up to and including :data:`MAGIC`; returns the bytes skipped before it."""
    seen = bytearray()
    while not seen.endswith(MAGIC):
        byte = stream.read(1)
        if not byte:
            raise EOFError(f"the stream ended before the handshake (after {len(seen)} bytes)")
        seen += byte
        if len(seen) > MAX_PREAMBLE_BYTES + len(MAGIC):
            raise ProtocolError("no handshake in the first MiB of output")
    return bytes(seen[: -len(MAGIC)])


def binary_fd(fd: int, mode: str) -> BinaryIO:
    """An unbuffered binary file over ``fd`` (binary mode on Windows, where fds default to text)."""
    if sys.platform == "win32":
        import msvcrt

        msvcrt.setmode(fd, os.O_BINARY)
    return cast(BinaryIO, open(fd, mode + "b", buffering=0))  # kept open for the process's life


def _write_all(stream: BinaryIO, view: memoryview) -> None:
    """Raw writes may be partial; loop until the whole view is out."""
    view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
    while view.nbytes:
        written = stream.write(view)
        if written is None:
            raise BlockingIOError("the stream is non-blocking")
        view = view[written:]


def _read_exact(stream: BinaryIO, size: int) -> bytearray:
    data = bytearray(size)
    view = memoryview(data)
    got = 0
    while got < size:
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            raise ProtocolError(f"the stream ended inside a frame ({got} of {size} bytes)")
        got += n
    return data
