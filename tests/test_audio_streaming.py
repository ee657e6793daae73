"""Streaming audio encode (push-to-talk) and the fast paths under it.

``StreamingAudioEncoder`` must give exactly what one-shot ``AudioTower.clip_rows`` gives
for the whole waveform, however the samples arrive; the compact 16-bit weight storage,
the widening products, the thread team and the chunked SSCP/conformer must equal their
plain float32 counterparts.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter
from gguf.quants import dequantize, quantize

from model_io.audio import AudioTower, n_audio_tokens
from model_io.audio import conformer as conf
from model_io.audio.features import log_mel, log_mel_frames, n_complete_frames, prepare_waveform
from model_io.audio.streaming import StreamingAudioEncoder
from model_io.audio.weights import BF16_BITS, COMPACT, load_audio_weights, storage_name, widen
from model_io.errors import InputError
from model_io.synth.audio_tower import add_audio_metadata, write_audio_mmproj

Q = GGMLQuantizationType
TOLERANCE = 1e-5  # streaming vs one-shot, max |Δ| over the 189 rows (RMS 1 each)


@pytest.fixture(scope="module")
def mmprojs(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("stream-mmproj")
    return {p: write_audio_mmproj(p, out / f"{p}.gguf") for p in ("tiny", "tiny-q8")}


@pytest.fixture(scope="module")
def towers(mmprojs) -> dict[str, AudioTower]:
    return {p: AudioTower(path) for p, path in mmprojs.items()}


def clip(n_samples: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n_samples) / 16_000
    noise = np.random.default_rng(seed).standard_normal(n_samples) * 0.05
    return (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t) + noise).astype(np.float32)


def stream(
    tower: AudioTower, wave: np.ndarray, sizes, min_frames: int = 12, feed_budget: float | None = 1.0
) -> np.ndarray:
    encoder = StreamingAudioEncoder(tower, min_frames=min_frames, feed_budget=feed_budget)
    start = 0
    for size in sizes:
        encoder.feed(wave[start : start + size])
        start += size
        if start >= len(wave):
            break
    if start < len(wave):
        encoder.feed(wave[start:])
    return encoder.finish()


def irregular(n: int, seed: int) -> list[int]:
    """Random feed sizes from 0 samples to ~0.4 s, as an audio callback queue would hand them over."""
    rng = np.random.default_rng(seed)
    sizes, total = [], 0
    while total < n:
        size = int(rng.choice([0, 1, 7, 127, 160, 513, 1600, 4000, 6400]))
        sizes.append(size)
        total += size
    return sizes


# --------------------------------------------------------------------------- streaming == one-shot

LENGTHS = [1, 300, 512, 513, 640, 641, 1000, 2047, 8000, 16_000, 16_127, 37_529, 80_000]


@pytest.mark.parametrize("n", LENGTHS)
def test_streaming_equals_one_shot_for_irregular_feeds(towers, n):
    tower = towers["tiny"]
    wave = clip(n, seed=n)
    want = tower.clip_rows(wave)
    got = stream(tower, wave, irregular(n, seed=n))
    assert got.shape == (189, 64) and got.dtype == np.float32 and got.flags.c_contiguous
    assert float(np.abs(got - want).max()) <= TOLERANCE


@pytest.mark.parametrize("min_frames", [1, 5, 12, 10_000])
@pytest.mark.parametrize("block", [1600, 4096])
def test_chunk_size_does_not_change_the_rows(towers, min_frames, block):
    tower = towers["tiny"]
    wave = clip(51_234, seed=3)
    want = tower.clip_rows(wave)
    got = stream(tower, wave, [block] * 40, min_frames=min_frames)
    assert float(np.abs(got - want).max()) <= TOLERANCE


def test_other_shapes_and_quantised_weights_stream_exactly(towers):
    """tiny-q8: 2 heads, depthwise kernel 3, (8, 16) SSCP channels, Q8_0 matrices."""
    tower = towers["tiny-q8"]
    for n in (700, 23_456, 64_000):
        wave = clip(n, seed=n)
        got = stream(tower, wave, irregular(n, seed=1))
        assert float(np.abs(got - tower.clip_rows(wave)).max()) <= TOLERANCE


def test_thirty_seconds_streamed_in_real_time_blocks(towers):
    tower = towers["tiny"]
    wave = clip(480_000, seed=5)
    got = stream(tower, wave, [1600] * 300)
    assert float(np.abs(got - tower.clip_rows(wave)).max()) <= TOLERANCE


@pytest.mark.parametrize("feed_budget", [None, 0.0, 1e9])
def test_a_feed_budget_only_moves_work_to_later(towers, feed_budget):
    """A zero budget does one block step per feed; the rest waits for later feeds or finish."""
    tower = towers["tiny"]
    wave = clip(48_000, seed=6)
    encoder = StreamingAudioEncoder(tower, min_frames=4, feed_budget=feed_budget)
    for start in range(0, len(wave), 1600):
        encoder.feed(wave[start : start + 1600])
    if feed_budget == 0.0:
        assert encoder.frames_queued > 0
    else:
        assert encoder.frames_queued < 4 * 2  # at most the frames waiting for the next sweep
    assert float(np.abs(encoder.finish() - tower.clip_rows(wave)).max()) <= TOLERANCE
    assert encoder.frames_queued == 0


def test_work_is_done_while_feeding(towers):
    """Only the tail is left at release: rows are computed as audio arrives."""
    encoder = StreamingAudioEncoder(towers["tiny"], min_frames=12, feed_budget=None)
    wave = clip(160_000)
    for start in range(0, len(wave), 1600):
        encoder.feed(wave[start : start + 1600])
    # 10 s: 63 real rows in all; everything but the last chunk and the padded end is done
    assert n_audio_tokens(len(wave)) == 63
    assert encoder.rows_ready >= 63 - 5
    assert encoder.frames_encoded >= 250 - 15
    assert encoder.n_samples == 160_000 and encoder.remaining_samples == 320_000
    rows = encoder.finish()
    assert encoder.finished and rows.shape == (189, 64)


def test_streaming_with_two_threads_equals_one_thread(mmprojs):
    wave = clip(40_000, seed=9)
    one, two = AudioTower(mmprojs["tiny"], threads=1), AudioTower(mmprojs["tiny"], threads=2)
    a = stream(one, wave, irregular(len(wave), 2))
    b = stream(two, wave, irregular(len(wave), 3))
    assert float(np.abs(a - b).max()) <= TOLERANCE
    assert float(np.abs(a - one.clip_rows(wave)).max()) <= TOLERANCE


def test_tower_release_mid_stream_is_harmless(mmprojs):
    tower = AudioTower(mmprojs["tiny"], threads=2)
    wave = clip(30_000, seed=4)
    want = tower.clip_rows(wave)
    encoder = StreamingAudioEncoder(tower, min_frames=3)
    encoder.feed(wave[:15_000])
    tower.release()  # e.g. the idle-tower manager; the next step reloads
    encoder.feed(wave[15_000:])
    assert float(np.abs(encoder.finish() - want).max()) <= TOLERANCE


# --------------------------------------------------------------------------- streaming errors


def test_more_than_thirty_seconds_is_refused_without_consuming(towers):
    encoder = StreamingAudioEncoder(towers["tiny"])
    wave = clip(480_000)
    encoder.feed(wave[:479_000])
    with pytest.raises(InputError, match="30 s"):
        encoder.feed(np.zeros(1001, dtype=np.float32))
    encoder.feed(wave[479_000:])
    assert encoder.remaining_samples == 0
    assert float(np.abs(encoder.finish() - towers["tiny"].clip_rows(wave)).max()) <= TOLERANCE


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.zeros((2, 100), dtype=np.float32), "mono"),
        (np.full(100, np.inf, dtype=np.float32), "finite"),
        (np.zeros(100, dtype=np.int16), "floating"),
    ],
)
def test_bad_samples_are_input_errors(towers, samples, message):
    encoder = StreamingAudioEncoder(towers["tiny"])
    with pytest.raises(InputError, match=message):
        encoder.feed(samples)
    assert encoder.n_samples == 0


def test_empty_clip_and_reuse_after_finish(towers):
    encoder = StreamingAudioEncoder(towers["tiny"])
    encoder.feed(np.zeros(0, dtype=np.float32))
    with pytest.raises(InputError, match="empty"):
        encoder.finish()
    encoder.feed(clip(2000))
    encoder.finish()
    with pytest.raises(RuntimeError, match="finished"):
        encoder.feed(clip(10))
    with pytest.raises(RuntimeError, match="finished"):
        encoder.finish()


def test_float64_samples_are_accepted(towers):
    wave = clip(9000, seed=2)
    got = stream(towers["tiny"], wave.astype(np.float64), [3000, 3000, 3000])
    assert float(np.abs(got - towers["tiny"].clip_rows(wave)).max()) <= TOLERANCE


# --------------------------------------------------------------------------- the pieces


def test_log_mel_frames_compose_the_whole_clip():
    wave = prepare_waveform(clip(12_345))
    mel = log_mel(wave)
    total = n_complete_frames(len(wave))
    assert total == len(mel)
    pieces = [log_mel_frames(wave, i, min(5, total - i)) for i in range(0, total, 5)]
    np.testing.assert_array_equal(np.concatenate(pieces), mel)
    assert log_mel_frames(wave, 3, 0).shape == (0, 128)
    with pytest.raises(ValueError, match="not enough samples"):
        log_mel_frames(wave[:600], 0, 2)


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 1000])
def test_subsample_stream_equals_one_shot(towers, piece):
    weights = towers["tiny"].load()
    mel = log_mel(clip(23_000, seed=piece))
    want = conf.subsample(mel, weights.sscp)
    stream_ = conf.SubsampleStream(weights.sscp, block_rows=4)
    got = [stream_.push(mel[i : i + piece]) for i in range(0, len(mel), piece)]
    got.append(stream_.push(mel[:0], final=True))
    got = np.concatenate(got)
    assert got.shape == want.shape == (math.ceil(math.ceil(len(mel) / 2) / 2), 64)
    assert float(np.abs(got - want).max()) <= 1e-5
    with pytest.raises(RuntimeError, match="finished"):
        stream_.push(mel[:1])


def test_cumulative_group_norm_continues_across_chunks():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((17, 6, 3)).astype(np.float32)
    weight = rng.standard_normal(3).astype(np.float32)
    whole = conf.cumulative_group_norm(x.copy(), weight)
    norm = conf._CumulativeNorm(weight)
    parts = np.concatenate([norm(x[:5].copy()), norm(x[5:6].copy()), norm(x[6:].copy())])
    np.testing.assert_array_equal(parts, whole)


def test_conformer_chunks_equal_one_pass(towers):
    weights = towers["tiny"].load()
    x = np.random.default_rng(1).standard_normal((61, 64)).astype(np.float32)
    whole = conf.conformer_chunk(x, weights, conf.EncoderState(weights.dims), reduce=False)
    state = conf.EncoderState(weights.dims)
    parts = [conf.conformer_chunk(x[i : i + 9], weights, state, reduce=False) for i in range(0, 61, 9)]
    assert state.frames == 61
    assert float(np.abs(np.concatenate(parts) - whole).max()) <= 1e-5
    # reduce keeps absolute frames 0, 4, 8, ... whatever the chunk boundaries
    state = conf.EncoderState(weights.dims)
    kept = [conf.conformer_chunk(x[i : i + 7], weights, state) for i in range(0, 61, 7)]
    assert float(np.abs(np.concatenate(kept) - whole[::4]).max()) <= 1e-5


def test_one_shot_block_matches_a_plain_transcription(towers):
    """The fast block (team, caches, fused steps) against the textbook formulas on a whole clip."""
    weights = towers["tiny"].load()
    layer = weights.layers[0]
    x = np.random.default_rng(2).standard_normal((30, 64)).astype(np.float32)
    got = conf.conformer_block(x, layer, team=conf.Team(2))
    assert float(np.abs(got - _plain_block(x, layer)).max()) <= 1e-5


def _plain_block(x: np.ndarray, layer) -> np.ndarray:
    def norm(v, w=None):
        out = v / np.sqrt((v.astype(np.float64) ** 2).mean(-1, keepdims=True) + 1e-6)
        return out * w if w is not None else out

    def silu(v):
        return v / (1 + np.exp(-v))

    def ffn(v, f):
        return v + 0.5 * norm(silu(norm(v, f.pre_norm) @ f.up.T) @ f.down.T, f.post_norm)

    t, d = x.shape
    n_head, head_dim = d // layer.q_scale.shape[0], layer.q_scale.shape[0]
    x = ffn(x.astype(np.float64), layer.ffn_start)
    qkv = norm(x, layer.attn_norm) @ layer.qkv.T
    q = qkv[:, :d].reshape(t, n_head, head_dim) * layer.q_scale
    k, v = qkv[:, d : 2 * d].reshape(t, n_head, head_dim), qkv[:, 2 * d :].reshape(t, n_head, head_dim)
    att = np.zeros((t, n_head, head_dim))
    for i in range(t):
        js = list(range(max(0, i - 12), i + 1))
        logits = np.einsum("nh,jnh->nj", q[i], k[js]) + np.einsum(
            "nh,jnh->nj", q[i], layer.rel[[12 - (i - j) for j in js]]
        )
        logits = 50 * np.tanh(logits / 50)
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        att[i] = np.einsum("nj,jnh->nh", p, v[js])
    x = x + norm(att.reshape(t, d) @ layer.attn_out.T, layer.attn_post_norm)
    h = norm(x, layer.conv_pre_norm) @ layer.conv_start.T
    gated = h[:, :d] / (1 + np.exp(-h[:, d:]))
    kernel = layer.conv_dw.shape[0]
    padded = np.concatenate([np.zeros((kernel - 1, d)), gated])
    conv = sum(padded[j : j + t] * layer.conv_dw[j] for j in range(kernel))
    x = x + silu(norm(conv, layer.conv_norm)) @ layer.conv_end.T
    x = ffn(x, layer.ffn_end)
    return norm(x, layer.final_norm)


# --------------------------------------------------------------------------- compact weights and products


def _reader_arrays(path: Path) -> dict[str, np.ndarray]:
    return {
        t.name: dequantize(np.asarray(t.data), t.tensor_type).reshape(tuple(reversed(t.shape.tolist())))
        for t in GGUFReader(path).tensors
    }


def _rewrite(src: Path, dst: Path, qtype: GGMLQuantizationType) -> Path:
    """The tiny mmproj with every matrix re-stored as ``qtype``."""
    writer = GGUFWriter(dst, "clip")
    writer.add_type("mmproj")
    writer.add_clip_has_vision_encoder(False)
    add_audio_metadata(writer, "tiny")
    for name, array in _reader_arrays(src).items():
        values = np.ascontiguousarray(array, dtype=np.float32)
        if values.ndim < 2 or values.shape[-1] % 32:
            writer.add_tensor(name, values)
        else:
            writer.add_tensor(name, quantize(values, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


@pytest.mark.parametrize(("qtype", "held"), [(Q.F16, "float16"), (Q.BF16, "bfloat16"), (Q.Q8_0, "float32")])
def test_compact_storage_keeps_the_file_precision_exactly(mmprojs, tmp_path, qtype, held):
    path = _rewrite(mmprojs["tiny"], tmp_path / f"{qtype.name}.gguf", qtype)
    compact = load_audio_weights(path, dtype=COMPACT)
    full = load_audio_weights(path)
    layer, reference = compact.layers[1], full.layers[1]
    assert storage_name(layer.ffn_start.up) == storage_name(layer.qkv) == held
    for got, want in ((layer.qkv, reference.qkv), (layer.ffn_end.down, reference.ffn_end.down)):
        np.testing.assert_array_equal(widen(got), want)
    np.testing.assert_array_equal(widen(compact.embedder.projection), full.embedder.projection)
    if held != "float32":
        assert compact.nbytes < 0.6 * full.nbytes
    wave = clip(20_000)
    a = AudioTower(path, weight_dtype=COMPACT).clip_rows(wave)
    b = AudioTower(path, weight_dtype=np.float32).clip_rows(wave)
    assert float(np.abs(a - b).max()) <= 1e-5
    got = stream(AudioTower(path), wave, irregular(len(wave), 4))
    assert float(np.abs(got - b).max()) <= 1e-5


def test_unknown_weight_dtype_is_refused(mmprojs):
    with pytest.raises(ValueError, match="compact"):
        load_audio_weights(mmprojs["tiny"], dtype="bfloat16")
    with pytest.raises(ValueError, match="compact"):
        load_audio_weights(mmprojs["tiny"], dtype=np.float64)


def _awkward_float16() -> np.ndarray:
    """float16 values of every kind the widening must get right (no inf/nan: weights are finite)."""
    bits = np.arange(0, 1 << 16, dtype=np.uint32).astype(np.uint16)
    values = bits.view(np.float16)
    return values[np.isfinite(values)]


@pytest.mark.parametrize("opencv", [True, False])
def test_widen_into_is_exact(monkeypatch, opencv):
    if not opencv:
        monkeypatch.setattr(conf, "_cv2_searched", True)
        monkeypatch.setattr(conf, "_cv2_add", None)
    half = _awkward_float16()  # includes ±0, subnormals, the largest finite values
    n = len(half) // 64 * 64
    src = half[:n].reshape(64, -1)
    dst = np.empty(src.shape, dtype=np.float32)
    conf.widen_into(src, dst)
    want = src.astype(np.float32)
    np.testing.assert_array_equal(dst, want)  # -0.0 may come back as +0.0: equal, and harmless
    # strided source rows (a column block of a wider matrix)
    dst2 = np.empty((64, 100), dtype=np.float32)
    conf.widen_into(src[:, 7:107], dst2)
    np.testing.assert_array_equal(dst2, want[:, 7:107])
    bf16 = (
        np.random.default_rng(0).standard_normal((5, 33)).astype(np.float32).view(np.uint32) >> 16
    ).astype(np.uint16)
    out = np.empty(bf16.shape, dtype=np.float32)
    conf.widen_into(bf16, out)
    np.testing.assert_array_equal(out, (bf16.astype(np.uint32) << 16).view(np.float32))
    assert bf16.dtype == BF16_BITS


@pytest.mark.parametrize(("n", "k"), [(300, 40), (40, 3000), (7, 5), (2048, 64)])
@pytest.mark.parametrize("storage", ["float16", "bfloat16"])
def test_matmul_t_widens_in_blocks_exactly(monkeypatch, n, k, storage):
    monkeypatch.setattr(conf, "WIDEN_BLOCK_ELEMENTS", 4096)  # many blocks, both block directions
    rng = np.random.default_rng(n + k)
    w32 = rng.standard_normal((n, k)).astype(np.float32)
    w = w32.astype(np.float16) if storage == "float16" else (w32.view(np.uint32) >> 16).astype(np.uint16)
    x = rng.standard_normal((9, k)).astype(np.float32)
    want = x @ widen(w).T
    out = np.full((9, n + 10), np.nan, dtype=np.float32)
    conf.matmul_t(x, w, out[:, 3 : 3 + n])
    np.testing.assert_allclose(out[:, 3 : 3 + n], want, rtol=1e-5, atol=1e-4)
    assert np.isnan(out[:, :3]).all() and np.isnan(out[:, 3 + n :]).all()
    part = np.empty((9, 4), dtype=np.float32)
    conf.matmul_t(x, w, part, 2, 6, epilogue=conf.silu)
    np.testing.assert_allclose(part, conf.silu(want[:, 2:6].copy()), rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------- threads


def test_team_splits_cover_the_range_and_raise_errors():
    team = conf.Team(3)
    try:
        assert team.bounds(10) == [(0, 3), (3, 6), (6, 10)]
        assert team.bounds(1536, 64) == [(0, 512), (512, 1024), (1024, 1536)]
        assert team.bounds(2) == [(0, 1), (1, 2)]
        assert team.bounds(100, 64) == [(0, 64), (64, 100)]
        seen = np.zeros(1000, dtype=int)

        def mark(lo: int, hi: int) -> None:
            seen[lo:hi] += 1

        team.run(mark, 1000, 8)
        assert (seen == 1).all()

        def fail(lo: int, hi: int) -> None:
            if lo > 0:
                raise ValueError("part failed")

        with pytest.raises(ValueError, match="part failed"):
            team.run(fail, 30)
    finally:
        team.close()
    assert team.size == 1
    team.run(mark, 1000)  # a closed team runs serially
    assert (seen == 2).all()


def test_team_buffers_are_reused_and_dropped_on_close():
    team = conf.Team(2)
    a = team.buffer("x", (4, 8))
    b = team.buffer("x", (2, 8))
    assert np.shares_memory(a, b) and b.shape == (2, 8)
    assert not np.shares_memory(a, team.buffer("y", (4, 8)))
    bigger = team.buffer("x", (10, 8))  # grows
    assert bigger.shape == (10, 8) and team.buffer_bytes >= 10 * 8 * 4
    team.close()
    assert team.buffer_bytes == 0
    serial = conf.SERIAL
    assert not np.shares_memory(serial.buffer("x", (3,)), serial.buffer("x", (3,)))


def test_blas_threads_is_restored():
    lib = conf.openblas()
    if lib is None:
        pytest.skip("NumPy's BLAS is not OpenBLAS here")
    before = lib.threads
    with conf.blas_threads(1):
        assert lib.threads == 1
        with conf.blas_threads(1):
            assert lib.threads == 1
        assert lib.threads == 1
    assert lib.threads == before


def test_thread_counts_agree(mmprojs):
    wave = clip(33_000, seed=8)
    rows = [AudioTower(mmprojs["tiny-q8"], threads=t).clip_rows(wave) for t in (1, 2, 3)]
    assert float(np.abs(rows[0] - rows[1]).max()) <= 1e-5
    assert float(np.abs(rows[0] - rows[2]).max()) <= 1e-5
    assert 1 <= conf.default_threads() <= 8
