"""Where the user writes: prompt editor, mode switch (Chat / Transcribe / Translate), attachments, send/stop.

The composer only says *what* the user wants (a :class:`Submission`); the chat controller decides what
that means.  Image attachments and the audio modes (with push-to-talk) follow the loaded projector:
``set_media`` enables what the model can take and says why the rest is disabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QImage, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.widgets.attachments import AttachmentStrip
from app.gui.widgets.prompt_edit import PromptEdit
from app.gui.widgets.talk import TalkBar
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
    ("zh-Hans", "中文"),
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


class Composer(QWidget):
    """Prompt editor and controls; emits ``submitted`` and ``stopRequested``."""

    submitted = Signal(Submission)
    stopRequested = Signal()
    editCancelled = Signal()
    editingChanged = Signal(bool)
    attachRequested = Signal()
    imagePasted = Signal(QImage)
    filesDropped = Signal(list)  # list[Path]

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.editor = PromptEdit(self)
        self.mode_box = QComboBox(self)
        self.language_box = QComboBox(self)
        self.send_button = QPushButton(self)
        self.attachments = AttachmentStrip(self)
        self.attach_button = QToolButton(self)
        self.attach_error = QLabel(self)
        self.talk = TalkBar(self)
        self._edit_label = QLabel(self)
        self._edit_cancel = QToolButton(self)
        self._busy = False
        self._ready = False
        self._audio_available = False
        self._vision_available = False
        self._has_projector = False
        self._editing = False
        self._build()
        self._retranslate()
        self._update_controls()

    def _build(self) -> None:
        self.editor.submitRequested.connect(self.submit)
        self.editor.imagePasted.connect(self.imagePasted)
        self.editor.filesDropped.connect(self.filesDropped)
        self.attach_button.clicked.connect(self.attachRequested)
        self.attach_error.setWordWrap(True)
        self.attach_error.setVisible(False)
        self.attach_error.setStyleSheet("color: #c62828;")
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
        controls.addWidget(self.attach_button)
        controls.addWidget(self.mode_box)
        controls.addWidget(self.language_box)
        controls.addStretch(1)
        controls.addWidget(self.talk)
        controls.addWidget(self.send_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 6, 12, 10)
        layout.addLayout(edit_row)
        layout.addWidget(self.attachments)
        layout.addWidget(self.attach_error)
        layout.addWidget(self.editor)
        layout.addLayout(controls)
        self.setTabOrder(self.editor, self.attach_button)
        self.setTabOrder(self.attach_button, self.mode_box)
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

    def set_media(self, *, vision: bool, audio: bool, projector: bool) -> None:
        """What the loaded model can take: images (vision tower), speech (audio tower)."""
        self._vision_available, self._has_projector = vision, projector
        if not vision:
            self.attachments.clear()
        self.set_audio_available(audio)

    def set_audio_available(self, available: bool) -> None:
        """The audio modes and push-to-talk need a projector with an audio tower."""
        self._audio_available = available
        if not available and self.mode in AUDIO_MODES:
            self.mode_box.setCurrentIndex(0)
        self._retranslate()
        self._update_controls()

    @property
    def vision_available(self) -> bool:
        return self._vision_available

    def add_attachment(self, media: MediaInput, preview: QImage | None = None) -> None:
        self.attachments.add(media, preview)

    def clear_attachment_error(self) -> None:
        self.attach_error.setVisible(False)

    def show_attachment_error(self, message: str) -> None:
        """Inline, beside the attachments: the user sees which file failed and why."""
        self.attach_error.setText(message)
        self.attach_error.setVisible(True)

    def take_turn(self, extra: tuple[MediaInput, ...]) -> Submission:
        """Push-to-talk in Chat mode: typed text, attached images and the clip make one turn."""
        submission = Submission(
            self.editor.toPlainText().strip(),
            Mode.CHAT,
            str(self.language_box.currentData()),
            (*self.attachments.items, *extra),
        )
        self.editor.clear()
        self.attachments.clear()
        self.attach_error.setVisible(False)
        return submission

    def begin_edit(self, text: str) -> None:
        self.attachments.clear()
        self.editor.setPlainText(text)
        self.editor.moveCursor(self.editor.textCursor().MoveOperation.End)
        self.focus_prompt()
        self._set_editing(True)

    def cancel_edit(self) -> None:
        if self._editing:
            self.editor.clear()
            self.attachments.clear()
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
        if self.mode in AUDIO_MODES:  # speech modes take the microphone; the typed text stays
            self.show_attachment_error(self.tr("Transcribe and Translate work on speech: hold to talk."))
            return
        submission = Submission(
            text, self.mode, str(self.language_box.currentData()), tuple(self.attachments.items)
        )
        self.editor.clear()
        self.attachments.clear()
        self.attach_error.setVisible(False)
        self.submitted.emit(submission)

    def _on_send_clicked(self) -> None:
        if self._busy:
            self.stopRequested.emit()
        else:
            self.submit()

    def _update_controls(self) -> None:
        self.send_button.setEnabled(self._busy or self._ready)
        self.language_box.setEnabled(self.mode is Mode.TRANSLATE)
        self.attach_button.setEnabled(self._vision_available)
        talk_reason = self._audio_reason() if self._ready else self.tr("Load a model first")
        self.talk.set_available(self._audio_available and self._ready, talk_reason)
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
        self.attach_button.setText(self.tr("Image…"))
        self.attach_button.setAccessibleName(self.tr("Attach image"))
        self.attach_button.setToolTip(self._image_reason())
        self.attach_error.setAccessibleName(self.tr("Attachment error"))
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
        unavailable = self._audio_reason()
        for row, mode in enumerate(Mode):
            item = model.item(row)
            item.setText(names[mode])
            enabled = mode is Mode.CHAT or self._audio_available
            item.setEnabled(enabled)
            item.setToolTip("" if enabled else unavailable)

    def _audio_reason(self) -> str:
        if self._has_projector:
            return self.tr("Needs audio input: the loaded projector (mmproj) has no audio tower")
        return self.tr("Needs audio input: choose a Gemma 3n projector (mmproj) with an audio tower")

    def _image_reason(self) -> str:
        if self._vision_available:
            return self.tr("Attach images (or paste or drop them here)")
        if self._has_projector:
            return self.tr("The loaded projector (mmproj) has no vision tower, so images cannot be sent")
        return self.tr("Images need a Gemma 3n projector (mmproj): choose one with File, Choose projector")

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
