"""The push-to-talk bar: a large hold-to-talk button, a live level meter and the recording time.

The widget only shows state and reports press/release; the voice controller owns the microphone.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QSizePolicy, QWidget

METER_FLOOR_DBFS = -60


class TalkBar(QWidget):
    """``pressed``/``released`` from the button (the shortcut is handled by the controller)."""

    pressed = Signal()
    released = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.button = QPushButton(self)
        self.button.setMinimumHeight(36)
        self.button.setMinimumWidth(150)
        self.button.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.button.pressed.connect(self.pressed)
        self.button.released.connect(self.released)
        self.meter = QProgressBar(self)
        self.meter.setRange(METER_FLOOR_DBFS, 0)
        self.meter.setTextVisible(False)
        self.meter.setMaximumWidth(90)
        self.meter.setOrientation(Qt.Orientation.Horizontal)
        self.clock = QLabel(self)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.button)
        layout.addWidget(self.meter)
        layout.addWidget(self.clock)
        self._recording = False
        self._shortcut = ""
        self._reason = ""
        self.show_idle()

    def set_available(self, available: bool, reason: str = "") -> None:
        """Disabled with ``reason`` as tooltip when the model cannot hear (no audio tower)."""
        self._reason = "" if available else reason
        self.button.setEnabled(available)
        self._retranslate()

    def set_shortcut(self, shortcut: str) -> None:
        self._shortcut = shortcut
        self._retranslate()

    def show_recording(self, seconds: float, level_dbfs: float) -> None:
        self._recording = True
        self.meter.setValue(max(METER_FLOOR_DBFS, min(0, round(level_dbfs))))
        self.clock.setText(f"{int(seconds // 60)}:{seconds % 60:04.1f}")
        self.meter.setVisible(True)
        self.clock.setVisible(True)
        self._retranslate()

    def show_idle(self) -> None:
        self._recording = False
        self.meter.setValue(METER_FLOOR_DBFS)
        self.meter.setVisible(False)
        self.clock.setVisible(False)
        self._retranslate()

    @property
    def recording(self) -> bool:
        return self._recording

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        super().changeEvent(event)

    def _retranslate(self) -> None:
        self.button.setText(
            self.tr("Recording… release to send") if self._recording else self.tr("Hold to talk")
        )
        self.button.setAccessibleName(self.tr("Push to talk"))
        if self._reason:
            self.button.setToolTip(self._reason)
        else:
            self.button.setToolTip(
                self.tr("Hold this button (or %1) while you speak; release to send").replace(
                    "%1", self._shortcut
                )
            )
        self.meter.setAccessibleName(self.tr("Microphone level"))
        self.clock.setAccessibleName(self.tr("Recording time"))
