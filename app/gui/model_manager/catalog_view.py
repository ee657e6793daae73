"""The downloadable models: one row per catalog text model, grouped by family, with what it costs.

Rows are created once and updated in place, so progress redraws keep the selection and focus.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.gui.model_manager.text import fit_text, size_text
from app.gui.models_state import CatalogRow, RamFit
from app.gui.widgets.status_panel import human_bytes

NAME_ROLE = Qt.ItemDataRole.UserRole
FAMILY_TITLES = {"gemma-3n": "Gemma 3n", "gemma-4": "Gemma 4"}
COLUMNS = 5


class CatalogView(QWidget):
    """Emits what the user wants done with the selected row; the controller does it."""

    downloadRequested = Signal(str)  # catalog name
    useRequested = Signal(str)  # catalog name of an installed model
    cancelRequested = Signal(str)  # job key
    selectionChanged = Signal(str)  # catalog name, "" for none

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setAllColumnsShowFocus(True)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setStretchLastSection(True)
        self.tree.setMinimumHeight(self.fontMetrics().height() * 20)
        self.tree.currentItemChanged.connect(self._current_changed)
        self.action_button = QPushButton(self)
        self.action_button.clicked.connect(self._act)
        self.tree.itemActivated.connect(lambda _item, _column: self._use_if_installed())
        self.cancel_button = QPushButton(self)
        self.cancel_button.clicked.connect(self._cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.action_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        layout.addLayout(buttons)
        self._items: dict[str, QTreeWidgetItem] = {}
        self._groups: dict[str, QTreeWidgetItem] = {}
        self._rows: dict[str, CatalogRow] = {}
        self._retranslate()

    # -- rendering ------------------------------------------------------------------------------

    def set_rows(self, rows: Sequence[CatalogRow]) -> None:
        for row in rows:
            self._rows[row.entry.name] = row
            self._render(self._item_for(row), row)
        if self.tree.currentItem() is None and rows:
            self.tree.setCurrentItem(self._items[rows[0].entry.name])
        self._update_buttons()

    def selected(self) -> CatalogRow | None:
        item = self.tree.currentItem()
        name = item.data(0, NAME_ROLE) if item is not None else None
        return self._rows.get(name) if name else None

    def select(self, name: str) -> None:
        self.tree.setCurrentItem(self._items[name])

    def _item_for(self, row: CatalogRow) -> QTreeWidgetItem:
        item = self._items.get(row.entry.name)
        if item is None:
            group = self._groups.get(row.entry.family)
            if group is None:
                group = self._groups[row.entry.family] = QTreeWidgetItem(self.tree)
                group.setText(0, FAMILY_TITLES.get(row.entry.family, row.entry.family))
                group.setFlags(Qt.ItemFlag.ItemIsEnabled)
                group.setFirstColumnSpanned(True)
                font = group.font(0)
                font.setBold(True)
                group.setFont(0, font)
                group.setExpanded(True)
            item = self._items[row.entry.name] = QTreeWidgetItem(group)
            item.setData(0, NAME_ROLE, row.entry.name)
        return item

    def _render(self, item: QTreeWidgetItem, row: CatalogRow) -> None:
        entry = row.entry
        ram = "" if row.ram_needed is None else human_bytes(row.ram_needed) + " · "
        texts = [
            f"{entry.variant} · {entry.repo.split('/')[0]}",
            entry.quant,
            size_text(row.size, row.size_is_estimate),
            ram + fit_text(row.fit),
            self._status_text(row),
        ]
        for column, text in enumerate(texts):
            item.setText(column, text)
        item.setToolTip(0, f"{entry.repo}/{entry.filename}\n{entry.license}")
        item.setToolTip(
            3,
            self.tr(
                "Estimated RAM while chatting: the file plus about 1 GiB for the context (KV cache) "
                "and working buffers"
            ),
        )
        warning = QBrush(QColor(200, 30, 30)) if row.fit is RamFit.TOO_LARGE else None
        item.setData(3, Qt.ItemDataRole.ForegroundRole, warning)

    def _status_text(self, row: CatalogRow) -> str:
        job = row.job
        if job is not None and job.state == "running":
            percent = round(job.progress.fraction * 100) if job.progress else 0
            return self.tr("Downloading %1%").replace("%1", str(percent))
        if job is not None and job.state == "cancelling":
            return self.tr("Cancelling…")
        if job is not None and job.state == "failed":
            return self.tr("Download failed")
        if row.installed:
            return (
                self.tr("Downloaded and verified") if row.local.state == "verified" else self.tr("Installed")
            )
        if row.local.state == "partial":
            return self.tr("Partly downloaded (%1 kept)").replace("%1", human_bytes(row.local.partial_bytes))
        return ""

    # -- actions --------------------------------------------------------------------------------

    def _current_changed(self) -> None:
        self._update_buttons()
        row = self.selected()
        self.selectionChanged.emit(row.entry.name if row is not None else "")

    def _update_buttons(self) -> None:
        row = self.selected()
        job = row.job if row is not None else None
        running = job is not None and job.active
        self.cancel_button.setVisible(running)
        self.cancel_button.setEnabled(job is not None and job.state == "running")
        self.action_button.setEnabled(row is not None and not running)
        if running:
            text = self.tr("Downloading…")
        elif row is not None and row.installed:
            text = self.tr("&Use this model")
        elif row is not None and row.local.state == "partial":
            text = self.tr("&Resume download")
        else:
            text = self.tr("&Download")
        self.action_button.setText(text)
        self.action_button.setAccessibleName(text.replace("&", ""))

    def _act(self) -> None:
        row = self.selected()
        if row is None or (row.job is not None and row.job.active):
            return
        if row.installed:
            self.useRequested.emit(row.entry.name)
        else:
            self.downloadRequested.emit(row.entry.name)

    def _use_if_installed(self) -> None:
        """Enter or a double click uses an installed model; a download always takes the button."""
        row = self.selected()
        if row is not None and row.installed and not (row.job is not None and row.job.active):
            self.useRequested.emit(row.entry.name)

    def _cancel(self) -> None:
        row = self.selected()
        if row is not None and row.job is not None:
            self.cancelRequested.emit(row.job.key)

    # -- language -------------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        super().changeEvent(event)

    def _retranslate(self) -> None:
        self.tree.setHeaderLabels(
            [
                self.tr("Model"),
                self.tr("Quantisation"),
                self.tr("Download"),
                self.tr("RAM needed"),
                self.tr("Status"),
            ]
        )
        self.tree.setAccessibleName(self.tr("Models to download"))
        self.tree.header().setAccessibleName(self.tr("Columns"))
        self.cancel_button.setText(self.tr("&Cancel download"))
        self.cancel_button.setAccessibleName(self.tr("Cancel download"))
        for row in self._rows.values():
            self._render(self._items[row.entry.name], row)
        self._update_buttons()
