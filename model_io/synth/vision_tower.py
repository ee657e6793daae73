"""Synthetic Gemma 3n vision tower (MobileNet-V5 + multimodal embedder) as a llama.cpp "clip" mmproj.

The block layout is written in timm's own block-string notation (``er_…``, ``uir_…``,
``mqa_…``) so the tensors carry exactly the names, shapes and storage types that
llama.cpp's converter (``Gemma3nVisionAudioModel``) writes for
``mobilenetv5_300m_enc``, and exactly the block kinds the ``gemma3nv`` graph
(``tools/mtmd/models/mobilenetv5.cpp``) builds: edge-residual, universal inverted
residual (with and without start/mid depthwise convs), multi-query attention with
and without key/value down-sampling, the multi-scale fusion adapter and the
embedder.  ``tiny`` keeps all of that at toy widths (four stages, a handful of
blocks, width 64) so it builds in well under a second; ``e2b``/``e4b`` are the
published tower (identical for both models, ≈300 M parameters, F16 like a
converted mmproj) for benchmarks.

Two llama.cpp constraints shape the presets: the graph needs four stages (it fuses
the ends of stages 2 and 3) and a 48x48 stage-2 map for a 768 px input (it
average-pools that map to 16x16 = 256 tokens); and ``clip_n_mmproj_embd`` reports the
*input* width of ``mm.input_projection`` for gemma3nv, so mtmd only accepts the file
when the tower width equals the text model's ``n_embd`` (true for the real model:
2048 and 2048).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gguf import GGMLQuantizationType, GGUFWriter

from model_io.paths import cache_dir
from model_io.synth.gemma3n_text import TensorSpec
from model_io.synth.writer import Progress, write_random_gguf

Q = GGMLQuantizationType

IMAGE_SIZE = 768
TOKENS_PER_IMAGE = 256
VISION_VOCAB = 128  # the embedder's hard-token table (ids 262144…262271)
STEM_KERNEL = 3
MSFA_EXPANSION = 2.0
LLAMA_FTYPE_MOSTLY_F16 = 1
WRITER_VERSION = 1

# timm's mobilenetv5_300m_enc (timm/models/mobilenetv5.py, _gen_mobilenet_v5), one string per block.
_MNV5_300M: tuple[tuple[str, ...], ...] = (
    ("er_r1_k3_s2_e4_c128", "er_r1_k3_s1_e4_c128", "er_r1_k3_s1_e4_c128"),
    (
        "uir_r1_a3_k5_s2_e6_c256",
        "uir_r1_a5_k0_s1_e4_c256",
        "uir_r1_a3_k0_s1_e4_c256",
        "uir_r1_a5_k0_s1_e4_c256",
        "uir_r1_a3_k0_s1_e4_c256",
    ),
    (
        "uir_r1_a5_k5_s2_e6_c640",
        *("uir_r1_a5_k0_s1_e4_c640",) * 7,
        "uir_r1_a0_k0_s1_e1_c640",
        *("mqa_r1_k3_h12_v2_s1_d64_c640", "uir_r1_a0_k0_s1_e2_c640") * 14,
    ),
    (
        "uir_r1_a5_k5_s2_e6_c1280",
        *("mqa_r1_k3_h16_s1_d96_c1280", "uir_r1_a0_k0_s1_e2_c1280") * 19,
    ),
)

# Every block kind and option the 300M tower uses, at toy widths.
_MNV5_TINY: tuple[tuple[str, ...], ...] = (
    ("er_r1_k3_s2_e2_c8", "er_r1_k3_s1_e2_c8"),
    ("uir_r1_a3_k5_s2_e2_c16", "uir_r1_a3_k0_s1_e2_c16"),
    (
        "uir_r1_a5_k5_s2_e2_c24",
        "uir_r1_a0_k0_s1_e1_c24",
        "mqa_r1_k3_h2_v2_s1_d8_c24",
        "uir_r1_a0_k0_s1_e2_c24",
    ),
    ("uir_r1_a5_k5_s2_e2_c32", "mqa_r1_k3_h2_s1_d8_c32", "uir_r1_a0_k0_s1_e2_c32"),
)


@dataclass(frozen=True)
class VisionPreset:
    """A MobileNet-V5 tower: stem width, timm block strings per stage, output width and storage type."""

    name: str
    stem: int
    stages: tuple[tuple[str, ...], ...]
    hidden: int
    conv_type: GGMLQuantizationType
    seed: int
    description: str = field(default="", compare=False)

    @property
    def msfa_in(self) -> int:
        """The fusion adapter concatenates the outputs of the last two stages."""
        return sum(parse_block(stage[-1]).out_chs for stage in self.stages[-2:])


VISION_PRESETS: dict[str, VisionPreset] = {
    "tiny": VisionPreset(
        "tiny", 8, _MNV5_TINY, 64, Q.F16, seed=11, description="all MobileNet-V5 block kinds at width ≤ 64"
    ),
    "e2b": VisionPreset(
        "e2b", 64, _MNV5_300M, 2048, Q.F16, seed=12, description="mobilenetv5_300m_enc, F16 (≈0.6 GB)"
    ),
    "e4b": VisionPreset(
        "e4b", 64, _MNV5_300M, 2048, Q.F16, seed=12, description="mobilenetv5_300m_enc, F16 (≈0.6 GB)"
    ),
}


@dataclass(frozen=True)
class Block:
    """One decoded timm block string."""

    kind: str  # "er", "uir" or "mqa"
    out_chs: int
    stride: int
    kernel: int = 0  # er: expansion conv; uir: mid depthwise; mqa: key/value down-sampling conv
    start_kernel: int = 0  # uir: start depthwise
    exp_ratio: float = 1.0
    heads: int = 0
    head_dim: int = 0
    kv_stride: int = 1


def parse_block(text: str) -> Block:
    """Decode the subset of timm's block-string notation MobileNet-V5 uses."""
    kind, *ops = text.split("_")
    opts = {m.group(1): m.group(2) for op in ops if (m := re.fullmatch(r"([a-z]+)(\d.*)", op))}
    if kind not in ("er", "uir", "mqa") or opts.get("r") != "1":
        raise ValueError(f"unsupported block string {text!r}")
    return Block(
        kind=kind,
        out_chs=int(opts["c"]),
        stride=int(opts["s"]),
        kernel=int(opts.get("k", 0)),
        start_kernel=int(opts.get("a", 0)),
        exp_ratio=float(opts.get("e", 1)),
        heads=int(opts.get("h", 0)),
        head_dim=int(opts.get("d", 0)),
        kv_stride=int(opts.get("v", 1)),
    )


