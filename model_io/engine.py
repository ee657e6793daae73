"""The engine: the single owner of the llama.cpp model, serving requests on one worker thread.

Callers (CLI, GUI) never touch native objects.  They post frozen requests and
receive frozen events through an injected sink, which is called on the worker
thread; the GUI adapter forwards them to the Qt event loop, the CLI uses
:class:`EventQueue`.  Errors come back as :class:`EngineError` values.
Cancellation is a flag checked between tokens and, during prefill, by
llama.cpp's abort callback, so it takes effect within one token's time.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from model_io.errors import EngineFailure, GemmaDeskError, InputError, ModelError
from model_io.events import (
    AudioStreamFeed,
    ChatRequest,
    Done,
    EngineError,
    EngineEvent,
    ErrorKind,
    LoadProgress,
    LoadRequest,
    MemoryUsage,
    ModelInfoSummary,
    ModelLoaded,
)
from model_io.generation import ChatSession
from model_io.gguf_check import GgufSummary, validate_gguf
from model_io.media import MediaKind, StreamingMediaEncoder
from model_io.memory_plan import plan_memory
from model_io.memory_usage import FootprintReading, ModelFootprint, process_rss_bytes, return_free_heap
from model_io.native import NativeModel, supports_gpu_offload
from model_io.settings import AUTO_CONTEXT, Backend, LoadSettings
from model_io.towers import EncoderFactory, MediaTowers, default_factories, inspect_projector

log = logging.getLogger("gemma_desk.engine")
EventSink = Callable[[EngineEvent], None]
Clock = Callable[[], float]


@dataclass(frozen=True)
class _Reset:
    pass


@dataclass(frozen=True)
class _Shutdown:
    pass


@dataclass(frozen=True)
class _ReleaseTowers:
    pass


_Command = LoadRequest | ChatRequest | AudioStreamFeed | _Reset | _Shutdown | _ReleaseTowers


class Engine:
    """Loads one model and runs chat requests in order, streaming events to ``sink``."""

    def __init__(
        self,
        sink: EventSink,
        *,
        clock: Clock = time.perf_counter,
        tower_factories: dict[MediaKind, EncoderFactory] | None = None,
        tower_idle_seconds: float | None = 300.0,
    ):
        self._sink = sink
        self._clock = clock
        self._tower_factories = tower_factories or default_factories()
        self._tower_idle_seconds = tower_idle_seconds
        self._towers: MediaTowers | None = None
        self._commands: queue.Queue[_Command] = queue.Queue()
        self._cancelled: set[int] = set()
        self._lock = threading.Lock()
        self._model: NativeModel | None = None
        self._footprint: ModelFootprint | None = None
        self._running: int | None = None
        self._closing = False
        self._session: ChatSession | None = None
        self._thread = threading.Thread(target=self._run, name="gemma-desk-engine", daemon=True)
        self._thread.start()

    # -- API for any thread -------------------------------------------------------------

    def load(self, request: LoadRequest) -> int:
        self._commands.put(request)
        return request.request_id

    def submit(self, request: ChatRequest) -> int:
        self._commands.put(request)
        return request.request_id

    def feed_audio(self, feed: AudioStreamFeed) -> None:
        """Queue a piece of a clip being recorded; encoded in order, ahead of any later request."""
        self._commands.put(feed)

    def cancel(self, request_id: int) -> None:
        """Stop a queued or running request; its stream ends with ``Done(..., "cancelled")``."""
        with self._lock:
            self._cancelled.add(request_id)

    def new_conversation(self) -> None:
        """Forget the KV cache before the next request (queued, so it never races a generation)."""
        self._commands.put(_Reset())

    def release_towers(self) -> None:
        """Free the vision and audio towers now (queued); they load again when next needed."""
        self._commands.put(_ReleaseTowers())

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker and free the model; requests still queued are cancelled."""
        with self._lock:
            self._cancelled.update(self._pending_ids())
            if self._running is not None:
                self._cancelled.add(self._running)
        self._closing = True  # queued audio feeds are skipped: nobody will send their clip
        self._commands.put(_Shutdown())
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- worker ---------------------------------------------------------------------------

    def _pending_ids(self) -> set[int]:
        with self._commands.mutex:
            return {c.request_id for c in self._commands.queue if isinstance(c, LoadRequest | ChatRequest)}

    def _is_cancelled(self, request_id: int) -> bool:
        with self._lock:
            return request_id in self._cancelled

    def _run(self) -> None:
        try:
            while True:
                try:
                    command = self._commands.get(timeout=self._idle_poll_seconds())
                except queue.Empty:
                    self._release_idle_towers()
                    continue
                if isinstance(command, _Shutdown):
                    return
                if isinstance(command, _Reset):
                    if self._session is not None:
                        self._session.reset()
                    continue
                if isinstance(command, AudioStreamFeed):
                    self._stream_audio(self._with_waiting_pieces(command))
                    continue
                if isinstance(command, _ReleaseTowers):
                    self._release_towers()
                    continue
                self._handle(command)
        finally:
            self._unload(0)

    def _idle_poll_seconds(self) -> float | None:
        if self._towers is None or not self._towers.loaded() or self._tower_idle_seconds is None:
            return None
        return max(0.05, self._tower_idle_seconds / 4)

    def _release_idle_towers(self) -> None:
        if self._towers is not None and self._tower_idle_seconds is not None:
            released = self._towers.release_idle(self._tower_idle_seconds)
            if released:
                log.info("released idle towers: %s", ", ".join(released))
                return_free_heap()
                self._report_memory(0)

    def _release_towers(self) -> None:
        if self._towers is not None and self._towers.loaded():
            self._towers.close()
            return_free_heap()
            self._report_memory(0)

    def tower_state(self) -> tuple[MediaKind, ...]:
        """Which towers are loaded right now (for status displays and tests)."""
        towers = self._towers
        return towers.loaded() if towers is not None else ()

    def _handle(self, request: LoadRequest | ChatRequest) -> None:
        rid = request.request_id
        with self._lock:
            self._running = rid
        try:
            if self._is_cancelled(rid):
                self._sink(Done(rid, "cancelled", ""))
            elif isinstance(request, LoadRequest):
                self._load(request)
            else:
                self._chat(request)
        except GemmaDeskError as exc:
            self._sink(EngineError(rid, _error_kind(exc), str(exc)))
        except Exception as exc:  # a bug: report it as a value, keep the engine alive
            log.exception("engine request %s failed", rid)
            self._sink(EngineError(rid, "internal", f"internal error: {type(exc).__name__}: {exc}"))
        finally:
            with self._lock:
                self._cancelled.discard(rid)
                self._running = None

    def _load(self, request: LoadRequest) -> None:
        started = self._clock()
        summary = validate_gguf(request.model_path, expect="text")
        projector = inspect_projector(Path(request.mmproj_path)) if request.mmproj_path else None
        settings = _planned_settings(_effective_settings(request.settings), summary)
        rid = request.request_id
        self._unload(rid)
        last_report = [0.0]

        def progress(fraction: float) -> bool:
            if fraction - last_report[0] >= 0.05 or fraction >= 1.0:
                last_report[0] = fraction
                self._sink(LoadProgress(rid, fraction))
            return not self._is_cancelled(rid)

        model_path = Path(request.model_path)
        model = NativeModel(model_path, settings, progress)
        if self._is_cancelled(rid):
            model.close()
            self._sink(Done(rid, "cancelled", ""))
            return
        self._model = model
        self._footprint = ModelFootprint.of(model_path, summary.tensors, summary.file_size, model.buffers)
        self._footprint.release_after_load()  # llama.cpp faulted the whole file in, PLE table included
        model.prefetch_rows = self._footprint.prefetch_rows
        self._towers = MediaTowers(projector, model, self._tower_factories)
        self._session = ChatSession(model, summary.architecture, self._clock, self._towers.encoder_for)
        info = ModelInfoSummary(
            path=Path(request.model_path),
            architecture=summary.architecture,
            n_ctx=model.n_ctx,
            n_ctx_train=int(model.metadata(f"{summary.architecture}.context_length") or 0),
            n_threads=settings.threads,
            n_gpu_layers=settings.n_gpu_layers or 0,
            gpu_offload_supported=supports_gpu_offload(),
            mmproj_path=projector.path if projector else None,
            has_vision=bool(projector and projector.has_vision),
            has_audio=bool(projector and projector.has_audio),
        )
        self._report_memory(rid)
        self._sink(ModelLoaded(rid, info, (self._clock() - started) * 1000.0))

    def _chat(self, request: ChatRequest) -> None:
        if self._session is None:
            raise ModelError("no model is loaded; load a Gemma GGUF first")
        if request.max_tokens < 1:
            raise InputError(f"max tokens must be at least 1, got {request.max_tokens}")
        rid = request.request_id
        towers_before: tuple[MediaKind, ...] | None = self._tower_state()
        try:
            for event in self._session.generate(request, lambda: self._is_cancelled(rid)):
                if towers_before is not None and self._tower_state() != towers_before:
                    self._report_memory(rid)  # a tower loaded for this request: said before its answer
                    towers_before = None
                self._sink(event)
        finally:
            if towers_before is not None and self._tower_state() != towers_before:
                self._report_memory(rid)

    def _stream_audio(self, feed: AudioStreamFeed) -> None:
        """Encode a streamed piece now; any problem only means the clip is encoded when sent."""
        towers = self._towers
        if self._closing or towers is None or towers.projector is None or not towers.projector.has_audio:
            return
        towers_before = self._tower_state()
        try:
            encoder = towers.encoder_for("audio")
            if isinstance(encoder, StreamingMediaEncoder):
                encoder.feed_stream(feed.request_id, feed.samples, final=feed.final, discard=feed.discard)
            if self._tower_state() != towers_before:
                self._report_memory(feed.request_id)
        except GemmaDeskError as exc:
            log.info("audio stream %s dropped (%s); the clip will be encoded when sent", feed.request_id, exc)
        except Exception:  # a bug: never let it take the engine down, the one-shot path still works
            log.exception("audio stream %s failed", feed.request_id)

    def _with_waiting_pieces(self, feed: AudioStreamFeed) -> AudioStreamFeed:
        """``feed`` joined with the pieces of the same clip queued right behind it.

        A block step of the tower takes every frame waiting, so after a slow step one larger
        step catches up; fed one piece at a time, the queued pieces would instead make a
        string of minimum-size steps, each paying a full pass over the weights, and the
        stream would fall further behind the speaker (measured: 0.7 s per 0.48 s step on
        2 cores, 2.6 s left at release of a 5 s clip).
        """
        pieces = [feed]
        while not pieces[-1].final and not pieces[-1].discard:
            with self._commands.mutex:  # this thread is the only consumer: the head stays put
                head = self._commands.queue[0] if self._commands.queue else None
            if not (isinstance(head, AudioStreamFeed) and head.request_id == feed.request_id) or head.discard:
                break
            pieces.append(self._commands.get_nowait())  # type: ignore[arg-type]
        if len(pieces) == 1:
            return feed
        samples = np.concatenate([np.asarray(piece.samples) for piece in pieces])
        return AudioStreamFeed(feed.request_id, samples, final=pieces[-1].final)

    def _tower_state(self) -> tuple[MediaKind, ...]:
        """Which towers hold weights now (an audio encoder reads its weights on first encode)."""
        held = self._towers.resident_bytes() if self._towers is not None else {}
        return tuple(sorted(kind for kind, size in held.items() if size > 0))

    def _report_memory(self, request_id: int) -> None:
        """Send :class:`MemoryUsage` for the model and towers as they stand now."""
        footprint = self._footprint
        reading = footprint.measure() if footprint is not None else FootprintReading(0, 0, 0, 0, 0)
        towers = self._towers.resident_bytes() if self._towers is not None else {}
        parts = (
            ("text", reading.text),
            ("per-layer embeddings", reading.ple_resident),
            ("kv cache", reading.kv_cache),
            ("compute", reading.compute),
            ("vision", towers.get("image", 0)),
            ("audio", towers.get("audio", 0)),
        )
        self._sink(MemoryUsage(request_id, parts, process_rss_bytes(), reading.ple_mapped))

    def _unload(self, request_id: int) -> None:
        """Free the model and its towers, then report memory if a model was loaded."""
        self._session = None
        loaded = self._model is not None
        if self._towers is not None:
            self._towers.close()  # towers may hold native state tied to the model: free them first
            self._towers = None
        if self._model is not None:
            self._model.close()
            self._model = None
        self._footprint = None
        if loaded:
            return_free_heap()
            self._report_memory(request_id)


