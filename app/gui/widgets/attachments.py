"""Attachment chips above the prompt: the seam for images and audio clips (media issues fill it)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Signal
from PySide6.QtWidgets import QHBoxLayout, QToolButton, QWidget

from model_io.media import MediaInput


class AttachmentStrip(QWidget):
    """Removable chips, one per :class:`MediaInput`; hidden while empty."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._items: list[MediaInput] = []
        self._chips: list[QToolButton] = []
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addStretch(1)
        self.setVisible(False)

    @property
    def items(self) -> list[MediaInput]:
        return list(self._items)

    def add(self, media: MediaInput) -> None:
        if media in self._items:
            return
        chip = QToolButton(self)
        chip.clicked.connect(lambda: self.remove(media))
        self._items.append(media)
        self._chips.append(chip)
        self._layout.insertWidget(self._layout.count() - 1, chip)
        self._label(chip, media)
        self._refresh()

    def remove(self, media: MediaInput) -> None:
        if media not in self._items:
            return
        index = self._items.index(media)
        chip = self._chips.pop(index)
        self._items.pop(index)
        chip.deleteLater()
        self._refresh()

    def clear(self) -> None:
        for media in list(self._items):
            self.remove(media)

    def _refresh(self) -> None:
        self.setVisible(bool(self._items))
        self.changed.emit()

    def _label(self, chip: QToolButton, media: MediaInput) -> None:
        kind = self.tr("Image") if media.kind == "image" else self.tr("Audio")
        name = media.label or media.digest[:8]
        chip.setText(f"{kind}: {name} ✕")
        chip.setAccessibleName(self.tr("Remove attachment %1").replace("%1", name))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            for chip, media in zip(self._chips, self._items, strict=True):
                self._label(chip, media)
        super().changeEvent(event)
