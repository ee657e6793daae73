"""Read Gemma 3n's audio tower from an mmproj GGUF into ready-to-multiply NumPy arrays.

Every tensor is read exactly once, here, from whatever type the converter or
``llama-quantize`` stored (F32, F16, BF16, Q8_0, or any other type gguf-py can
dequantise) into arrays laid out for the forward pass: q/k/v fused into one
matrix ([q; k; v] rows), the depthwise kernel transposed, and the
relative-position projection and softplus query scale, which depend only on the
weights, precomputed, so ``linear_pos`` itself is not kept.  Only the two
hard-embedding rows the prompt needs (padding and ``<end_of_audio>``) are kept
from the 128-row audio vocabulary.

How the big matrices are held (``dtype``; vectors and convolutions are always float32):

* ``np.float32`` — dequantised to float32: the fastest products, 2.7 GB at full size;
* ``np.float16`` — rounded to float16 (exact for F16 files): half the RAM;
* ``"compact"`` — the file's own precision: F16 stays float16, BF16 stays bfloat16
  (kept as its raw ``uint16`` bits, since NumPy has no bfloat16), F32 stays float32.
  Block-quantised types (Q8_0, ...) become float32: float16 would round their
  int8 x scale values (2^-12 relative), which moves the outputs by ~2e-3 where the
  fidelity bound is 1e-3.  ≈1.4 GB for an F16 or BF16 mmproj.

The forward pass widens 16-bit matrices to float32 a cache-sized block at a time
right before each product (``conformer.matmul_t``): nothing is dequantised per
call, and nothing is held twice.

Tensor names are those of llama.cpp's converter (gemma3n-audio.md §4.2), including
``a.conv1d.{0,1}.norm.weight``, which the converter only writes with the §4.4 fix.
Shapes are inferred from the tensors, not from ``clip.audio.*`` (wrong or missing there).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from model_io.audio import spec
from model_io.errors import ModelFileError, UnsupportedModelError
from model_io.gguf_check import GgufSummary, GgufTensor, validate_gguf

AUDIO_PROJECTOR_TYPE = "gemma3na"


@dataclass(frozen=True)
class AudioDims:
    """The tower's shape, all inferred from tensor shapes."""

    n_layer: int
    d_model: int
    n_head: int
    head_dim: int
    d_ffn: int
    sscp_channels: tuple[int, int]
    conv_kernel: int
    n_embd_text: int


@dataclass(frozen=True)
class FeedForward:
    pre_norm: np.ndarray
    up: np.ndarray  # [d_ffn, d_model]
    down: np.ndarray  # [d_model, d_ffn]
    post_norm: np.ndarray


@dataclass(frozen=True)
class ConformerLayer:
    ffn_start: FeedForward
    attn_norm: np.ndarray
    qkv: np.ndarray  # [3 d_model, d_model]: q, k, v stacked
    q_scale: np.ndarray  # [head_dim]: head_dim^-1/2 / softplus(0) * softplus(per_dim_scale)
    # [max_past + 1, n_head, head_dim]: pos_proj(timing(pos)); index j is the key max_past - j frames back
    rel: np.ndarray
    attn_out: np.ndarray
    attn_post_norm: np.ndarray
    conv_pre_norm: np.ndarray
    conv_start: np.ndarray  # [2 d_model, d_model], then GLU
    conv_dw: np.ndarray  # [kernel, d_model], causal
    conv_norm: np.ndarray
    conv_end: np.ndarray
    ffn_end: FeedForward
    final_norm: np.ndarray


@dataclass(frozen=True)
class Subsampler:
    conv0: np.ndarray  # [C0, 1, 3, 3]  (out, in, time, freq)
    norm0: np.ndarray  # [C0]
    conv1: np.ndarray  # [C1, C0, 3, 3]
    norm1: np.ndarray  # [C1]
    proj: np.ndarray  # [d_model, F2 * C1], input flattened frequency-major


@dataclass(frozen=True)
class Embedder:
    soft_norm: np.ndarray
    projection: np.ndarray  # [n_embd_text, d_model]
    pad_row: np.ndarray  # [n_embd_text] float32: the hard embedding of id 262399
    end_of_audio_row: np.ndarray  # [n_embd_text] float32: the hard embedding of id 262272


@dataclass(frozen=True)
class AudioWeights:
    dims: AudioDims
    sscp: Subsampler
    layers: tuple[ConformerLayer, ...]
    embedder: Embedder

    @property
    def nbytes(self) -> int:
        """Bytes of every array held (the tower's resident weight memory)."""
        return sum(a.nbytes for a in _arrays(self))


