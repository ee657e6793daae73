"""What to build: the projector's tensors, each paired with the checkpoint tensor it comes from.

The GGUF side is the synthetic writer's plan for the checkpoint's own shapes, so names, ggml
shapes, storage types and metadata are exactly those of ``model_io.synth`` (F16 matrices, as
``convert_hf_to_gguf.py --mmproj --outtype f16`` writes them):

* vision: MobileNet-V5 has no shape hyper-parameters in ``config.json`` (timm builds it from a
  block-string table), so the checkpoint's vision tensors must be exactly those of a known tower
  preset — the real E2B/E4B checkpoints carry ``mobilenetv5_300m_enc`` (presets ``e2b``/``e4b``);
* audio: the conformer's dimensions are read from tensor shapes (as the audio loader does) and
  cross-checked with ``config.json``; the plan for those dimensions must match the checkpoint.

Any checkpoint tensor of a tower that the plan does not account for is an error, as it is for
the converter ("Can not map tensor").  Text-model tensors are never looked at.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gguf import GGMLQuantizationType, GGUFWriter

from model_io.errors import ModelFileError, UnsupportedModelError
from model_io.mmproj_build import names
from model_io.mmproj_build.checkpoint import SourceTensor
from model_io.mmproj_build.convert import SOURCE_DTYPES
from model_io.synth.audio_tower import AudioPreset, add_audio_metadata, audio_tensor_plan
from model_io.synth.gemma3n_text import TensorSpec
from model_io.synth.vision_tower import VISION_PRESETS, VisionPreset, add_vision_metadata, vision_tensor_plan

Q = GGMLQuantizationType
BUILDER_VERSION = 1
LLAMA_FTYPE_MOSTLY_F16 = 1
GEMMA3N_MODEL_TYPE = "gemma3n"
KEY_REPO = "gemma_desk.mmproj_build.repo"
KEY_COMMIT = "gemma_desk.mmproj_build.commit"
KEY_VERSION = "gemma_desk.mmproj_build.version"


@dataclass(frozen=True)
class OutputTensor:
    spec: TensorSpec  # GGUF name, ggml shape, storage type
    source: SourceTensor


@dataclass(frozen=True)
class BuildPlan:
    repo: str
    commit: str
    text_n_embd: int
    vision: VisionPreset | None
    audio: AudioPreset | None
    tensors: tuple[OutputTensor, ...]  # in file order: vision, then audio
    shard_digests: dict[str, str]  # the hub's checksum of every shard read: what the bytes are

    def add_metadata(self, writer: GGUFWriter) -> None:
        """The synthetic writer's keys and order (``model_io.synth.mmproj.write_mmproj``), plus provenance."""
        writer.add_type("mmproj")
        towers = " + ".join(n for n, p in (("vision", self.vision), ("audio", self.audio)) if p)
        writer.add_name(f"{self.repo.rsplit('/', 1)[-1]} projector ({towers}, built by Gemma Desk)")
        writer.add_file_type(LLAMA_FTYPE_MOSTLY_F16)
        writer.add_quantization_version(2)
        if self.vision is None:
            writer.add_clip_has_vision_encoder(False)
        else:
            add_vision_metadata(writer, self.vision, text_n_embd=self.text_n_embd)
        if self.audio is None:
            writer.add_clip_has_audio_encoder(False)
        else:
            add_audio_metadata(writer, self.audio)
        writer.add_string(KEY_REPO, self.repo)
        writer.add_string(KEY_COMMIT, self.commit)
        writer.add_uint32(KEY_VERSION, BUILDER_VERSION)

    def identity(self) -> str:
        """Changes with the output or its source bytes; a kept partial build resumes only on a match."""
        payload = {
            "version": BUILDER_VERSION,
            "repo": self.repo,
            "text_n_embd": self.text_n_embd,
            "shards": sorted(self.shard_digests.items()),
            "vision": None
            if self.vision is None
            else [self.vision.stem, self.vision.stages, self.vision.hidden],
            "audio": None if self.audio is None else repr(self.audio),
            "tensors": [
                [t.spec.name, t.spec.shape, t.spec.qtype.name, t.source.shard, t.source.dtype, t.source.begin]
                for t in self.tensors
            ],
        }
        return hashlib.sha256(json.dumps(payload, default=str).encode()).hexdigest()


def plan_build(
    repo: str,
    commit: str,
    config: Mapping[str, Any],
    sources: Mapping[str, SourceTensor],
    shard_digests: Mapping[str, str],
) -> BuildPlan:
    """Pair every projector tensor with its checkpoint tensor; ``sources`` holds the towers' tensors only."""
    vision_names = {n for n in sources if names.tower_of(n) == "vision"}
    audio_names = {n for n in sources if names.tower_of(n) == "audio"}
    if not vision_names and not audio_names:
        raise UnsupportedModelError(f"{repo} has no vision or audio tower tensors to build a projector from")
    text_n_embd = _text_width(repo, config, sources)
    vision = _vision_preset(repo, vision_names, sources, text_n_embd) if vision_names else None
    audio = _audio_preset(repo, config, sources, text_n_embd) if audio_names else None
    tensors: list[OutputTensor] = []
    if vision is not None:
        tensors += _pair(
            repo, "vision", vision_tensor_plan(vision, text_n_embd=text_n_embd), vision_names, sources
        )
    if audio is not None:
        tensors += _pair(repo, "audio", audio_tensor_plan(audio), audio_names, sources)
    return BuildPlan(repo, commit, text_n_embd, vision, audio, tuple(tensors), dict(shard_digests))


