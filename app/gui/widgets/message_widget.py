"""One turn of the conversation: who said it, the rendered Markdown, and copy/edit/regenerate buttons.

Streamed text is re-rendered on a timer, not per token: at most every ``RENDER_INTERVAL_MS``, and
never more than ``1 / RENDER_BUDGET`` of the time.  PySide holds the GIL while Qt parses and lays out
Markdown, so rendering more often would slow the engine thread's token loop, not just the GUI.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QSize, QSizeF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.conversation import Message
from app.gui.widgets.markdown import blend, render_markdown

RENDER_INTERVAL_MS = 50
RENDER_BUDGET = 0.2  # share of wall time a streaming answer may spend re-rendering


class _AutoHeightBrowser(QTextBrowser):
    """A read-only rich-text view as tall as its content, so the conversation scrolls as a whole."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setOpenExternalLinks(True)
        self.setTabChangesFocus(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextBrowserInteraction | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.viewport().setAutoFillBackground(False)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)

    def _fit(self, size: QSizeF) -> None:
        margins = self.contentsMargins()
        self.setFixedHeight(int(size.height()) + margins.top() + margins.bottom() + 2)

    def sizeHint(self) -> QSize:
        return QSize(200, self.height())


class MessageWidget(QFrame):
    """Shows one :class:`Message`; emits intents, never changes the conversation itself."""

    editRequested = Signal()
    regenerateRequested = Signal()

    def __init__(self, message: Message, parent: QWidget | None = None):
        super().__init__(parent)
        self.message = message
        self._render_timer = QTimer(self, singleShot=True, interval=RENDER_INTERVAL_MS)
        self._render_timer.timeout.connect(self._render)
        self.setObjectName(f"message-{message.role}")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self._role = QLabel(self)
        self._state = QLabel(self)
        self.attachments_label = QLabel(self)
        self.body = _AutoHeightBrowser(self)
        self.copy_button = self._tool_button()
        self.edit_button = self._tool_button()
        self.regenerate_button = self._tool_button()
        self.copy_button.clicked.connect(self.copy_to_clipboard)
        self.edit_button.clicked.connect(self.editRequested)
        self.regenerate_button.clicked.connect(self.regenerateRequested)
        self._layout()
        self.set_actions(edit=False, regenerate=False)
        self._retranslate()
        self._apply_palette()
        self._render()

    def _tool_button(self) -> QToolButton:
        button = QToolButton(self)
        button.setAutoRaise(True)
        button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        return button

    def _layout(self) -> None:
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self._role)
        header.addWidget(self._state)
        header.addWidget(self.attachments_label)
        header.addStretch(1)
        for button in (self.copy_button, self.edit_button, self.regenerate_button):
            header.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self.body)

    # -- content ------------------------------------------------------------------------------------

    def refresh(self, *, now: bool = False) -> None:
        """Show the message's current text and state; streaming updates are coalesced unless ``now``."""
        if now:
            self._render_timer.stop()
            self._retranslate()
            self._render()
            self.update()
        elif not self._render_timer.isActive():
            self._render_timer.start()

    def flush(self) -> None:
        """Render pending streamed text immediately (tests and screenshots)."""
        if self._render_timer.isActive():
            self.refresh(now=True)

    def plain_text(self) -> str:
        return self.body.toPlainText()

    def _render(self) -> None:
        started = time.perf_counter()
        if self.message.state == "error":
            self.body.setPlainText(self.message.text)
        else:
            render_markdown(self.body.document(), self.message.text, self.palette())
        self.body.setAccessibleDescription(self.message.text[:500])
        cost_ms = (time.perf_counter() - started) * 1000.0
        self._render_timer.setInterval(max(RENDER_INTERVAL_MS, round(cost_ms / RENDER_BUDGET)))

    def copy_to_clipboard(self) -> None:
        """Copy the Markdown source: pasted into an editor it keeps code fences and formatting."""
        QGuiApplication.clipboard().setText(self.message.text)

    def set_actions(self, *, edit: bool, regenerate: bool) -> None:
        self.edit_button.setVisible(edit)
        self.regenerate_button.setVisible(regenerate)
        self.copy_button.setVisible(self.message.state != "streaming")

    # -- look and language ------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        elif event.type() == QEvent.Type.PaletteChange:
            self._apply_palette()
            self._render()
        super().changeEvent(event)

    def _retranslate(self) -> None:
        user = self.message.role == "user"
        self._role.setText(self.tr("You") if user else self.tr("Gemma"))
        self._state.setText(self._state_text())
        self.attachments_label.setText(self._attachments_text())
        self.attachments_label.setVisible(bool(self.message.attachments))
        self.copy_button.setText(self.tr("Copy"))
        self.copy_button.setToolTip(self.tr("Copy this message as Markdown"))
        self.edit_button.setText(self.tr("Edit"))
        self.edit_button.setToolTip(self.tr("Edit this message and send it again"))
        failed = self.message.state == "error"  # after a failure the same action reads as Retry
        self.regenerate_button.setText(self.tr("Retry") if failed else self.tr("Regenerate"))
        self.regenerate_button.setToolTip(self.tr("Answer the last message again"))
        self.setAccessibleName(self.tr("Your message") if user else self.tr("Gemma's answer"))
        self.body.setAccessibleName(self.tr("Message text"))
        self.copy_button.setAccessibleName(self.tr("Copy message"))
        self.edit_button.setAccessibleName(self.tr("Edit message"))
        self.regenerate_button.setAccessibleName(self.tr("Regenerate answer"))

    def _attachments_text(self) -> str:
        kinds = self.message.attachment_kinds or ("image",) * len(self.message.attachments)
        images, clips = kinds.count("image"), kinds.count("audio")
        shown = []
        if images:
            shown.append(
                self.tr("1 image") if images == 1 else self.tr("%1 images").replace("%1", str(images))
            )
        if clips:
            one = self.tr("1 audio clip")
            shown.append(one if clips == 1 else self.tr("%1 audio clips").replace("%1", str(clips)))
        return "[" + ", ".join(shown) + "]" if shown else ""

    def _state_text(self) -> str:
        texts = {
            "streaming": self.tr("writing…"),
            "stopped": self.tr("stopped"),
            "error": self.tr("error"),
        }
        return texts.get(self.message.state, "")

    def _background(self) -> QColor:
        """User turns slightly tinted, errors reddish: derived from whatever palette the system gives."""
        palette = self.palette()
        base = palette.color(QPalette.ColorRole.Base)
        if self.message.state == "error":
            return blend(base, QColor(220, 40, 40), 0.18)
        if self.message.role == "user":
            return blend(base, palette.color(QPalette.ColorRole.Highlight), 0.14)
        return base

    def _apply_palette(self) -> None:
        font = self._role.font()
        font.setBold(True)
        self._role.setFont(font)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self._background())
        painter.drawRoundedRect(self.rect().adjusted(1, 1, -1, -1), 8, 8)
        painter.end()
