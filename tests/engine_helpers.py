"""Test helper: an engine with a model loaded and the queue its events arrive on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model_io.audio import AudioEncoder
from model_io.engine import Engine, EventQueue
from model_io.events import LoadRequest, ModelLoaded
from model_io.native import NativeModel
from model_io.settings import LoadSettings


class LoadedEngine:
    """An engine with a model loaded, plus the queue its events arrive on."""

    def __init__(self, model: Path, n_ctx: int = 2048):
        self.model_path = model
        self.events = EventQueue()
        self.engine = Engine(self.events)
        request = LoadRequest(model, LoadSettings(n_ctx=n_ctx, n_threads=2))
        self.engine.load(request)
        final = list(self.events.events_for(request.request_id, timeout=120))[-1]
        assert isinstance(final, ModelLoaded), final


class CountingAudio:
    """An audio tower factory for the engine: the real encoder, counting one-shot clip encodes."""

    def __init__(self) -> None:
        self.one_shot = 0

    def __call__(self, path: Path, _model: NativeModel) -> AudioEncoder:
        encoder = AudioEncoder(path, None)
        real = encoder.tower.clip_rows

        def counted(wave: np.ndarray) -> np.ndarray:
            self.one_shot += 1
            return real(wave)

        encoder.tower.clip_rows = counted  # type: ignore[method-assign]
        return encoder
