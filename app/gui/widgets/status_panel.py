"""The status bar's permanent part: load progress, model, backend, context, RAM per part, last answer's stats.

RAM per part comes from the engine's :class:`~model_io.events.MemoryUsage` event (text weights, KV
cache, vision and audio towers), which it sends after loads and whenever a tower loads or is released.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from model_io.events import MemoryUsage, ModelInfoSummary, ResponseStats


def human_bytes(n: int) -> str:
    for divisor, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= divisor:
            return f"{n / divisor:.1f} {suffix}"
    return f"{n} B"


def compact_bytes(n: int) -> str:
    """Status-bar width: "1.2 GiB", "96 MiB", "<1 MiB"."""
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GiB"
    return f"{round(n / (1 << 20))} MiB" if n >= 1 << 19 else "<1 MiB"


class StatusPanel(QWidget):
    """Remembers what it shows, so a language change can re-render every label."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(160)
        self.progress.setVisible(False)
        self.model_label = QLabel(self)
        self.backend_label = QLabel(self)
        self.media_label = QLabel(self)
        self.context_label = QLabel(self)
        self.stats_label = QLabel(self)
        self.parts_label = QLabel(self)
        self.memory_label = QLabel(self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (
            self.progress,
            self.model_label,
            self.backend_label,
            self.media_label,
            self.context_label,
            self.parts_label,
            self.stats_label,
            self.memory_label,
        ):
            layout.addWidget(widget)
        self._loading_name: str | None = None
        self._model: tuple[str, ModelInfoSummary] | None = None
        self._stats: ResponseStats | None = None
        self._memory: MemoryUsage | None = None
        self._retranslate()

    def show_loading(self, name: str) -> None:
        self._loading_name = name
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self._retranslate()

    def set_progress(self, fraction: float) -> None:
        self.progress.setValue(round(max(0.0, min(1.0, fraction)) * 100))

    def show_model(self, name: str, info: ModelInfoSummary) -> None:
        self._loading_name = None
        self._model = (name, info)
        self._stats = None
        self.progress.setVisible(False)
        self._retranslate()

    def clear_model(self) -> None:
        self._loading_name = None
        self._model = None
        self._stats = None
        self._memory = None
        self.progress.setVisible(False)
        self._retranslate()

    def show_stats(self, stats: ResponseStats) -> None:
        self._stats = stats
        self._retranslate()

    def show_memory(self, usage: MemoryUsage) -> None:
        self._memory = usage
        self._retranslate()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        super().changeEvent(event)

    def _retranslate(self) -> None:
        self.progress.setAccessibleName(self.tr("Model loading progress"))
        self.model_label.setText(self._model_text())
        self.backend_label.setText(self._backend_text())
        self.media_label.setText(self._media_text())
        self.media_label.setAccessibleName(self.tr("Image and speech input"))
        projector = self._model[1].mmproj_path if self._model is not None else None
        self.media_label.setToolTip(
            self.tr("Projector: %1").replace("%1", projector.name)
            if projector
            else self.tr("No projector loaded")
        )
        self.context_label.setText(self._context_text())
        self.parts_label.setText(self._parts_text())
        self.parts_label.setToolTip(self._parts_tooltip())
        self.stats_label.setText(self._stats_text())
        self.stats_label.setToolTip(self._stats_tooltip())
        self.memory_label.setText(self._memory_text())
        for label in (
            self.backend_label,
            self.media_label,
            self.context_label,
            self.parts_label,
            self.stats_label,
            self.memory_label,
        ):
            label.setVisible(bool(label.text()))
        self.model_label.setAccessibleName(self.tr("Model"))
        self.stats_label.setAccessibleName(self.tr("Last answer statistics"))
        self.memory_label.setAccessibleName(self.tr("Memory use"))
        self.parts_label.setAccessibleName(self.tr("Memory held by each part of the model"))

    def _model_text(self) -> str:
        if self._loading_name is not None:
            return self.tr("Loading %1…").replace("%1", self._loading_name)
        if self._model is None:
            return self.tr("No model loaded")
        return self._model[0]

    def _media_text(self) -> str:
        if self._model is None:
            return ""
        info = self._model[1]
        media = [self.tr("images")] * info.has_vision + [self.tr("speech")] * info.has_audio
        return " + ".join(media) if media else self.tr("text only")

    def _backend_text(self) -> str:
        if self._model is None:
            return ""
        info = self._model[1]
        if info.n_gpu_layers == 0 or not info.gpu_offload_supported:
            return self.tr("CPU, threads: %1").replace("%1", str(info.n_threads))
        layers = self.tr("all layers") if info.n_gpu_layers < 0 else str(info.n_gpu_layers)
        return self.tr("GPU (%1), threads: %2").replace("%1", layers).replace("%2", str(info.n_threads))

    def _context_text(self) -> str:
        if self._model is None:
            return ""
        return self.tr("context %1").replace("%1", f"{self._model[1].n_ctx:,}")

    def _stats_text(self) -> str:
        stats = self._stats
        if stats is None:
            return ""
        text = (
            self.tr("first token %1 ms · %2 tok/s")
            .replace("%1", f"{stats.time_to_first_token_ms:.0f}")
            .replace("%2", f"{stats.decode_tokens_per_s:.1f}")
        )
        if stats.image_encode_ms > 0:
            text += " · " + self.tr("image encode %1 ms").replace("%1", f"{stats.image_encode_ms:.0f}")
        if stats.audio_encode_ms > 0:
            text += " · " + self.tr("audio encode %1 ms").replace("%1", f"{stats.audio_encode_ms:.0f}")
        return text

    def _stats_tooltip(self) -> str:
        stats = self._stats
        if stats is None:
            return ""
        return (
            self.tr("%1 of %2 prompt tokens prefilled; the rest came from the KV cache")
            .replace("%1", str(stats.prompt_tokens_prefilled))
            .replace("%2", str(stats.prompt_tokens))
        )

    def _memory_text(self) -> str:
        if self._stats is None or self._stats.peak_rss_bytes is None or self._parts_text():
            return ""  # with RAM per part shown, the peak is in its tooltip
        return self.tr("peak RAM %1").replace("%1", human_bytes(self._stats.peak_rss_bytes))

    def _part_name(self, part: str) -> str:
        names = {
            "text": self.tr("text"),
            "per-layer embeddings": self.tr("PLE"),
            "kv cache": self.tr("KV"),
            "compute": self.tr("compute"),
            "vision": self.tr("vision"),
            "audio": self.tr("audio"),
        }
        return names.get(part, part)

    def _part_description(self, part: str) -> str:
        descriptions = {
            "text": self.tr("Text model weights"),
            "per-layer embeddings": self.tr("Per-layer embeddings (PLE) in RAM"),
            "kv cache": self.tr("KV cache (the conversation's context)"),
            "compute": self.tr("Compute buffers"),
            "vision": self.tr("Vision tower"),
            "audio": self.tr("Audio tower"),
        }
        return descriptions.get(part, part)

    def _parts_text(self) -> str:
        usage = self._memory
        if usage is None or (self._model is None and self._loading_name is None):
            return ""
        parts = " · ".join(
            f"{self._part_name(name)} {compact_bytes(size)}" for name, size in usage.parts if size
        )
        return self.tr("RAM: %1").replace("%1", parts) if parts else ""

    def _parts_tooltip(self) -> str:
        usage = self._memory
        if usage is None:
            return ""
        lines = [f"{self._part_description(name)}: {human_bytes(size)}" for name, size in usage.parts]
        lines.append(self.tr("Whole process: %1").replace("%1", human_bytes(usage.process_rss_bytes)))
        if self._stats is not None and self._stats.peak_rss_bytes is not None:
            peak = human_bytes(self._stats.peak_rss_bytes)
            lines.append(self.tr("Peak during the last answer: %1").replace("%1", peak))
        if usage.mapped_bytes:
            lines.append(
                self.tr("Mapped from the model file, loaded only as needed: %1").replace(
                    "%1", human_bytes(usage.mapped_bytes)
                )
            )
        lines.append(self.tr("Image and speech towers load on first use and are released when idle."))
        return "\n".join(lines)
