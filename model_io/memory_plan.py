"""Memory planner: before loading, how much RAM a Gemma model will hold, and whether it fits here.

Every figure comes from GGUF headers (:func:`model_io.gguf_check.validate_gguf`, plus
two small arrays read by :func:`read_layer_arrays`), never from tensor data, so a plan
costs about as much as validating the files.  The arithmetic follows llama.cpp
(vendored in llama-cpp-python 0.3.36) as the engine configures it
(:mod:`model_io.native`: memory-mapped weights, f16 KV cache, ``swa_full`` off,
one output row per batch) and what :class:`model_io.memory_usage.ModelFootprint`
does after loading (the PLE table is given back to the page cache):

* **text weights**: every tensor but the PLE table is read for each token, so it
  stays resident, either as mapped file pages or as llama.cpp's repacked heap copy
  (whose file pages are released after loading).  While loading, llama.cpp maps
  the whole file in and makes the repacked copies: that transient is ``load_peak``.
* **PLE**: mapped, not resident; a decode touches one row (a few pages) per
  distinct token, budgeted for :data:`PLE_TOKENS` tokens.
* **KV cache**: f16 K and V for each layer that owns a cache.  Gemma 3n's layers
  from 20 on reuse layer 18's (sliding) or 19's (global) cache and own none;
  global layers hold the whole context, sliding layers the window plus one
  micro-batch (llama.cpp's ``llama_kv_cache_iswa``), both padded to 256 cells.
* **compute**: llama.cpp's graph buffer for one micro-batch, modelled from the
  widths (see :func:`compute_buffer_bytes`) and checked against the size llama.cpp
  reports, plus the attention masks and the one-row logits buffer.
* **towers**: mtmd reads the vision weights into RAM and reserves a compute
  buffer for a 768x768 image; the NumPy audio tower keeps its matrices in the
  file's 16-bit precision.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from gguf.constants import GGUFValueType

from model_io.gguf_check import GgufSummary, GgufTensor
from model_io.machine_memory import Machine
from model_io.memory_usage import PLE_TENSOR, repack_candidates
from model_io.settings import DEFAULT_CONTEXT, MIN_CONTEXT

Verdict = Literal["fits", "slow", "wont_fit"]

MIB = 1 << 20
KV_CELL_PAD = 256  # llama.cpp pads the context and the sliding-window cache to 256 cells
KV_ELEMENT_BYTES = 2  # f16 K and V (llama.cpp's default cache type)
MASK_ELEMENT_BYTES = 2  # f16 attention masks (flash attention)
GEMMA3N_KV_LAYERS = 20  # llama.cpp hard-codes n_layer_kv_from_start = 20 for gemma3n
SWA_PATTERN_DEFAULTS = {"gemma3n": 5, "gemma3": 6, "gemma2": 2}  # llama.cpp's load_swa_pattern defaults
PAGE_BYTES = 4096
PLE_TOKENS = 2048  # distinct tokens whose PLE rows a long conversation pages in
RUNTIME_BYTES = 50 * MIB  # the engine's process before loading: Python and the libraries (Linux, measured)
VOCAB_BYTES_PER_TOKEN = 168  # llama.cpp's tokenizer tables: 42 MiB for Gemma's 262,400 tokens (measured)
VISION_COMPUTE_BYTES_PER_PIXEL = 990  # mtmd's MobileNet-V5 graph buffer: 557 MiB at 768x768 (measured)
AUDIO_WORKING_BYTES = 160 * MIB  # conformer activations and scratch for a 30 s clip (measured)
HEADROOM_FRACTION = 0.10  # of available RAM, left for the OS and the rest of the app
CONTEXT_CHOICES = (DEFAULT_CONTEXT, 4096, 2048, 1024, MIN_CONTEXT)


@dataclass(frozen=True)
class TextShape:
    """What the planner needs from a text model's header."""

    architecture: str
    n_layer: int
    n_embd: int
    n_ff: int
    n_vocab: int
    n_ctx_train: int
    n_swa: int
    swa_layers: tuple[bool, ...]  # per layer: sliding-window attention
    kv_widths: tuple[int, ...]  # per layer: K + V elements per cell, 0 for layers without their own cache
    ple_width: int  # per-layer-embedding values per token (256 x layers for Gemma 3n), 0 if none
    weight_bytes: int  # every tensor but the PLE table
    ple_bytes: int
    ple_row_bytes: int
    file_size: int
    repack_bytes: int  # weights llama.cpp copies into repacked heap buffers (x86-64 AVX2 rule)
    layer_bytes: tuple[int, ...] = ()  # per layer: its ``blk.N.*`` weights (what offloading a layer moves)


