"""Attachment chips above the prompt: image thumbnails and audio clips, each with a remove button.

Thumbnails are ``QImage`` (not ``QPixmap``), so :func:`thumbnail` may run on a background thread
together with the decoding; only the cheap ``QPixmap.fromImage`` happens on the GUI thread.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

from model_io.media import MediaInput
from model_io.speech import SAMPLE_RATE

THUMBNAIL_PX = 56


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """An owned ``QImage`` of a uint8 H x W x 3 array (explicit stride, then ``copy()``)."""
    array = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width = int(array.shape[0]), int(array.shape[1])
    return QImage(array.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def thumbnail(media: MediaInput, size: int = THUMBNAIL_PX) -> QImage | None:
    """A small preview of an image input; None for audio.  Safe on any thread."""
    if media.kind != "image":
        return None
    return rgb_to_qimage(media.payload).scaled(
        size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )


class AttachmentChip(QFrame):
    """One attachment: a thumbnail (or an audio label) and a remove button."""

    removeRequested = Signal()

    def __init__(self, media: MediaInput, preview: QImage | None, parent: QWidget | None = None):
        super().__init__(parent)
        self.media = media
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.preview = QLabel(self)
        self.remove_button = QToolButton(self)
        self.remove_button.setText("✕")
        self.remove_button.setAutoRaise(True)
        self.remove_button.clicked.connect(self.removeRequested)
        if preview is not None:
            self.preview.setPixmap(QPixmap.fromImage(preview))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 2, 2)
        layout.setSpacing(2)
        layout.addWidget(self.preview)
        layout.addWidget(self.remove_button, 0, Qt.AlignmentFlag.AlignTop)
        self._has_preview = preview is not None
        self.retranslate()

    def retranslate(self) -> None:
        name = self.media.label or self.media.digest[:8]
        if self.media.kind == "audio":
            seconds = len(self.media.payload) / SAMPLE_RATE
            text = self.tr("Audio: %1 (%2 s)").replace("%1", name).replace("%2", f"{seconds:.1f}")
            self.preview.setText(text)
        elif not self._has_preview:
            self.preview.setText(self.tr("Image: %1").replace("%1", name))
        self.preview.setToolTip(name)
        self.setAccessibleName(name)
        self.remove_button.setToolTip(self.tr("Remove attachment"))
        self.remove_button.setAccessibleName(self.tr("Remove attachment %1").replace("%1", name))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


class AttachmentStrip(QWidget):
    """Removable chips, one per :class:`MediaInput` (a digest is attached once); hidden while empty."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._chips: list[AttachmentChip] = []
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addStretch(1)
        self.setVisible(False)

    @property
    def items(self) -> list[MediaInput]:
        return [chip.media for chip in self._chips]

    @property
    def chips(self) -> list[AttachmentChip]:
        return list(self._chips)

    def add(self, media: MediaInput, preview: QImage | None = None) -> None:
        if media in self.items:
            return
        chip = AttachmentChip(media, preview if preview is not None else thumbnail(media), self)
        chip.removeRequested.connect(lambda: self.remove(media))
        self._chips.append(chip)
        self._layout.insertWidget(self._layout.count() - 1, chip)
        self._refresh()

    def remove(self, media: MediaInput) -> None:
        for chip in self._chips:
            if chip.media == media:
                self._chips.remove(chip)
                chip.hide()
                chip.deleteLater()
                self._refresh()
                return

    def clear(self) -> None:
        for media in self.items:
            self.remove(media)

    def _refresh(self) -> None:
        self.setVisible(bool(self._chips))
        self.changed.emit()
