"""Synthetic Gemma 3n audio towers for mmproj GGUFs: converter-exact layout, random weights.

What is real: every tensor name, ggml shape and storage type, and every
``clip.audio.*`` key, exactly as llama.cpp's converter (``Gemma3nVisionAudioModel``)
writes them for a Gemma 3n checkpoint, including its quirks: ``a.pre_encode.out``
is always F16, convolution weights always F32, norms F32, ``per_dim_scale`` has no
``.weight`` suffix, ``clip.audio.feed_forward_length`` is the hard-coded 6144 and
``clip.audio.attention.layer_norm_epsilon`` the wrong 1e-5.  The two SSCP
group-norm weights are named as the converter names them once its mapping gap
is fixed (``a.conv1d.{0,1}.norm.weight``, gemma3n-audio.md §4.4).
``tools/make_audio_reference.py`` runs the real converter on an HF checkpoint
of the ``tiny`` shapes and records its output, which the tests compare with this plan.

What is random: the values (seeded by preset and tensor name), with sane scales
(norms around 1, linear layers at 1/√fan_in) so activations stay realistic.
``tiny`` builds in well under a second; ``e2b``/``e4b`` are the published shapes
(the two models share one audio tower) with F16 matrices, as in an
``mmproj-…-f16.gguf``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType

from model_io.synth.gemma3n_text import TensorSpec
from model_io.synth.writer import Progress, write_random_gguf

Q = GGMLQuantizationType

PROJECTOR_TYPE = "gemma3na"
N_MELS = 128
AUDIO_VOCAB = 128
SSCP_KERNEL = 3
CONVERTER_FFN_LENGTH = 6144  # the converter's hard-coded default; HF's audio config has no such key
CONVERTER_LAYER_NORM_EPS = 1e-5  # what the converter writes; the model uses 1e-6
WRITER_VERSION = 1

_FILE_TYPES = {
    Q.F32: LlamaFileType.ALL_F32,
    Q.F16: LlamaFileType.MOSTLY_F16,
    Q.Q8_0: LlamaFileType.MOSTLY_Q8_0,
}


@dataclass(frozen=True)
class AudioPreset:
    """Shapes of one audio tower plus the type of its "follows --outtype" matrices."""

    name: str
    d_model: int
    n_layer: int
    n_head: int
    sscp_channels: tuple[int, int]
    conv_kernel: int
    n_embd_text: int
    matrix_type: GGMLQuantizationType
    seed: int
    description: str = field(default="", compare=False)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def d_ffn(self) -> int:
        return 4 * self.d_model  # hard-wired in Gemma3nAudioConformerFeedForward

    @property
    def sscp_widths(self) -> tuple[int, int]:
        """Frequency widths after the two stride-2 convolutions (pad 1 each side): 128 → 64 → 32."""
        f1 = (N_MELS + 2 - SSCP_KERNEL) // 2 + 1
        return f1, (f1 + 2 - SSCP_KERNEL) // 2 + 1


def _full_size(name: str) -> AudioPreset:
    return AudioPreset(
        name=name,
        d_model=1536,
        n_layer=12,
        n_head=8,
        sscp_channels=(128, 32),
        conv_kernel=5,
        n_embd_text=2048,
        matrix_type=Q.F16,
        seed=30,  # E2B and E4B have the same audio tower, so the same bytes
        description=f"Gemma 3n {name.upper()} audio tower shapes, F16 matrices (≈1.4 GB)",
    )


AUDIO_PRESETS: dict[str, AudioPreset] = {
    "tiny": AudioPreset(
        name="tiny",
        d_model=64,
        n_layer=2,
        n_head=4,
        sscp_channels=(16, 8),
        conv_kernel=5,
        n_embd_text=64,  # the tiny synthetic text model's width
        matrix_type=Q.F32,
        seed=31,
        description="2 conformer blocks at width 64, F32 matrices; for the test suite",
    ),
    "tiny-q8": AudioPreset(
        name="tiny-q8",
        d_model=96,
        n_layer=3,
        n_head=2,
        sscp_channels=(8, 16),
        conv_kernel=3,
        n_embd_text=64,
        matrix_type=Q.Q8_0,
        seed=32,
        description="3 blocks at width 96, 2 heads, kernel 3, Q8_0 matrices; the fidelity variant",
    ),
    "e2b": _full_size("e2b"),
    "e4b": _full_size("e4b"),
}


def resolve_audio_preset(preset: str | AudioPreset) -> AudioPreset:
    if isinstance(preset, AudioPreset):
        return preset
    from model_io.errors import InputError

    try:
        return AUDIO_PRESETS[preset]
    except KeyError:
        raise InputError(
            f"unknown synthetic audio preset {preset!r}; choose one of {', '.join(AUDIO_PRESETS)}"
        ) from None


def audio_tensor_plan(preset: str | AudioPreset) -> list[TensorSpec]:
    """Every audio tensor the converter writes, with ggml shapes (ne0 first) and its storage types."""
    p = resolve_audio_preset(preset)
    d, c0, c1 = p.d_model, *p.sscp_channels
    k = SSCP_KERNEL
    _, f2 = p.sscp_widths
    specs = [
        _conv("a.conv1d.0.weight", (k, k, 1, c0)),
        _norm("a.conv1d.0.norm.weight", c0),
        _conv("a.conv1d.1.weight", (k, k, c0, c1)),
        _norm("a.conv1d.1.norm.weight", c1),
        _matrix("a.pre_encode.out.weight", f2 * c1, d, Q.F16),
    ]
    for i in range(p.n_layer):
        specs += _block_plan(p, f"a.blk.{i}.")
    specs += [
        TensorSpec("mm.a.embedding.weight", (d, AUDIO_VOCAB), p.matrix_type, std=1.0),
        _norm("mm.a.hard_emb_norm.weight", d),
        _norm("mm.a.soft_emb_norm.weight", d),
        _matrix("mm.a.input_projection.weight", d, p.n_embd_text, p.matrix_type),
    ]
    return specs


def _norm(name: str, width: int) -> TensorSpec:
    return TensorSpec(name, (width,), Q.F32, std=0.1, mean=1.0)


def _matrix(name: str, n_in: int, n_out: int, qtype: GGMLQuantizationType) -> TensorSpec:
    return TensorSpec(name, (n_in, n_out), qtype, std=1.0 / math.sqrt(n_in))


def _conv(name: str, shape: tuple[int, ...]) -> TensorSpec:
    fan_in = math.prod(shape[:-1])
    return TensorSpec(name, shape, Q.F32, std=1.0 / math.sqrt(fan_in))


def _block_plan(p: AudioPreset, b: str) -> list[TensorSpec]:
    d, f, m = p.d_model, p.d_ffn, p.matrix_type

    def ffn(suffix: str) -> list[TensorSpec]:
        return [
            _norm(f"{b}ffn_norm{suffix}.weight", d),
            _matrix(f"{b}ffn_up{suffix}.weight", d, f, m),
            _matrix(f"{b}ffn_down{suffix}.weight", f, d, m),
            _norm(f"{b}ffn_post_norm{suffix}.weight", d),
        ]

    return [
        *ffn(""),
        _norm(f"{b}ln1.weight", d),
        TensorSpec(f"{b}per_dim_scale", (p.head_dim,), Q.F32, std=0.3),
        _matrix(f"{b}linear_pos.weight", d, d, m),
        _matrix(f"{b}attn_q.weight", d, d, m),
        _matrix(f"{b}attn_k.weight", d, d, m),
        _matrix(f"{b}attn_v.weight", d, d, m),
        _matrix(f"{b}attn_out.weight", d, d, m),
        _norm(f"{b}ln2.weight", d),
        _norm(f"{b}conv_norm.weight", d),
        _matrix(f"{b}conv_pw1.weight", d, 2 * d, m),
        _conv(f"{b}conv_dw.weight", (p.conv_kernel, 1, d)),
        _norm(f"{b}norm_conv.weight", d),
        _matrix(f"{b}conv_pw2.weight", d, d, m),
        *ffn("_1"),
        _norm(f"{b}layer_pre_norm.weight", d),
    ]


def add_audio_metadata(writer: GGUFWriter, preset: str | AudioPreset) -> None:
    """The ``clip.has_audio_encoder`` and ``clip.audio.*`` keys, in the converter's order and values."""
    p = resolve_audio_preset(preset)
    writer.add_clip_has_audio_encoder(True)
    writer.add_audio_projection_dim(p.n_embd_text)
    writer.add_audio_embedding_length(p.d_model)
    writer.add_audio_feed_forward_length(CONVERTER_FFN_LENGTH)
    writer.add_audio_block_count(p.n_layer)
    writer.add_audio_head_count(p.n_head)
    writer.add_clip_audio_projector_type(PROJECTOR_TYPE)
    writer.add_audio_num_mel_bins(N_MELS)
    writer.add_audio_attention_layernorm_eps(CONVERTER_LAYER_NORM_EPS)


def _add_file_metadata(writer: GGUFWriter, p: AudioPreset) -> None:
    writer.add_type("mmproj")
    writer.add_name(f"Gemma 3n synthetic audio tower {p.name} (random weights)")
    writer.add_description(
        "Gemma Desk synthetic mmproj: real Gemma 3n audio layout, random weights. " + p.description
    )
    writer.add_file_type(_FILE_TYPES[p.matrix_type])
    writer.add_quantization_version(2)
    writer.add_clip_has_vision_encoder(False)
    add_audio_metadata(writer, p)
    writer.add_string("gemma_desk.synthetic.audio_preset", p.name)
    writer.add_uint32("gemma_desk.synthetic.audio_seed", p.seed)
    writer.add_uint32("gemma_desk.synthetic.audio_writer_version", WRITER_VERSION)


def write_audio_mmproj(
    preset: str | AudioPreset, out_path: Path, *, progress: Progress | None = None
) -> Path:
    """Write an audio-only mmproj (``general.architecture = clip``) for ``preset``, atomically."""
    p = resolve_audio_preset(preset)
    return write_random_gguf(
        Path(out_path),
        "clip",
        lambda writer: _add_file_metadata(writer, p),
        audio_tensor_plan(p),
        p.seed,
        progress,
    )
