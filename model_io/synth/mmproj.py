"""Synthetic Gemma 3n projector files with both towers, as a real converted mmproj has them.

The vision (MobileNet-V5) and audio (USM conformer) plans and metadata come from
``vision_tower`` and ``audio_tower``; this module only puts them in one ``clip``
GGUF, so tests and benchmarks exercise the same file layout users will load.
"""

from __future__ import annotations

from pathlib import Path

from gguf import GGUFWriter

from model_io.errors import InputError
from model_io.paths import cache_dir
from model_io.synth.audio_tower import add_audio_metadata, audio_tensor_plan, resolve_audio_preset
from model_io.synth.gemma3n_text import resolve_preset
from model_io.synth.vision_tower import add_vision_metadata, resolve_vision_preset, vision_tensor_plan
from model_io.synth.writer import Progress, write_random_gguf

MMPROJ_WRITER_VERSION = 1
LLAMA_FTYPE_MOSTLY_F16 = 1
_SEED = 7


def write_mmproj(
    out_path: Path,
    *,
    vision: str | None,
    audio: str | None,
    text_n_embd: int,
    progress: Progress | None = None,
) -> Path:
    """Write a clip mmproj with the chosen towers for a text model ``text_n_embd`` wide."""
    if vision is None and audio is None:
        raise InputError("a projector needs at least one tower (vision or audio)")
    vision_preset = resolve_vision_preset(vision) if vision else None
    audio_preset = resolve_audio_preset(audio) if audio else None
    if audio_preset is not None and audio_preset.n_embd_text != text_n_embd:
        raise InputError(
            f"the {audio_preset.name} audio tower projects to {audio_preset.n_embd_text}, "
            f"but the text model is {text_n_embd} wide"
        )

    def metadata(writer: GGUFWriter) -> None:
        writer.add_type("mmproj")
        towers = " + ".join(n for n, p in (("vision", vision), ("audio", audio)) if p)
        writer.add_name(f"Gemma 3n synthetic projector ({towers}, random weights)")
        writer.add_file_type(LLAMA_FTYPE_MOSTLY_F16)
        writer.add_quantization_version(2)
        if vision_preset is None:
            writer.add_clip_has_vision_encoder(False)
        else:
            add_vision_metadata(writer, vision_preset, text_n_embd=text_n_embd)
        if audio_preset is None:
            writer.add_clip_has_audio_encoder(False)
        else:
            add_audio_metadata(writer, audio_preset)
        writer.add_uint32("gemma_desk.synthetic.mmproj_writer_version", MMPROJ_WRITER_VERSION)

    plan = []
    if vision_preset is not None:
        plan += vision_tensor_plan(vision_preset, text_n_embd=text_n_embd)
    if audio_preset is not None:
        plan += audio_tensor_plan(audio_preset)
    return write_random_gguf(Path(out_path), "clip", metadata, plan, _SEED, progress)


def mmproj_filename(text_preset: str) -> str:
    return f"gemma-3n-synthetic-{text_preset}-mmproj.gguf"


def write_mmproj_for(text_preset: str, out_path: Path, *, progress: Progress | None = None) -> Path:
    """The projector matching a synthetic text preset (same name for both towers)."""
    text = resolve_preset(text_preset)
    return write_mmproj(
        out_path, vision=text.name, audio=text.name, text_n_embd=text.n_embd, progress=progress
    )


def cached_mmproj(text_preset: str = "tiny", *, progress: Progress | None = None) -> Path:
    """Build the preset's projector once into the cache directory and reuse it."""
    target = cache_dir() / "synthetic" / f"mmproj-v{MMPROJ_WRITER_VERSION}" / mmproj_filename(text_preset)
    if not target.exists():
        write_mmproj_for(text_preset, target, progress=progress)
    return target
