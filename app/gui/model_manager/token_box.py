"""The Hugging Face token for gated repositories, kept in this computer's settings file."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

TOKENS_PAGE = "https://huggingface.co/settings/tokens"


class TokenBox(QWidget):
    """A masked field with Save and Forget; ``tokenSaved("")`` forgets the token."""

    tokenSaved = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.explanation = QLabel(self)
        self.explanation.setWordWrap(True)
        self.explanation.setOpenExternalLinks(True)
        self.explanation.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.field = QLineEdit(self)
        self.field.setEchoMode(QLineEdit.EchoMode.Password)
        self.field.returnPressed.connect(self._save)
        self.save_button = QPushButton(self)
        self.save_button.clicked.connect(self._save)
        self.forget_button = QPushButton(self)
        self.forget_button.clicked.connect(lambda: self.tokenSaved.emit(""))
        self.state = QLabel(self)
        row = QHBoxLayout()
        row.addWidget(self.field, 1)
        row.addWidget(self.save_button)
        row.addWidget(self.forget_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.explanation)
        layout.addLayout(row)
        layout.addWidget(self.state)
        self._has_token = False
        self._refusal = ""
        self._retranslate()

    def set_has_token(self, has_token: bool) -> None:
        if has_token != self._has_token:
            self._refusal = ""
        self._has_token = has_token
        self._retranslate()

    def ask(self, refusal: str) -> None:
        """The hub refused a file: say why and put the cursor in the field."""
        self._refusal = refusal
        self._retranslate()
        self.field.setFocus(Qt.FocusReason.OtherFocusReason)

    def _save(self) -> None:
        token = self.field.text().strip()
        if token:
            self.field.clear()
            self.tokenSaved.emit(token)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        super().changeEvent(event)

    def _retranslate(self) -> None:
        self.explanation.setText(
            self.tr(
                "Gated repositories (Google's own Gemma 3n) need a free Hugging Face account: accept the "
                'model\'s licence on its page, create a read token at <a href="%1">%1</a> and paste it '
                "here. It is stored in Gemma Desk's settings file on this computer and sent only to "
                "Hugging Face."
            ).replace("%1", TOKENS_PAGE)
        )
        self.field.setPlaceholderText("hf_…")
        self.field.setAccessibleName(self.tr("Hugging Face token"))
        self.save_button.setText(self.tr("Save &token"))
        self.save_button.setAccessibleName(self.tr("Save the Hugging Face token"))
        self.forget_button.setText(self.tr("Forget token"))
        self.forget_button.setAccessibleName(self.tr("Forget the saved Hugging Face token"))
        self.forget_button.setEnabled(self._has_token)
        saved = self.tr("A token is saved.") if self._has_token else self.tr("No token saved.")
        self.state.setText(f"{saved} {self._refusal}".strip())
        self.state.setWordWrap(True)
