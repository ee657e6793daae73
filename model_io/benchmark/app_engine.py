"""The app's own engine under measurement: requests in, time-stamped events out.

The benchmark drives :class:`model_io.engine.Engine` exactly as the CLI and GUI do
(frozen requests, events through a sink on the worker thread), so every figure
includes the app's real per-token overhead: prompt building, sampling, UTF-8
assembly and event delivery.  The sink stamps each event as it is emitted.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from model_io.engine import Engine
from model_io.errors import EngineFailure, ModelError
from model_io.events import (
    ChatRequest,
    Done,
    EngineError,
    EngineEvent,
    LoadRequest,
    MemoryUsage,
    ModelLoaded,
    ResponseStats,
    Stats,
    TextDelta,
)
from model_io.media import MediaKind
from model_io.prompt import ChatMessage
from model_io.settings import LoadSettings, SamplingSettings
from model_io.towers import EncoderFactory

LOAD_TIMEOUT_S = 900.0
REQUEST_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class RequestTiming:
    """One request's outcome and when things happened (``time.perf_counter`` seconds)."""

    submitted_at: float
    first_text_at: float | None
    finished_at: float
    stats: ResponseStats
    finish_reason: str
    text: str

    @property
    def decode_wall_s(self) -> float:
        """First token sampled → last token sampled, as the user sees it (sampling and events included).

        The engine's stats hold time-to-first-token from the start of the request; the
        remainder up to the stats event is the decode phase.  The queue hand-off before
        the start (tens of microseconds) is counted against decoding, never for it.
        """
        total = self.finished_at - self.submitted_at
        return max(0.0, total - self.stats.time_to_first_token_ms / 1000.0)

    @property
    def decode_steps(self) -> int:
        """Tokens decoded after the first one was sampled (the last sampled token is never decoded)."""
        return max(0, self.stats.generated_tokens - 1)


@dataclass(frozen=True)
class ContextFacts:
    """What llama.cpp logged about the context the app created (so the baseline can match it)."""

    n_batch: int | None = None
    n_ubatch: int | None = None
    flash_attn: str | None = None
    flash_attn_resolved: str | None = None
    type_k: str | None = None
    type_v: str | None = None
    load_mode: str | None = None
    repack_offered: bool = False


_FACT_PATTERNS = {
    "n_batch": re.compile(r"llama_context: n_batch\s+= (\d+)"),
    "n_ubatch": re.compile(r"llama_context: n_ubatch\s+= (\d+)"),
    "flash_attn": re.compile(r"llama_context: flash_attn\s+= (\w+)"),
    "type_k": re.compile(r"K \((\w+)\):"),
    "type_v": re.compile(r"V \((\w+)\):"),
    "load_mode": re.compile(r"load_mode = ([\w+]+)"),
}
_FA_RESOLVED = re.compile(r"Flash Attention (enabled|not supported)")


def parse_context_facts(lines: list[str]) -> ContextFacts:
    """Pick the settings out of llama.cpp's load log (first match of each)."""
    found: dict[str, object] = {}
    for line in lines:
        for key, pattern in _FACT_PATTERNS.items():
            match = pattern.search(line)
            if match and key not in found:
                value = match.group(1)
                found[key] = int(value) if key in ("n_batch", "n_ubatch") else value
        resolved = _FA_RESOLVED.search(line)
        if resolved and "flash_attn_resolved" not in found:
            found["flash_attn_resolved"] = "on" if resolved.group(1) == "enabled" else "off"
        if "CPU_REPACK" in line:
            found["repack_offered"] = True
    return ContextFacts(**found)  # type: ignore[arg-type]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def llama_log_lines() -> Iterator[list[str]]:
    """Collect llama.cpp's log (routed to the ``gemma_desk.llama`` logger) within the block."""
    logger = logging.getLogger("gemma_desk.llama")
    handler = _Collect()
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


class EngineDriver:
    """One engine with one model loaded; runs requests one at a time and times their events."""

    def __init__(
        self,
        model: Path,
        settings: LoadSettings,
        *,
        mmproj: Path | None = None,
        tower_factories: Mapping[MediaKind, EncoderFactory] | None = None,
    ) -> None:
        self._events: queue.Queue[tuple[float, EngineEvent]] = queue.Queue()
        self.memory: list[MemoryUsage] = []  # every MemoryUsage the engine sent, in order
        self.engine = Engine(
            self._collect,
            tower_factories=dict(tower_factories) if tower_factories else None,
            tower_idle_seconds=None,  # a benchmark must not lose its towers between rounds
        )
        try:
            with llama_log_lines() as lines:
                started = time.perf_counter()
                loaded = self._load(LoadRequest(model, settings, mmproj_path=mmproj))
                self.load_s = time.perf_counter() - started
            self.facts = parse_context_facts(lines)
        except BaseException:
            self.engine.close()
            raise
        self.info = loaded.info

    def _collect(self, event: EngineEvent) -> None:
        if isinstance(event, MemoryUsage):
            self.memory.append(event)
        self._events.put((time.perf_counter(), event))

    def release_towers(self, timeout: float = 60.0) -> MemoryUsage:
        """Unload the vision and audio towers now; the engine's report of what is left."""
        seen = len(self.memory)
        self.engine.release_towers()
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            fresh = [m for m in self.memory[seen:] if m.request_id == 0]
            if fresh:
                return fresh[-1]
            time.sleep(0.01)
        raise EngineFailure(f"the engine did not report its memory within {timeout:.0f} s of a release")

    def _load(self, request: LoadRequest) -> ModelLoaded:
        self.engine.load(request)
        for _, event in self._events_for(request.request_id, LOAD_TIMEOUT_S):
            if isinstance(event, ModelLoaded):
                return event
            if isinstance(event, EngineError):
                raise ModelError(f"the engine could not load {request.model_path.name}: {event.message}")
            if isinstance(event, Done):
                break
        raise ModelError(f"loading {request.model_path.name} was cancelled")

    def run(
        self, messages: tuple[ChatMessage, ...], sampling: SamplingSettings, max_tokens: int
    ) -> RequestTiming:
        """Submit one chat request in a fresh conversation and wait for its end."""
        self.engine.new_conversation()
        request = ChatRequest(messages, sampling, max_tokens=max_tokens)
        submitted = time.perf_counter()
        self.engine.submit(request)
        first_text: float | None = None
        stats: tuple[float, ResponseStats] | None = None
        for stamp, event in self._events_for(request.request_id, REQUEST_TIMEOUT_S):
            if isinstance(event, TextDelta) and first_text is None:
                first_text = stamp
            elif isinstance(event, Stats):
                stats = (stamp, event.stats)
            elif isinstance(event, EngineError):
                raise EngineFailure(f"the engine failed a benchmark request: {event.message}")
            elif isinstance(event, Done):
                if stats is None:
                    raise EngineFailure(f"a benchmark request ended '{event.finish_reason}' without stats")
                finished, response = stats
                reason, text = event.finish_reason, event.text
                return RequestTiming(submitted, first_text, finished, response, reason, text)
        raise EngineFailure("the engine stopped answering a benchmark request")

    def _events_for(self, request_id: int, timeout: float) -> Iterator[tuple[float, EngineEvent]]:
        deadline = time.perf_counter() + timeout
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise EngineFailure(f"the engine gave no answer within {timeout:.0f} s")
            try:
                stamp, event = self._events.get(timeout=remaining)
            except queue.Empty:
                continue
            if event.request_id == request_id:
                yield stamp, event

    def close(self) -> None:
        self.engine.close(timeout=60.0)

    def __enter__(self) -> EngineDriver:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
