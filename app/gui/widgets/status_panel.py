"""The status bar's permanent part: load progress, model, backend, context, last answer's speed and RAM."""

from __future__ import annotations

from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

from model_io.events import ModelInfoSummary, ResponseStats


def human_bytes(n: int) -> str:
    for divisor, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= divisor:
            return f"{n / divisor:.1f} {suffix}"
    return f"{n} B"


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
        self.memory_label = QLabel(self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (
            self.progress,
            self.model_label,
            self.backend_label,
            self.media_label,
            self.context_label,
            self.stats_label,
            self.memory_label,
        ):
            layout.addWidget(widget)
        self._loading_name: str | None = None
        self._model: tuple[str, ModelInfoSummary] | None = None
        self._stats: ResponseStats | None = None
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
        self.progress.setVisible(False)
        self._retranslate()

    def show_stats(self, stats: ResponseStats) -> None:
        self._stats = stats
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
        self.stats_label.setText(self._stats_text())
        self.memory_label.setText(self._memory_text())
        for label in (
            self.backend_label,
            self.media_label,
            self.context_label,
            self.stats_label,
            self.memory_label,
        ):
            label.setVisible(bool(label.text()))
        self.model_label.setAccessibleName(self.tr("Model"))
        self.stats_label.setAccessibleName(self.tr("Last answer statistics"))
        self.memory_label.setAccessibleName(self.tr("Memory use"))

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
            self.tr("first token %1 ms · %2 tok/s · %3 prompt tokens prefilled")
            .replace("%1", f"{stats.time_to_first_token_ms:.0f}")
            .replace("%2", f"{stats.decode_tokens_per_s:.1f}")
            .replace("%3", str(stats.prompt_tokens_prefilled))
        )
        if stats.image_encode_ms > 0:
            text += " · " + self.tr("image encode %1 ms").replace("%1", f"{stats.image_encode_ms:.0f}")
        if stats.audio_encode_ms > 0:
            text += " · " + self.tr("audio encode %1 ms").replace("%1", f"{stats.audio_encode_ms:.0f}")
        return text

    def _memory_text(self) -> str:
        if self._stats is None or self._stats.peak_rss_bytes is None:
            return ""
        return self.tr("peak RAM %1").replace("%1", human_bytes(self._stats.peak_rss_bytes))
