"""Media in the engine: layout, encode-once caching, KV reuse across turns, tower lifetime.

The towers are replaced by a deterministic fake encoder (the real ones have their own tests);
llama.cpp is real, so embedding injection, positions and cache bookkeeping are exercised for real.
"""

from __future__ import annotations

import time
from pathlib import Path

import llama_cpp as ll
import numpy as np
import pytest
from engine_helpers import LoadedEngine
from gguf_fixtures import write_tiny_clip

from model_io.engine import Engine, EventQueue
from model_io.events import ChatRequest, Done, EngineError, EngineEvent, LoadRequest, ModelLoaded, Stats
from model_io.generation import ChatSession, prompt_spans
from model_io.media import AbortCheck, EmbeddingRun, EncodeCancelled, MediaInput, MediaKind, Segment
from model_io.native import NativeModel
from model_io.prompt import ChatMessage
from model_io.settings import LoadSettings, SamplingSettings

GREEDY = SamplingSettings.greedy_decoding()
ROWS = 8


class FakeEncoder:
    """Gemma-3n-shaped layout with a short embedding run; rows derived from the content digest."""

    def __init__(self, kind: MediaKind, n_embd: int, calls: list[str]):
        self.kind = kind
        self.n_embd = n_embd
        self.calls = calls
        self.closed = False

    def layout(self, media: MediaInput) -> tuple[Segment, ...]:
        start, end = (255999, 262144) if self.kind == "image" else (256000, 262272)
        return ("\n\n", (start,), EmbeddingRun(f"{self.kind}:{media.digest}", ROWS), (end,), "\n\n")

    def encode(self, media: MediaInput, abort_check: AbortCheck | None = None) -> np.ndarray:
        if abort_check is not None and abort_check():
            raise EncodeCancelled("cancelled")
        self.calls.append(media.digest)
        rng = np.random.default_rng(int(media.digest[:8], 16))
        return rng.standard_normal((ROWS, self.n_embd)).astype(np.float32)

    def close(self) -> None:
        self.closed = True


class Towers:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.built: list[FakeEncoder] = []

    def factory(self, kind: MediaKind):  # type: ignore[no-untyped-def]
        def make(_path: Path, model: NativeModel) -> FakeEncoder:
            encoder = FakeEncoder(kind, model.n_embd, self.calls)
            self.built.append(encoder)
            return encoder

        return make


def picture(seed: int) -> MediaInput:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return MediaInput("image", pixels, label=f"picture{seed}.png")


def start_engine(
    model: Path, projector: Path | None, towers: Towers, idle: float | None = None
) -> LoadedEngine:
    loaded = LoadedEngine.__new__(LoadedEngine)
    loaded.model_path = model
    loaded.events = EventQueue()
    factories = {"image": towers.factory("image"), "audio": towers.factory("audio")}
    loaded.engine = Engine(loaded.events, tower_factories=factories, tower_idle_seconds=idle)  # type: ignore[arg-type]
    request = LoadRequest(model, LoadSettings(n_ctx=2048, n_threads=2), mmproj_path=projector)
    loaded.engine.load(request)
    final = list(loaded.events.events_for(request.request_id, timeout=120))[-1]
    assert isinstance(final, ModelLoaded), final
    return loaded


def run(loaded: LoadedEngine, messages: tuple[ChatMessage, ...], max_tokens: int = 6) -> list[EngineEvent]:
    request = ChatRequest(messages, GREEDY, max_tokens=max_tokens)
    loaded.engine.submit(request)
    return list(loaded.events.events_for(request.request_id, timeout=120))


@pytest.fixture
def projector(tmp_path: Path) -> Path:
    return write_tiny_clip(tmp_path / "mmproj.gguf", vision=True, audio=True)


def test_follow_up_turn_reencodes_nothing_and_prefills_only_new_tokens(
    tiny_model: Path, projector: Path
) -> None:
    towers = Towers()
    loaded = start_engine(tiny_model, projector, towers)
    try:
        turn1 = (ChatMessage("user", (picture(1), "What is in this picture?")),)
        events1 = run(loaded, turn1)
        stats1 = events1[-2].stats  # type: ignore[union-attr]
        answer = events1[-1]
        assert isinstance(answer, Done) and stats1.image_encode_ms > 0
        assert stats1.prompt_tokens > ROWS and len(towers.calls) == 1
        turn2 = (*turn1, ChatMessage("assistant", answer.text), ChatMessage("user", "And the colours?"))
        events2 = run(loaded, turn2)
        stats2 = events2[-2].stats  # type: ignore[union-attr]
        assert len(towers.calls) == 1, "the image was encoded again"
        assert stats2.image_encode_ms == 0
        assert stats2.prompt_tokens_prefilled == stats2.prompt_tokens - (
            stats1.prompt_tokens + stats1.generated_tokens - 1
        )
    finally:
        loaded.engine.close()