def _effective_settings(settings: LoadSettings) -> LoadSettings:
    """Resolve the backend against what this llama.cpp build can do."""
    gpu = supports_gpu_offload()
    if settings.backend in (Backend.METAL, Backend.VULKAN) and not gpu:
        raise ModelError(
            f"this build of llama.cpp has no GPU support, so the {settings.backend.value} backend "
            "cannot be used; choose the CPU backend or install a GPU build"
        )
    if settings.backend is Backend.CPU or not gpu:
        return LoadSettings(
            n_ctx=settings.n_ctx,
            n_threads=settings.n_threads,
            n_gpu_layers=0,
            backend=Backend.CPU,
            n_batch=settings.n_batch,
            use_mmap=settings.use_mmap,
        )
    return settings


def _planned_settings(settings: LoadSettings, summary: GgufSummary) -> LoadSettings:
    """Fill in what the user left to the memory plan: the context size and GPU layers."""
    if settings.n_ctx != AUTO_CONTEXT and settings.n_gpu_layers is not None:
        return settings
    plan = plan_memory(summary, n_ctx=settings.n_ctx, n_ubatch=settings.n_batch)
    log.info("memory plan for %s:\n%s", summary.path.name, plan.describe())
    layers = plan.n_gpu_layers if settings.n_gpu_layers is None else settings.n_gpu_layers
    return replace(settings, n_ctx=plan.n_ctx, n_gpu_layers=layers)


def _error_kind(exc: GemmaDeskError) -> ErrorKind:
    if isinstance(exc, InputError):
        return "input"
    if isinstance(exc, ModelError):
        return "model"
    if isinstance(exc, EngineFailure):
        return "engine"
    return "internal"


class EventQueue:
    """A thread-safe sink that callers without an event loop (CLI, tests) can iterate."""

    def __init__(self) -> None:
        self._queue: queue.Queue[EngineEvent] = queue.Queue()

    def __call__(self, event: EngineEvent) -> None:
        self._queue.put(event)

    def events_for(self, request_id: int, timeout: float | None = None) -> Iterator[EngineEvent]:
        """Yield the request's events until its final one; others' events are dropped as stale."""
        while True:
            event = self._queue.get(timeout=timeout)
            if event.request_id != request_id:
                continue
            yield event
            if isinstance(event, Done | EngineError | ModelLoaded):
                return
