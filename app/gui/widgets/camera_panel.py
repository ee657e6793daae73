"""The webcam dock: live preview, camera picker, start/stop and a snapshot button.

It only shows frames and reports intents; the camera controller owns the device.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from model_io.camera import SourceSpec


class CameraPanel(QDockWidget):
    """``snapshotRequested``; ``cameraChosen(index)`` when the picker changes."""

    snapshotRequested = Signal()
    cameraChosen = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("camera-panel")
        self.preview = QLabel(self)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(QSize(240, 180))
        self.preview.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.picker = QComboBox(self)
        self.snapshot_button = QPushButton(self)
        self.snapshot_button.setEnabled(False)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.snapshot_button.clicked.connect(self.snapshotRequested)
        self.picker.currentIndexChanged.connect(self.cameraChosen)
        body = QWidget(self)
        row = QHBoxLayout()
        row.addWidget(self.picker, 1)
        row.addWidget(self.snapshot_button)
        layout = QVBoxLayout(body)
        layout.addWidget(self.preview, 1)
        layout.addLayout(row)
        layout.addWidget(self.status)
        self.setWidget(body)
        self.frames_shown = 0
        self._retranslate()

    def set_cameras(self, cameras: list[tuple[str, SourceSpec]], current: int = 0) -> None:
        self.picker.blockSignals(True)
        self.picker.clear()
        for name, source in cameras:
            self.picker.addItem(name, source)
        self.picker.setCurrentIndex(min(current, max(0, len(cameras) - 1)))
        self.picker.blockSignals(False)

    def show_frame(self, image: QImage) -> None:
        size = self.preview.size()
        pixmap = QPixmap.fromImage(image).scaled(
            size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
        )
        self.preview.setPixmap(pixmap)
        self.snapshot_button.setEnabled(True)
        self.status.setVisible(False)
        self.frames_shown += 1

    def show_status(self, text: str) -> None:
        self.preview.clear()
        self.snapshot_button.setEnabled(False)
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        super().changeEvent(event)

    def _retranslate(self) -> None:
        self.setWindowTitle(self.tr("Camera"))
        self.snapshot_button.setText(self.tr("Snapshot"))
        self.snapshot_button.setToolTip(self.tr("Attach the current frame to your next message"))
        self.snapshot_button.setAccessibleName(self.tr("Take snapshot"))
        self.picker.setAccessibleName(self.tr("Camera"))
        self.preview.setAccessibleName(self.tr("Camera preview"))
        self.status.setAccessibleName(self.tr("Camera status"))