def test_cached_prefix_gives_the_same_logits_as_a_full_prefill(tiny_model: Path) -> None:
    """Turn 2 evaluated on top of turn 1's cache must match evaluating its whole prompt at once."""
    calls: list[str] = []
    model = NativeModel(tiny_model, LoadSettings(n_ctx=2048, n_threads=2))
    try:
        encoder = FakeEncoder("image", model.n_embd, calls)
        session = ChatSession(model, "gemma3n", encoder_for=lambda kind: encoder)
        turn1 = (ChatMessage("user", (picture(1), "What is in this picture?")),)
        done = list(session.generate(ChatRequest(turn1, GREEDY, max_tokens=5), lambda: False))[-1]
        assert isinstance(done, Done)
        turn2 = (*turn1, ChatMessage("assistant", done.text), ChatMessage("user", "And the colours?"))
        list(session.generate(ChatRequest(turn2, GREEDY, max_tokens=1), lambda: False))
        incremental = last_logits(model)
        items = list(session.kv_tokens)
        rows = encoder.encode(picture(1))
        model.clear_memory()
        for span in prompt_spans(items, 0):
            first = items[span.start]
            if isinstance(first, int):
                model.decode([int(t) for t in items[span]], span.start, lambda: False)  # type: ignore[arg-type]
            else:
                model.decode_embeddings(
                    rows[first[1] : first[1] + len(items[span])], span.start, lambda: False
                )
        full = last_logits(model)
    finally:
        model.close()
    assert int(np.argmax(incremental)) == int(np.argmax(full))
    assert float(np.abs(incremental - full).max()) < 0.05


def last_logits(model: NativeModel) -> np.ndarray:
    pointer = ll.llama_get_logits_ith(model.ctx, -1)
    return np.ctypeslib.as_array(pointer, shape=(model.n_vocab,)).copy()


def test_images_change_the_answer_and_their_order_matters(tiny_model: Path, projector: Path) -> None:
    towers = Towers()
    loaded = start_engine(tiny_model, projector, towers)
    try:
        texts = []
        for parts in [("Compare", picture(1), picture(2)), ("Compare", picture(2), picture(1)), ("Compare",)]:
            loaded.engine.new_conversation()
            done = run(loaded, (ChatMessage("user", parts),), max_tokens=8)[-1]
            assert isinstance(done, Done)
            texts.append(done.text)
        assert len(set(texts)) == 3
        assert len(set(towers.calls)) == 2
    finally:
        loaded.engine.close()


def test_audio_and_image_in_one_turn(tiny_model: Path, projector: Path) -> None:
    towers = Towers()
    loaded = start_engine(tiny_model, projector, towers)
    try:
        clip = MediaInput("audio", np.linspace(-0.5, 0.5, 16000, dtype=np.float32), label="clip.wav")
        events = run(loaded, (ChatMessage("user", (clip, picture(3), "Describe both")),))
        stats = events[-2]
        assert (
            isinstance(stats, Stats) and stats.stats.audio_encode_ms > 0 and stats.stats.image_encode_ms > 0
        )
        assert sorted(e.kind for e in towers.built) == ["audio", "image"]
    finally:
        loaded.engine.close()


def test_media_without_projector_is_a_clear_input_error(tiny_model: Path) -> None:
    loaded = start_engine(tiny_model, None, Towers())
    try:
        (error,) = run(loaded, (ChatMessage("user", (picture(1), "hi")),))
        assert isinstance(error, EngineError) and error.kind == "input" and "mmproj" in error.message
    finally:
        loaded.engine.close()


def test_projector_without_audio_tower_refuses_audio(tiny_model: Path, tmp_path: Path) -> None:
    vision_only = write_tiny_clip(tmp_path / "vision-only.gguf", vision=True, audio=False)
    loaded = start_engine(tiny_model, vision_only, Towers())
    try:
        clip = MediaInput("audio", np.zeros(8000, dtype=np.float32))
        (error,) = run(loaded, (ChatMessage("user", (clip, "hi")),))
        assert isinstance(error, EngineError) and "no audio tower" in error.message
    finally:
        loaded.engine.close()


