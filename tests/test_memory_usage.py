"""Measuring resident memory: smaps and pagemap primitives, the PLE table left mapped, MemoryUsage events.

Everything runs the real llama.cpp on the tiny synthetic Gemma 3n (and its real towers); the page-level
checks read this process's own /proc files, so they are Linux-only.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import build_in_test_cache

from model_io.engine import Engine
from model_io.events import (
    ChatRequest,
    Done,
    EngineEvent,
    LoadProgress,
    LoadRequest,
    MemoryUsage,
    ModelLoaded,
    TextDelta,
)
from model_io.gguf_check import GgufTensor, validate_gguf
from model_io.media import MediaInput
from model_io.memory_usage import (
    PAGE_SIZE,
    PLE_TENSOR,
    ModelFootprint,
    file_mappings,
    parse_buffer_sizes,
    peak_rss_bytes,
    process_rss_bytes,
    release_file_range,
    repacked_tensors,
    reset_peak_rss,
    resident_in_file_range,
)
from model_io.native import NativeModel, NativeSampler
from model_io.prompt import ChatMessage
from model_io.settings import LoadSettings, SamplingSettings

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/self/smaps and pagemap"
)
GREEDY = SamplingSettings.greedy_decoding()
PARTS = ("text", "per-layer embeddings", "kv cache", "compute", "vision", "audio")


# -- primitives -----------------------------------------------------------------------------------


@pytest.fixture
def mapped_file(tmp_path: Path) -> Iterator[tuple[Path, mmap.mmap]]:
    path = tmp_path / "data.bin"
    path.write_bytes(np.arange(64 * PAGE_SIZE // 4, dtype=np.uint32).tobytes())
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        yield path, view


@linux_only
def test_pagemap_sees_exactly_the_pages_read_and_release_gives_them_back(
    mapped_file: tuple[Path, mmap.mmap],
) -> None:
    path, view = mapped_file
    for page in range(0, 16):  # read the first 16 pages only
        assert view[page * PAGE_SIZE] is not None
    mappings = file_mappings(path)
    assert len(mappings) == 1 and mappings[0].size == 64 * PAGE_SIZE
    first = resident_in_file_range(mappings, 0, 16 * PAGE_SIZE)
    assert first == 16 * PAGE_SIZE
    # the untouched tail may have been mapped by fault-around, but never more than 16 pages of it
    tail = resident_in_file_range(mappings, 16 * PAGE_SIZE, 64 * PAGE_SIZE)
    assert tail is not None and tail <= 16 * PAGE_SIZE

    released = release_file_range(mappings, 0, 64 * PAGE_SIZE)
    assert released == 64 * PAGE_SIZE
    assert resident_in_file_range(file_mappings(path), 0, 64 * PAGE_SIZE) == 0
    # nothing is lost: the data faults back in from the page cache
    assert np.frombuffer(view[: 16 * PAGE_SIZE], dtype=np.uint32)[-1] == 16 * PAGE_SIZE // 4 - 1
    assert resident_in_file_range(file_mappings(path), 0, 16 * PAGE_SIZE)


@linux_only
def test_process_rss_follows_touched_memory_and_the_peak_can_be_reset() -> None:
    before = process_rss_bytes()
    block = np.ones(64 << 20, dtype=np.uint8)  # 64 MiB, written, so resident
    grown = process_rss_bytes()
    assert grown - before >= 60 << 20
    del block
    assert peak_rss_bytes() >= grown - (1 << 20)  # the kernel's RSS counters lag by a few pages
    assert reset_peak_rss()
    assert peak_rss_bytes() < grown - (32 << 20)


def test_buffer_sizes_are_read_from_llama_cpp_log_lines() -> None:
    lines = [
        "load_tensors:   CPU_Mapped model buffer size =  3149.81 MiB",
        "load_tensors:   CPU_REPACK model buffer size =   861.75 MiB",
        "llama_context:        CPU  output buffer size =     1.00 MiB",
        "llama_kv_cache:        CPU KV buffer size =    64.00 MiB",
        "llama_kv_cache:        CPU KV buffer size =    32.00 MiB",
        "sched_reserve:        CPU compute buffer size =   111.02 MiB",
        "~llama_context:        CPU compute buffer size is 111.0206 MiB, matches expectation of 111.0206 MiB",
        "llama_kv_cache: size =   64.00 MiB (  8192 cells,   4 layers,  1/1 seqs), K (f16):   32.00 MiB",
    ]
    buffers = parse_buffer_sizes(lines)
    assert buffers.kv == 96 << 20
    assert buffers.compute == round(111.02 * (1 << 20)) and buffers.output == 1 << 20
    assert buffers.model == {
        "CPU_Mapped": round(3149.81 * (1 << 20)),
        "CPU_REPACK": round(861.75 * (1 << 20)),
    }
    assert buffers.heap_weights == buffers.model["CPU_REPACK"]


def test_repacked_weights_are_recognised_only_when_llama_cpps_buffer_size_agrees() -> None:
    def entry(name: str, type_name: str, shape: tuple[int, ...], offset: int) -> GgufTensor:
        n = shape[0] * shape[1] if len(shape) == 2 else shape[0]
        return GgufTensor(name, type_name, shape, n, n // 2, offset)

    tensors = [
        entry("blk.0.ffn_up.weight", "Q4_K", (2048, 8192), 0),  # repacked
        entry("blk.0.ffn_down.weight", "Q6_K", (8192, 2048), 1 << 24),  # Q6_K: not on x86
        entry("blk.0.attn_k.weight", "Q4_K", (2048, 260), 1 << 25),  # 260 rows: not a multiple of 8
        entry("token_embd.weight", "Q4_K", (2048, 262144), 1 << 26),  # input layer: never repacked
        entry("blk.0.attn_norm.weight", "Q4_K", (2048,), 1 << 27),  # not a matrix
    ]
    (only,) = repacked_tensors(tensors, 2048 * 8192 // 2 + 32)  # llama.cpp's size, aligned
    assert only.name == "blk.0.ffn_up.weight" and only.end - only.start == 2048 * 8192 // 2
    assert repacked_tensors(tensors, 0) == []  # nothing was repacked (e.g. another CPU): assume nothing
    assert repacked_tensors(tensors, 3 << 20) == []  # a different rule was at work


# -- the PLE table stays mapped --------------------------------------------------------------------


@pytest.fixture
def private_model(tiny_model: Path, tmp_path: Path) -> Path:
    """A copy no other process maps, so page-cache eviction and residency are this test's own."""
    copy = Path(shutil.copy(tiny_model, tmp_path / "model.gguf"))
    with open(copy, "rb+") as handle:
        os.fsync(handle.fileno())  # dirty pages cannot be evicted from the page cache
    return copy


