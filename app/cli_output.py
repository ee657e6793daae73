"""How the CLI prints: streamed text or JSON lines, progress bars, one-line errors."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import TextIO

from model_io.events import (
    Done,
    EngineError,
    EngineEvent,
    LoadProgress,
    MemoryUsage,
    ModelLoaded,
    Stats,
    TextDelta,
)

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_MODEL = 3
EXIT_INTERRUPTED = 130
ERROR_EXIT_CODES = {
    "input": EXIT_BAD_INPUT,
    "model": EXIT_MODEL,
    "engine": EXIT_MODEL,
    "internal": EXIT_INTERNAL,
}


def fail(message: str, stream: TextIO | None = None) -> None:
    """One human line on stderr, never a traceback."""
    print(f"gemma-desk: error: {message}", file=stream or sys.stderr)


def event_json(event: EngineEvent, extra: dict[str, object] | None = None) -> str | None:
    """The JSON line for an event the ``--json`` streams show (None for internal events)."""
    payload: dict[str, object]
    if isinstance(event, TextDelta):
        payload = {"event": "delta", "request_id": event.request_id, "text": event.text}
    elif isinstance(event, Stats):
        payload = {"event": "stats", "request_id": event.request_id, **asdict(event.stats)}
    elif isinstance(event, Done):
        payload = {"event": "done", "request_id": event.request_id, "finish_reason": event.finish_reason}
    elif isinstance(event, EngineError):
        payload = {
            "event": "error",
            "request_id": event.request_id,
            "kind": event.kind,
            "message": event.message,
        }
    elif isinstance(event, MemoryUsage):
        payload = {
            "event": "memory",
            "request_id": event.request_id,
            "parts": dict(event.parts),
            "process_rss_bytes": event.process_rss_bytes,
            "mapped_bytes": event.mapped_bytes,
        }
    else:
        return None
    return json.dumps({**payload, **(extra or {})}, ensure_ascii=False)


class ProgressBar:
    """A single-line bar on an interactive stderr; silent when stderr is a file or pipe."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.label, self.width = label, width
        self._last = -1

    def update(self, fraction: float) -> None:
        percent = int(max(0.0, min(1.0, fraction)) * 100)
        if not self.enabled or percent == self._last:
            return
        self._last = percent
        filled = self.width * percent // 100
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {percent:3d}%")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self._last >= 0:
            self.stream.write("\n")
            self.stream.flush()


def describe_stats(event: Stats) -> str:
    s = event.stats
    return (
        f"[{s.prompt_tokens} prompt tokens ({s.prompt_tokens_prefilled} prefilled) in {s.prefill_ms:.0f} ms, "
        f"first token {s.time_to_first_token_ms:.0f} ms, {s.generated_tokens} tokens at "
        f"{s.decode_tokens_per_s:.1f} tok/s]"
    )


def describe_memory(event: MemoryUsage) -> str:
    """One line: resident MiB per part that holds any, the process RSS, and what is only mapped."""
    held = ", ".join(f"{name} {_mib(size)}" for name, size in event.parts if size)
    mapped = f"; {_mib(event.mapped_bytes)} of per-layer embeddings mapped" if event.mapped_bytes else ""
    return f"[memory: {held or 'nothing loaded'}; process RSS {_mib(event.process_rss_bytes)}{mapped}]"


def _mib(n: int) -> str:
    return "<1 MiB" if 0 < n < 1 << 19 else f"{n / (1 << 20):,.0f} MiB"


def is_terminal(event: EngineEvent) -> bool:
    return isinstance(event, Done | EngineError | ModelLoaded)


__all__ = [
    "ERROR_EXIT_CODES",
    "EXIT_BAD_INPUT",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_MODEL",
    "EXIT_OK",
    "LoadProgress",
    "ProgressBar",
    "describe_memory",
    "describe_stats",
    "event_json",
    "fail",
    "is_terminal",
]
