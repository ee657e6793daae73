"""The synthetic audio mmproj writer: full-size shapes, file validity, determinism, self-contained metadata.

Names, shapes and types against llama.cpp's converter are checked in
test_audio_fidelity.py (from the converter run the reference tool recorded).
"""

from __future__ import annotations

import math

import pytest
from gguf import GGUFWriter
from gguf_fixtures import sha256_file

from model_io.errors import InputError
from model_io.gguf_check import validate_gguf
from model_io.model_info import inspect_model
from model_io.synth.audio_tower import (
    AUDIO_PRESETS,
    add_audio_metadata,
    audio_tensor_plan,
    write_audio_mmproj,
)

# gemma3n-audio.md §7.1: 681,348,640 tower + 3,345,408 embed_audio parameters
FULL_AUDIO_PARAMETERS = 684_694_048


def test_full_size_plan_has_the_published_shapes():
    plan = {t.name: t for t in audio_tensor_plan("e2b")}
    assert sum(math.prod(t.shape) for t in plan.values()) == FULL_AUDIO_PARAMETERS
    assert len(plan) == 5 + 12 * 22 + 4 == 273  # the 273 HF audio parameters, one tensor each
    expected = {
        "a.conv1d.0.weight": ((3, 3, 1, 128), "F32"),
        "a.conv1d.0.norm.weight": ((128,), "F32"),
        "a.conv1d.1.weight": ((3, 3, 128, 32), "F32"),
        "a.conv1d.1.norm.weight": ((32,), "F32"),
        "a.pre_encode.out.weight": ((1024, 1536), "F16"),
        "a.blk.11.ffn_up.weight": ((1536, 6144), "F16"),
        "a.blk.11.ffn_down_1.weight": ((6144, 1536), "F16"),
        "a.blk.0.per_dim_scale": ((192,), "F32"),
        "a.blk.0.conv_pw1.weight": ((1536, 3072), "F16"),
        "a.blk.0.conv_dw.weight": ((5, 1, 1536), "F32"),
        "a.blk.0.layer_pre_norm.weight": ((1536,), "F32"),
        "mm.a.embedding.weight": ((1536, 128), "F16"),
        "mm.a.input_projection.weight": ((1536, 2048), "F16"),
    }
    for name, (shape, qtype) in expected.items():
        assert (plan[name].shape, plan[name].qtype.name) == (shape, qtype), name
    assert "a.blk.12.attn_q.weight" not in plan


def test_e2b_and_e4b_share_one_audio_tower():
    assert audio_tensor_plan("e2b") == audio_tensor_plan("e4b")
    assert AUDIO_PRESETS["e2b"].seed == AUDIO_PRESETS["e4b"].seed


def test_tiny_writes_a_valid_audio_only_mmproj_deterministically(tmp_path):
    a = write_audio_mmproj("tiny", tmp_path / "a.gguf")
    b = write_audio_mmproj("tiny", tmp_path / "b.gguf")
    assert sha256_file(a) == sha256_file(b)
    summary = validate_gguf(a, expect="mmproj")
    kv = summary.kv
    assert summary.architecture == "clip" and kv["general.type"] == "mmproj"
    assert kv["clip.has_audio_encoder"] is True and kv["clip.has_vision_encoder"] is False
    assert kv["clip.audio.projector_type"] == "gemma3na"
    assert kv["clip.audio.projection_dim"] == 64 and kv["clip.audio.block_count"] == 2
    assert {t.name for t in summary.tensors} == {t.name for t in audio_tensor_plan("tiny")}
    info = inspect_model(a)
    assert info.kind == "mmproj" and info.has_audio and not info.has_vision


def test_audio_metadata_combines_with_other_sections():
    """A later combiner writes general.* and vision keys itself: the audio function must add only its own."""
    writer = GGUFWriter(None, "clip")
    writer.add_type("mmproj")
    writer.add_file_type(1)
    writer.add_clip_has_vision_encoder(True)
    writer.add_clip_vision_projector_type("gemma3nv")
    before = {k for kv in writer.kv_data for k in kv}
    add_audio_metadata(writer, "e2b")  # GGUFWriter raises on a duplicated key
    added = {k for kv in writer.kv_data for k in kv} - before
    assert added == {"clip.has_audio_encoder"} | {k for k in added if k.startswith("clip.audio.")}
    assert len(added) == 9


def test_unknown_preset_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="tiny"):
        write_audio_mmproj("huge", tmp_path / "x.gguf")
