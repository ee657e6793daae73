"""The history sidebar: search, the saved conversations (newest first), and what can be done to one."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, QPoint, Qt, Signal
from PySide6.QtGui import QAction, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.history.store import ConversationSummary

ID_ROLE = Qt.ItemDataRole.UserRole


class _ConversationList(QListWidget):
    """Delete removes the selected conversation from the keyboard; F2 renames (Qt's edit key)."""

    deletePressed = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Delete and self.currentItem() is not None:
            self.deletePressed.emit()
            return
        super().keyPressEvent(event)


class HistorySidebar(QWidget):
    """Emits intents with conversation ids; the history controller carries them out."""

    searchChanged = Signal(str)
    conversationActivated = Signal(str)
    newChatRequested = Signal()
    renameRequested = Signal(str, str)
    deleteRequested = Signal(str)
    exportRequested = Signal(str, str)  # conversation id, "md" or "json"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.search = QLineEdit(self)
        self.search.setClearButtonEnabled(True)
        self.list = _ConversationList(self)
        self.new_button = QPushButton(self)
        self.rename_button = QToolButton(self)
        self.delete_button = QToolButton(self)
        self.export_button = QToolButton(self)
        self._export_menu = QMenu(self)
        self._export_md = QAction(self)
        self._export_json = QAction(self)
        self._build()
        self._retranslate()
        self._update_buttons()

    def _build(self) -> None:
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.itemActivated.connect(self._activated)
        self.list.itemClicked.connect(self._activated)
        self.list.itemChanged.connect(self._renamed)
        self.list.currentItemChanged.connect(self._update_buttons)
        self.list.deletePressed.connect(self._delete_current)
        self.search.textChanged.connect(self.searchChanged)
        self.new_button.clicked.connect(self.newChatRequested)
        self.rename_button.clicked.connect(self._rename_current)
        self.delete_button.clicked.connect(self._delete_current)
        self._export_menu.addAction(self._export_md)
        self._export_menu.addAction(self._export_json)
        self._export_md.triggered.connect(lambda: self._export_current("md"))
        self._export_json.triggered.connect(lambda: self._export_current("json"))
        self.export_button.setMenu(self._export_menu)
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        buttons = QHBoxLayout()
        for button in (self.rename_button, self.delete_button, self.export_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 4, 8)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.setTabOrder(self.new_button, self.search)
        self.setTabOrder(self.search, self.list)

    # -- content --------------------------------------------------------------------------------------

    def set_conversations(self, conversations: Sequence[ConversationSummary], current: str | None) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        for summary in conversations:
            item = QListWidgetItem(summary.title or self.tr("Untitled conversation"))
            item.setData(ID_ROLE, summary.conversation_id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            item.setToolTip(summary.title)
            self.list.addItem(item)
            if summary.conversation_id == current:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self._update_buttons()

    def conversation_ids(self) -> list[str]:
        return [str(self.list.item(row).data(ID_ROLE)) for row in range(self.list.count())]

    def current_id(self) -> str | None:
        item = self.list.currentItem()
        return str(item.data(ID_ROLE)) if item is not None else None

    # -- intents --------------------------------------------------------------------------------------

    def _activated(self, item: QListWidgetItem) -> None:
        self.conversationActivated.emit(str(item.data(ID_ROLE)))

    def _renamed(self, item: QListWidgetItem) -> None:
        self.renameRequested.emit(str(item.data(ID_ROLE)), item.text())

    def _rename_current(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.list.editItem(item)

    def _delete_current(self) -> None:
        current = self.current_id()
        if current is not None:
            self.deleteRequested.emit(current)

    def _export_current(self, fmt: str) -> None:
        current = self.current_id()
        if current is not None:
            self.exportRequested.emit(current, fmt)

    def _context_menu(self, position: QPoint) -> None:
        if self.list.itemAt(position) is None:
            return
        menu = QMenu(self)
        menu.addAction(self.tr("Rename"), self._rename_current)
        menu.addAction(self.tr("Delete"), self._delete_current)
        menu.addSeparator()
        menu.addAction(self._export_md)
        menu.addAction(self._export_json)
        menu.exec(self.list.viewport().mapToGlobal(position))

    def _update_buttons(self) -> None:
        has_current = self.list.currentItem() is not None
        for button in (self.rename_button, self.delete_button, self.export_button):
            button.setEnabled(has_current)

    # -- language -------------------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        super().changeEvent(event)

    def _retranslate(self) -> None:
        self.search.setPlaceholderText(self.tr("Search conversations"))
        self.search.setAccessibleName(self.tr("Search conversations"))
        self.list.setAccessibleName(self.tr("Saved conversations"))
        self.new_button.setText(self.tr("New chat"))
        self.new_button.setToolTip(self.tr("Start a new conversation (Ctrl+N)"))
        self.new_button.setAccessibleName(self.tr("New chat"))
        self.rename_button.setText(self.tr("Rename"))
        self.rename_button.setToolTip(self.tr("Rename the selected conversation (F2)"))
        self.rename_button.setAccessibleName(self.tr("Rename conversation"))
        self.delete_button.setText(self.tr("Delete"))
        self.delete_button.setToolTip(self.tr("Delete the selected conversation (Delete)"))
        self.delete_button.setAccessibleName(self.tr("Delete conversation"))
        self.export_button.setText(self.tr("Export"))
        self.export_button.setToolTip(self.tr("Export the selected conversation"))
        self.export_button.setAccessibleName(self.tr("Export conversation"))
        self._export_md.setText(self.tr("Export as Markdown…"))
        self._export_json.setText(self.tr("Export as JSON…"))