def _arrays(obj: object) -> Iterator[np.ndarray]:
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, tuple):
        for item in obj:
            yield from _arrays(item)
    elif hasattr(obj, "__dataclass_fields__"):
        for f in fields(obj):  # type: ignore[arg-type]
            yield from _arrays(getattr(obj, f.name))


COMPACT = "compact"
WeightDtype = type[np.floating] | str
BF16_BITS = np.dtype(np.uint16)  # a matrix of this dtype holds bfloat16 bit patterns


def load_audio_weights(path: str | Path, *, dtype: WeightDtype = np.float32) -> AudioWeights:
    """Validate ``path`` as a Gemma 3n audio mmproj and load its tower.

    ``dtype`` says how the large matrices are held: ``np.float32``, ``np.float16`` or
    ``"compact"`` (the file's own 16-bit precision; see the module docstring).
    """
    if not (isinstance(dtype, str) and dtype == COMPACT) and (
        isinstance(dtype, str) or np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float16))
    ):
        raise ValueError('audio weights are kept as float32, float16 or "compact"')
    summary = validate_gguf(path, expect="mmproj")
    _check_audio_projector(summary)
    with open(summary.path, "rb") as handle:
        reader = _TensorReader(summary, handle)
        dims = _infer_dims(summary, reader.tensors)
        sscp = _load_sscp(reader, dims, dtype)
        layers = tuple(_load_layer(reader, dims, i, dtype) for i in range(dims.n_layer))
        embedder = _load_embedder(reader, dims, dtype)
    return AudioWeights(dims, sscp, layers, embedder)


def widen(matrix: np.ndarray) -> np.ndarray:
    """A stored matrix as float32: float32 as is, float16 cast, bfloat16 bits shifted into place."""
    if matrix.dtype == np.float32:
        return matrix
    if matrix.dtype == BF16_BITS:
        return np.left_shift(matrix, 16, dtype=np.uint32).view(np.float32)
    return matrix.astype(np.float32)


def storage_name(matrix: np.ndarray) -> str:
    """``float32``, ``float16`` or ``bfloat16``: how a weight matrix is held."""
    return "bfloat16" if matrix.dtype == BF16_BITS else str(matrix.dtype)


def _check_audio_projector(summary: GgufSummary) -> None:
    label = str(summary.path)
    if summary.kv.get("clip.has_audio_encoder") is not True:
        raise UnsupportedModelError(f"{label}: this projector has no audio encoder (clip.has_audio_encoder)")
    # llama.cpp's order: the legacy single-projector key wins over the per-modality one
    projector = summary.kv.get("clip.projector_type") or summary.kv.get("clip.audio.projector_type")
    if projector != AUDIO_PROJECTOR_TYPE:
        raise UnsupportedModelError(
            f"{label}: audio projector type {projector!r} is not Gemma 3n's {AUDIO_PROJECTOR_TYPE!r}"
        )


class _TensorReader:
    """Reads single tensors by name, dequantising each straight into the requested layout."""

    def __init__(self, summary: GgufSummary, handle: io.BufferedReader) -> None:
        self.label = str(summary.path)
        self.tensors: Mapping[str, GgufTensor] = {t.name: t for t in summary.tensors}
        self.handle = handle

    def info(self, name: str) -> GgufTensor:
        try:
            return self.tensors[name]
        except KeyError:
            hint = ""
            if name.startswith("a.conv1d.") and name.endswith(".norm.weight"):
                hint = (
                    " (llama.cpp's converter drops the SSCP group-norm weights unless patched; "
                    "re-convert with the fix in gemma3n-audio.md §4.4)"
                )
            raise ModelFileError(f"{self.label}: audio tensor {name!r} is missing{hint}") from None

    def read(
        self, name: str, shape: tuple[int, ...] | None = None, dtype: WeightDtype = np.float32
    ) -> np.ndarray:
        """The tensor in NumPy order (ggml's ne reversed), checked against ``shape``, as ``dtype``.

        ``"compact"`` keeps F32, F16 and BF16 as stored (BF16 as ``uint16`` bits) and
        dequantises every other type to float32.
        """
        info = self.info(name)
        got = tuple(reversed(info.shape))
        if shape is not None and math.prod(got) == math.prod(shape) and len(got) != len(shape):
            got = shape  # e.g. a [d] vector stored as [1, d]
        if shape is not None and got != shape:
            raise ModelFileError(f"{self.label}: audio tensor {name!r} has shape {got}, expected {shape}")
        raw = np.empty(info.n_bytes, dtype=np.uint8)
        self.handle.seek(info.offset)
        if self.handle.readinto(raw.data) != info.n_bytes:
            raise ModelFileError(f"{self.label}: audio tensor {name!r} is truncated")
        qtype = GGMLQuantizationType[info.type_name]
        if isinstance(dtype, str):  # COMPACT
            if qtype == GGMLQuantizationType.BF16:
                return raw.view(np.uint16).reshape(got)
            if qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
                return _dequantize(raw, qtype, self.label, name).reshape(got)
            dtype = np.float32
        values = _dequantize(raw, qtype, self.label, name)
        return np.ascontiguousarray(values.reshape(got), dtype=dtype)