@dataclass(frozen=True)
class MemoryPlan:
    """Estimated resident bytes per part, the verdict on a machine, and the settings chosen."""

    n_ctx: int
    n_ubatch: int
    text_weights: int
    ple_mapped: int
    ple_resident: int
    kv_cache: int
    compute: int
    runtime: int
    vision: int
    audio: int
    load_peak: int
    machine: Machine
    verdict: Verdict
    verdict_with_towers: Verdict
    n_gpu_layers: int

    @property
    def text_only(self) -> int:
        """Peak RSS while chatting in text: weights, PLE rows, KV cache, compute, runtime."""
        return self.runtime + self.text_weights + self.ple_resident + self.kv_cache + self.compute

    @property
    def with_towers(self) -> int:
        return self.text_only + self.vision + self.audio

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(text_only=self.text_only, with_towers=self.with_towers)
        return data

    def describe(self) -> str:
        """A few lines for a terminal."""
        parts = [
            ("text weights", self.text_weights),
            ("per-layer embeddings (mapped, not resident)", self.ple_mapped),
            ("  of which paged in", self.ple_resident),
            (f"KV cache ({self.n_ctx:,} tokens)", self.kv_cache),
            (f"compute buffers ({self.n_ubatch}-token batches)", self.compute),
            ("runtime (Python, libraries, tokenizer)", self.runtime),
        ]
        if self.vision:
            parts.append(("vision tower (loaded on first image)", self.vision))
        if self.audio:
            parts.append(("audio tower (loaded on first clip)", self.audio))
        lines = ["memory plan:"] + [f"  {label:<46} {_mib(size)}" for label, size in parts]
        lines.append(f"  {'text chat, peak':<46} {_mib(self.text_only)}  -> {_VERDICT_TEXT[self.verdict]}")
        if self.vision or self.audio:
            lines.append(
                f"  {'with the towers loaded, peak':<46} {_mib(self.with_towers)}  -> "
                f"{_VERDICT_TEXT[self.verdict_with_towers]}"
            )
        lines.append(
            f"  {'while loading (file mapped in full)':<46} {_mib(self.load_peak)}  (page cache, reclaimable)"
        )
        machine, layers = self.machine, "all" if self.n_gpu_layers < 0 else str(self.n_gpu_layers)
        lines.append(
            f"  machine: {_mib(machine.total_bytes)} RAM, {_mib(machine.available_bytes)} available; "
            f"chosen: context {self.n_ctx:,}, GPU layers {layers}"
        )
        return "\n".join(lines)


_VERDICT_RANK = {"fits": 0, "slow": 1, "wont_fit": 2}
_VERDICT_TEXT = {"fits": "fits", "slow": "will be slow (not enough free RAM)", "wont_fit": "won't fit"}


