"""A synthetic Hugging Face Gemma 3n checkpoint (sharded bf16 safetensors) for the mmproj builder tests.

It is made FROM a projector the synthetic writer produced: every tensor of that GGUF is read
back, put into torch layout (ggml's shape reversed, the converter's [1, C, 1, 1] vectors
squeezed back to [C]), renamed to its checkpoint key and rounded to bfloat16.  A build from this
checkpoint must therefore give the synthetic projector again, tensor for tensor, up to the
bfloat16 rounding — and exactly the independently computed bfloat16 → F16/F32 conversion.

Text-model tensors the builder must never fetch are mixed in: some sort between tower tensors
inside a shard (so coalescing cannot run across them) and one shard holds nothing else.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType

from model_io.gguf_check import validate_gguf
from model_io.mmproj_build.names import hf_name, is_unsqueezed
from model_io.synth.audio_tower import AUDIO_PRESETS
from model_io.synth.mmproj import write_mmproj

Q = GGMLQuantizationType
TEXT_N_EMBD = 64  # the tiny synthetic text model's width
# The tiny audio tower with F16 matrices: the converter's --outtype f16 policy, which the builder follows.
TINY_AUDIO_F16 = replace(AUDIO_PRESETS["tiny"], name="tiny-f16", matrix_type=Q.F16)
SHARDS = tuple(f"model-{i:05d}-of-00004.safetensors" for i in range(1, 5))
TEXT_ONLY_SHARD = SHARDS[3]


@dataclass(frozen=True)
class StoredTensor:
    dtype: str  # safetensors dtype
    shape: tuple[int, ...]
    data: bytes


@dataclass
class Checkpoint:
    files: dict[str, bytes]  # the repo: config.json, the index, the shards
    bf16: dict[str, np.ndarray]  # GGUF tensor name -> the checkpoint's values (bfloat16 bits, torch layout)
    text_names: list[str]
    weight_map: dict[str, str]

    def ranges(self, shard: str) -> dict[str, tuple[int, int]]:
        """Absolute byte range of every tensor of ``shard`` (parsed back from its header)."""
        data = self.files[shard]
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + length])
        return {
            name: (8 + length + e["data_offsets"][0], 8 + length + e["data_offsets"][1])
            for name, e in header.items()
            if name != "__metadata__"
        }

    def header_end(self, shard: str) -> int:
        return 8 + struct.unpack("<Q", self.files[shard][:8])[0]


def synthetic_projector(path: Path) -> Path:
    """The synthetic writer's tiny vision + audio projector with the converter's F16 type policy."""
    return write_mmproj(path, vision="tiny", audio=TINY_AUDIO_F16, text_n_embd=TEXT_N_EMBD)  # type: ignore[arg-type]


def to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 bit patterns, rounded to nearest even (finite inputs)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    return ((bits + rounding) >> 16).astype(np.uint16)


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def gguf_tensors(path: Path) -> dict[str, np.ndarray]:
    """Every F16/F32 tensor of a GGUF as float32 in torch layout (ggml shape reversed)."""
    summary = validate_gguf(path)
    raw = path.read_bytes()
    out = {}
    for t in summary.tensors:
        dtype = {"F16": "<f2", "F32": "<f4"}[t.type_name]
        values = np.frombuffer(raw, dtype=dtype, count=t.n_elements, offset=t.offset).astype(np.float32)
        out[t.name] = values.reshape(tuple(reversed(t.shape)))
    return out


def make_checkpoint(projector: Path, *, single_file: bool = False, seed: int = 5) -> Checkpoint:
    """The checkpoint whose towers are ``projector``'s tensors in bfloat16, plus text tensors, in 4 shards
    (or, ``single_file``, all in ``model.safetensors`` without an index)."""
    rng = np.random.default_rng(seed)
    bf16: dict[str, np.ndarray] = {}
    towers: dict[str, StoredTensor] = {}
    for name, values in gguf_tensors(projector).items():
        if is_unsqueezed(name):
            values = values.reshape(-1)
        bits = to_bf16_bits(values)
        bf16[name] = bits
        towers[hf_name(name)] = StoredTensor("BF16", bits.shape, bits.tobytes())
    text = {name: _random_bf16(rng, shape) for name, shape in _text_shapes()}
    if single_file:
        files = {"model.safetensors": safetensors_bytes({**towers, **text})}
        weight_map = dict.fromkeys({**towers, **text}, "model.safetensors")
    else:
        groups = _shard_groups(towers, text)
        files = {shard: safetensors_bytes(group) for shard, group in zip(SHARDS, groups, strict=True)}
        weight_map = {name: shard for shard, group in zip(SHARDS, groups, strict=True) for name in group}
        index = {"metadata": {"total_size": sum(len(t.data) for t in {**towers, **text}.values())}}
        index["weight_map"] = dict(sorted(weight_map.items()))
        files["model.safetensors.index.json"] = json.dumps(index, indent=2).encode()
    files["config.json"] = json.dumps(gemma3n_config(), indent=2).encode()
    return Checkpoint(files, bf16, sorted(text), weight_map)


def gemma3n_config() -> dict:
    """The parts of a ``Gemma3nConfig`` the builder reads, for the tiny shapes."""
    a = TINY_AUDIO_F16
    config = {
        "architectures": ["Gemma3nForConditionalGeneration"],
        "model_type": "gemma3n",
        "text_config": {"model_type": "gemma3n_text", "hidden_size": TEXT_N_EMBD, "num_hidden_layers": 4},
        "vision_config": {
            "model_type": "gemma3n_vision",
            "hidden_size": 64,
            "architecture": "mobilenetv5_300m_enc",
        },
        "audio_config": {
            "model_type": "gemma3n_audio",
            "hidden_size": a.d_model,
            "conf_num_hidden_layers": a.n_layer,
            "conf_num_attention_heads": a.n_head,
            "input_feat_size": 128,
        },
        "vision_soft_tokens_per_image": 256,
        "audio_soft_tokens_per_image": 188,
    }
    return config


def safetensors_bytes(tensors: dict[str, StoredTensor]) -> bytes:
    """A safetensors file as the library writes it: data in name order, header padded to 8 bytes."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        header[name] = {
            "dtype": t.dtype,
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(t.data)],
        }
        offset += len(t.data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(tensors[n].data for n in sorted(tensors))


def _random_bf16(rng: np.random.Generator, shape: tuple[int, ...]) -> StoredTensor:
    values = rng.standard_normal(shape).astype(np.float32) * 0.05
    return StoredTensor("BF16", shape, to_bf16_bits(values).tobytes())


def _text_shapes() -> Iterable[tuple[str, tuple[int, ...]]]:
    lm = "model.language_model."
    yield lm + "embed_tokens.weight", (512, TEXT_N_EMBD)  # the biggest tensor: must never be fetched
    for layer in range(4):
        yield f"{lm}layers.{layer}.self_attn.q_proj.weight", (TEXT_N_EMBD, TEXT_N_EMBD)
        yield f"{lm}layers.{layer}.input_layernorm.weight", (TEXT_N_EMBD,)
    yield lm + "norm.weight", (TEXT_N_EMBD,)
    yield lm + "per_layer_model_projection.weight", (1024, TEXT_N_EMBD)


def _shard_groups(
    towers: dict[str, StoredTensor], text: dict[str, StoredTensor]
) -> list[dict[str, StoredTensor]]:
    """State-dict order split into 4 shards: a tower split across shards, text between tower tensors."""
    audio = sorted(n for n in towers if n.startswith(("model.audio_tower.", "model.embed_audio.")))
    vision = sorted(n for n in towers if n not in audio)
    layers = sorted(n for n in text if ".layers." in n)
    half_a, half_v = len(audio) // 2, len(vision) // 2
    lm = "model.language_model."
    names = [
        [lm + "norm.weight", *layers[:4], *audio[:half_a]],
        [
            *audio[half_a:],
            *layers[4:],
            *vision[:half_v],
        ],  # language_model.* sorts between embed_* and vision_*
        [*vision[half_v:]],
        [lm + "embed_tokens.weight", lm + "per_layer_model_projection.weight"],
    ]
    merged = {**towers, **text}
    assert sum(len(g) for g in names) == len(merged) and math.prod(len(g) for g in names) > 0
    return [{n: merged[n] for n in group} for group in names]
