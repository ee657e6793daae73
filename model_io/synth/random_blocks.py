"""Random tensors in ggml's storage formats, generated chunk by chunk.

A random-weight model needs no float intermediate: random bytes are already a
valid quantized block once its scale fields hold sane half-precision values.
Each quantized type is calibrated once (dequantized with gguf-py) so that its
weights come out with zero mean and the requested standard deviation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize

Q = GGMLQuantizationType


@dataclass(frozen=True)
class BlockLayout:
    """Where a block keeps its fp16 scale (``d``) and, for K-quants, its min scale (``dmin``)."""

    d_offset: int
    dmin_offset: int | None = None


# Offsets from ggml-common.h (block_q8_0, block_q4_K, ...).
BLOCK_LAYOUTS: dict[GGMLQuantizationType, BlockLayout] = {
    Q.Q8_0: BlockLayout(0),
    Q.Q4_0: BlockLayout(0),
    Q.Q5_0: BlockLayout(0),
    Q.Q2_K: BlockLayout(80, 82),
    Q.Q3_K: BlockLayout(108),
    Q.Q4_K: BlockLayout(0, 2),
    Q.Q5_K: BlockLayout(0, 2),
    Q.Q6_K: BlockLayout(208),
    Q.TQ1_0: BlockLayout(52),
    Q.TQ2_0: BlockLayout(64),
}

FLOAT_TYPES = {Q.F32: np.float32, Q.F16: np.float16}
CHUNK_BYTES = 32 << 20


def tensor_nbytes(qtype: GGMLQuantizationType, n_elements: int) -> int:
    """Bytes a tensor of ``n_elements`` occupies in ``qtype``."""
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    if n_elements % block_size:
        raise ValueError(f"{n_elements} elements do not fill whole {qtype.name} blocks of {block_size}")
    return n_elements // block_size * type_size


def random_tensor_chunks(
    qtype: GGMLQuantizationType,
    n_rows: int,
    row_elements: int,
    std: float,
    seed: int,
    *,
    mean: float = 0.0,
    zero_rows_from: int | None = None,
) -> Iterator[memoryview]:
    """Yield the tensor's bytes, rows in order, in chunks of about ``CHUNK_BYTES``.

    ``zero_rows_from`` zeroes trailing rows, as the converter does for Gemma 3n's
    per-layer table rows beyond the text vocabulary.
    """
    row_bytes = tensor_nbytes(qtype, row_elements)
    rows_per_chunk = max(1, CHUNK_BYTES // row_bytes)
    rng = np.random.default_rng(seed)
    for first in range(0, n_rows, rows_per_chunk):
        rows = min(rows_per_chunk, n_rows - first)
        chunk = _random_rows(qtype, rows, row_elements, std, mean, rng)
        if zero_rows_from is not None and first + rows > zero_rows_from:
            start = max(0, zero_rows_from - first)
            chunk.reshape(rows, row_bytes)[start:] = 0
        yield memoryview(chunk.data)


def _random_rows(
    qtype: GGMLQuantizationType,
    rows: int,
    row_elements: int,
    std: float,
    mean: float,
    rng: np.random.Generator,
) -> np.ndarray:
    if qtype in FLOAT_TYPES:
        values = rng.standard_normal((rows, row_elements), dtype=np.float32) * np.float32(std) + np.float32(
            mean
        )
        return values.astype(FLOAT_TYPES[qtype]).view(np.uint8).reshape(-1)
    if mean != 0.0:
        raise ValueError("quantized random tensors are generated with zero mean")
    _, type_size = GGML_QUANT_SIZES[qtype]
    n_bytes = tensor_nbytes(qtype, rows * row_elements)
    blocks = rng.integers(0, 256, size=(n_bytes // type_size, type_size), dtype=np.uint8)
    _write_scales(blocks, qtype, *_calibrated_scales(qtype, std))
    return blocks.reshape(-1)


def _write_scales(blocks: np.ndarray, qtype: GGMLQuantizationType, d: float, dmin: float) -> None:
    layout = BLOCK_LAYOUTS[qtype]
    blocks[:, layout.d_offset : layout.d_offset + 2] = np.frombuffer(np.float16(d).tobytes(), dtype=np.uint8)
    if layout.dmin_offset is not None:
        off = layout.dmin_offset
        blocks[:, off : off + 2] = np.frombuffer(np.float16(dmin).tobytes(), dtype=np.uint8)


@cache
def _calibrated_scales(qtype: GGMLQuantizationType, std: float) -> tuple[float, float]:
    """Find (d, dmin) giving zero mean and standard deviation ``std`` for random blocks."""
    if qtype not in BLOCK_LAYOUTS:
        raise ValueError(f"random {qtype.name} tensors are not supported")
    _, type_size = GGML_QUANT_SIZES[qtype]
    rng = np.random.default_rng(1234)
    sample = np.frombuffer(rng.bytes(type_size * 4096), dtype=np.uint8).copy().reshape(-1, type_size)
    scaled = _dequantized(sample, qtype, 1.0, 0.0)
    d = std / float(np.std(scaled))
    dmin = 0.0
    if BLOCK_LAYOUTS[qtype].dmin_offset is not None:
        offset_part = _dequantized(sample, qtype, 0.0, 1.0)
        # weights are d*A + dmin*B; zero mean needs dmin = -d * mean(A) / mean(B)
        ratio = -float(np.mean(scaled)) / float(np.mean(offset_part))
        d = std / float(np.std(_dequantized(sample, qtype, 1.0, ratio)))
        dmin = d * ratio
    return d, dmin


def _dequantized(blocks: np.ndarray, qtype: GGMLQuantizationType, d: float, dmin: float) -> np.ndarray:
    trial = blocks.copy()
    _write_scales(trial, qtype, d, dmin)
    return dequantize(trial.reshape(-1), qtype)