def plan_memory(
    text: GgufSummary,
    projector: GgufSummary | None = None,
    *,
    n_ctx: int = 0,
    n_ubatch: int = 512,
    machine: Machine | None = None,
    layer_arrays: Mapping[str, tuple[int | float | bool, ...]] | None = None,
) -> MemoryPlan:
    """Plan a load of ``text`` (and ``projector``'s towers); ``n_ctx`` 0 chooses the context.

    The chosen context is the largest of :data:`CONTEXT_CHOICES` (at most the model's
    training context) with the best text-only verdict: a smaller context is chosen only
    when that makes the model fit.  ``machine`` defaults to this one.
    ``layer_arrays`` replaces reading the per-layer arrays from the file (tests).
    """
    machine = machine or Machine.current()
    arrays = layer_arrays if layer_arrays is not None else read_layer_arrays(text.path, text.architecture)
    shape = text_shape(text, arrays)
    vision, audio = tower_bytes(projector) if projector is not None else (0, 0)
    contexts = [n_ctx] if n_ctx else _context_candidates(shape)
    plans = [_plan(shape, candidate, n_ubatch, machine, vision, audio) for candidate in contexts]
    best = min(_VERDICT_RANK[plan.verdict] for plan in plans)
    return next(plan for plan in plans if _VERDICT_RANK[plan.verdict] == best)  # the largest context


def _context_candidates(shape: TextShape) -> list[int]:
    limit = shape.n_ctx_train or DEFAULT_CONTEXT
    return [c for c in CONTEXT_CHOICES if c <= limit] or [MIN_CONTEXT]


def _plan(
    shape: TextShape, n_ctx: int, n_ubatch: int, machine: Machine, vision: int, audio: int
) -> MemoryPlan:
    kv = kv_cache_bytes(shape, n_ctx, n_ubatch)
    compute = compute_buffer_bytes(shape, n_ctx, n_ubatch)
    ple_resident = min(shape.ple_bytes, min(n_ctx, PLE_TOKENS) * _pages(shape.ple_row_bytes))
    runtime = RUNTIME_BYTES + shape.n_vocab * VOCAB_BYTES_PER_TOKEN
    text_only = runtime + shape.weight_bytes + ple_resident + kv + compute
    verdict = judge(text_only, machine)
    return MemoryPlan(
        n_ctx=n_ctx,
        n_ubatch=n_ubatch,
        text_weights=shape.weight_bytes,
        ple_mapped=shape.ple_bytes,
        ple_resident=ple_resident,
        kv_cache=kv,
        compute=compute,
        runtime=runtime,
        vision=vision,
        audio=audio,
        load_peak=runtime + shape.file_size + shape.repack_bytes + kv,
        machine=machine,
        verdict=verdict,
        verdict_with_towers=judge(text_only + vision + audio, machine),
        n_gpu_layers=gpu_layers(shape, n_ctx, n_ubatch, machine, verdict),
    )


def gpu_layers(shape: TextShape, n_ctx: int, n_ubatch: int, machine: Machine, verdict: Verdict) -> int:
    """How many layers to offload: -1 (all), a count of the last layers, or 0 (CPU only).

    Where the GPU shares this RAM (Apple silicon, integrated GPUs: no dedicated memory
    reported), everything goes to it if the model fits in RAM.  With a dedicated GPU,
    llama.cpp offloads the *last* n layers with their KV cache and keeps a compute
    buffer there: count layers from the end while they fit in the GPU's free memory
    (less headroom); "all" also needs room for the remaining non-layer weights.
    """
    if not machine.gpu_offload:
        return 0
    if machine.gpu_memory_bytes <= 0:
        return -1 if verdict == "fits" else 0
    budget = machine.gpu_memory_bytes * (1 - HEADROOM_FRACTION) - compute_buffer_bytes(shape, n_ctx, n_ubatch)
    costs = [w + kv for w, kv in zip(shape.layer_bytes, layer_kv_bytes(shape, n_ctx, n_ubatch), strict=True)]
    count = 0
    for cost in reversed(costs):
        if cost > budget:
            break
        budget -= cost
        count += 1
    rest = shape.weight_bytes - sum(shape.layer_bytes)  # output norm, embeddings' GPU copies, projections
    return -1 if count == len(costs) and count and rest <= budget else count


