"""The prompt editor: Enter sends, it grows with its text, and pasted or dropped images become attachments."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit, QSizePolicy, QWidget


def local_files(mime: QMimeData) -> list[Path]:
    """The local files in a drop or paste (URLs that are not files are ignored)."""
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


class PromptEdit(QPlainTextEdit):
    """Enter sends, Shift+Enter starts a new line; Tab leaves the editor (keyboard navigation).

    It grows with its text from ``MIN_LINES`` to ``MAX_LINES``, then scrolls.  Pasting or dropping an
    image (bitmap data or image files) emits ``imagePasted`` / ``filesDropped`` instead of inserting
    text; plain text pastes as usual.
    """

    submitRequested = Signal()
    imagePasted = Signal(QImage)
    filesDropped = Signal(list)  # list[Path]
    MIN_LINES = 2
    MAX_LINES = 8

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setTabChangesFocus(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().documentLayout().documentSizeChanged.connect(lambda _size: self._fit())
        self._fit()

    def _fit(self) -> None:
        lines = int(self.document().documentLayout().documentSize().height())
        shown = max(self.MIN_LINES, min(self.MAX_LINES, lines))
        margins = self.contentsMargins()
        frame = margins.top() + margins.bottom() + 2 * int(self.document().documentMargin())
        self.setFixedHeight(shown * self.fontMetrics().lineSpacing() + frame + 2)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.submitRequested.emit()
            return
        super().keyPressEvent(event)

    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        return source.hasImage() or bool(local_files(source)) or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:
        files = local_files(source)
        if files:
            self.filesDropped.emit(files)
            return
        if source.hasImage():
            image = source.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self.imagePasted.emit(image)
                return
        super().insertFromMimeData(source)
