"""Synthetic Gemma 3n text checkpoints: true architecture, random weights, real tokenizer.

What is real: every tensor name, shape and (for the full presets) storage type
that llama.cpp's converter and ``llama-quantize`` produce for Gemma 3n, all
architecture metadata, the Gemma tokenizer and the Gemma 3n chat template.
What is random: the weight values (seeded, so a preset always gives the same
bytes).  ``tiny`` keeps the layer structure (AltUp, LAuReL, per-layer
embeddings, sparse FFN, sliding and global attention) at toy widths so it
builds in seconds; ``e2b``/``e4b`` have the published shapes in a Q4_K_M-like
mix for speed and memory measurements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from gguf import GGMLQuantizationType

from model_io.synth.vocab import GEMMA3_TEXT_VOCAB, GEMMA3N_VOCAB

Q = GGMLQuantizationType

# Hard-coded in llama.cpp's gemma3n graph and loader; a checkpoint must agree with them.
N_ALTUP = 4
LAUREL_RANK = 64
PER_LAYER_WIDTH = 256
KV_FROM_START = 20
SPARSE_LAYERS = 10
SPARSITY_STD_MULTIPLIER = 1.6448533535003662  # Φ⁻¹(0.95)

LLAMA_FTYPE_MOSTLY_Q4_K_M = 15


@dataclass(frozen=True)
class TextPreset:
    """Hyper-parameters plus the storage type of each tensor family."""

    name: str
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    sliding_window: int
    full_attention_layers: tuple[int, ...]
    token_embd_type: GGMLQuantizationType
    ple_type: GGMLQuantizationType
    matrix_type: GGMLQuantizationType
    matrix_more_bits_type: GGMLQuantizationType
    small_matrix_type: GGMLQuantizationType
    file_type: int | None
    seed: int
    context_length: int = 32768
    description: str = field(default="", compare=False)

    @property
    def ple_width(self) -> int:
        return PER_LAYER_WIDTH * self.n_layer

    @property
    def shared_kv_layers(self) -> int:
        return max(0, self.n_layer - KV_FROM_START)

    def is_sliding(self, layer: int) -> bool:
        return layer not in self.full_attention_layers


def _every_fifth(n_layer: int) -> tuple[int, ...]:
    return tuple(i for i in range(n_layer) if (i + 1) % 5 == 0)


def _full_size(name: str, *, n_layer: int, n_ff: int, seed: int, size: str) -> TextPreset:
    """The published E2B/E4B shapes (they differ only in depth and FFN width) in a Q4_K_M-like mix."""
    return TextPreset(
        name=name,
        n_embd=2048,
        n_layer=n_layer,
        n_head=8,
        n_head_kv=2,
        head_dim=256,
        n_ff=n_ff,
        sliding_window=512,
        full_attention_layers=_every_fifth(n_layer),
        token_embd_type=Q.Q6_K,
        ple_type=Q.Q6_K,
        matrix_type=Q.Q4_K,
        matrix_more_bits_type=Q.Q6_K,
        small_matrix_type=Q.F16,
        file_type=LLAMA_FTYPE_MOSTLY_Q4_K_M,
        seed=seed,
        description=f"full Gemma 3n {name.upper()} shapes, Q4_K_M-like types ({size})",
    )


PRESETS: dict[str, TextPreset] = {
    "tiny": TextPreset(
        name="tiny",
        n_embd=64,
        n_layer=4,
        n_head=2,
        n_head_kv=1,
        head_dim=32,
        n_ff=128,
        sliding_window=32,
        full_attention_layers=(3,),
        token_embd_type=Q.Q8_0,
        ple_type=Q.TQ1_0,
        matrix_type=Q.F32,
        matrix_more_bits_type=Q.F32,
        small_matrix_type=Q.F32,
        file_type=None,
        seed=3,
        description="4 layers at width 64; builds in seconds; used by the test suite",
    ),
    "e2b": _full_size("e2b", n_layer=30, n_ff=8192, seed=2, size="≈3 GB"),
    "e4b": _full_size("e4b", n_layer=35, n_ff=16384, seed=4, size="≈4.5 GB"),
}


@dataclass(frozen=True)
class TensorSpec:
    """One tensor to write: ggml shape (ne0 first), type and how to fill it."""

    name: str
    shape: tuple[int, ...]
    qtype: GGMLQuantizationType
    std: float
    mean: float = 0.0
    zero_rows_from: int | None = None

    @property
    def n_rows(self) -> int:
        return math.prod(self.shape[1:])

    @property
    def row_elements(self) -> int:
        return self.shape[0]


def _use_more_bits(layer: int, n_layer: int) -> bool:
    """llama-quantize's Q4_K_M rule for which attn_v / ffn_down layers get Q6_K."""
    return layer < n_layer // 8 or layer >= 7 * n_layer // 8 or (layer - n_layer // 8) % 3 == 2