def check_gemma3n_config(repo: str, config: Any) -> None:
    if not isinstance(config, dict) or config.get("model_type") != GEMMA3N_MODEL_TYPE:
        found = config.get("model_type") if isinstance(config, dict) else None
        raise UnsupportedModelError(
            f"{repo} is not a Gemma 3n checkpoint (config.json model_type {found!r}, expected 'gemma3n'); "
            "use google/gemma-3n-E2B-it or google/gemma-3n-E4B-it"
        )


def _text_width(repo: str, config: Mapping[str, Any], sources: Mapping[str, SourceTensor]) -> int:
    """The text model's width, from ``config.json``; both embedders must project to it."""
    text = config.get("text_config")
    width = text.get("hidden_size") if isinstance(text, dict) else None
    if not isinstance(width, int) or width <= 0:
        raise ModelFileError(f"{repo}: config.json has no text_config.hidden_size")
    for name in (names.VISION_EMBEDDING_PROJECTION, names.AUDIO_EMBEDDING_PROJECTION):
        if name in sources and sources[name].shape[:1] != (width,):
            raise ModelFileError(
                f"{repo}: {name} projects to {sources[name].shape[:1]}, but the text model is {width} wide"
            )
    return width


def _vision_preset(
    repo: str, present: set[str], sources: Mapping[str, SourceTensor], text_n_embd: int
) -> VisionPreset:
    """The known MobileNet-V5 tower whose tensors are exactly the checkpoint's."""
    best: tuple[int, VisionPreset, set[str]] | None = None
    for preset in VISION_PRESETS.values():
        expected = {names.hf_name(s.name) for s in vision_tensor_plan(preset, text_n_embd=text_n_embd)}
        if expected == present:
            if preset.hidden != text_n_embd:
                raise UnsupportedModelError(
                    f"{repo}: the vision tower is {preset.hidden} wide but the text model {text_n_embd}; "
                    "llama.cpp's gemma3nv projector needs them equal"
                )
            return preset
        overlap = len(expected & present)
        if best is None or overlap > best[0]:
            best = (overlap, preset, expected)
    assert best is not None
    _, preset, expected = best
    raise UnsupportedModelError(
        f"{repo}: the vision tower is not a MobileNet-V5 Gemma Desk knows (closest: preset {preset.name!r}); "
        + _difference(expected, present)
    )


def _audio_preset(
    repo: str, config: Mapping[str, Any], sources: Mapping[str, SourceTensor], text_n_embd: int
) -> AudioPreset:
    """The conformer's dimensions from tensor shapes, cross-checked with ``config.json``'s audio_config."""

    def shape(name: str) -> tuple[int, ...]:
        if name not in sources:
            raise ModelFileError(f"{repo}: audio tensor {name!r} is missing from the checkpoint")
        return sources[name].shape

    n_layer = 0
    while names.audio_block_name(n_layer, "attn_q.weight") in sources:
        n_layer += 1
    if n_layer == 0:
        raise ModelFileError(f"{repo}: the audio tower has no conformer blocks")
    d_model = shape(names.AUDIO_INPUT_PROJECTION)[0]
    head_dim = shape(names.audio_block_name(0, "per_dim_scale"))[0]
    preset = AudioPreset(
        name=repo,
        d_model=d_model,
        n_layer=n_layer,
        n_head=d_model // head_dim if head_dim else 0,
        sscp_channels=(shape(names.AUDIO_SSCP_CONVS[0])[0], shape(names.AUDIO_SSCP_CONVS[1])[0]),
        conv_kernel=shape(names.audio_block_name(0, "conv_dw.weight"))[-1],
        n_embd_text=text_n_embd,
        matrix_type=Q.F16,
        seed=0,
        description=f"built from {repo}",
    )
    if not head_dim or preset.n_head * head_dim != d_model:
        raise ModelFileError(f"{repo}: audio head size {head_dim} does not divide the width {d_model}")
    audio_config = config.get("audio_config")
    stated = audio_config if isinstance(audio_config, dict) else {}
    for key, value in (
        ("hidden_size", d_model),
        ("conf_num_hidden_layers", n_layer),
        ("conf_num_attention_heads", preset.n_head),
    ):
        if key in stated and stated[key] != value:
            raise ModelFileError(
                f"{repo}: config.json says audio {key} = {stated[key]}, the tensors say {value}"
            )
    return preset


def _pair(
    repo: str, tower: str, plan: list[TensorSpec], present: set[str], sources: Mapping[str, SourceTensor]
) -> list[OutputTensor]:
    expected = {names.hf_name(s.name): s for s in plan}
    if set(expected) != present:
        raise ModelFileError(
            f"{repo}: the {tower} tower does not have the expected tensors; "
            + _difference(set(expected), present)
        )
    paired = []
    for hf, spec in expected.items():
        source = sources[hf]
        if not names.shape_fits(spec, source.shape):
            raise ModelFileError(
                f"{repo}: {hf} has shape {list(source.shape)}, expected {list(names.checkpoint_shape(spec))}"
            )
        if source.dtype not in SOURCE_DTYPES:
            raise UnsupportedModelError(
                f"{repo}: {hf} is stored as {source.dtype}; only BF16, F16 and F32 are read"
            )
        paired.append(OutputTensor(spec, source))
    return paired


def _difference(expected: set[str], present: set[str], show: int = 3) -> str:
    missing, extra = sorted(expected - present), sorted(present - expected)
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:show])})")
    if extra:
        parts.append(f"{len(extra)} unexpected (e.g. {', '.join(extra[:show])})")
    return "; ".join(parts)