def _dequantize(raw: np.ndarray, qtype: GGMLQuantizationType, label: str, name: str) -> np.ndarray:
    if qtype == GGMLQuantizationType.F32:
        return raw.view(np.float32)
    if qtype == GGMLQuantizationType.F16:
        return raw.view(np.float16)
    if qtype == GGMLQuantizationType.BF16:
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    try:
        return dequantize(raw, qtype)
    except NotImplementedError:
        raise UnsupportedModelError(
            f"{label}: audio tensor {name!r} uses {qtype.name}, which cannot be dequantised here"
        ) from None


def _layer_count(tensors: Mapping[str, GgufTensor]) -> int:
    n = 0
    while f"a.blk.{n}.attn_q.weight" in tensors:
        n += 1
    return n


def _infer_dims(summary: GgufSummary, tensors: Mapping[str, GgufTensor]) -> AudioDims:
    label = str(summary.path)
    n_layer = _layer_count(tensors)
    for name in ("a.pre_encode.out.weight", "a.conv1d.1.weight", "mm.a.input_projection.weight"):
        if name not in tensors:
            raise ModelFileError(f"{label}: audio tensor {name!r} is missing")
    if n_layer == 0:
        raise ModelFileError(f"{label}: the audio tower has no conformer blocks (a.blk.0.attn_q.weight)")
    d_model = tensors["a.pre_encode.out.weight"].shape[1]
    c1, c0 = tensors["a.conv1d.1.weight"].shape[3], tensors["a.conv1d.1.weight"].shape[2]
    head_dim = math.prod(tensors["a.blk.0.per_dim_scale"].shape) if "a.blk.0.per_dim_scale" in tensors else 0
    n_head = int(summary.kv.get("clip.audio.attention.head_count", 0) or 0)
    if head_dim and not n_head:
        n_head = d_model // head_dim
    if not head_dim or n_head * head_dim != d_model:
        raise ModelFileError(
            f"{label}: audio heads ({n_head}) x head size ({head_dim}) do not make the width {d_model}"
        )
    dims = AudioDims(
        n_layer=n_layer,
        d_model=d_model,
        n_head=n_head,
        head_dim=head_dim,
        d_ffn=tensors["a.blk.0.ffn_up.weight"].shape[1] if "a.blk.0.ffn_up.weight" in tensors else 0,
        sscp_channels=(c0, c1),
        conv_kernel=tensors["a.blk.0.conv_dw.weight"].shape[0] if "a.blk.0.conv_dw.weight" in tensors else 0,
        n_embd_text=tensors["mm.a.input_projection.weight"].shape[1],
    )
    if not dims.d_ffn or not dims.conv_kernel:
        raise ModelFileError(f"{label}: audio block 0 is incomplete (ffn_up / conv_dw missing)")
    return dims


def sscp_widths() -> tuple[int, int]:
    """Frequency widths after each SSCP convolution: 128 → 64 → 32 (pad 1 each side, kernel 3, stride 2)."""
    f1 = (spec.N_MELS + 2 - spec.SSCP_KERNEL) // spec.SSCP_STRIDE + 1
    f2 = (f1 + 2 - spec.SSCP_KERNEL) // spec.SSCP_STRIDE + 1
    return f1, f2


def _load_sscp(reader: _TensorReader, dims: AudioDims, dtype: WeightDtype) -> Subsampler:
    c0, c1 = dims.sscp_channels
    k = spec.SSCP_KERNEL
    _, f2 = sscp_widths()
    return Subsampler(
        conv0=reader.read("a.conv1d.0.weight", (c0, 1, k, k)),
        norm0=reader.read("a.conv1d.0.norm.weight", (c0,)),
        conv1=reader.read("a.conv1d.1.weight", (c1, c0, k, k)),
        norm1=reader.read("a.conv1d.1.norm.weight", (c1,)),
        proj=reader.read("a.pre_encode.out.weight", (dims.d_model, f2 * c1), dtype),
    )


