"""The synthetic MobileNet-V5 mmproj and the mtmd-backed VisionEncoder, on real llama.cpp."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import build_in_test_cache
from gguf_fixtures import write_tiny_clip

from model_io.errors import EngineFailure, InputError, ModelError, ModelFileError
from model_io.gguf_check import validate_gguf
from model_io.images import image_from_frame
from model_io.media import EmbeddingRun, MediaInput
from model_io.native import NativeModel
from model_io.settings import LoadSettings
from model_io.synth.vision_tower import (
    VISION_PRESETS,
    cached_vision_mmproj,
    parameter_count,
    vision_tensor_plan,
    write_vision_mmproj,
)
from model_io.vision import EncodeCancelled, VisionEncoder

START_OF_IMAGE, END_OF_IMAGE = 255999, 262144


@pytest.fixture(scope="session")
def tiny_mmproj() -> Path:
    """The tiny synthetic vision mmproj (≈100 KB), built once into the shared test cache."""
    return build_in_test_cache(lambda: cached_vision_mmproj("tiny"))


@pytest.fixture(scope="module")
def text_model(tiny_model: Path) -> Iterator[NativeModel]:
    model = NativeModel(tiny_model, LoadSettings(n_ctx=512, n_threads=2))
    yield model
    model.close()


@pytest.fixture(scope="module")
def encoder(tiny_mmproj: Path, text_model: NativeModel) -> Iterator[VisionEncoder]:
    with VisionEncoder(tiny_mmproj, text_model, n_threads=2) as vision:
        yield vision


def _picture(seed: int, height: int = 480, width: int = 640) -> MediaInput:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return image_from_frame(pixels, f"picture {seed}", order="rgb")


# -- the synthetic tower -------------------------------------------------------------------------------


def test_tiny_mmproj_is_a_complete_vision_only_clip_file(tiny_mmproj: Path) -> None:
    summary = validate_gguf(tiny_mmproj, expect="mmproj")
    kv = summary.kv
    assert summary.architecture == "clip"
    assert kv["clip.has_vision_encoder"] is True and kv["clip.has_audio_encoder"] is False
    assert kv["clip.vision.projector_type"] == "gemma3nv"
    assert (kv["clip.vision.image_size"], kv["clip.vision.patch_size"]) == (768, 3)
    assert kv["clip.vision.embedding_length"] == kv["clip.vision.projection_dim"] == 64
    assert summary.array_lengths["clip.vision.image_mean"] == 3
    types = {t.name: t.type_name for t in summary.tensors}
    assert types["v.conv_stem.conv.weight"] == "F32" and types["v.conv_stem.conv.bias"] == "F32"
    assert types["mm.input_projection.weight"] == "F16" and types["v.blk.1.0.dw_mid.conv.weight"] == "F16"
    assert types["v.blk.2.2.layer_scale.gamma"] == "F32" and types["v.msfa.norm.weight"] == "F32"


def test_tiny_tower_uses_every_block_kind_the_graph_builds(tiny_mmproj: Path) -> None:
    names = {t.name for t in validate_gguf(tiny_mmproj).tensors}
    expected = {
        "v.blk.0.0.conv_exp.weight",  # edge residual, stride 2
        "v.blk.0.1.bn2.weight",  # edge residual with skip
        "v.blk.1.0.dw_start.conv.weight",  # UIR with start and mid depthwise
        "v.blk.1.1.dw_start.bn.weight",  # UIR with only a start depthwise
        "v.blk.2.1.pw_exp.conv.weight",  # UIR with neither (e1)
        "v.blk.2.2.attn.key.down_conv.weight",  # MQA with key/value down-sampling
        "v.blk.3.1.attn.query.proj.weight",  # MQA without
        "v.msfa.ffn.pw_proj.conv.weight",
        "mm.embedding.weight",
        "mm.soft_emb_norm.weight",
    }
    assert expected <= names
    assert "v.blk.3.1.attn.key.down_conv.weight" not in names
    assert "v.blk.2.1.dw_mid.conv.weight" not in names


def test_full_presets_are_the_300m_tower() -> None:
    plan = {t.name: t for t in vision_tensor_plan("e2b")}
    assert vision_tensor_plan("e2b") == vision_tensor_plan("e4b")
    assert 2.9e8 < parameter_count("e2b") < 3.0e8
    blocks = {tuple(name.split(".")[2:4]) for name in plan if name.startswith("v.blk.")}
    per_stage = [sum(1 for stage, _ in blocks if stage == str(s)) for s in range(4)]
    assert per_stage == [3, 5, 37, 39]
    assert plan["v.blk.2.9.attn.query.proj.weight"].shape == (1, 1, 640, 12 * 64)
    assert plan["v.blk.3.1.attn.output.proj.weight"].shape == (1, 1, 16 * 96, 1280)
    assert plan["v.msfa.ffn.pw_exp.conv.weight"].shape == (1, 1, 640 + 1280, 3840)
    assert plan["mm.input_projection.weight"].shape == (2048, 2048)


def test_tower_width_must_match_the_text_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="64 wide but the text model has n_embd 2048"):
        write_vision_mmproj("tiny", tmp_path / "x.gguf", text_n_embd=2048)


# -- the encoder ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_layout_is_the_processors_expansion(encoder: VisionEncoder, text_model: NativeModel) -> None:
    image = _picture(1)
    layout = encoder.layout(image)
    assert layout == (
        "\n\n",
        (START_OF_IMAGE,),
        EmbeddingRun(f"image:{image.digest}", 256),
        (END_OF_IMAGE,),
        "\n\n",
    )
    flat: list[int | EmbeddingRun] = []
    for segment in layout:
        if isinstance(segment, str):
            flat += text_model.tokenize(segment)
        elif isinstance(segment, tuple):
            flat += segment
        else:
            flat.append(segment)
    newlines = text_model.tokenize("\n\n")
    assert flat == [*newlines, START_OF_IMAGE, layout[2], END_OF_IMAGE, *newlines]
    assert encoder.layout(_picture(1)) == layout  # same content, same key
    assert encoder.layout(_picture(2))[2] != layout[2]


@pytest.mark.slow
def test_gemma3n_images_use_causal_attention(encoder: VisionEncoder) -> None:
    assert encoder.needs_non_causal is False
    assert (encoder.n_rows, encoder.n_embd, encoder.image_size) == (256, 64, 768)


@pytest.mark.slow
def test_encode_returns_deterministic_finite_rows(encoder: VisionEncoder) -> None:
    first = encoder.encode(_picture(1))
    assert first.shape == (256, 64) and first.dtype == np.float32
    assert np.isfinite(first).all()
    # The embedder ends in an RMS norm without scale: every row has unit RMS.
    np.testing.assert_allclose(np.sqrt((first**2).mean(axis=1)), 1.0, atol=1e-3)
    np.testing.assert_array_equal(encoder.encode(_picture(1)), first)
    assert encoder.compute_bytes and encoder.resident_bytes == encoder.weight_bytes + encoder.compute_bytes
    other = encoder.encode(_picture(2))
    assert np.abs(other - first).mean() > 0.05
    rows_differ = np.abs(first[:, None, :] - first[None, :4, :]).mean(axis=2)
    assert (rows_differ[4:] > 1e-3).all()  # positions are not all the same vector


@pytest.mark.slow
def test_encode_can_be_cancelled_between_graph_nodes(encoder: VisionEncoder) -> None:
    image = _picture(1)
    expected = encoder.encode(image)
    polls = itertools.count()
    with pytest.raises(EncodeCancelled, match="picture 1"):
        encoder.encode(image, abort_check=lambda: next(polls) >= 0)
    assert next(polls) == 1  # polling stopped as soon as the check said stop
    quiet = itertools.count()
    np.testing.assert_array_equal(encoder.encode(image, abort_check=lambda: next(quiet) < 0), expected)
    assert next(quiet) >= 1  # polled, said go on, and the result is unchanged


@pytest.mark.slow
def test_preprocessing_stretches_to_the_square_input(encoder: VisionEncoder) -> None:
    wide = np.zeros((100, 400, 3), np.uint8)
    wide[:, 200:] = 255
    square = encoder.preprocess(wide)
    assert square.shape == (768, 768, 3)
    assert square[:, :380].max() == 0 and square[:, 388:].min() == 255  # no letterbox bars
    exact = np.random.default_rng(3).integers(0, 256, (768, 768, 3), dtype=np.uint8)
    np.testing.assert_array_equal(encoder.preprocess(exact), exact)


@pytest.mark.slow
def test_inputs_other_than_rgb_images_are_refused(encoder: VisionEncoder) -> None:
    audio = MediaInput("audio", np.zeros(16000, np.float32), label="clip.wav")
    with pytest.raises(InputError, match=r"clip\.wav"):
        encoder.layout(audio)
    with pytest.raises(InputError):
        encoder.encode(audio)


@pytest.mark.slow
def test_close_frees_deterministically(tiny_mmproj: Path, text_model: NativeModel) -> None:
    vision = VisionEncoder(tiny_mmproj, text_model, n_threads=1)
    weights = sum(t.n_bytes for t in validate_gguf(tiny_mmproj).tensors)
    assert vision.resident_bytes == weights
    vision.close()
    vision.close()
    assert vision.closed
    with pytest.raises(EngineFailure, match="closed"):
        vision.encode(_picture(1))
    with VisionEncoder(tiny_mmproj, text_model, n_threads=1) as scoped:
        assert not scoped.closed
    assert scoped.closed


@pytest.mark.slow
def test_unusable_projector_files(tmp_path: Path, tiny_model: Path, text_model: NativeModel) -> None:
    audio_only = write_tiny_clip(tmp_path / "audio.gguf", vision=False, audio=True)
    with pytest.raises(ModelError, match=r"audio\.gguf has no vision encoder"):
        VisionEncoder(audio_only, text_model)
    narrow = dataclasses.replace(VISION_PRESETS["tiny"], hidden=32)
    other = write_vision_mmproj(narrow, tmp_path / "narrow.gguf", text_n_embd=32)
    with pytest.raises(ModelError, match=r"narrow\.gguf produces 32-wide .* n_embd 64"):
        VisionEncoder(other, text_model)
    with pytest.raises(ModelError, match="not a vision/audio projector"):
        VisionEncoder(tiny_model, text_model)
    with pytest.raises(ModelFileError, match="file not found"):
        VisionEncoder(tmp_path / "missing.gguf", text_model)