@linux_only
def test_ple_table_is_resident_after_loading_then_only_the_rows_decoding_reads(private_model: Path) -> None:
    summary = validate_gguf(private_model, expect="text")
    ple = next(t for t in summary.tensors if t.name == PLE_TENSOR)
    model = NativeModel(private_model, LoadSettings(n_ctx=1024, n_threads=2))
    try:
        footprint = ModelFootprint.of(private_model, summary.tensors, summary.file_size, model.buffers)
        loaded = footprint.measure()
        assert loaded.ple_mapped == ple.n_bytes
        assert loaded.ple_resident >= ple.n_bytes * 0.99  # llama.cpp mapped the file with MAP_POPULATE

        assert footprint.release_after_load() >= ple.n_bytes - 2 * PAGE_SIZE
        assert footprint.measure().ple_resident <= 2 * PAGE_SIZE  # only the pages it shares at its ends

        tokens = model.tokenize("The quick brown fox jumps over the lazy dog", add_bos=True)
        assert model.decode(tokens, 0, lambda: False)
        with NativeSampler(GREEDY, 0, model.n_vocab) as sampler:
            for position in range(len(tokens), len(tokens) + 8):
                token = sampler.sample(model)
                tokens.append(token)
                assert model.decode([token], position, lambda: False)
        rows = len(set(tokens[:-1]))  # the last sampled token was decoded too
        after = footprint.measure()
        assert 0 < after.ple_resident <= (rows + 1) * 16 * PAGE_SIZE  # at most one fault-around window a row
        assert after.ple_resident < ple.n_bytes / 20
        assert after.text > 0 and after.kv_cache == model.buffers.kv > 0
    finally:
        model.close()