def tensor_plan(preset: TextPreset) -> list[TensorSpec]:
    """Every tensor llama.cpp's gemma3n loader requires, in converter order."""
    p = preset
    d = p.n_embd

    def norm(name: str, width: int = d) -> TensorSpec:
        return TensorSpec(name, (width,), Q.F32, std=0.05, mean=1.0)

    def matrix(name: str, n_in: int, n_out: int, qtype: GGMLQuantizationType) -> TensorSpec:
        return TensorSpec(name, (n_in, n_out), qtype, std=1.0 / math.sqrt(n_in))

    specs = [
        TensorSpec("token_embd.weight", (d, GEMMA3N_VOCAB), p.token_embd_type, std=2.0 / math.sqrt(d)),
        TensorSpec(
            "per_layer_token_embd.weight",
            (p.ple_width, GEMMA3N_VOCAB),
            p.ple_type,
            std=1.0 / math.sqrt(PER_LAYER_WIDTH),
            zero_rows_from=GEMMA3_TEXT_VOCAB,
        ),
        TensorSpec("altup_proj.weight", (d, d, N_ALTUP - 1), p.small_matrix_type, std=1.0 / math.sqrt(d)),
        TensorSpec(
            "altup_unembd_proj.weight", (d, d, N_ALTUP - 1), p.small_matrix_type, std=1.0 / math.sqrt(d)
        ),
        matrix("per_layer_model_proj.weight", d, p.ple_width, p.small_matrix_type),
        norm("per_layer_proj_norm.weight", PER_LAYER_WIDTH),
        norm("output_norm.weight"),
    ]
    for i in range(p.n_layer):
        specs += _layer_plan(p, i, norm, matrix)
    return specs


def _layer_plan(p: TextPreset, i: int, norm, matrix) -> list[TensorSpec]:  # type: ignore[no-untyped-def]
    d = p.n_embd
    b = f"blk.{i}."
    more_bits = p.matrix_more_bits_type if _use_more_bits(i, p.n_layer) else p.matrix_type
    q_width, kv_width = p.head_dim * p.n_head, p.head_dim * p.n_head_kv
    return [
        norm(b + "attn_norm.weight"),
        matrix(b + "attn_q.weight", d, q_width, p.matrix_type),
        matrix(b + "attn_k.weight", d, kv_width, p.matrix_type),
        matrix(b + "attn_v.weight", d, kv_width, more_bits),
        matrix(b + "attn_output.weight", q_width, d, p.matrix_type),
        norm(b + "attn_q_norm.weight", p.head_dim),
        norm(b + "attn_k_norm.weight", p.head_dim),
        norm(b + "post_attention_norm.weight"),
        norm(b + "ffn_norm.weight"),
        matrix(b + "ffn_gate.weight", d, p.n_ff, p.matrix_type),
        matrix(b + "ffn_up.weight", d, p.n_ff, p.matrix_type),
        matrix(b + "ffn_down.weight", p.n_ff, d, more_bits),
        norm(b + "post_ffw_norm.weight"),
        matrix(b + "inp_gate.weight", d, PER_LAYER_WIDTH, p.matrix_type),
        matrix(b + "proj.weight", PER_LAYER_WIDTH, d, p.matrix_type),
        norm(b + "post_norm.weight"),
        TensorSpec(b + "altup_correct_coef.weight", (N_ALTUP, N_ALTUP), Q.F32, std=0.1),
        TensorSpec(b + "altup_correct_scale.weight", (d,), Q.F32, std=0.05, mean=1.0),
        TensorSpec(b + "altup_predict_coef.weight", (N_ALTUP, N_ALTUP * N_ALTUP), Q.F32, std=0.1),
        TensorSpec(b + "altup_router.weight", (d, N_ALTUP), Q.F32, std=1.0 / math.sqrt(d)),
        norm(b + "altup_router_norm.weight"),
        TensorSpec(b + "laurel_l.weight", (d, LAUREL_RANK), p.small_matrix_type, std=1.0 / math.sqrt(d)),
        TensorSpec(
            b + "laurel_r.weight", (LAUREL_RANK, d), p.small_matrix_type, std=1.0 / math.sqrt(LAUREL_RANK)
        ),
        norm(b + "laurel_post_norm.weight"),
    ]


def default_filename(preset: TextPreset) -> str:
    return f"gemma-3n-synthetic-{preset.name}.gguf"


def resolve_preset(name: str) -> TextPreset:
    from model_io.errors import InputError

    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(f"unknown synthetic preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def output_path(out: Path, preset: TextPreset) -> Path:
    """Accept either a directory or a file path for ``--out``."""
    return out / default_filename(preset) if out.is_dir() or not out.suffix else out
