"""A dismissable line above the conversation for errors and notices: visible, never modal."""

from __future__ import annotations

from typing import Literal

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from app.gui.widgets.markdown import blend

NoticeKind = Literal["error", "info"]


class NoticeBar(QWidget):
    """Shows one message at a time; errors are tinted red, notices with the highlight colour."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.close_button = QToolButton(self)
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 6, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.close_button)
        self.kind: NoticeKind = "info"
        self.setVisible(False)
        self._retranslate()

    def show_message(self, text: str, kind: NoticeKind = "error") -> None:
        self.kind = kind
        self.label.setText(text)
        self.label.setAccessibleName(self.tr("Error") if kind == "error" else self.tr("Notice"))
        self.setVisible(True)
        self.update()

    def dismiss(self) -> None:
        self.setVisible(False)

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def paintEvent(self, event: QPaintEvent) -> None:
        palette = self.palette()
        base = palette.color(QPalette.ColorRole.Base)
        over = QColor(220, 40, 40) if self.kind == "error" else palette.color(QPalette.ColorRole.Highlight)
        painter = QPainter(self)
        painter.fillRect(self.rect(), blend(base, over, 0.2))
        painter.end()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        super().changeEvent(event)

    def _retranslate(self) -> None:
        self.close_button.setText(self.tr("Dismiss"))
        self.close_button.setAccessibleName(self.tr("Dismiss notice"))