def page_cache_residency(address: int, length: int) -> np.ndarray:
    """mincore(2): which pages of a mapped range are in the page cache (mapped here or not)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
    start = address // PAGE_SIZE * PAGE_SIZE
    pages = (address + length - start + PAGE_SIZE - 1) // PAGE_SIZE
    vector = (ctypes.c_ubyte * pages)()
    assert libc.mincore(ctypes.c_void_p(start), ctypes.c_size_t(pages * PAGE_SIZE), vector) == 0
    return np.array(vector, dtype=np.uint8) & 1


@linux_only
def test_ple_rows_of_a_batch_are_read_ahead_of_the_decode(private_model: Path) -> None:
    summary = validate_gguf(private_model, expect="text")
    table = next(t for t in summary.tensors if t.name == PLE_TENSOR)
    row = table.n_bytes // table.shape[1]
    model = NativeModel(private_model, LoadSettings(n_ctx=1024, n_threads=2))
    try:
        footprint = ModelFootprint.of(private_model, summary.tensors, summary.file_size, model.buffers)
        footprint.release_after_load()
        (holder,) = [m for m in file_mappings(private_model) if m.covers(table.offset, table.offset + 1)]
        base = holder.address_of(table.offset)
        tokens = [1000, 50_000, 200_000, 262_000]
        assert not any(page_cache_residency(base + t * row, row).any() for t in tokens)  # evicted
        footprint.prefetch_rows(tokens)
        deadline = time.monotonic() + 10
        while not all(page_cache_residency(base + t * row, row).all() for t in tokens):
            assert time.monotonic() < deadline, "the rows were not read ahead"
            time.sleep(0.01)
        assert footprint.measure().ple_resident <= 2 * PAGE_SIZE  # read into the cache, not mapped in yet
        assert not page_cache_residency(base + 130_000 * row, row).any()  # and nothing else
    finally:
        model.close()


# -- MemoryUsage events from the real engine ---------------------------------------------------------


class Recorder:
    """A sink keeping every event, with a wait for the one that satisfies a condition."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []
        self._changed = threading.Condition()

    def __call__(self, event: EngineEvent) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait_for(self, found: Callable[[EngineEvent], bool], start: int, timeout: float = 120) -> int:
        """Index of the first event from ``start`` on for which ``found`` holds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(start, len(self.events)):
                    if found(self.events[index]):
                        return index
                left = deadline - time.monotonic()
                assert left > 0, f"timed out; events: {self.events[start:]}"
                self._changed.wait(left)

    def request(self, request_id: int, start: int) -> list[EngineEvent]:
        """The events of one request, once it has finished."""
        self.wait_for(lambda e: e.request_id == request_id and isinstance(e, Done | ModelLoaded), start)
        return [e for e in self.events[start:] if e.request_id == request_id]


@pytest.fixture(scope="module")
def projector() -> Path:
    from model_io.synth.mmproj import cached_mmproj

    return build_in_test_cache(lambda: cached_mmproj("tiny"))


def memory(events: list[EngineEvent]) -> list[MemoryUsage]:
    return [e for e in events if isinstance(e, MemoryUsage)]


def parts(event: MemoryUsage) -> dict[str, int]:
    assert tuple(name for name, _ in event.parts) == PARTS
    return dict(event.parts)


def picture() -> MediaInput:
    return MediaInput("image", np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8))


def clip() -> MediaInput:
    return MediaInput("audio", (np.random.default_rng(4).standard_normal(16_000) * 0.1).astype(np.float32))


def test_memory_is_reported_after_load_tower_loads_release_and_unload(
    tiny_model: Path, projector: Path
) -> None:
    recorder = Recorder()
    engine = Engine(recorder, tower_idle_seconds=None)
    try:
        load = LoadRequest(tiny_model, LoadSettings(n_ctx=1024, n_threads=2), mmproj_path=projector)
        engine.load(load)
        events = recorder.request(load.request_id, 0)
        kinds = [type(e) for e in events if not isinstance(e, LoadProgress)]
        assert kinds == [MemoryUsage, ModelLoaded]  # the report comes before the final event
        (loaded,) = memory(events)
        held = parts(loaded)
        summary = validate_gguf(tiny_model)
        ple_bytes = next(t.n_bytes for t in summary.tensors if t.name == PLE_TENSOR)
        assert loaded.mapped_bytes == ple_bytes
        assert 0 < held["text"] <= summary.file_size - ple_bytes + PAGE_SIZE
        assert held["per-layer embeddings"] < ple_bytes / 4
        assert held["kv cache"] > 0 and held["compute"] > 0
        assert held["vision"] == held["audio"] == 0
        assert loaded.process_rss_bytes > held["text"]

        start = len(recorder.events)
        image_chat = ChatRequest((ChatMessage("user", (picture(), "What is this?")),), GREEDY, max_tokens=3)
        engine.submit(image_chat)
        events = recorder.request(image_chat.request_id, start)
        (after_vision,) = memory(events)
        first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta | Done))
        assert events.index(after_vision) < first_text  # reported before the answer streams
        assert parts(after_vision)["vision"] > 0 and parts(after_vision)["audio"] == 0

        start = len(recorder.events)
        engine.new_conversation()
        audio_chat = ChatRequest((ChatMessage("user", (clip(), "Transcribe.")),), GREEDY, max_tokens=3)
        engine.submit(audio_chat)
        (after_audio,) = memory(recorder.request(audio_chat.request_id, start))
        assert (
            parts(after_audio)["audio"] > 0 and parts(after_audio)["vision"] == parts(after_vision)["vision"]
        )

        start = len(recorder.events)
        text_chat = ChatRequest((ChatMessage("user", "And now?"),), GREEDY, max_tokens=3)
        engine.submit(text_chat)
        assert memory(recorder.request(text_chat.request_id, start)) == []  # nothing changed

        start = len(recorder.events)
        engine.release_towers()
        released = recorder.events[recorder.wait_for(lambda e: isinstance(e, MemoryUsage), start)]
        assert isinstance(released, MemoryUsage) and released.request_id == 0
        assert parts(released)["vision"] == parts(released)["audio"] == 0
        assert parts(released)["text"] > 0

        start = len(recorder.events)
        reload = LoadRequest(tiny_model, LoadSettings(n_ctx=1024, n_threads=2))
        engine.load(reload)
        unloaded, loaded_again = memory(recorder.request(reload.request_id, start))
        assert set(parts(unloaded).values()) == {0} and unloaded.mapped_bytes == 0
        assert parts(loaded_again)["text"] > 0 and loaded_again.mapped_bytes == ple_bytes
    finally:
        start = len(recorder.events)
        engine.close()
    closed = memory(recorder.events[start:])
    assert len(closed) == 1 and closed[0].request_id == 0 and set(parts(closed[0]).values()) == {0}


def test_idle_release_of_a_tower_is_reported(tiny_model: Path, projector: Path) -> None:
    recorder = Recorder()
    engine = Engine(recorder, tower_idle_seconds=0.3)
    try:
        load = LoadRequest(tiny_model, LoadSettings(n_ctx=1024, n_threads=2), mmproj_path=projector)
        engine.load(load)
        recorder.request(load.request_id, 0)
        start = len(recorder.events)
        chat = ChatRequest((ChatMessage("user", (picture(), "What is this?")),), GREEDY, max_tokens=2)
        engine.submit(chat)
        assert parts(memory(recorder.request(chat.request_id, start))[0])["vision"] > 0
        start = len(recorder.events)
        index = recorder.wait_for(
            lambda e: isinstance(e, MemoryUsage) and e.request_id == 0, start, timeout=30
        )
        idle = recorder.events[index]
        assert isinstance(idle, MemoryUsage) and parts(idle)["vision"] == 0
        assert engine.tower_state() == ()
    finally:
        engine.close()
