"""Requests to the engine and the events it streams back.

All are small frozen dataclasses carrying the request id, so they can cross
threads (or, later, a process boundary) as plain values, and a consumer can drop
events of a request it no longer cares about.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from model_io.prompt import ChatMessage
from model_io.settings import LoadSettings, SamplingSettings

_ids = itertools.count(1)


def new_request_id() -> int:
    """Process-unique, increasing request ids."""
    return next(_ids)


FinishReason = Literal["stop", "length", "cancelled"]
ErrorKind = Literal["input", "model", "engine", "internal"]


@dataclass(frozen=True)
class LoadRequest:
    """Load (or replace) the engine's model."""

    model_path: Path
    settings: LoadSettings = field(default_factory=LoadSettings)
    mmproj_path: Path | None = None
    request_id: int = field(default_factory=new_request_id)


@dataclass(frozen=True)
class ChatRequest:
    """Generate the assistant's next turn for ``messages`` (which end with a user turn)."""

    messages: tuple[ChatMessage, ...]
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    max_tokens: int = 1024
    request_id: int = field(default_factory=new_request_id)


@dataclass(frozen=True, eq=False)
class AudioStreamFeed:
    """A piece of a clip still being recorded, so the engine can encode it while the user speaks.

    The feeds of one stream (``request_id``) concatenate to the clip; the last one has
    ``final=True``.  A later :class:`ChatRequest` carrying exactly that clip
    (``MediaInput("audio", concatenation)``) then finds it already encoded, so the answer
    starts sooner after the key is released.  ``discard=True`` drops the stream (too short,
    cancelled).  Streaming only saves time: if it fails, the clip is encoded in one go when
    sent, so feeds produce no events.
    """

    request_id: int
    samples: np.ndarray
    final: bool = False
    discard: bool = False


@dataclass(frozen=True)
class ModelInfoSummary:
    """What the GUI and CLI show about the loaded model."""

    path: Path
    architecture: str
    n_ctx: int
    n_ctx_train: int
    n_threads: int
    n_gpu_layers: int
    gpu_offload_supported: bool
    mmproj_path: Path | None = None
    has_vision: bool = False
    has_audio: bool = False


@dataclass(frozen=True)
class LoadProgress:
    request_id: int
    fraction: float


@dataclass(frozen=True)
class ModelLoaded:
    request_id: int
    info: ModelInfoSummary
    load_ms: float


@dataclass(frozen=True)
class TextDelta:
    request_id: int
    text: str


@dataclass(frozen=True)
class ResponseStats:
    """Per-response measurements; ``prompt_tokens_prefilled`` < ``prompt_tokens`` means KV reuse."""

    prompt_tokens: int
    prompt_tokens_prefilled: int
    prefill_ms: float
    time_to_first_token_ms: float
    generated_tokens: int
    decode_ms: float
    decode_tokens_per_s: float
    peak_rss_bytes: int | None
    audio_encode_ms: float = 0.0
    image_encode_ms: float = 0.0


@dataclass(frozen=True)
class Stats:
    request_id: int
    stats: ResponseStats


@dataclass(frozen=True)
class Done:
    request_id: int
    finish_reason: FinishReason
    text: str


@dataclass(frozen=True)
class EngineError:
    """An error as a value: which request, what kind, and a one-line message for the user."""

    request_id: int
    kind: ErrorKind
    message: str


@dataclass(frozen=True)
class MemoryUsage:
    """RAM held by each part of the loaded model, sent after loads, tower loads and releases.

    ``request_id`` is the request that caused the change, or 0 for the engine's own
    idle release.  ``parts`` names bytes resident per part, e.g. ``("text", n)``,
    ``("kv cache", n)``, ``("vision", n)``, ``("audio", n)``; ``mapped_bytes`` is file-backed
    memory that is mapped but need not be resident (the per-layer embedding table).
    """

    request_id: int
    parts: tuple[tuple[str, int], ...]
    process_rss_bytes: int
    mapped_bytes: int = 0


RestartPhase = Literal["restarting", "ready", "failed"]


@dataclass(frozen=True)
class EngineRestart:
    """The isolated engine's process died (``restarting``), serves again (``ready``) or was given up on.

    Sent only by :class:`model_io.engine_process.ProcessEngine`, with ``request_id`` 0 (the
    engine's own), after the requests that were in flight got their :class:`EngineError`.
    ``message`` says what happened (signal or exit code, the process's last error output);
    ``ready`` carries the model reloaded automatically (None if none was loaded) and how long
    the restart took; ``failed`` means no model is loaded now (crash loop, or the reload failed).
    """

    request_id: int
    phase: RestartPhase
    message: str
    info: ModelInfoSummary | None = None
    elapsed_ms: float = 0.0


EngineEvent = (
    LoadProgress | ModelLoaded | TextDelta | Stats | Done | EngineError | MemoryUsage | EngineRestart
)
