"""The decode roofline: how fast token generation could be if memory bandwidth were the only limit.

Decoding one token reads every weight the graph uses once, so
``limit = copy bandwidth / bytes read per token``.  What a token reads is taken
from the GGUF's own tensor table, with Gemma 3n's two exceptions:

* ``per_layer_token_embd`` (the per-layer embedding table, ≈ a third of the file) is
  *looked up*: one row per token, never streamed;
* layers that reuse an earlier layer's KV cache (the last ``shared_kv_layers``) never
  compute their own K and V projections, so ``attn_k``/``attn_v`` of those layers are
  not read (llama.cpp's gemma3n graph builds only Q there).

The token embedding table doubles as the output projection (tied weights), so it is
streamed in full.  The KV cache adds, per layer with its own cache, K and V rows for
every position the token attends to (the sliding window on local layers).
"""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from model_io.gguf_check import GgufSummary

PLE_TABLE = "per_layer_token_embd.weight"
GEMMA3N_GLOBAL_EVERY = 5  # llama.cpp's gemma3n default pattern: 4 sliding-window layers, then 1 global


@dataclass(frozen=True)
class Bandwidth:
    """Best large-copy bandwidth, counted as bytes read + bytes written (the STREAM "copy" convention)."""

    bytes_per_s: float
    buffer_bytes: int
    threads: int
    repeats: int
    per_thread_count: dict[int, float]  # best GB/s for each thread count tried

    def to_dict(self) -> dict[str, Any]:
        return {
            "gb_per_s": round(self.bytes_per_s / 1e9, 2),
            "buffer_mib": self.buffer_bytes // 2**20,
            "threads": self.threads,
            "repeats": self.repeats,
            "gb_per_s_by_threads": {str(k): round(v / 1e9, 2) for k, v in self.per_thread_count.items()},
        }


def measure_copy_bandwidth(buffer_bytes: int = 256 * 2**20, repeats: int = 7, threads: int = 1) -> Bandwidth:
    """Best of ``repeats`` copies of a ``buffer_bytes`` array (far beyond any cache), with 1..threads threads.

    NumPy releases the GIL while copying, so the threads copy disjoint slices in parallel,
    as llama.cpp's threads stream disjoint rows of a weight matrix.
    """
    source = np.ones(buffer_bytes, dtype=np.uint8)
    target = np.zeros_like(source)  # both written once, so no page fault lands inside a timed copy
    best: dict[int, float] = {}
    counts = sorted({1, max(1, threads)})
    with ThreadPoolExecutor(max_workers=max(counts)) as pool:
        for count in counts:
            bounds = np.linspace(0, buffer_bytes, count + 1).astype(int)
            slices = [slice(int(lo), int(hi)) for lo, hi in itertools.pairwise(bounds)]
            fastest = float("inf")
            for _ in range(repeats):
                started = time.perf_counter()
                list(pool.map(lambda part: np.copyto(target[part], source[part]), slices))
                fastest = min(fastest, time.perf_counter() - started)
            best[count] = 2 * buffer_bytes / fastest
    peak = max(best, key=lambda k: best[k])
    return Bandwidth(best[peak], buffer_bytes, peak, repeats, best)


@dataclass(frozen=True)
class DecodeTraffic:
    """Bytes one decoded token reads, by where they come from."""

    weights_streamed: int
    ple_row: int
    kv_cache: int
    ple_table_skipped: int  # the table's full size, which is NOT read per token
    unused_kv_weights_skipped: int  # attn_k/attn_v of KV-sharing layers, never computed
    context_tokens: float

    @property
    def total(self) -> int:
        return self.weights_streamed + self.ple_row + self.kv_cache

    def limit_tokens_per_s(self, bandwidth: Bandwidth) -> float:
        return bandwidth.bytes_per_s / self.total

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}


def decode_traffic(
    summary: GgufSummary, context_tokens: float, kv_bytes_per_value: float = 2.0
) -> DecodeTraffic:
    """Bytes read to decode one token with ``context_tokens`` already cached (f16 KV by default)."""
    arch = summary.architecture
    n_layer = _int(summary, f"{arch}.block_count")
    shared = _int(summary, f"{arch}.attention.shared_kv_layers", 0)
    first_shared = n_layer - shared
    skipped_kv = 0
    ple_table = ple_row = streamed = 0
    for tensor in summary.tensors:
        if tensor.name == PLE_TABLE:
            ple_table = tensor.n_bytes
            ple_row = tensor.n_bytes // tensor.shape[1]  # ggml order: (row length, rows)
        elif shared and _layer_of(tensor.name) >= first_shared and _is_kv_projection(tensor.name):
            skipped_kv += tensor.n_bytes
        else:
            streamed += tensor.n_bytes
    kv = _kv_bytes(summary, n_layer, first_shared, context_tokens, kv_bytes_per_value)
    return DecodeTraffic(streamed, ple_row, kv, ple_table, skipped_kv, context_tokens)


def _kv_bytes(
    summary: GgufSummary, n_layer: int, first_shared: int, context: float, bytes_per_value: float
) -> int:
    """K and V rows read by attention: per layer with its own cache, the positions it attends to."""
    arch = summary.architecture
    n_head = _int(summary, f"{arch}.attention.head_count")
    n_head_kv = _int(summary, f"{arch}.attention.head_count_kv", n_head)
    n_embd = _int(summary, f"{arch}.embedding_length")
    key = _int(summary, f"{arch}.attention.key_length", n_embd // max(1, n_head))
    value = _int(summary, f"{arch}.attention.value_length", key)
    window = _int(summary, f"{arch}.attention.sliding_window", 0)
    total = 0.0
    for layer in range(first_shared):
        is_global = window == 0 or arch != "gemma3n" or (layer + 1) % GEMMA3N_GLOBAL_EVERY == 0
        positions = context if is_global else min(context, window)
        total += positions * n_head_kv * (key + value) * bytes_per_value
    return int(total)


def _int(summary: GgufSummary, key: str, default: int | None = None) -> int:
    value = summary.kv.get(key, default)
    if value is None or isinstance(value, str | bytes | bool):
        raise ValueError(f"{summary.path.name} has no integer {key}")
    return int(value)


def _layer_of(name: str) -> int:
    parts = name.split(".")
    return int(parts[1]) if len(parts) > 2 and parts[0] == "blk" and parts[1].isdigit() else -1


def _is_kv_projection(name: str) -> bool:
    return name.split(".")[2:3] in (["attn_k"], ["attn_v"])
