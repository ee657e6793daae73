"""llama.cpp's MobileNet-V5 (via mtmd) against transformers + timm on the same synthetic weights.

The reference (``tests/data/reference/vision_gemma3n_tiny.*``) is made by
``tools/make_vision_reference.py`` in the torch venv: timm's ``MobileNetV5Encoder`` and
transformers' ``Gemma3nMultimodalEmbedder`` loaded strictly from the tiny mmproj, run
through ``Gemma3nModel.get_image_features``.  Measured when it was made: max |diff|
0.006, every row's cosine > 0.99999 (F16 weights, F32 activations on both sides).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_vision import text_model, tiny_mmproj  # noqa: F401  (pytest fixtures)

from model_io.gguf_check import validate_gguf
from model_io.media import EmbeddingRun, MediaInput
from model_io.native import NativeModel
from model_io.vision import END_OF_IMAGE_ID, VisionEncoder, hard_token_embedding, stretch_to_square

REFERENCE = Path(__file__).parent / "data" / "reference" / "vision_gemma3n_tiny"
MAX_ABS_DIFF = 0.02  # measured 0.006
MIN_ROW_COSINE = 0.9999  # measured 0.999998


@pytest.fixture(scope="module")
def sidecar() -> dict[str, object]:
    return dict(json.loads(REFERENCE.with_suffix(".json").read_text()))


@pytest.fixture(scope="module")
def reference(tiny_mmproj: Path, sidecar: dict[str, object]) -> dict[str, np.ndarray]:  # noqa: F811
    digest = hashlib.sha256(tiny_mmproj.read_bytes()).hexdigest()
    assert digest == sidecar["mmproj_sha256"], (
        "the synthetic tiny mmproj changed; rerun tools/make_vision_reference.py to refresh the reference"
    )
    with np.load(REFERENCE.with_suffix(".npz")) as data:
        return {name: data[name] for name in data.files}


@pytest.fixture(scope="module")
def hf_exact(tiny_mmproj: Path, text_model: NativeModel) -> Iterator[VisionEncoder]:  # noqa: F811
    with VisionEncoder(tiny_mmproj, text_model, n_threads=2, end_of_image="embedding") as vision:
        yield vision


def _compare(rows: np.ndarray, expected: np.ndarray) -> None:
    assert rows.shape == expected.shape
    cosine = (rows * expected).sum(1) / np.linalg.norm(rows, axis=1) / np.linalg.norm(expected, axis=1)
    assert np.abs(rows - expected).max() < MAX_ABS_DIFF
    assert cosine.min() > MIN_ROW_COSINE


@pytest.mark.slow
@pytest.mark.parametrize("name", ["a", "b"])
def test_image_rows_match_transformers(
    hf_exact: VisionEncoder, reference: dict[str, np.ndarray], name: str
) -> None:
    image = MediaInput("image", reference[f"image_{name}"], label=f"reference {name}")
    rows = hf_exact.encode(image)
    _compare(rows[:256], reference[f"features_{name}"])
    other = reference["features_b" if name == "a" else "features_a"]
    assert np.abs(rows[:256] - other).mean() > 0.1  # the comparison can tell the images apart


def test_preprocessing_matches_transformers(
    reference: dict[str, np.ndarray], sidecar: dict[str, object]
) -> None:
    """A 500x300 image stretched to 768x768 exactly as transformers' PIL SigLIP processor does."""
    pixels = stretch_to_square(reference["image_c"], 768)
    assert hashlib.sha256(pixels.tobytes()).hexdigest() == sidecar["hf_pixels_c_sha256"]


def test_end_of_image_hard_embedding_matches_transformers(
    tiny_mmproj: Path,  # noqa: F811
    reference: dict[str, np.ndarray],
) -> None:
    row = hard_token_embedding(validate_gguf(tiny_mmproj), END_OF_IMAGE_ID)
    np.testing.assert_allclose(row, reference["end_of_image"], atol=1e-5)


@pytest.mark.slow
def test_embedding_mode_layout_and_rows(hf_exact: VisionEncoder, reference: dict[str, np.ndarray]) -> None:
    image = MediaInput("image", reference["image_a"], label="reference a")
    assert hf_exact.layout(image) == ("\n\n", (255999,), EmbeddingRun(f"image:{image.digest}", 257), "\n\n")
    rows = hf_exact.encode(image)
    assert rows.shape == (257, 64)
    np.testing.assert_allclose(rows[256], reference["end_of_image"], atol=1e-5)
