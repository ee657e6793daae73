"""Gemma 3n projector tensors: GGUF names (llama.cpp's converter) ↔ Hugging Face checkpoint names.

The GGUF side — names, ggml shapes, storage types — comes from the synthetic writer's plans
(``model_io.synth.vision_tower`` / ``audio_tower``), the project's checked copy of what
``convert_hf_to_gguf.py`` (``Gemma3nVisionAudioModel``) writes.  This module only adds the way
back to the checkpoint, which is the converter's mapping read in reverse:

* vision: ``v.blk.S.I.*`` ↔ ``model.vision_tower.timm_model.blocks.S.I.*``, ``v.*`` ↔
  ``model.vision_tower.timm_model.*`` (stem, fusion adapter), ``mm.*`` ↔ ``model.embed_vision.*``;
* audio: the table below (gemma3n-audio.md §4.2), including the SSCP group norms the converter
  leaves unmapped (§4.4);
* shapes: no transposes anywhere (ggml's ``ne`` is the torch shape reversed), but the converter
  unsqueezes the stem bias and the layer-scale gammas from [C] to [1, C, 1, 1].
"""

from __future__ import annotations

import math

from model_io.synth.gemma3n_text import TensorSpec

VISION_TOWER = "model.vision_tower."
VISION_EMBEDDER = "model.embed_vision."
AUDIO_TOWER = "model.audio_tower."
AUDIO_EMBEDDER = "model.embed_audio."
VISION_NAMESPACES = (VISION_TOWER, VISION_EMBEDDER)
AUDIO_NAMESPACES = (AUDIO_TOWER, AUDIO_EMBEDDER)

_TIMM = VISION_TOWER + "timm_model."
_SSCP = AUDIO_TOWER + "subsample_conv_projection."

_EMBEDDER = {
    "embedding.weight": "embedding.weight",
    "hard_emb_norm.weight": "hard_embedding_norm.weight",
    "soft_emb_norm.weight": "soft_embedding_norm.weight",
    "input_projection.weight": "embedding_projection.weight",
}

_AUDIO_FIXED = {
    "a.conv1d.0.weight": _SSCP + "conv_0.conv.weight",
    "a.conv1d.0.norm.weight": _SSCP + "conv_0.norm.weight",
    "a.conv1d.1.weight": _SSCP + "conv_1.conv.weight",
    "a.conv1d.1.norm.weight": _SSCP + "conv_1.norm.weight",
    "a.pre_encode.out.weight": _SSCP + "input_proj_linear.weight",
}

# a.blk.N.<gguf> ↔ model.audio_tower.conformer.N.<hf>
AUDIO_BLOCK = {
    "ffn_norm.weight": "ffw_layer_start.pre_layer_norm.weight",
    "ffn_up.weight": "ffw_layer_start.ffw_layer_1.weight",
    "ffn_down.weight": "ffw_layer_start.ffw_layer_2.weight",
    "ffn_post_norm.weight": "ffw_layer_start.post_layer_norm.weight",
    "ln1.weight": "attention.pre_attn_norm.weight",
    "per_dim_scale": "attention.attn.per_dim_scale",
    "linear_pos.weight": "attention.attn.relative_position_embedding.pos_proj.weight",
    "attn_q.weight": "attention.attn.q_proj.weight",
    "attn_k.weight": "attention.attn.k_proj.weight",
    "attn_v.weight": "attention.attn.v_proj.weight",
    "attn_out.weight": "attention.post.weight",
    "ln2.weight": "attention.post_norm.weight",
    "conv_norm.weight": "lconv1d.pre_layer_norm.weight",
    "conv_pw1.weight": "lconv1d.linear_start.weight",
    "conv_dw.weight": "lconv1d.depthwise_conv1d.weight",
    "norm_conv.weight": "lconv1d.conv_norm.weight",
    "conv_pw2.weight": "lconv1d.linear_end.weight",
    "ffn_norm_1.weight": "ffw_layer_end.pre_layer_norm.weight",
    "ffn_up_1.weight": "ffw_layer_end.ffw_layer_1.weight",
    "ffn_down_1.weight": "ffw_layer_end.ffw_layer_2.weight",
    "ffn_post_norm_1.weight": "ffw_layer_end.post_layer_norm.weight",
    "layer_pre_norm.weight": "norm.weight",
}

# Checkpoint tensors the builder reads to size the audio tower before it has a plan.
AUDIO_INPUT_PROJECTION = _AUDIO_FIXED["a.pre_encode.out.weight"]
AUDIO_SSCP_CONVS = (_AUDIO_FIXED["a.conv1d.0.weight"], _AUDIO_FIXED["a.conv1d.1.weight"])
AUDIO_EMBEDDING_PROJECTION = AUDIO_EMBEDDER + "embedding_projection.weight"
VISION_EMBEDDING_PROJECTION = VISION_EMBEDDER + "embedding_projection.weight"


def audio_block_name(index: int, gguf_suffix: str) -> str:
    return f"{AUDIO_TOWER}conformer.{index}.{AUDIO_BLOCK[gguf_suffix]}"


def hf_name(gguf_name: str) -> str:
    """The checkpoint key holding the weights of GGUF tensor ``gguf_name``."""
    if gguf_name.startswith("v.blk."):
        return _TIMM + "blocks." + gguf_name.removeprefix("v.blk.")
    if gguf_name.startswith("v."):
        return _TIMM + gguf_name.removeprefix("v.")
    if gguf_name.startswith("mm.a."):
        return AUDIO_EMBEDDER + _EMBEDDER[gguf_name.removeprefix("mm.a.")]
    if gguf_name.startswith("mm."):
        return VISION_EMBEDDER + _EMBEDDER[gguf_name.removeprefix("mm.")]
    if gguf_name in _AUDIO_FIXED:
        return _AUDIO_FIXED[gguf_name]
    if gguf_name.startswith("a.blk."):
        index, suffix = gguf_name.removeprefix("a.blk.").split(".", 1)
        return audio_block_name(int(index), suffix)
    raise KeyError(f"no checkpoint name is known for GGUF tensor {gguf_name!r}")


def is_unsqueezed(gguf_name: str) -> bool:
    """Per-channel vectors the converter stores as [1, C, 1, 1] (ggml ne (1, 1, C, 1))."""
    return gguf_name == "v.conv_stem.conv.bias" or gguf_name.endswith(".layer_scale.gamma")


def checkpoint_shape(spec: TensorSpec) -> tuple[int, ...]:
    """The torch shape the checkpoint stores for ``spec`` (ggml order reversed, unsqueezing undone)."""
    if is_unsqueezed(spec.name):
        return (math.prod(spec.shape),)
    return tuple(reversed(spec.shape))


def shape_fits(spec: TensorSpec, shape: tuple[int, ...]) -> bool:
    """The checkpoint's shape is ``checkpoint_shape(spec)`` (or, for the vectors, already [1, C, 1, 1])."""
    unsqueezed = tuple(reversed(spec.shape))
    return shape == checkpoint_shape(spec) or (is_unsqueezed(spec.name) and shape == unsqueezed)


def tower_of(hf: str) -> str | None:
    """``"vision"``, ``"audio"`` or None (text model and anything else: never fetched)."""
    if hf.startswith(VISION_NAMESPACES):
        return "vision"
    if hf.startswith(AUDIO_NAMESPACES):
        return "audio"
    return None
