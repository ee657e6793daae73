"""Checkpoint tensor bytes (BF16, F16 or F32) → the GGUF storage type (F16 or F32), in NumPy.

BF16 and F16 widen to float32 exactly, so converting through float32 rounds only once: the
result is the correctly rounded (round-to-nearest-even) value, as llama.cpp's converter gets it
from torch's ``.to(float32)`` and NumPy's ``astype(float16)``.  Unlike the converter, values
that do not fit float16 (|x| > 65504) or that are not finite at all (a corrupt transfer can
produce NaN bit patterns) are refused rather than written as inf/NaN.
"""

from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType

from model_io.errors import ModelFileError

Q = GGMLQuantizationType
SOURCE_DTYPES = ("BF16", "F16", "F32")
TARGET_TYPES = (Q.F16, Q.F32)
_TARGET_NUMPY: dict[GGMLQuantizationType, np.dtype[np.floating]] = {
    Q.F16: np.dtype("<f2"),
    Q.F32: np.dtype("<f4"),
}


def widen(raw: bytes | bytearray | memoryview, dtype: str) -> np.ndarray:
    """Little-endian ``dtype`` bytes as float32 (exact for all three source types)."""
    if dtype == "BF16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32)
        return np.left_shift(bits, 16).view(np.float32)
    if dtype == "F16":
        return np.frombuffer(raw, dtype="<f2").astype(np.float32)
    if dtype == "F32":
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    raise ValueError(f"cannot convert {dtype} tensors (only {', '.join(SOURCE_DTYPES)})")


def convert(
    raw: bytes | bytearray | memoryview, dtype: str, target: GGMLQuantizationType, name: str
) -> bytes:
    """The tensor's bytes as stored in the GGUF; ``name`` labels errors."""
    if target not in _TARGET_NUMPY:
        raise ValueError(f"{name}: cannot store {target.name} (only F16 and F32)")
    values = widen(raw, dtype)
    if not np.isfinite(values).all():
        raise ModelFileError(
            f"checkpoint tensor {name!r} contains NaN or infinite values; the download is likely corrupt"
        )
    with np.errstate(over="ignore"):  # checked right below
        stored = values.astype(_TARGET_NUMPY[target])
    if target == Q.F16 and not np.isfinite(stored).all():
        peak = float(np.abs(values).max())
        raise ModelFileError(
            f"checkpoint tensor {name!r} has values beyond float16's range (max |x| = {peak:g})"
        )
    return stored.tobytes()
