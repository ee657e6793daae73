"""The settings dialog: edits a :class:`GuiSettings` snapshot and hands back a new one.

It does not save or apply anything itself; the settings controller decides whether a change needs a
model reload or a language switch.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import Future
from typing import TypeVar

from PySide6.QtCore import QEvent, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QKeySequenceEdit,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.gui.i18n import language_names
from app.gui.settings import AUTO_GPU_LAYERS, UI_LANGUAGES, GuiSettings, gui_default_threads
from app.gui.widgets.labelled_spin import LabelledSpinBox
from model_io.backends import BackendReport, detect_in_background
from model_io.settings import AUTO_CONTEXT, DEFAULT_CONTEXT, MAX_CONTEXT

_Spin = TypeVar("_Spin", bound=QSpinBox)


class SettingsDialog(QDialog):
    """Model, sampling and interface settings in three groups."""

    def __init__(
        self,
        settings: GuiSettings,
        parent: QWidget | None = None,
        microphones: list[str] | None = None,
        backends: BackendReport | Future[BackendReport] | None = None,
    ):
        super().__init__(parent)
        self._initial = settings
        # What llama.cpp can run on, detected off the GUI thread; GPU layers are offered only with a GPU.
        self.compute = QLabel(self)
        self._backends = backends if backends is not None else detect_in_background()
        self._backends_poll = QTimer(self)
        self.model_path = QLineEdit(settings.model_path, self)
        self.browse_button = QPushButton(self)
        self.mmproj_path = QLineEdit(settings.mmproj_path, self)
        self.microphone = QComboBox(self)
        self._microphones = list(microphones or [])
        self.talk_shortcut = QKeySequenceEdit(QKeySequence(settings.talk_shortcut), self)
        self.talk_shortcut.setMaximumSequenceLength(1)
        self.threads = self._spin(0, 256, settings.threads)
        self.context = self._range(LabelledSpinBox(self), AUTO_CONTEXT, MAX_CONTEXT, settings.context, 512)
        self.gpu_layers = self._range(LabelledSpinBox(self), AUTO_GPU_LAYERS, 999, settings.gpu_layers)
        self.temperature = self._double(0.0, 5.0, settings.temperature, step=0.05)
        self.top_k = self._spin(0, 1000, settings.top_k)
        self.top_p = self._double(0.01, 1.0, settings.top_p, step=0.01)
        self.seed = self._spin(-1, 2**31 - 1, settings.seed)
        self.max_tokens = self._spin(1, 32768, settings.max_tokens, step=64)
        self.language = QComboBox(self)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self._labels: dict[str, QLabel] = {}
        self._groups: dict[str, QGroupBox] = {}
        self._build()
        self._backends_poll.setInterval(50)
        self._backends_poll.timeout.connect(self._show_backends)
        self._retranslate()
        if isinstance(self._backends, Future):
            self._backends_poll.start()

    def _show_backends(self) -> None:
        """Show the detected devices and hide GPU layers unless a device can hold layers."""
        if isinstance(self._backends, Future) and self._backends.done():
            self._backends_poll.stop()
            try:
                self._backends = self._backends.result()
            except Exception as exc:  # detection is advisory: say why and offer CPU settings only
                self.compute.setText(self.tr("unknown (%1)").replace("%1", str(exc)))
        report = self._backends if isinstance(self._backends, BackendReport) else None
        self._model_form.setRowVisible(self.gpu_layers, bool(report and report.gpu_devices))
        if report is not None:
            self.compute.setText(report.summary())
        elif not isinstance(self._backends, Future) or not self._backends.done():
            self.compute.setText(self.tr("detecting…"))

    def _spin(self, low: int, high: int, value: int, step: int = 1) -> QSpinBox:
        return self._range(QSpinBox(self), low, high, value, step)

    @staticmethod
    def _range(spin: _Spin, low: int, high: int, value: int, step: int = 1) -> _Spin:
        spin.setRange(low, high)
        spin.setSingleStep(step)
        spin.setValue(value)
        return spin

    def _double(self, low: float, high: float, value: float, step: float) -> QDoubleSpinBox:
        spin = QDoubleSpinBox(self)
        spin.setRange(low, high)
        spin.setDecimals(2)
        spin.setSingleStep(step)
        spin.setValue(value)
        return spin

    def _build(self) -> None:
        self.browse_button.clicked.connect(self._browse)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        path_row = QHBoxLayout()
        path_row.addWidget(self.model_path, 1)
        path_row.addWidget(self.browse_button)
        path_widget = QWidget(self)
        path_widget.setLayout(path_row)
        path_row.setContentsMargins(0, 0, 0, 0)
        model = self._group("model", [("path", path_widget), ("threads", self.threads)])
        self._add_rows(model, [("context", self.context), ("compute", self.compute)])
        self._add_rows(model, [("gpu", self.gpu_layers)])
        self._model_form = model
        sampling = self._group("sampling", [("temperature", self.temperature), ("top_k", self.top_k)])
        self._add_rows(sampling, [("top_p", self.top_p), ("seed", self.seed), ("max", self.max_tokens)])
        self._add_rows(model, [("mmproj", self.mmproj_path)])
        self._group("media", [("microphone", self.microphone), ("talk", self.talk_shortcut)])
        self._group("interface", [("language", self.language)])
        layout = QVBoxLayout(self)
        for group in self._groups.values():
            layout.addWidget(group)
        layout.addWidget(self.buttons)

    def _group(self, key: str, rows: list[tuple[str, QWidget]]) -> QFormLayout:
        group = QGroupBox(self)
        form = QFormLayout(group)
        self._groups[key] = group
        self._add_rows(form, rows)
        return form

    def _add_rows(self, form: QFormLayout, rows: list[tuple[str, QWidget]]) -> None:
        for key, widget in rows:
            label = QLabel(self)
            label.setBuddy(widget)
            self._labels[key] = label
            form.addRow(label, widget)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, self.tr("Choose a Gemma 3n model"), self.model_path.text(), self.tr("GGUF models (*.gguf)")
        )
        if path:
            self.model_path.setText(path)

    def value(self) -> GuiSettings:
        """The edited settings (not yet validated against model_io's ranges beyond the spin limits)."""
        shortcut = self.talk_shortcut.keySequence().toString() or self._initial.talk_shortcut
        return dataclasses.replace(
            self._initial,
            model_path=self.model_path.text().strip(),
            mmproj_path=self.mmproj_path.text().strip(),
            microphone=str(self.microphone.currentData() or ""),
            talk_shortcut=shortcut,
            threads=self.threads.value(),
            context=self.context.value(),
            gpu_layers=self.gpu_layers.value(),
            temperature=round(self.temperature.value(), 2),
            top_k=self.top_k.value(),
            top_p=round(self.top_p.value(), 2),
            seed=self.seed.value(),
            max_tokens=self.max_tokens.value(),
            ui_language=str(self.language.currentData()),
        )

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        super().changeEvent(event)

    def _retranslate(self) -> None:
        self.setWindowTitle(self.tr("Settings"))
        titles = {
            "model": self.tr("Model"),
            "sampling": self.tr("Answers"),
            "media": self.tr("Microphone"),
            "interface": self.tr("Interface"),
        }
        for key, title in titles.items():
            self._groups[key].setTitle(title)
        texts = {
            "path": self.tr("Model &file:"),
            "threads": self.tr("&Threads:"),
            "context": self.tr("&Context (tokens):"),
            "gpu": self.tr("&GPU layers:"),
            "compute": self.tr("Runs on:"),
            "temperature": self.tr("T&emperature:"),
            "top_k": self.tr("Top-&k:"),
            "top_p": self.tr("Top-&p:"),
            "seed": self.tr("&Seed:"),
            "max": self.tr("&Maximum answer length (tokens):"),
            "language": self.tr("&Language:"),
            "mmproj": self.tr("&Projector (mmproj):"),
            "microphone": self.tr("M&icrophone:"),
            "talk": self.tr("&Hold-to-talk key:"),
        }
        for key, text in texts.items():
            self._labels[key].setText(text)
            buddy = self._labels[key].buddy()
            if buddy is not None:
                buddy.setAccessibleName(text.replace("&", "").rstrip(":"))
        self.browse_button.setText(self.tr("Browse…"))
        self.browse_button.setAccessibleName(self.tr("Browse for a model file"))
        self.model_path.setAccessibleName(self.tr("Model file"))
        self.threads.setSpecialValueText(self.tr("automatic (%1)").replace("%1", str(gui_default_threads())))
        automatic = self.tr("automatic")
        self.gpu_layers.set_labels({AUTO_GPU_LAYERS: automatic, -1: self.tr("all")})
        self.gpu_layers.setToolTip(
            self.tr("Layers to offload to the GPU; 0 runs on the CPU only; automatic: as many as fit")
        )
        self.context.set_labels({AUTO_CONTEXT: automatic})
        fits = self.tr("automatic: the largest context that fits this computer's memory, at most %1 tokens")
        self.context.setToolTip(fits.replace("%1", f"{DEFAULT_CONTEXT:,}"))
        self.seed.setSpecialValueText(self.tr("random"))
        self.temperature.setToolTip(self.tr("0 always picks the most likely token"))
        inner = self.talk_shortcut.findChild(QLineEdit)
        if inner is not None:
            inner.setAccessibleName(self.tr("Hold-to-talk key"))
        self.mmproj_path.setPlaceholderText(self.tr("automatic: the only *mmproj*.gguf beside the model"))
        self._fill_languages()
        self._fill_microphones()
        self._show_backends()

    def _fill_microphones(self) -> None:
        current = self.microphone.currentData() if self.microphone.count() else self._initial.microphone
        self.microphone.blockSignals(True)
        self.microphone.clear()
        self.microphone.addItem(self.tr("System default"), "")
        names = list(self._microphones)
        if self._initial.microphone and self._initial.microphone not in names:
            names.append(self._initial.microphone)
        for name in names:
            self.microphone.addItem(name, name)
        self.microphone.setCurrentIndex(max(0, self.microphone.findData(current)))
        self.microphone.blockSignals(False)

    def _fill_languages(self) -> None:
        current = self.language.currentData() or self._initial.ui_language
        self.language.blockSignals(True)
        self.language.clear()
        names = language_names()
        for code in UI_LANGUAGES:
            label = self.tr("Follow the system") if code == "system" else names[code]
            self.language.addItem(label, code)
        self.language.setCurrentIndex(max(0, self.language.findData(current)))
        self.language.blockSignals(False)
