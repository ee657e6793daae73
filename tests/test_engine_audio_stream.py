"""Push-to-talk streaming through the engine: pieces encoded while recording, the clip ready when sent."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import CountingAudio

from model_io.audio import AudioEncoder
from model_io.engine import Engine, EventQueue
from model_io.events import AudioStreamFeed, ChatRequest, Done, EngineError, LoadRequest, ModelLoaded, Stats
from model_io.media import MediaInput
from model_io.native import NativeModel
from model_io.prompt import ChatMessage
from model_io.settings import LoadSettings, SamplingSettings

GREEDY = SamplingSettings.greedy_decoding()


@pytest.fixture(scope="module")
def projector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model_io.synth.mmproj import write_mmproj_for

    return write_mmproj_for("tiny", tmp_path_factory.mktemp("stream") / "mmproj.gguf")


def start(model: Path, projector: Path | None, audio: CountingAudio) -> tuple[Engine, EventQueue]:
    events = EventQueue()
    engine = Engine(events, tower_factories={"audio": audio})  # type: ignore[dict-item]
    load = LoadRequest(model, LoadSettings(n_ctx=2048, n_threads=2), mmproj_path=projector)
    engine.load(load)
    assert isinstance(list(events.events_for(load.request_id, timeout=60))[-1], ModelLoaded)
    return engine, events


Outcome = tuple[Stats | EngineError, Done | EngineError]


def ask(engine: Engine, events: EventQueue, clip: MediaInput) -> Outcome:
    request = ChatRequest((ChatMessage("user", (clip, "What do you hear?")),), GREEDY, max_tokens=6)
    engine.submit(request)
    got = list(events.events_for(request.request_id, timeout=120))
    return got[-2], got[-1]  # type: ignore[return-value]


def hum(seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * 16_000)) / 16_000
    return (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 2 * t)).astype(np.float32)


def stream(engine: Engine, stream_id: int, wave: np.ndarray, block: int = 1600) -> MediaInput:
    pieces = [wave[i : i + block] for i in range(0, len(wave), block)]
    for piece in pieces:
        engine.feed_audio(AudioStreamFeed(stream_id, piece))
    engine.feed_audio(AudioStreamFeed(stream_id, np.zeros(0, np.float32), final=True))
    return MediaInput("audio", np.concatenate(pieces), label="recording")


def test_streamed_clip_is_not_encoded_again_and_answers_like_one_shot(tiny_model: Path, projector: Path):
    audio = CountingAudio()
    engine, events = start(tiny_model, projector, audio)
    try:
        wave = hum(2.2)
        streamed_stats, streamed = ask(engine, events, stream(engine, 101, wave))
        assert isinstance(streamed, Done) and isinstance(streamed_stats, Stats), streamed
        assert audio.one_shot == 0, "the streamed clip was encoded again when sent"
        engine.new_conversation()
        other = wave.copy()
        other[0] += 1e-3  # another clip's digest: encoded in one go
        one_shot_stats, one_shot = ask(engine, events, MediaInput("audio", other))
        assert isinstance(one_shot, Done) and isinstance(one_shot_stats, Stats)
        assert audio.one_shot == 1
        assert streamed_stats.stats.audio_encode_ms < one_shot_stats.stats.audio_encode_ms
        engine.new_conversation()
        _, again = ask(engine, events, MediaInput("audio", wave))  # the same clip, from the tower's cache
        assert isinstance(again, Done) and again.text == streamed.text
    finally:
        engine.close()


def test_streamed_and_one_shot_clips_give_the_same_answer(tiny_model: Path, projector: Path):
    audio = CountingAudio()
    engine, events = start(tiny_model, projector, audio)
    try:
        wave = hum(1.7)
        _, one_shot = ask(engine, events, MediaInput("audio", wave))
        engine.new_conversation()
        _, streamed = ask(engine, events, stream(engine, 7, wave[::-1].copy()))  # evict the cached clip
        engine.new_conversation()
        _, streamed = ask(engine, events, stream(engine, 8, wave, block=2400))
        assert audio.one_shot == 1
        assert isinstance(one_shot, Done) and isinstance(streamed, Done)
        assert streamed.text == one_shot.text
    finally:
        engine.close()


class GatedAudio(CountingAudio):
    """Records the encoder's stream calls; the first one waits for ``gate``, as a slow block step would."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, int, bool, bool]] = []
        self.gate = threading.Event()

    def __call__(self, path: Path, model: NativeModel) -> AudioEncoder:
        encoder = super().__call__(path, model)
        real = encoder.feed_stream

        def recorded(stream_id: int, samples: np.ndarray, *, final: bool, discard: bool = False) -> None:
            self.calls.append((stream_id, len(samples), final, discard))
            if len(self.calls) == 1:
                self.gate.wait(30)
            real(stream_id, samples, final=final, discard=discard)

        encoder.feed_stream = recorded  # type: ignore[method-assign]
        return encoder


def test_pieces_waiting_behind_a_slow_step_are_encoded_in_one_step(tiny_model: Path, projector: Path) -> None:
    audio = GatedAudio()
    engine, events = start(tiny_model, projector, audio)
    try:
        wave = hum(2.0)
        pieces = [wave[i : i + 1600] for i in range(0, len(wave), 1600)]
        engine.feed_audio(AudioStreamFeed(5, pieces[0]))
        deadline = time.monotonic() + 30
        while not audio.calls and time.monotonic() < deadline:  # the engine thread is inside the first step
            time.sleep(0.01)
        for piece in pieces[1:]:
            engine.feed_audio(AudioStreamFeed(5, piece))
        engine.feed_audio(AudioStreamFeed(5, np.zeros(0, np.float32), final=True))
        engine.feed_audio(AudioStreamFeed(6, hum(0.3)))  # the next clip: never merged into this one
        engine.feed_audio(AudioStreamFeed(6, hum(0.3), discard=True))
        audio.gate.set()
        _, done = ask(engine, events, MediaInput("audio", wave))
        assert isinstance(done, Done), done
        rest = len(wave) - len(pieces[0])
        assert audio.calls == [(5, 1600, False, False), (5, rest, True, False), (6, 4800, False, False),
                               (6, 4800, False, True)]  # fmt: skip
        assert audio.one_shot == 0, "the merged pieces did not make up the clip that was sent"
    finally:
        audio.gate.set()
        engine.close()


def test_feeds_without_an_audio_tower_are_ignored_and_the_turn_explains(tiny_model: Path):
    engine, events = start(tiny_model, None, CountingAudio())
    try:
        clip = stream(engine, 5, hum(0.5))
        request = ChatRequest((ChatMessage("user", (clip, "What do you hear?")),), GREEDY, max_tokens=6)
        engine.submit(request)
        got = list(events.events_for(request.request_id, timeout=60))
        assert len(got) == 1 and isinstance(got[0], EngineError) and "projector" in got[0].message
        assert engine.alive
    finally:
        engine.close()