def test_text_model_given_as_projector_is_refused(tiny_model: Path) -> None:
    events = EventQueue()
    engine = Engine(events)
    try:
        request = LoadRequest(tiny_model, LoadSettings(n_ctx=1024), mmproj_path=tiny_model)
        engine.load(request)
        (error,) = list(events.events_for(request.request_id, timeout=60))
        assert isinstance(error, EngineError) and error.kind == "model" and "not a projector" in error.message
    finally:
        engine.close()


def test_towers_load_on_first_use_and_are_released_when_idle(tiny_model: Path, projector: Path) -> None:
    towers = Towers()
    loaded = start_engine(tiny_model, projector, towers, idle=0.3)
    try:
        run(loaded, (ChatMessage("user", "text only"),))
        assert loaded.engine.tower_state() == () and towers.built == []
        run(loaded, (ChatMessage("user", (picture(4), "look")),))
        assert loaded.engine.tower_state() == ("image",)
        deadline = time.monotonic() + 5
        while loaded.engine.tower_state() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert loaded.engine.tower_state() == () and towers.built[0].closed
    finally:
        loaded.engine.close()


class SlowEncoder(FakeEncoder):
    """Takes up to 5 s, polling the abort check like the real towers do between steps."""

    def encode(self, media: MediaInput, abort_check: AbortCheck | None = None) -> np.ndarray:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if abort_check is not None and abort_check():
                raise EncodeCancelled("cancelled")
            time.sleep(0.01)
        return super().encode(media)


def test_cancel_during_a_long_encode(tiny_model: Path, projector: Path) -> None:
    calls: list[str] = []
    slow = {"image": lambda _p, model: SlowEncoder("image", model.n_embd, calls)}
    events = EventQueue()
    engine = Engine(events, tower_factories=slow)  # type: ignore[arg-type]
    try:
        load = LoadRequest(tiny_model, LoadSettings(n_ctx=1024, n_threads=2), mmproj_path=projector)
        engine.load(load)
        list(events.events_for(load.request_id, timeout=60))
        request = ChatRequest((ChatMessage("user", (picture(9), "look")),), GREEDY, max_tokens=4)
        engine.submit(request)
        time.sleep(0.3)
        started = time.monotonic()
        engine.cancel(request.request_id)
        final = list(events.events_for(request.request_id, timeout=10))[-1]
        assert isinstance(final, Done) and final.finish_reason == "cancelled"
        assert time.monotonic() - started < 0.5 and calls == []
    finally:
        engine.close()


def test_real_towers_reuse_the_cache_on_follow_up(tiny_model: Path, tmp_path: Path) -> None:
    """The real mtmd vision and NumPy audio towers behind the same KV bookkeeping."""
    from model_io.synth.mmproj import write_mmproj_for

    projector = write_mmproj_for("tiny", tmp_path / "mmproj.gguf")
    events = EventQueue()
    engine = Engine(events)
    try:
        load = LoadRequest(tiny_model, LoadSettings(n_ctx=2048, n_threads=2), mmproj_path=projector)
        engine.load(load)
        loaded = list(events.events_for(load.request_id, timeout=60))[-1]
        assert isinstance(loaded, ModelLoaded) and loaded.info.has_vision and loaded.info.has_audio
        clip = MediaInput("audio", (np.sin(np.arange(24000) / 9) * 0.3).astype(np.float32), label="hum")
        turn1 = (ChatMessage("user", (picture(5), clip, "What do you see and hear?")),)
        first = ChatRequest(turn1, GREEDY, max_tokens=4)
        engine.submit(first)
        events1 = list(events.events_for(first.request_id, timeout=120))
        stats1, done = events1[-2], events1[-1]
        assert isinstance(stats1, Stats) and isinstance(done, Done)
        assert stats1.stats.image_encode_ms > 0 and stats1.stats.audio_encode_ms > 0
        turn2 = (*turn1, ChatMessage("assistant", done.text), ChatMessage("user", "Say more."))
        second = ChatRequest(turn2, GREEDY, max_tokens=2)
        engine.submit(second)
        stats2 = list(events.events_for(second.request_id, timeout=120))[-2]
        assert isinstance(stats2, Stats)
        assert stats2.stats.image_encode_ms == 0 and stats2.stats.audio_encode_ms == 0
        cached = stats1.stats.prompt_tokens + stats1.stats.generated_tokens - 1
        assert stats2.stats.prompt_tokens_prefilled == stats2.stats.prompt_tokens - cached
        assert set(engine.tower_state()) == {"image", "audio"}
    finally:
        engine.close()
