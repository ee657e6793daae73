"""inspect_model: kind, quantisation, shape and parameter counts, checked against known Gemma numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from gguf_fixtures import (
    gemma3_270m_path,
    gemma3n_tensor_shapes,
    write_raw,
    write_tiny_clip,
    write_tiny_gemma3n,
    write_tiny_llama,
)

from model_io.errors import ModelFileError
from model_io.gguf_check import GgufTensor
from model_io.model_info import (
    ModelInfo,
    count_parameters,
    dominant_tensor_type,
    inspect_model,
    quant_name,
)


def synthetic_tensors(shapes: dict[str, tuple[int, ...]], type_name: str = "F32") -> list[GgufTensor]:
    """Tensor records with real shapes but no file behind them (full-size Gemma 3n is 4.5 B params)."""
    return [GgufTensor(name, type_name, shape, math.prod(shape), 0, 0) for name, shape in shapes.items()]


# --- parameter counts against gemma3n-facts.md section 1.3 -----------------------------------------


@pytest.mark.parametrize(
    ("n_layer", "n_ff", "n_tensors", "raw", "ple", "effective", "per_layer"),
    [
        (30, 8192, 727, 4_458_122_848, 2_015_232_000, 1_905_495_648, 62_153_296),  # E2B
        (35, 16384, 847, 6_868_990_448, 2_351_104_000, 3_980_491_248, 112_484_944),  # E4B
    ],
    ids=["E2B", "E4B"],
)
def test_gemma3n_counts_match_published_numbers(
    n_layer: int, n_ff: int, n_tensors: int, raw: int, ple: int, effective: int, per_layer: int
) -> None:
    shapes = gemma3n_tensor_shapes(n_layer=n_layer, n_embd=2048, n_ff=n_ff, n_vocab=262400)
    tensors = synthetic_tensors(shapes)
    assert len(tensors) == n_tensors
    assert sum(t.n_elements for t in tensors if t.name.startswith("blk.0.")) == per_layer
    assert count_parameters("gemma3n", tensors) == (raw, ple, effective)


def test_effective_equals_raw_for_other_architectures() -> None:
    tensors = synthetic_tensors({"token_embd.weight": (640, 262144), "output_norm.weight": (640,)})
    assert count_parameters("gemma3", tensors) == (167_772_800, 0, 167_772_800)


# --- quantisation names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_type", "expected"),
    [(15, "Q4_K_M"), (7, "Q8_0"), (1, "F16"), (0, "F32"), (32, "BF16"), (38, "MXFP4_MOE")],
)
def test_quant_name_from_file_type(file_type: int, expected: str) -> None:
    assert quant_name(file_type, []) == expected


@pytest.mark.parametrize("file_type", [None, 1024, 9999, "Q4_K_M", True])
def test_quant_name_falls_back_to_dominant_tensor_type(file_type: object) -> None:
    tensors = [
        GgufTensor("a", "F32", (640,), 640, 2560, 0),
        GgufTensor("b", "Q6_K", (256, 10), 2560, 2100, 0),
        GgufTensor("c", "Q6_K", (256, 10), 2560, 2100, 0),
    ]
    assert quant_name(file_type, tensors) == "Q6_K"  # type: ignore[arg-type]


def test_dominant_tensor_type_of_nothing() -> None:
    assert dominant_tensor_type([]) == "unknown"


# --- small real files ------------------------------------------------------------------------------


def test_tiny_llama(tmp_path: Path) -> None:
    info = inspect_model(write_tiny_llama(tmp_path / "tiny.gguf"))
    assert isinstance(info, ModelInfo)
    assert (info.architecture, info.kind, info.name) == ("llama", "text", "Tiny Llama")
    assert info.quant == "Q8_0"  # no general.file_type: the Q8_0 embedding holds the most bytes
    assert (info.context_length, info.n_layers, info.n_embd, info.n_vocab) == (128, 1, 32, 160)
    assert info.n_params == info.n_params_effective == 32 + 32 * 32 + 32 + 32 * 160
    assert info.n_params_ple == 0
    assert not info.has_vision and not info.has_audio
    assert info.vision_projector is None and info.audio_projector is None


def test_file_type_wins_over_tensor_types(tmp_path: Path) -> None:
    info = inspect_model(write_tiny_llama(tmp_path / "tiny.gguf", file_type=15))
    assert info.quant == "Q4_K_M"


def test_tiny_gemma3n_excludes_embeddings_from_effective(tmp_path: Path) -> None:
    info = inspect_model(write_tiny_gemma3n(tmp_path / "tiny-3n.gguf"))
    assert (info.architecture, info.kind, info.quant, info.n_vocab) == ("gemma3n", "text", "F32", 48)
    token_embd, ple = 32 * 48, 8 * 2 * 48
    assert info.n_params_ple == ple
    assert info.n_params_effective == info.n_params - token_embd - ple
    text = info.describe()
    assert "effective" in text and "per-layer embeddings" in text


def test_vision_projector(tmp_path: Path) -> None:
    info = inspect_model(write_tiny_clip(tmp_path / "mmproj.gguf"))
    assert (info.kind, info.architecture, info.quant) == ("mmproj", "clip", "F16")
    assert info.has_vision and not info.has_audio
    assert (info.vision_projector, info.audio_projector) == ("gemma3nv", None)
    assert (info.n_layers, info.n_embd, info.n_vocab, info.context_length) == (2, 16, None, None)
    assert "vision (gemma3nv)" in info.describe()


def test_vision_and_audio_projector(tmp_path: Path) -> None:
    info = inspect_model(write_tiny_clip(tmp_path / "mmproj.gguf", audio=True))
    assert info.has_vision and info.has_audio
    assert (info.vision_projector, info.audio_projector) == ("gemma3nv", "gemma3na")
    assert "audio (gemma3na)" in info.describe()


def test_legacy_projector_type_takes_precedence(tmp_path: Path) -> None:
    """mtmd reads clip.projector_type before the per-modality keys; so do we."""
    info = inspect_model(write_tiny_clip(tmp_path / "mmproj.gguf", legacy_projector="gemma3"))
    assert info.vision_projector == "gemma3"


def test_to_dict_is_json_ready(tmp_path: Path) -> None:
    info = inspect_model(write_tiny_llama(tmp_path / "tiny.gguf"))
    data = json.loads(json.dumps(info.to_dict()))
    assert data["path"] == str(tmp_path / "tiny.gguf")
    assert data["kind"] == "text" and data["n_params"] == info.n_params
    assert set(data) == set(ModelInfo.__dataclass_fields__)


def test_describe_is_short_and_informative(tmp_path: Path) -> None:
    text = inspect_model(write_tiny_llama(tmp_path / "tiny.gguf")).describe()
    lines = text.splitlines()
    assert lines[0] == "tiny.gguf: Tiny Llama"
    assert 4 <= len(lines) <= 8
    assert "text model (llama)" in text and "Q8_0" in text and "context 128 tokens" in text


def test_inspect_propagates_validation_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"junk\.gguf"):
        inspect_model(write_raw(tmp_path / "junk.gguf", b"<html>oops</html>"))


# --- the real Gemma 3 270M -------------------------------------------------------------------------


def test_real_gemma3_270m() -> None:
    info = inspect_model(gemma3_270m_path())
    assert (info.architecture, info.kind, info.quant) == ("gemma3", "text", "Q4_K_M")
    assert info.name == "Gemma 3 270m"
    assert 260e6 < info.n_params < 275e6  # 268,098,176 by tensor shapes
    assert info.n_params_effective == info.n_params and info.n_params_ple == 0
    assert (info.context_length, info.n_layers, info.n_embd, info.n_vocab) == (32768, 18, 640, 262144)
    assert "268.1M" in info.describe()