def judge(needed: int, machine: Machine) -> Verdict:
    """fits: within available RAM less headroom; slow: only by pushing other programs or the page
    cache out (within total RAM less headroom); won't fit: more than that."""
    if needed <= machine.available_bytes * (1 - HEADROOM_FRACTION):
        return "fits"
    if needed <= machine.total_bytes * (1 - HEADROOM_FRACTION):
        return "slow"
    return "wont_fit"


# -- the text model ---------------------------------------------------------------------------------


def text_shape(summary: GgufSummary, arrays: Mapping[str, tuple[int | float | bool, ...]]) -> TextShape:
    """Layer widths from tensor shapes (robust to per-layer metadata arrays), the rest from metadata."""
    arch, kv = summary.architecture, summary.kv
    tensors = {t.name: t for t in summary.tensors}
    n_layer = _int(kv.get(f"{arch}.block_count")) or _count_blocks(tensors)
    token_embd = tensors.get("token_embd.weight")
    n_embd = _int(kv.get(f"{arch}.embedding_length")) or (token_embd.shape[0] if token_embd else 0)
    n_vocab = token_embd.shape[1] if token_embd is not None and len(token_embd.shape) == 2 else 0
    ple = tensors.get(PLE_TENSOR)
    kv_from = GEMMA3N_KV_LAYERS if arch == "gemma3n" else n_layer
    swa_layers = _swa_layers(arch, n_layer, kv, arrays)
    kv_widths = tuple(_kv_width(tensors, kv, arch, il) if il < kv_from else 0 for il in range(n_layer))
    n_ff = max(
        (t.shape[1] for n, t in tensors.items() if n.endswith("ffn_gate.weight") and len(t.shape) == 2),
        default=0,
    )
    ple_bytes = ple.n_bytes if ple is not None else 0
    return TextShape(
        architecture=arch,
        n_layer=n_layer,
        n_embd=n_embd,
        n_ff=n_ff,
        n_vocab=n_vocab,
        n_ctx_train=_int(kv.get(f"{arch}.context_length")),
        n_swa=_int(kv.get(f"{arch}.attention.sliding_window")),
        swa_layers=swa_layers,
        kv_widths=kv_widths,
        ple_width=ple.shape[0] if ple is not None else 0,
        weight_bytes=sum(t.n_bytes for t in summary.tensors) - ple_bytes,
        ple_bytes=ple_bytes,
        ple_row_bytes=ple_bytes // ple.shape[1] if ple is not None and len(ple.shape) == 2 else 0,
        file_size=summary.file_size,
        repack_bytes=sum(t.n_bytes for t in repack_candidates(summary.tensors)),
        layer_bytes=tuple(_layer_weight_bytes(summary.tensors, n_layer)),
    )


def _layer_weight_bytes(tensors: Iterable[GgufTensor], n_layer: int) -> list[int]:
    sizes = [0] * n_layer
    for t in tensors:
        parts = t.name.split(".")
        if parts[0] == "blk" and parts[1].isdigit() and int(parts[1]) < n_layer:
            sizes[int(parts[1])] += t.n_bytes
    return sizes


def kv_cache_bytes(shape: TextShape, n_ctx: int, n_ubatch: int) -> int:
    """llama.cpp's KV buffers: global layers hold the padded context, sliding layers window + batch."""
    return sum(layer_kv_bytes(shape, n_ctx, n_ubatch))


def layer_kv_bytes(shape: TextShape, n_ctx: int, n_ubatch: int) -> list[int]:
    """Each layer's KV buffer (0 for layers that reuse an earlier layer's cache)."""
    full, window = _kv_cells(shape, n_ctx, n_ubatch)
    return [
        width * KV_ELEMENT_BYTES * (window if sliding else full)
        for width, sliding in zip(shape.kv_widths, shape.swa_layers, strict=True)
    ]


def _kv_cells(shape: TextShape, n_ctx: int, n_ubatch: int) -> tuple[int, int]:
    full = _pad(n_ctx, KV_CELL_PAD)
    window = _pad(min(full, shape.n_swa + n_ubatch), KV_CELL_PAD) if shape.n_swa else full
    return full, window


