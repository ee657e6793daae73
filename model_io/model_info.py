"""Human-level facts about a GGUF file (kind, quantisation, size, parameter counts) for the UI and CLI.

Everything is derived from :func:`model_io.gguf_check.validate_gguf`'s header
summary, so inspecting a model is as safe and as fast as validating it: no
tensor data is read.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from gguf.constants import LlamaFileType

from model_io.gguf_check import GgufSummary, GgufTensor, MetadataValue, validate_gguf

ModelKind = Literal["text", "mmproj"]

TOKEN_EMBD = "token_embd.weight"
PLE_EMBD = "per_layer_token_embd.weight"
# Architectures whose "effective" size excludes the input embedding tables, as Google counts Gemma 3n.
_EMBEDDING_EXCLUDED_ARCHS = frozenset({"gemma3n"})


class ParameterCounts(NamedTuple):
    """raw: every tensor; ple: per-layer embedding table; effective: what Google's E2B/E4B names count."""

    raw: int
    ple: int
    effective: int


@dataclass(frozen=True)
class ModelInfo:
    """Summary of one GGUF file, as shown by ``gemma-desk models inspect`` and the model picker."""

    path: Path
    file_size: int
    architecture: str
    kind: ModelKind
    name: str | None
    quant: str
    context_length: int | None
    n_layers: int | None
    n_embd: int | None
    n_vocab: int | None
    n_params: int
    n_params_ple: int
    n_params_effective: int
    has_vision: bool
    has_audio: bool
    vision_projector: str | None
    audio_projector: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the path becomes a string)."""
        data = asdict(self)
        data["path"] = str(self.path)
        return data

    def describe(self) -> str:
        """A few lines of plain text for terminals and tooltips."""
        title = f"{self.path.name}: {self.name}" if self.name else self.path.name
        lines = [
            title,
            f"  kind:         {self._kind_text()}",
            f"  quantisation: {self.quant}",
            f"  file size:    {_human_bytes(self.file_size)} ({self.file_size:,} bytes)",
            f"  parameters:   {self._params_text()}",
        ]
        shape = self._shape_text()
        if shape:
            lines.append(f"  shape:        {shape}")
        return "\n".join(lines)

    def _kind_text(self) -> str:
        if self.kind == "text":
            return f"text model ({self.architecture})"
        parts = [
            f"{label} ({projector or 'unknown projector'})"
            for label, present, projector in (
                ("vision", self.has_vision, self.vision_projector),
                ("audio", self.has_audio, self.audio_projector),
            )
            if present
        ]
        return f"multimodal projector (mmproj): {', '.join(parts) or 'no encoder declared'}"

    def _params_text(self) -> str:
        text = _human_count(self.n_params)
        if self.n_params_effective != self.n_params:
            text += f" total, {_human_count(self.n_params_effective)} effective"
        if self.n_params_ple:
            text += f" ({_human_count(self.n_params_ple)} in per-layer embeddings)"
        return text

    def _shape_text(self) -> str:
        parts = []
        if self.context_length:
            parts.append(f"context {self.context_length:,} tokens")
        if self.n_layers:
            parts.append(f"{self.n_layers} layer{'' if self.n_layers == 1 else 's'}")
        if self.n_embd:
            parts.append(f"embedding {self.n_embd:,}")
        if self.n_vocab:
            parts.append(f"vocabulary {self.n_vocab:,}")
        return ", ".join(parts)


def inspect_model(path: str | os.PathLike[str]) -> ModelInfo:
    """Validate ``path`` (any kind of GGUF) and describe it; raises the same errors as validate_gguf."""
    return model_info_from_summary(validate_gguf(path, expect="any"))


def model_info_from_summary(summary: GgufSummary) -> ModelInfo:
    """Build ModelInfo from an already validated summary, so callers need not re-read the file."""
    kv = summary.kv
    counts = count_parameters(summary.architecture, summary.tensors)
    hparams = _hparam_prefixes(summary)
    is_projector = summary.is_projector
    has_vision = is_projector and kv.get("clip.has_vision_encoder") is True
    has_audio = is_projector and kv.get("clip.has_audio_encoder") is True
    return ModelInfo(
        path=summary.path,
        file_size=summary.file_size,
        architecture=summary.architecture,
        kind="mmproj" if is_projector else "text",
        name=_str_or_none(kv.get("general.name")),
        quant=quant_name(kv.get("general.file_type"), summary.tensors),
        context_length=_first_int(kv, hparams, "context_length"),
        n_layers=_first_int(kv, hparams, "block_count"),
        n_embd=_first_int(kv, hparams, "embedding_length"),
        n_vocab=None if is_projector else _vocab_size(summary),
        n_params=counts.raw,
        n_params_ple=counts.ple,
        n_params_effective=counts.effective,
        has_vision=has_vision,
        has_audio=has_audio,
        vision_projector=_projector(kv, "vision") if has_vision else None,
        audio_projector=_projector(kv, "audio") if has_audio else None,
    )


def count_parameters(architecture: str, tensors: Iterable[GgufTensor]) -> ParameterCounts:
    """Parameter counts from tensor shapes; for gemma3n both embedding tables are left out of "effective"."""
    by_name = {tensor.name: tensor.n_elements for tensor in tensors}
    raw = sum(by_name.values())
    ple = by_name.get(PLE_EMBD, 0)
    effective = raw
    if architecture in _EMBEDDING_EXCLUDED_ARCHS:
        effective = raw - ple - by_name.get(TOKEN_EMBD, 0)
    return ParameterCounts(raw=raw, ple=ple, effective=effective)


def quant_name(file_type: MetadataValue | None, tensors: Iterable[GgufTensor]) -> str:
    """llama.cpp's ftype name ("Q4_K_M"), else the tensor type holding most bytes ("Q8_0")."""
    if isinstance(file_type, int) and not isinstance(file_type, bool):
        try:
            ftype = LlamaFileType(file_type)
        except ValueError:
            ftype = None
        if ftype is not None and ftype != LlamaFileType.GUESSED:
            return ftype.name.removeprefix("MOSTLY_").removeprefix("ALL_")
    return dominant_tensor_type(tensors)


