"""The NumPy audio tower: token counts, shapes, lifecycle, storage types and bad projector files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter
from gguf.quants import dequantize, quantize
from gguf_fixtures import write_tiny_clip

from model_io.audio import AudioTower, embed_clip, log_mel, n_audio_tokens, n_mel_frames
from model_io.audio.weights import load_audio_weights
from model_io.errors import InputError, ModelFileError, UnsupportedModelError
from model_io.synth.audio_tower import add_audio_metadata, write_audio_mmproj

Q = GGMLQuantizationType


@pytest.fixture(scope="module")
def tiny_mmproj(tmp_path_factory) -> Path:
    return write_audio_mmproj("tiny", tmp_path_factory.mktemp("mmproj") / "tiny.gguf")


@pytest.fixture(scope="module")
def tower(tiny_mmproj) -> AudioTower:
    return AudioTower(tiny_mmproj)


def clip(seconds: float, seed: int = 0) -> np.ndarray:
    n = round(seconds * 16_000)
    t = np.arange(n) / 16_000
    noise = np.random.default_rng(seed).standard_normal(n) * 0.02
    return (0.3 * np.sin(2 * np.pi * 330 * t) + noise).astype(np.float32)


# --------------------------------------------------------------------------- shapes and token counts


@pytest.mark.parametrize(
    ("seconds", "frames", "tokens"),
    [(1, 97, 7), (5, 497, 32), (30, 2997, 188), (0.5, 48, 3), (2.3456, 232, 15)],
)
def test_token_counts_follow_the_extractor_and_two_stride_2_convs(tower, seconds, frames, tokens):
    wave = clip(seconds)
    assert log_mel(wave).shape == (frames, 128) and n_mel_frames(len(wave)) == frames
    assert n_audio_tokens(len(wave)) == tokens
    rows = tower.embed(wave)
    assert rows.shape == (tokens, 64) and rows.dtype == np.float32
    assert tower.encode(wave).shape == (tokens, 64)
    # the embedder ends in a weightless RMSNorm: every row has RMS 1
    np.testing.assert_allclose(np.sqrt((rows**2).mean(axis=1)), 1.0, atol=1e-4)


def test_clip_shorter_than_one_frame_is_padded_to_one_token(tower):
    assert tower.embed(clip(0.01)).shape == (1, 64)


def test_clip_rows_always_189(tower):
    for seconds in (0.2, 7.0, 30.0):
        rows = tower.clip_rows(clip(seconds))
        assert rows.shape == (189, 64) and rows.flags.c_contiguous
        n = n_audio_tokens(round(seconds * 16_000))
        pad, end = tower.special_rows()
        assert (rows[n:188] == pad).all() and (rows[188] == end).all()
        assert not np.allclose(pad, end)


def test_outputs_are_deterministic_and_independent_of_earlier_clips(tower):
    a = tower.embed(clip(3.0, seed=1))
    tower.embed(clip(11.0, seed=2))
    np.testing.assert_array_equal(a, tower.embed(clip(3.0, seed=1)))


@pytest.mark.parametrize(
    ("wave", "message"),
    [
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.zeros((2, 16_000), dtype=np.float32), "mono"),
        (np.zeros(480_001, dtype=np.float32), "30 s"),
        (np.full(16_000, np.nan, dtype=np.float32), "finite"),
        (np.zeros(16_000, dtype=np.int16), "floating"),
    ],
)
def test_bad_waveforms_are_input_errors(tower, wave, message):
    with pytest.raises(InputError, match=message):
        tower.embed(wave)


def test_embed_clip_is_a_one_shot_tower(tiny_mmproj, tower):
    wave = clip(2.0)
    np.testing.assert_array_equal(embed_clip(tiny_mmproj, wave), tower.embed(wave))


# --------------------------------------------------------------------------- lifecycle


def test_loads_on_first_use_releases_and_reloads(tiny_mmproj):
    tower = AudioTower(tiny_mmproj)
    assert not tower.loaded and tower.resident_bytes == 0
    first = tower.embed(clip(1.5))
    assert tower.loaded
    held = tower.resident_bytes
    # tiny: ≈ 214k parameters as float32 (linear_pos folded into 13 precomputed rows per layer)
    assert 700_000 < held < tiny_mmproj.stat().st_size
    tower.release()
    assert not tower.loaded and tower.resident_bytes == 0
    np.testing.assert_array_equal(tower.embed(clip(1.5)), first)
    assert tower.resident_bytes == held


def test_float16_storage_halves_the_matrices(tiny_mmproj):
    full, half = AudioTower(tiny_mmproj), AudioTower(tiny_mmproj, weight_dtype=np.float16)
    wave = clip(4.0)
    a, b = full.embed(wave), half.embed(wave)
    assert half.resident_bytes < 0.6 * full.resident_bytes
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.9999


def test_dims_are_inferred_from_tensor_shapes(tiny_mmproj, tmp_path):
    tower = AudioTower(write_audio_mmproj("tiny-q8", tmp_path / "q8.gguf"))
    assert (tower.dims.d_model, tower.dims.n_layer, tower.dims.n_head, tower.dims.conv_kernel) == (
        96,
        3,
        2,
        3,
    )
    assert tower.dims.sscp_channels == (8, 16) and tower.n_embd == 64 and tower.dims.d_ffn == 384


# --------------------------------------------------------------------------- storage types


def _reader_arrays(path: Path) -> dict[str, np.ndarray]:
    reader = GGUFReader(path)
    return {
        t.name: dequantize(np.asarray(t.data), t.tensor_type).reshape(tuple(reversed(t.shape.tolist())))
        for t in reader.tensors
    }


def _rewrite(src: Path, dst: Path, qtype: GGMLQuantizationType | None, drop: str = "") -> Path:
    """The tiny mmproj with every matrix re-stored as ``qtype`` (None: as is), optionally minus a tensor."""
    writer = GGUFWriter(dst, "clip")
    writer.add_type("mmproj")
    writer.add_clip_has_vision_encoder(False)
    add_audio_metadata(writer, "tiny")
    for name, array in _reader_arrays(src).items():
        if name == drop:
            continue
        values = np.ascontiguousarray(array, dtype=np.float32)
        if qtype is None or values.ndim < 2 or values.shape[-1] % 32:
            writer.add_tensor(name, values)
        else:
            writer.add_tensor(name, quantize(values, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


@pytest.mark.parametrize("qtype", [Q.F16, Q.BF16, Q.Q8_0])
def test_each_storage_type_is_dequantized_exactly_once_at_load(tiny_mmproj, tmp_path, qtype):
    path = _rewrite(tiny_mmproj, tmp_path / f"{qtype.name}.gguf", qtype)
    reference = _reader_arrays(tiny_mmproj)

    def stored(name: str) -> np.ndarray:
        values = reference[name].astype(np.float32)
        return dequantize(quantize(values, qtype), qtype).reshape(values.shape)

    weights = load_audio_weights(path)
    d = weights.dims.d_model
    np.testing.assert_array_equal(weights.layers[1].qkv[d : 2 * d], stored("a.blk.1.attn_k.weight"))
    np.testing.assert_array_equal(weights.layers[0].ffn_end.down, stored("a.blk.0.ffn_down_1.weight"))
    np.testing.assert_array_equal(weights.sscp.proj, stored("a.pre_encode.out.weight"))
    np.testing.assert_array_equal(weights.embedder.projection, stored("mm.a.input_projection.weight"))
    assert all(layer.qkv.dtype == np.float32 for layer in weights.layers)

    a, b = AudioTower(tiny_mmproj).embed(clip(3.0)), AudioTower(path).embed(clip(3.0))
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.999


# --------------------------------------------------------------------------- bad projector files


def test_missing_sscp_norm_names_the_converter_gap(tiny_mmproj, tmp_path):
    path = _rewrite(tiny_mmproj, tmp_path / "no-norm.gguf", None, drop="a.conv1d.1.norm.weight")
    with pytest.raises(ModelFileError, match=r"a\.conv1d\.1\.norm\.weight.*§4\.4"):
        AudioTower(path).embed(clip(1.0))


def test_missing_block_tensor_is_a_model_error(tiny_mmproj, tmp_path):
    path = _rewrite(tiny_mmproj, tmp_path / "no-conv.gguf", None, drop="a.blk.1.conv_pw2.weight")
    with pytest.raises(ModelFileError, match=r"a\.blk\.1\.conv_pw2\.weight"):
        load_audio_weights(path)


def test_vision_only_projector_is_refused(tmp_path):
    path = write_tiny_clip(tmp_path / "vision.gguf", vision=True, audio=False)
    with pytest.raises(UnsupportedModelError, match="no audio encoder"):
        AudioTower(path).load()


def test_other_audio_projector_type_is_refused(tmp_path):
    path = write_tiny_clip(tmp_path / "other.gguf", vision=False, audio=True, legacy_projector="ultravox")
    with pytest.raises(UnsupportedModelError, match="gemma3na"):
        load_audio_weights(path)


def test_text_model_is_refused(tiny_model):
    with pytest.raises(UnsupportedModelError, match="not a vision/audio projector"):
        load_audio_weights(tiny_model)


def test_missing_file_is_a_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        AudioTower(tmp_path / "absent.gguf").load()
