"""Test helper: an engine with a model loaded and the queue its events arrive on."""

from __future__ import annotations

from pathlib import Path

from model_io.engine import Engine, EventQueue
from model_io.events import LoadRequest, ModelLoaded
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
