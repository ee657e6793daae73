"""The vision and audio towers of a loaded model: created on first use, released when idle.

Gemma 3n's towers live in a separate projector ("mmproj") GGUF.  Text chat must
not pay for them, so each tower is constructed only when a request first needs
it and is released again after an idle period (conditional parameter loading).
Factories are injected so tests can substitute deterministic encoders.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_io.errors import InputError, ModelError
from model_io.media import MediaEncoder, MediaKind
from model_io.native import NativeModel

EncoderFactory = Callable[[Path, NativeModel], MediaEncoder]
Clock = Callable[[], float]


@dataclass(frozen=True)
class ProjectorInfo:
    """What a projector file offers."""

    path: Path
    has_vision: bool
    has_audio: bool

    def supports(self, kind: MediaKind) -> bool:
        return self.has_vision if kind == "image" else self.has_audio


def inspect_projector(path: Path) -> ProjectorInfo:
    """Validate an mmproj file before any tower reads it."""
    from model_io.model_info import inspect_model

    info = inspect_model(path)
    if info.kind != "mmproj":
        raise ModelError(f"{path.name} is a text model, not a projector (mmproj) file")
    return ProjectorInfo(path, info.has_vision, info.has_audio)


def default_factories() -> dict[MediaKind, EncoderFactory]:
    """The project's real towers: llama.cpp's mtmd for images, the NumPy conformer for audio."""

    def vision(path: Path, model: NativeModel) -> MediaEncoder:
        from model_io.vision import VisionEncoder

        # <end_of_image> as the vision embedder's hard-token row, as HF does (mtmd would feed the text row)
        return VisionEncoder(path, model, end_of_image="embedding")

    def audio(path: Path, model: NativeModel) -> MediaEncoder:
        from model_io.audio import AudioEncoder

        return AudioEncoder(path, None)  # wrappers as text, merged like the HF processor's string expansion

    return {"image": vision, "audio": audio}


class MediaTowers:
    """Owns the encoders built from one projector file for one loaded text model."""

    def __init__(
        self,
        projector: ProjectorInfo | None,
        model: NativeModel,
        factories: Mapping[MediaKind, EncoderFactory],
        clock: Clock = time.monotonic,
    ):
        self.projector = projector
        self._model = model
        self._factories = factories
        self._clock = clock
        self._encoders: dict[MediaKind, MediaEncoder] = {}
        self._last_used: dict[MediaKind, float] = {}

    def encoder_for(self, kind: MediaKind) -> MediaEncoder:
        """The encoder for ``kind``, loading its tower now if needed."""
        if self.projector is None:
            noun = "images" if kind == "image" else "audio"
            raise InputError(f"{noun} need a Gemma 3n projector (mmproj) file; load one with the model")
        if not self.projector.supports(kind):
            tower = "vision" if kind == "image" else "audio"
            name = self.projector.path.name
            raise InputError(f"{name} has no {tower} tower, so it cannot take {kind} input")
        if kind not in self._encoders:
            self._encoders[kind] = self._factories[kind](self.projector.path, self._model)
        self._last_used[kind] = self._clock()
        return self._encoders[kind]

    def loaded(self) -> tuple[MediaKind, ...]:
        return tuple(self._encoders)

    def resident_bytes(self) -> dict[MediaKind, int]:
        """RAM each loaded tower reports holding (0 if it cannot tell)."""
        return {kind: int(getattr(enc, "resident_bytes", 0) or 0) for kind, enc in self._encoders.items()}

    def release_idle(self, idle_seconds: float) -> tuple[MediaKind, ...]:
        """Release towers unused for ``idle_seconds``; returns which were released."""
        now = self._clock()
        stale = tuple(k for k in self._encoders if now - self._last_used.get(k, now) >= idle_seconds)
        for kind in stale:
            _close(self._encoders.pop(kind))
        return stale

    def close(self) -> None:
        for encoder in self._encoders.values():
            _close(encoder)
        self._encoders.clear()


def _close(encoder: Any) -> None:
    for name in ("close", "release"):
        method = getattr(encoder, name, None)
        if callable(method):
            method()
            return
