"""First run, or no usable model: say honestly what is missing and how to get it.

``action_row`` is a layout the model-download issue can add its "Download Gemma 3n…" button to.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


class EmptyState(QWidget):
    """Explains that a Gemma 3n GGUF is needed and offers to choose one."""

    chooseModelRequested = Signal()

    def __init__(self, models_folder: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self._models_folder = models_folder
        self.title = QLabel(self)
        self.body = QLabel(self)
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.choose_button = QPushButton(self)
        self.choose_button.clicked.connect(self.chooseModelRequested)
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.title.setFont(font)
        self.action_row = QHBoxLayout()
        self.action_row.addStretch(1)
        self.action_row.addWidget(self.choose_button)
        self.action_row.addStretch(1)
        column = QVBoxLayout()
        column.addStretch(1)
        column.addWidget(self.title, 0, Qt.AlignmentFlag.AlignHCenter)
        column.addWidget(self.body)
        column.addLayout(self.action_row)
        column.addStretch(2)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(column, 4)
        outer.addStretch(1)
        self._retranslate()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        super().changeEvent(event)

    def _retranslate(self) -> None:
        self.title.setText(self.tr("No model loaded"))
        self.body.setText(
            self.tr(
                "Gemma Desk runs Google's Gemma 3n entirely on this computer, so it needs the model "
                "file: a GGUF such as gemma-3n-E2B-it-Q4_K_M.gguf (about 3 GB) or the larger E4B. "
                "Download one on any computer, then choose it here. A file placed in %1 is found "
                "automatically when it is the only one there. A built-in downloader will come in a "
                "later version."
            ).replace("%1", str(self._models_folder))
        )
        self.choose_button.setText(self.tr("Choose model file…"))
        self.choose_button.setAccessibleName(self.tr("Choose model file"))
        self.choose_button.setToolTip(self.tr("Open a Gemma 3n GGUF file (Ctrl+O)"))
        self.setAccessibleName(self.tr("No model loaded"))
