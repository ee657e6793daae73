"""Models already on this computer (models folder, added folders, HF cache, LM Studio, Ollama).

Each text model is listed with the projector discovery paired with it; files that could not be
used are counted, with their reasons in a tooltip.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.gui.widgets.status_panel import human_bytes

if TYPE_CHECKING:
    from model_io.discovery import DiscoveryReport, FoundModel

INDEX_ROLE = Qt.ItemDataRole.UserRole


class LocalView(QWidget):
    """Emits intents; ``useRequested(model, projector or None)`` loads a found model."""

    useRequested = Signal(Path, object)
    rescanRequested = Signal()
    addFolderRequested = Signal()
    importRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(4)
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setAllColumnsShowFocus(True)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setMaximumHeight(self.fontMetrics().height() * 12)
        self.tree.itemActivated.connect(lambda _item, _column: self._use())
        self.tree.currentItemChanged.connect(lambda *_: self._update_buttons())
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.use_button = QPushButton(self)
        self.use_button.clicked.connect(self._use)
        self.import_button = QPushButton(self)
        self.import_button.clicked.connect(self.importRequested)
        self.add_folder_button = QPushButton(self)
        self.add_folder_button.clicked.connect(self.addFolderRequested)
        self.rescan_button = QPushButton(self)
        self.rescan_button.clicked.connect(self.rescanRequested)
        buttons = QHBoxLayout()
        for button in (self.use_button, self.import_button, self.add_folder_button, self.rescan_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self._report: DiscoveryReport | None = None
        self._scanning = False
        self._error = ""
        self._retranslate()

    def set_report(self, report: DiscoveryReport | None, scanning: bool, error: str = "") -> None:
        self._scanning, self._error = scanning, error
        if report is not self._report:
            self._report = report
            self._fill()
        self._show_status()
        self._update_buttons()

    def selected(self) -> FoundModel | None:
        item = self.tree.currentItem()
        if item is None or self._report is None:
            return None
        return self._report.models[int(item.data(0, INDEX_ROLE))]

    def _fill(self) -> None:
        self.tree.clear()
        for index, found in enumerate(self._report.models if self._report else ()):
            info, candidate = found.model.info, found.model.candidate
            assert info is not None  # listed models are the usable ones
            projector = found.mmproj.path.name if found.mmproj else self.tr("none")
            texts = [info.name or found.model.path.name, self._source_name(candidate.source)]
            item = QTreeWidgetItem(self.tree, [*texts, human_bytes(info.file_size), projector])
            item.setToolTip(0, str(found.model.path))
            item.setData(0, INDEX_ROLE, index)
        first = self.tree.topLevelItem(0)
        if first is not None:
            self.tree.setCurrentItem(first)

    def _source_name(self, source: str) -> str:
        names = {
            "models": self.tr("Models folder"),
            "folder": self.tr("Added folder"),
            "hf-cache": self.tr("Hugging Face cache"),
            "lmstudio": "LM Studio",
            "ollama": "Ollama",
        }
        return names.get(source, source)

    def _show_status(self) -> None:
        report = self._report
        if self._error:
            text = self._error
        elif self._scanning:
            text = self.tr("Looking for models on this computer…")
        elif report is None:
            text = ""
        elif not report.models:
            text = self.tr("No usable model found on this computer yet.")
        else:
            text = ""
        problems = report.problems if report is not None else ()
        if problems:
            more = self.tr("%1 file(s) could not be used; hover here for the reasons.")
            text = (text + " " + more.replace("%1", str(len(problems)))).strip()
        self.status.setText(text)
        self.status.setToolTip("\n".join(p.error or "" for p in problems))
        self.status.setVisible(bool(text))

    def _update_buttons(self) -> None:
        self.use_button.setEnabled(self.selected() is not None)
        self.rescan_button.setEnabled(not self._scanning)

    def _use(self) -> None:
        found = self.selected()
        if found is not None:
            self.useRequested.emit(found.model.path, found.mmproj.path if found.mmproj else None)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        super().changeEvent(event)

    def _retranslate(self) -> None:
        self.tree.setHeaderLabels(
            [self.tr("Model"), self.tr("Found in"), self.tr("Size"), self.tr("Projector")]
        )
        self.tree.setAccessibleName(self.tr("Models on this computer"))
        self.tree.header().setAccessibleName(self.tr("Columns"))
        texts = {
            self.use_button: (self.tr("U&se selected"), self.tr("Use the selected model")),
            self.import_button: (self.tr("&Import a file…"), self.tr("Import a model file")),
            self.add_folder_button: (self.tr("Add &folder…"), self.tr("Add a folder to search")),
            self.rescan_button: (self.tr("Search a&gain"), self.tr("Search for models again")),
        }
        for button, (text, name) in texts.items():
            button.setText(text)
            button.setAccessibleName(name)
        self.import_button.setToolTip(
            self.tr("Copy a GGUF model or projector into the models folder after checking it")
        )
        self._fill()
        self._show_status()
        self._update_buttons()
