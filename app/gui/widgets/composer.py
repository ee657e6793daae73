"""Where the user writes: prompt editor, mode switch (Chat / Transcribe / Translate), attachments, send/stop.

The composer only says *what* the user wants (a :class:`Submission`); the chat controller decides what
that means.  Attachments and the audio modes are seams: they work the moment the media issues call
``add_attachment`` and ``set_audio_available(True)``; until then the audio modes are disabled and say why.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QKeyEvent, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.widgets.attachments import AttachmentStrip
from model_io.media import MediaInput


class Mode(StrEnum):
    CHAT = "chat"
    TRANSCRIBE = "transcribe"
    TRANSLATE = "translate"


AUDIO_MODES = (Mode.TRANSCRIBE, Mode.TRANSLATE)
# Translation targets offered for audio; names are in the language itself, so they need no translation.
TARGET_LANGUAGES = (
    ("en", "English"),
    ("es", "Español"),
    ("fr", "Français"),
    ("de", "Deutsch"),
    ("it", "Italiano"),
    ("pt", "Português"),
    ("nl", "Nederlands"),
    ("ja", "日本語"),
    ("ko", "한국어"),
    ("zh", "中文"),
    ("hi", "हिन्दी"),
    ("ar", "العربية"),
)


@dataclass(frozen=True)
class Submission:
    """What the user asked for when they pressed send."""

    text: str
    mode: Mode = Mode.CHAT
    target_language: str = "en"
    attachments: tuple[MediaInput, ...] = ()


class PromptEdit(QPlainTextEdit):
    """Enter sends, Shift+Enter starts a new line; Tab leaves the editor (keyboard navigation).

    It grows with its text from ``MIN_LINES`` to ``MAX_LINES``, then scrolls.
    """

    submitRequested = Signal()
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


class Composer(QWidget):
    """Prompt editor and controls; emits ``submitted`` and ``stopRequested``."""

    submitted = Signal(Submission)
    stopRequested = Signal()
    editCancelled = Signal()
    editingChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.editor = PromptEdit(self)
        self.mode_box = QComboBox(self)
        self.language_box = QComboBox(self)
        self.send_button = QPushButton(self)
        self.attachments = AttachmentStrip(self)
        self._edit_label = QLabel(self)
        self._edit_cancel = QToolButton(self)
        self._busy = False
        self._ready = False
        self._audio_available = False
        self._editing = False
        self._build()
        self._retranslate()
        self._update_controls()

    def _build(self) -> None:
        self.editor.submitRequested.connect(self.submit)
        self.send_button.clicked.connect(self._on_send_clicked)
        self._edit_cancel.clicked.connect(self.cancel_edit)
        modes = QStandardItemModel(self.mode_box)
        for mode in Mode:
            item = QStandardItem()
            item.setData(mode.value, Qt.ItemDataRole.UserRole)
            modes.appendRow(item)
        self.mode_box.setModel(modes)
        self.mode_box.currentIndexChanged.connect(self._update_controls)
        for code, name in TARGET_LANGUAGES:
            self.language_box.addItem(name, code)
        edit_row = QHBoxLayout()
        edit_row.addWidget(self._edit_label, 1)
        edit_row.addWidget(self._edit_cancel)
        controls = QHBoxLayout()
        controls.addWidget(self.mode_box)
        controls.addWidget(self.language_box)
        controls.addStretch(1)
        controls.addWidget(self.send_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 6, 12, 10)
        layout.addLayout(edit_row)
        layout.addWidget(self.attachments)
        layout.addWidget(self.editor)
        layout.addLayout(controls)
        self.setTabOrder(self.editor, self.mode_box)
        self.setTabOrder(self.mode_box, self.language_box)
        self.setTabOrder(self.language_box, self.send_button)

    # -- state set by controllers -------------------------------------------------------------------

    def set_busy(self, busy: bool) -> None:
        """While an answer streams the button stops it; the editor stays usable for the next message."""
        self._busy = busy
        self._update_controls()

    def set_ready(self, ready: bool) -> None:
        """Sending needs a loaded model."""
        self._ready = ready
        self._update_controls()

    def set_audio_available(self, available: bool) -> None:
        """Called by the audio issue once an mmproj with an audio tower is loaded."""
        self._audio_available = available
        if not available and self.mode in AUDIO_MODES:
            self.mode_box.setCurrentIndex(0)
        self._retranslate()
        self._update_controls()

    def add_attachment(self, media: MediaInput) -> None:
        self.attachments.add(media)

    def begin_edit(self, text: str) -> None:
        self.editor.setPlainText(text)
        self.editor.moveCursor(self.editor.textCursor().MoveOperation.End)
        self.focus_prompt()
        self._set_editing(True)

    def cancel_edit(self) -> None:
        if self._editing:
            self.editor.clear()
            self._set_editing(False)
            self.editCancelled.emit()

    def finish_edit(self) -> None:
        self._set_editing(False)

    def _set_editing(self, editing: bool) -> None:
        changed = editing != self._editing
        self._editing = editing
        self._update_controls()
        if changed:
            self.editingChanged.emit(editing)

    def focus_prompt(self) -> None:
        self.editor.setFocus(Qt.FocusReason.ShortcutFocusReason)

    @property
    def editing(self) -> bool:
        return self._editing

    @property
    def mode(self) -> Mode:
        return list(Mode)[max(0, self.mode_box.currentIndex())]

    # -- intents ------------------------------------------------------------------------------------

    def submit(self) -> None:
        """Emit the prompt if there is something to send and a model to send it to."""
        text = self.editor.toPlainText().strip()
        if self._busy or not self._ready or not (text or self.attachments.items):
            return
        submission = Submission(
            text, self.mode, str(self.language_box.currentData()), tuple(self.attachments.items)
        )
        self.editor.clear()
        self.attachments.clear()
        self.submitted.emit(submission)

    def _on_send_clicked(self) -> None:
        if self._busy:
            self.stopRequested.emit()
        else:
            self.submit()

    def _update_controls(self) -> None:
        self.send_button.setEnabled(self._busy or self._ready)
        self.language_box.setEnabled(self.mode is Mode.TRANSLATE)
        self._edit_label.setVisible(self._editing)
        self._edit_cancel.setVisible(self._editing)
        self._retranslate_button()

    # -- language -------------------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        super().changeEvent(event)

    def _retranslate(self) -> None:
        self.editor.setPlaceholderText(self.tr("Message Gemma (Enter sends, Shift+Enter adds a line)"))
        self.editor.setAccessibleName(self.tr("Message"))
        self.mode_box.setAccessibleName(self.tr("Mode"))
        self.mode_box.setToolTip(self.tr("Chat with text, or transcribe or translate speech"))
        self.language_box.setAccessibleName(self.tr("Target language"))
        self.language_box.setToolTip(self.tr("Language to translate speech into"))
        self._edit_label.setText(self.tr("Editing your last message. Send replaces it; Esc cancels."))
        self._edit_cancel.setText(self.tr("Cancel edit"))
        self._edit_cancel.setAccessibleName(self.tr("Cancel edit"))
        self._retranslate_modes()
        self._retranslate_button()

    def _retranslate_modes(self) -> None:
        model = self.mode_box.model()
        assert isinstance(model, QStandardItemModel)
        names = {
            Mode.CHAT: self.tr("Chat"),
            Mode.TRANSCRIBE: self.tr("Transcribe"),
            Mode.TRANSLATE: self.tr("Translate"),
        }
        unavailable = self.tr(
            "Needs audio input: load a Gemma 3n mmproj with an audio tower (coming in a later version)"
        )
        for row, mode in enumerate(Mode):
            item = model.item(row)
            item.setText(names[mode])
            enabled = mode is Mode.CHAT or self._audio_available
            item.setEnabled(enabled)
            item.setToolTip("" if enabled else unavailable)

    def _retranslate_button(self) -> None:
        if self._busy:
            self.send_button.setText(self.tr("Stop"))
            self.send_button.setToolTip(self.tr("Stop the answer (Esc)"))
            self.send_button.setAccessibleName(self.tr("Stop answer"))
        else:
            self.send_button.setText(self.tr("Send"))
            tip = self.tr("Send (Enter or Ctrl+Enter)") if self._ready else self.tr("Load a model first")
            self.send_button.setToolTip(tip)
            self.send_button.setAccessibleName(self.tr("Send message"))
