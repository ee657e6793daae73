"""The scrolling list of message widgets, kept pinned to the bottom while an answer streams in."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from app.gui.conversation import Message
from app.gui.widgets.message_widget import MessageWidget


class ConversationView(QScrollArea):
    """Displays messages by index; emits which message the user wants to edit or regenerate."""

    editRequested = Signal(int)
    regenerateRequested = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._container = QWidget(self)
        self._layout = QVBoxLayout(self._container)
        self._layout.setContentsMargins(12, 12, 12, 12)
        self._layout.setSpacing(10)
        self._placeholder = QLabel(self._container)
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setWordWrap(True)
        self._layout.addWidget(self._placeholder)
        self._layout.addStretch(1)
        self.setWidget(self._container)
        self._widgets: list[MessageWidget] = []
        self._stick_to_bottom = True
        self.verticalScrollBar().rangeChanged.connect(self._keep_bottom)
        self.verticalScrollBar().valueChanged.connect(self._track_bottom)
        self._retranslate()

    @property
    def widgets(self) -> list[MessageWidget]:
        return list(self._widgets)

    def message_widget(self, index: int) -> MessageWidget:
        return self._widgets[index]

    def set_messages(self, messages: Sequence[Message]) -> None:
        self.clear()
        for message in messages:
            self.add_message(message)

    def add_message(self, message: Message) -> MessageWidget:
        widget = MessageWidget(message, self._container)
        index = len(self._widgets)
        widget.editRequested.connect(lambda: self.editRequested.emit(self._index_of(widget, index)))
        widget.regenerateRequested.connect(
            lambda: self.regenerateRequested.emit(self._index_of(widget, index))
        )
        self._layout.insertWidget(self._layout.count() - 1, widget)
        self._widgets.append(widget)
        self._placeholder.setVisible(False)
        self._stick_to_bottom = True
        return widget

    def remove_from(self, index: int) -> None:
        """Remove the messages at ``index`` and after (edit and regenerate replace the tail)."""
        for widget in self._widgets[index:]:
            self._layout.removeWidget(widget)
            widget.deleteLater()
        del self._widgets[index:]
        self._placeholder.setVisible(not self._widgets)

    def clear(self) -> None:
        self.remove_from(0)

    def update_actions(self, *, enabled: bool) -> None:
        """Only the last user turn can be edited and the last answer regenerated, and only when ``enabled``
        (a model is loaded and nothing is streaming)."""
        last_user = max((i for i, w in enumerate(self._widgets) if w.message.role == "user"), default=None)
        last = len(self._widgets) - 1
        for index, widget in enumerate(self._widgets):
            widget.set_actions(
                edit=enabled and index == last_user,
                regenerate=enabled and index == last and widget.message.role == "assistant",
            )

    def _index_of(self, widget: MessageWidget, fallback: int) -> int:
        return self._widgets.index(widget) if widget in self._widgets else fallback

    def _keep_bottom(self, _minimum: int, maximum: int) -> None:
        if self._stick_to_bottom:
            self.verticalScrollBar().setValue(maximum)

    def _track_bottom(self, value: int) -> None:
        """Follow new text only while the reader is at the bottom; scrolling up to read stops that."""
        self._stick_to_bottom = value >= self.verticalScrollBar().maximum() - 4

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        super().changeEvent(event)

    def _retranslate(self) -> None:
        self._placeholder.setText(
            self.tr("Ask anything. Answers are generated on this computer; nothing leaves it.")
        )
        self.setAccessibleName(self.tr("Conversation"))