def _load_ffn(
    reader: _TensorReader, dims: AudioDims, prefix: str, suffix: str, dtype: WeightDtype
) -> FeedForward:
    d, f = dims.d_model, dims.d_ffn
    return FeedForward(
        pre_norm=reader.read(f"{prefix}ffn_norm{suffix}.weight", (d,)),
        up=reader.read(f"{prefix}ffn_up{suffix}.weight", (f, d), dtype),
        down=reader.read(f"{prefix}ffn_down{suffix}.weight", (d, f), dtype),
        post_norm=reader.read(f"{prefix}ffn_post_norm{suffix}.weight", (d,)),
    )


def _load_layer(reader: _TensorReader, dims: AudioDims, i: int, dtype: WeightDtype) -> ConformerLayer:
    p = f"a.blk.{i}."
    d = dims.d_model
    parts = [reader.read(f"{p}attn_{x}.weight", (d, d), dtype) for x in "qkv"]
    if len({a.dtype for a in parts}) > 1:  # a "compact" file mixing storage types: widen them alike
        parts = [widen(a) for a in parts]
    qkv = np.concatenate(parts)
    per_dim_scale = reader.read(f"{p}per_dim_scale", (dims.head_dim,))
    pos_proj = reader.read(f"{p}linear_pos.weight", (d, d))
    return ConformerLayer(
        ffn_start=_load_ffn(reader, dims, p, "", dtype),
        attn_norm=reader.read(f"{p}ln1.weight", (d,)),
        qkv=qkv,
        q_scale=query_scale(per_dim_scale),
        rel=relative_position_keys(pos_proj, dims.n_head),
        attn_out=reader.read(f"{p}attn_out.weight", (d, d), dtype),
        attn_post_norm=reader.read(f"{p}ln2.weight", (d,)),
        conv_pre_norm=reader.read(f"{p}conv_norm.weight", (d,)),
        conv_start=reader.read(f"{p}conv_pw1.weight", (2 * d, d), dtype),
        conv_dw=np.ascontiguousarray(reader.read(f"{p}conv_dw.weight", (d, 1, dims.conv_kernel))[:, 0, :].T),
        conv_norm=reader.read(f"{p}norm_conv.weight", (d,)),
        conv_end=reader.read(f"{p}conv_pw2.weight", (d, d), dtype),
        ffn_end=_load_ffn(reader, dims, p, "_1", dtype),
        final_norm=reader.read(f"{p}layer_pre_norm.weight", (d,)),
    )


def _load_embedder(reader: _TensorReader, dims: AudioDims, dtype: WeightDtype) -> Embedder:
    from model_io.audio.conformer import embed_hard

    d, e = dims.d_model, dims.n_embd_text
    table = reader.read("mm.a.embedding.weight", (spec.AUDIO_VOCAB_SIZE, d))
    hard_norm = reader.read("mm.a.hard_emb_norm.weight", (d,))
    projection = reader.read("mm.a.input_projection.weight", (e, d), dtype)
    rows = embed_hard(table, hard_norm, projection, [spec.AUDIO_PAD_ID, spec.END_OF_AUDIO_ID])
    return Embedder(
        soft_norm=reader.read("mm.a.soft_emb_norm.weight", (d,)),
        projection=projection,
        pad_row=rows[0],
        end_of_audio_row=rows[1],
    )


def query_scale(per_dim_scale: np.ndarray) -> np.ndarray:
    """``head_dim^-1/2 / softplus(0) * softplus(per_dim_scale)`` (MOD 341-343, 447-451), float32."""
    head_dim = per_dim_scale.shape[0]
    base = np.float32(head_dim**-0.5) * np.float32(1.0 / math.log(2.0))
    softplus = np.logaddexp(np.float32(0.0), per_dim_scale.astype(np.float32))
    return (base * softplus).astype(np.float32)


def timing_signal(d_model: int) -> np.ndarray:
    """Sinusoids of relative positions max_past..0 (``_get_timing_signal_1d_pos``): [max_past + 1, d]."""
    n = d_model // 2
    increment = math.log(1.0e4) / max(n - 1, 1)
    inv = np.exp(np.arange(n, dtype=np.float32) * np.float32(-increment)).astype(np.float32)
    positions = np.arange(spec.MAX_PAST, -spec.CONTEXT_RIGHT - 1, -1, dtype=np.float32)
    scaled = positions[:, None] * inv[None, :]
    return np.concatenate([np.sin(scaled), np.cos(scaled)], axis=-1).astype(np.float32)


def relative_position_keys(pos_proj: np.ndarray, n_head: int) -> np.ndarray:
    """``pos_proj(timing)`` reshaped to [max_past + 1, n_head, head_dim]; constant per layer."""
    d = pos_proj.shape[0]
    rel = timing_signal(d) @ pos_proj.astype(np.float32).T
    return np.ascontiguousarray(rel.reshape(-1, n_head, d // n_head), dtype=np.float32)
