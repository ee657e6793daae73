"""AudioEncoder: the Gemma 3n processor's prompt layout for a clip, and the rows that fill it.

Token ids come from the real Gemma 3n vocabulary (the tiny synthetic text model
carries it), so the ids asserted here are what llama.cpp will see.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_io.audio import AudioEncoder, AudioTower
from model_io.errors import InputError
from model_io.media import EmbeddingRun, MediaEncoder, MediaInput
from model_io.synth.audio_tower import write_audio_mmproj

START_OF_AUDIO, END_OF_AUDIO, AUDIO_SOFT_TOKEN, NEWLINES_2 = 256_000, 262_272, 262_273, 108


@pytest.fixture(scope="module")
def vocab(tiny_model: Path):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(tiny_model), vocab_only=True, verbose=False)
    yield llm
    llm.close()


@pytest.fixture(scope="module")
def tokenize(vocab):
    return lambda text: vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False)


@pytest.fixture(scope="module")
def mmproj(tmp_path_factory) -> Path:
    return write_audio_mmproj("tiny", tmp_path_factory.mktemp("enc") / "tiny.gguf")


def speech_like(seconds: float) -> MediaInput:
    t = np.arange(round(seconds * 16_000)) / 16_000
    wave = (0.3 * np.sin(2 * np.pi * 180 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    return MediaInput("audio", wave, label="clip.wav")


def test_special_token_ids_are_the_vocabularys(vocab):
    def ids(text: str) -> list[int]:
        return vocab.tokenize(text.encode(), add_bos=False, special=True)

    assert ids("<start_of_audio>") == [START_OF_AUDIO]
    assert ids("<end_of_audio>") == [END_OF_AUDIO]
    assert ids("<audio_soft_token>") == [AUDIO_SOFT_TOKEN]
    assert ids("\n\n") == [NEWLINES_2]


def test_layout_is_the_hf_processor_expansion(mmproj, tokenize):
    encoder: MediaEncoder = AudioEncoder(mmproj, tokenize)
    assert encoder.kind == "audio"
    media = speech_like(4.2)
    layout = encoder.layout(media)
    assert layout == (
        (NEWLINES_2, START_OF_AUDIO),
        EmbeddingRun(key=f"audio:{media.digest}", n_rows=189),
        (NEWLINES_2,),
    )
    assert isinstance(encoder, AudioEncoder) and not encoder.tower.loaded, "layout must not load the tower"


def test_layout_as_text_wrappers_for_the_prompt_builder(mmproj):
    """tokenize=None: "\\n\\n" stays text, so the builder tokenizes it with its neighbours as HF does."""
    media = speech_like(1.0)
    assert AudioEncoder(mmproj, None).layout(media) == (
        "\n\n",
        (START_OF_AUDIO,),
        EmbeddingRun(key=f"audio:{media.digest}", n_rows=189),
        "\n\n",
    )


def test_encode_returns_the_189_rows_of_the_run(mmproj, tokenize):
    tower = AudioTower(mmproj)
    encoder = AudioEncoder(mmproj, tokenize, tower=tower)
    media = speech_like(4.2)
    rows = encoder.encode(media)
    assert rows.shape == (189, 64) and rows.dtype == np.float32
    np.testing.assert_array_equal(rows, tower.clip_rows(media.payload))
    pad, end = tower.special_rows()
    n_real = 27  # 4.2 s
    assert (
        not (rows[n_real - 1] == pad).all() and (rows[n_real:188] == pad).all() and (rows[188] == end).all()
    )
    assert encoder.encode(media) is rows, "the last clip's rows are reused"


def test_clips_over_30_s_are_split_into_30_s_blocks(mmproj, tokenize):
    encoder = AudioEncoder(mmproj, tokenize)
    media = speech_like(65.0)
    layout = encoder.layout(media)
    runs = [s for s in layout if isinstance(s, EmbeddingRun)]
    assert [r.key for r in runs] == [f"audio:{media.digest}:{i}" for i in range(3)]
    assert all(r.n_rows == 189 for r in runs)
    assert layout[:3] == ((NEWLINES_2, START_OF_AUDIO), runs[0], (NEWLINES_2,))
    rows = encoder.encode(media)
    assert rows.shape == (3 * 189, 64)
    np.testing.assert_array_equal(rows[189:378], encoder.tower.clip_rows(media.payload[480_000:960_000]))


def test_release_frees_the_tower_and_reports_ram(mmproj, tokenize):
    encoder = AudioEncoder(mmproj, tokenize)
    assert encoder.resident_bytes == 0
    first = encoder.encode(speech_like(2.0))
    assert encoder.resident_bytes > encoder.tower.resident_bytes > 0
    encoder.release()
    assert encoder.resident_bytes == 0 and not encoder.tower.loaded
    np.testing.assert_array_equal(encoder.encode(speech_like(2.0)), first)


def test_wrong_media_is_an_input_error(mmproj, tokenize):
    encoder = AudioEncoder(mmproj, tokenize)
    with pytest.raises(InputError, match="image"):
        encoder.layout(MediaInput("image", np.zeros((4, 4, 3), dtype=np.uint8)))
    with pytest.raises(InputError, match=r"clip\.wav"):
        encoder.layout(MediaInput("audio", np.zeros(0, dtype=np.float32), label="clip.wav"))


@pytest.mark.slow
def test_rows_feed_the_tiny_text_model_as_embeddings(tiny_model: Path, mmproj, tokenize):
    """The layout and rows drop into llama.cpp's Gemma 3n graph: one embedding batch of 189 rows."""
    import ctypes

    import llama_cpp

    encoder = AudioEncoder(mmproj, tokenize)
    media = speech_like(3.0)
    before, run, after = encoder.layout(media)
    assert isinstance(before, tuple) and isinstance(run, EmbeddingRun) and isinstance(after, tuple)
    rows = np.ascontiguousarray(encoder.encode(media))
    llm = llama_cpp.Llama(model_path=str(tiny_model), n_ctx=512, n_batch=256, verbose=False)
    try:
        assert llama_cpp.llama_model_n_embd_inp(llm._model.model) == rows.shape[1]
        llm.eval([2, 105, *tokenize("user"), *before])
        batch = llama_cpp.llama_batch_init(run.n_rows, rows.shape[1], 1)
        try:
            batch.n_tokens = run.n_rows
            ctypes.memmove(batch.embd, rows.ctypes.data, rows.nbytes)
            for i in range(run.n_rows):
                batch.pos[i] = llm.n_tokens + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 0
            assert llama_cpp.llama_decode(llm._ctx.ctx, batch) == 0
        finally:
            llama_cpp.llama_batch_free(batch)
        start = llm.n_tokens
        llm.input_ids[start : start + run.n_rows] = [AUDIO_SOFT_TOKEN] * 188 + [END_OF_AUDIO]
        llm.n_tokens += run.n_rows
        llm.eval([*after, 106, 107, 105, *tokenize("model\n")])
        assert np.isfinite(llm.scores[llm.n_tokens - 1]).all()
    finally:
        llm.close()