def dominant_tensor_type(tensors: Iterable[GgufTensor]) -> str:
    """The ggml type that accounts for the most bytes; "unknown" for a file without tensors."""
    weights: Counter[str] = Counter()
    for tensor in tensors:
        weights[tensor.type_name] += tensor.n_bytes
    return weights.most_common(1)[0][0] if weights else "unknown"


def _hparam_prefixes(summary: GgufSummary) -> tuple[str, ...]:
    """Where hyperparameters live: "<arch>." for text models, clip vision/audio sections for mmproj."""
    if summary.is_projector:
        return ("clip.vision.", "clip.audio.")
    return (f"{summary.architecture}.",)


def _first_int(kv: Mapping[str, MetadataValue], prefixes: tuple[str, ...], name: str) -> int | None:
    for prefix in prefixes:
        value = _int_or_none(kv.get(prefix + name))
        if value is not None:
            return value
    return None


def _vocab_size(summary: GgufSummary) -> int | None:
    """llama.cpp's n_vocab: explicit key, else the token list length, else the embedding rows."""
    explicit = _int_or_none(summary.kv.get(f"{summary.architecture}.vocab_size"))
    if explicit is not None:
        return explicit
    if "tokenizer.ggml.tokens" in summary.array_lengths:
        return summary.array_lengths["tokenizer.ggml.tokens"]
    for tensor in summary.tensors:
        if tensor.name == TOKEN_EMBD and len(tensor.shape) == 2:
            return tensor.shape[1]
    return None


def _projector(kv: Mapping[str, MetadataValue], modality: str) -> str | None:
    """mtmd reads the legacy clip.projector_type first, then the per-modality key."""
    return _str_or_none(kv.get("clip.projector_type")) or _str_or_none(
        kv.get(f"clip.{modality}.projector_type")
    )


def _int_or_none(value: MetadataValue | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: MetadataValue | None) -> str | None:
    return value if isinstance(value, str) and value else None


def _human_count(n: int) -> str:
    for divisor, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "K")):
        if n >= divisor:
            return f"{n / divisor:.2f}{suffix}" if n < 10 * divisor else f"{n / divisor:.1f}{suffix}"
    return str(n)


def _human_bytes(n: int) -> str:
    for divisor, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= divisor:
            return f"{n / divisor:.1f} {suffix}"
    return f"{n} B"