def make_divisible(value: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """timm's channel rounding, so expanded widths match the real tower."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < round_limit * value else rounded


def resolve_vision_preset(name: str) -> VisionPreset:
    from model_io.errors import InputError

    try:
        return VISION_PRESETS[name]
    except KeyError:
        choices = ", ".join(VISION_PRESETS)
        raise InputError(f"unknown synthetic vision preset {name!r}; choose one of {choices}") from None


# -- tensor plan ------------------------------------------------------------------------------


def _conv(name: str, kernel: int, n_in: int, n_out: int, qtype: GGMLQuantizationType) -> TensorSpec:
    """A conv weight: torch (out, in, kh, kw) is ggml (kw, kh, in, out)."""
    return TensorSpec(name, (kernel, kernel, n_in, n_out), qtype, std=1.0 / math.sqrt(n_in * kernel * kernel))


def _depthwise(name: str, kernel: int, channels: int, qtype: GGMLQuantizationType) -> TensorSpec:
    return TensorSpec(name, (kernel, kernel, 1, channels), qtype, std=1.0 / kernel)


def _norm(name: str, width: int) -> TensorSpec:
    return TensorSpec(name, (width,), Q.F32, std=0.05, mean=1.0)


def _channel_vector(name: str, width: int, *, std: float, mean: float = 0.0) -> TensorSpec:
    """A per-channel [1, C, 1, 1] tensor (stem bias, layer-scale gamma), as the converter unsqueezes them."""
    return TensorSpec(name, (1, 1, width, 1), Q.F32, std=std, mean=mean)


def _edge_residual(b: str, blk: Block, n_in: int, qtype: GGMLQuantizationType) -> list[TensorSpec]:
    mid = make_divisible(n_in * blk.exp_ratio)
    return [
        _conv(b + "conv_exp.weight", blk.kernel, n_in, mid, qtype),
        _norm(b + "bn1.weight", mid),
        _conv(b + "conv_pwl.weight", 1, mid, blk.out_chs, qtype),
        _norm(b + "bn2.weight", blk.out_chs),
    ]


def _inverted_residual(b: str, blk: Block, n_in: int, qtype: GGMLQuantizationType) -> list[TensorSpec]:
    mid = make_divisible(n_in * blk.exp_ratio)
    specs = []
    if blk.start_kernel:
        specs += [
            _depthwise(b + "dw_start.conv.weight", blk.start_kernel, n_in, qtype),
            _norm(b + "dw_start.bn.weight", n_in),
        ]
    specs += [_conv(b + "pw_exp.conv.weight", 1, n_in, mid, qtype), _norm(b + "pw_exp.bn.weight", mid)]
    if blk.kernel:
        specs += [
            _depthwise(b + "dw_mid.conv.weight", blk.kernel, mid, qtype),
            _norm(b + "dw_mid.bn.weight", mid),
        ]
    return [
        *specs,
        _conv(b + "pw_proj.conv.weight", 1, mid, blk.out_chs, qtype),
        _norm(b + "pw_proj.bn.weight", blk.out_chs),
        _channel_vector(b + "layer_scale.gamma", blk.out_chs, std=0.02, mean=0.1),
    ]


def _attention(b: str, blk: Block, n_in: int, qtype: GGMLQuantizationType) -> list[TensorSpec]:
    specs = [
        _norm(b + "norm.weight", n_in),
        _conv(b + "attn.query.proj.weight", 1, n_in, blk.heads * blk.head_dim, qtype),
    ]
    for part in ("key", "value"):
        if blk.kv_stride > 1:
            specs += [
                _depthwise(f"{b}attn.{part}.down_conv.weight", blk.kernel, n_in, qtype),
                _norm(f"{b}attn.{part}.norm.weight", n_in),
            ]
        specs.append(_conv(f"{b}attn.{part}.proj.weight", 1, n_in, blk.head_dim, qtype))
    return [
        *specs,
        _conv(b + "attn.output.proj.weight", 1, blk.heads * blk.head_dim, blk.out_chs, qtype),
        _channel_vector(b + "layer_scale.gamma", blk.out_chs, std=0.02, mean=0.1),
    ]


_BLOCK_PLANS: dict[str, Callable[[str, Block, int, GGMLQuantizationType], list[TensorSpec]]] = {
    "er": _edge_residual,
    "uir": _inverted_residual,
    "mqa": _attention,
}


def vision_tensor_plan(preset: str | VisionPreset, *, text_n_embd: int | None = None) -> list[TensorSpec]:
    """Every tensor of the tower and embedder, named and typed as llama.cpp's converter writes them."""
    p = resolve_vision_preset(preset) if isinstance(preset, str) else preset
    out_width = p.hidden if text_n_embd is None else text_n_embd
    specs = [
        TensorSpec("v.conv_stem.conv.weight", (STEM_KERNEL, STEM_KERNEL, 3, p.stem), Q.F32, std=0.2),
        _channel_vector("v.conv_stem.conv.bias", p.stem, std=0.1),
        _norm("v.conv_stem.bn.weight", p.stem),
    ]
    n_in = p.stem
    for stage, blocks in enumerate(p.stages):
        for index, text in enumerate(blocks):
            blk = parse_block(text)
            specs += _BLOCK_PLANS[blk.kind](f"v.blk.{stage}.{index}.", blk, n_in, p.conv_type)
            n_in = blk.out_chs
    msfa_mid = make_divisible(p.msfa_in * MSFA_EXPANSION)
    specs += [
        _conv("v.msfa.ffn.pw_exp.conv.weight", 1, p.msfa_in, msfa_mid, p.conv_type),
        _norm("v.msfa.ffn.pw_exp.bn.weight", msfa_mid),
        _conv("v.msfa.ffn.pw_proj.conv.weight", 1, msfa_mid, p.hidden, p.conv_type),
        _norm("v.msfa.ffn.pw_proj.bn.weight", p.hidden),
        _norm("v.msfa.norm.weight", p.hidden),
        # The embedder (HF Gemma3nMultimodalEmbedder): mtmd uses only the soft path; the hard-token table
        # and its norm embed <end_of_image> & co. in HF and are written by the converter all the same.
        TensorSpec("mm.embedding.weight", (p.hidden, VISION_VOCAB), Q.F16, std=1.0),
        _norm("mm.hard_emb_norm.weight", p.hidden),
        _norm("mm.soft_emb_norm.weight", p.hidden),
        TensorSpec("mm.input_projection.weight", (p.hidden, out_width), Q.F16, std=1.0 / math.sqrt(p.hidden)),
    ]
    return specs


# -- metadata and file ----------------------------------------------------------------------


def add_vision_metadata(
    writer: GGUFWriter, preset: str | VisionPreset, *, text_n_embd: int | None = None
) -> None:
    """The ``clip.vision.*`` keys and the vision flag, with the values the converter writes for Gemma 3n."""
    p = resolve_vision_preset(preset) if isinstance(preset, str) else preset
    writer.add_clip_has_vision_encoder(True)
    writer.add_vision_projection_dim(p.hidden if text_n_embd is None else text_n_embd)
    writer.add_vision_image_size(IMAGE_SIZE)
    writer.add_vision_patch_size(IMAGE_SIZE // TOKENS_PER_IMAGE)  # 3: the converter's image_size // 256
    writer.add_vision_embedding_length(p.hidden)
    writer.add_vision_feed_forward_length(p.hidden * 4)  # unused by the gemma3nv graph
    writer.add_vision_block_count(128)  # the converter's placeholder; MobileNet blocks are discovered by name
    writer.add_vision_head_count(8)
    writer.add_vision_image_mean([0.0, 0.0, 0.0])  # MobileNet-V5 takes pixels / 255, no normalisation
    writer.add_vision_image_std([1.0, 1.0, 1.0])
    writer.add_clip_vision_projector_type("gemma3nv")
    writer.add_vision_attention_layernorm_eps(1e-6)


def write_vision_mmproj(
    preset: str | VisionPreset, out_path: Path, *, text_n_embd: int, progress: Progress | None = None
) -> Path:
    """Write a complete vision-only clip mmproj for a text model of width ``text_n_embd``."""
    p = resolve_vision_preset(preset) if isinstance(preset, str) else preset
    if text_n_embd != p.hidden:
        raise ValueError(
            f"the {p.name} vision tower is {p.hidden} wide but the text model has n_embd {text_n_embd}; "
            "llama.cpp's gemma3nv loader requires them to be equal"
        )

    def metadata(writer: GGUFWriter) -> None:
        writer.add_type("mmproj")
        writer.add_name(f"Gemma 3n synthetic {p.name} vision tower (random weights)")
        writer.add_file_type(LLAMA_FTYPE_MOSTLY_F16)
        writer.add_clip_has_audio_encoder(False)
        add_vision_metadata(writer, p, text_n_embd=text_n_embd)
        writer.add_string("gemma_desk.synthetic.vision_preset", p.name)
        writer.add_uint32("gemma_desk.synthetic.vision_seed", p.seed)
        writer.add_uint32("gemma_desk.synthetic.vision_writer_version", WRITER_VERSION)

    plan = vision_tensor_plan(p, text_n_embd=text_n_embd)
    return write_random_gguf(out_path, "clip", metadata, plan, p.seed, progress)


def cached_vision_mmproj(preset: str = "tiny", *, progress: Progress | None = None) -> Path:
    """Build the preset's mmproj once into the cache directory (for its own width) and reuse it."""
    p = resolve_vision_preset(preset)
    target = (
        cache_dir()
        / "synthetic"
        / f"vision-v{WRITER_VERSION}"
        / f"gemma-3n-synthetic-{p.name}-mmproj-vision.gguf"
    )
    if not target.exists():
        write_vision_mmproj(p, target, text_n_embd=p.hidden, progress=progress)
    return target


def parameter_count(preset: str | VisionPreset) -> int:
    """Weights in the tower and embedder (the real 300M tower: ≈0.3 B)."""
    return sum(math.prod(t.shape) for t in vision_tensor_plan(preset))