def compute_buffer_bytes(shape: TextShape, n_ctx: int, n_ubatch: int) -> int:
    """llama.cpp's compute buffer for one micro-batch, plus the one-row logits output buffer.

    The graph allocator's peak is the widest stage alive at once, per token: in the
    feed-forward, three n_ff-wide float rows (gate, up, activation) next to the AltUp
    and PLE inputs (12 n_ff + 24 n_embd + 8 P bytes); in the per-layer-input projection
    about four P-wide rows (16 P + 8 n_embd), where P is the PLE width.  Plus the f16
    attention masks (cells x batch for the global and the sliding cache).  This model
    matches llama.cpp's reported size within 3 % for the tiny, E2B and E4B shapes.
    """
    full, window = _kv_cells(shape, n_ctx, n_ubatch)
    p = shape.ple_width
    per_token = max(12 * shape.n_ff + 24 * shape.n_embd + 8 * p, 16 * p + 8 * shape.n_embd)
    masks = full + (window if any(shape.swa_layers) else 0)
    return per_token * n_ubatch + masks * n_ubatch * MASK_ELEMENT_BYTES + shape.n_vocab * 4


def _kv_width(tensors: Mapping[str, GgufTensor], kv: Mapping[str, Any], arch: str, il: int) -> int:
    widths = [
        tensors[f"blk.{il}.attn_{x}.weight"].shape[1] for x in "kv" if f"blk.{il}.attn_{x}.weight" in tensors
    ]
    if len(widths) == 2:
        return sum(widths)
    heads = _int(kv.get(f"{arch}.attention.head_count_kv"))
    return heads * (
        _int(kv.get(f"{arch}.attention.key_length")) + _int(kv.get(f"{arch}.attention.value_length"))
    )


def _swa_layers(
    arch: str, n_layer: int, kv: Mapping[str, Any], arrays: Mapping[str, tuple[int | float | bool, ...]]
) -> tuple[bool, ...]:
    """llama.cpp's rule: the per-layer array if present, else every n-th layer (n from metadata or arch)."""
    if not _int(kv.get(f"{arch}.attention.sliding_window")):
        return (False,) * n_layer
    pattern = arrays.get(f"{arch}.attention.sliding_window_pattern")
    if pattern is not None and len(pattern) >= n_layer:
        return tuple(bool(x) for x in pattern[:n_layer])
    n = _int(kv.get(f"{arch}.attention.sliding_window_pattern")) or SWA_PATTERN_DEFAULTS.get(arch, 0)
    return tuple(n == 0 or il % n < n - 1 for il in range(n_layer))


def _count_blocks(tensors: Mapping[str, GgufTensor]) -> int:
    blocks = {int(n.split(".")[1]) for n in tensors if n.startswith("blk.") and n.split(".")[1].isdigit()}
    return max(blocks) + 1 if blocks else 0


# -- towers -----------------------------------------------------------------------------------------


def tower_bytes(projector: GgufSummary) -> tuple[int, int]:
    """(vision, audio) resident bytes once each tower has encoded something."""
    kv = projector.kv
    vision = audio = 0
    if kv.get("clip.has_vision_encoder") is True:
        size = _int(kv.get("clip.vision.image_size"))
        weights = sum(t.n_bytes for t in projector.tensors if _is_vision(t.name))
        vision = weights + size * size * VISION_COMPUTE_BYTES_PER_PIXEL
    if kv.get("clip.has_audio_encoder") is True:
        audio = (
            sum(_audio_kept_bytes(t) for t in projector.tensors if _is_audio(t.name)) + AUDIO_WORKING_BYTES
        )
    return vision, audio


def _is_vision(name: str) -> bool:
    return name.startswith(("v.", "mm.")) and not name.startswith("mm.a.")