def _pieces(wave: np.ndarray, size: int) -> list[np.ndarray]:
    return [wave[i : i + size] for i in range(0, len(wave), size)]


def test_a_streamed_clip_is_ready_when_sent_and_equals_one_shot(mmproj, monkeypatch):
    media = speech_like(2.3)
    want = AudioEncoder(mmproj, None).encode(media)
    encoder = AudioEncoder(mmproj, None)
    for piece in _pieces(media.payload, 1600):
        encoder.feed_stream(7, piece, final=False)
    encoder.feed_stream(7, np.zeros(0, np.float32), final=True)

    def no_encoding(*_args: object) -> np.ndarray:
        raise AssertionError("the streamed clip was encoded again")

    monkeypatch.setattr(encoder.tower, "clip_rows", no_encoding)
    got = encoder.encode(MediaInput("audio", np.concatenate(_pieces(media.payload, 1600))))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)  # BLAS sums in other block sizes
    with pytest.raises(AssertionError, match="encoded again"):
        encoder.encode(speech_like(1.0))  # any other clip is encoded as usual


def test_discarded_or_replaced_streams_leave_nothing_behind(mmproj, monkeypatch):
    media = speech_like(1.2)
    encoder = AudioEncoder(mmproj, None)
    encoder.feed_stream(1, media.payload[:8000], final=False)
    encoder.feed_stream(1, media.payload[8000:], final=False, discard=True)
    encoder.feed_stream(2, media.payload[:4000], final=False)
    encoder.feed_stream(3, media.payload, final=True)  # stream 2 is abandoned for 3
    calls = []
    real = encoder.tower.clip_rows
    monkeypatch.setattr(encoder.tower, "clip_rows", lambda wave: calls.append(len(wave)) or real(wave))
    encoder.encode(media)
    assert calls == []  # stream 3 was the whole clip
    encoder.encode(MediaInput("audio", media.payload[:4000]))
    assert calls == [4000]  # stream 2 never finished, so its clip is encoded when sent


def test_a_stream_longer_than_30_s_is_refused_and_dropped(mmproj):
    encoder = AudioEncoder(mmproj, None)
    encoder.feed_stream(4, np.zeros(16_000 * 29, np.float32), final=False)
    with pytest.raises(InputError, match="at most 30 s"):
        encoder.feed_stream(4, np.zeros(16_000 * 2, np.float32), final=False)
    assert encoder._stream is None