def _is_audio(name: str) -> bool:
    return name.startswith(("a.", "mm.a."))


def _audio_kept_bytes(tensor: GgufTensor) -> int:
    """How the NumPy tower holds a tensor ("compact"): 16-bit matrices as they are, the rest float32;
    of the audio vocabulary only two rows; the relative-position projection is folded away."""
    if "linear_pos" in tensor.name:
        return 0
    if tensor.name == "mm.a.embedding.weight":
        return 2 * tensor.shape[0] * 4
    matrix = len([d for d in tensor.shape if d > 1]) == 2
    bytes_per = 2 if matrix and tensor.type_name in ("F16", "BF16") else 4
    return tensor.n_elements * bytes_per


# -- small per-layer arrays from the header -----------------------------------------------------------

_ARRAY_KEYS = ("attention.sliding_window_pattern",)
_SCALAR_FORMATS = {
    GGUFValueType.UINT8: "B",
    GGUFValueType.INT8: "b",
    GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I",
    GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f",
    GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q",
    GGUFValueType.FLOAT64: "d",
}


def read_layer_arrays(path: Path, architecture: str) -> dict[str, tuple[int | float | bool, ...]]:
    """The per-layer metadata arrays the plan needs (e.g. which layers use sliding-window attention).

    validate_gguf keeps only array lengths; this walks the (already validated) metadata
    again and decodes just these short numeric arrays, skipping everything else, and
    stops as soon as they are found.
    """
    wanted = {f"{architecture}.{key}" for key in _ARRAY_KEYS}
    found: dict[str, tuple[int | float | bool, ...]] = {}
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        pos = 24
        (n_kv,) = struct.unpack_from("<Q", buf, 16)
        for _ in range(n_kv):
            if len(found) == len(wanted):
                break
            key, pos = _string(buf, pos)
            (value_type,) = struct.unpack_from("<I", buf, pos)
            pos += 4
            if value_type != GGUFValueType.ARRAY:
                pos = _skip_value(buf, pos, GGUFValueType(value_type), 1)
                continue
            item_type, count = struct.unpack_from("<IQ", buf, pos)
            pos += 12
            fmt = _SCALAR_FORMATS.get(GGUFValueType(item_type))
            if key in wanted and fmt is not None and count <= 1 << 16:
                found[key] = struct.unpack_from(f"<{count}{fmt}", buf, pos)
            pos = _skip_value(buf, pos, GGUFValueType(item_type), count)
    return found


def _string(buf: mmap.mmap, pos: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<Q", buf, pos)
    return bytes(buf[pos + 8 : pos + 8 + length]).decode("utf-8", errors="replace"), pos + 8 + length


def _skip_value(buf: mmap.mmap, pos: int, value_type: GGUFValueType, count: int) -> int:
    if value_type == GGUFValueType.STRING:
        unpack = struct.Struct("<Q").unpack_from
        for _ in range(count):
            pos += 8 + unpack(buf, pos)[0]
        return pos
    return pos + struct.calcsize("<" + _SCALAR_FORMATS[value_type]) * count


# -- helpers ------------------------------------------------------------------------------------------


def _pages(n_bytes: int) -> int:
    """Pages one row of ``n_bytes`` touches at most (rows need not start on a page boundary)."""
    return (-(-n_bytes // PAGE_BYTES) + 1) * PAGE_BYTES if n_bytes else 0


def _pad(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _mib(n: int) -> str:
    return f"{n / MIB:,.0f} MiB"


def plan_for_files(
    model: str | os.PathLike[str],
    mmproj: str | os.PathLike[str] | None = None,
    **options: Any,
) -> MemoryPlan:
    """Validate the files, then :func:`plan_memory` (convenience for the CLI and the engine)."""
    from model_io.gguf_check import validate_gguf

    text = validate_gguf(model, expect="text")
    projector = validate_gguf(mmproj, expect="mmproj") if mmproj is not None else None
    return plan_memory(text, projector, **options)
