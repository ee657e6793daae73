"""The sidebar's behaviour: list and search saved conversations, open, rename, delete and export them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject

from app.gui.controllers.chat import ChatController
from app.gui.history.export import export_conversation
from app.gui.history.store import HistoryStore
from app.gui.widgets.notice_bar import NoticeBar
from app.gui.widgets.sidebar import HistorySidebar

ExportChooser = Callable[[str, str], Path | None]  # (suggested file name, "md"|"json") -> target
Confirm = Callable[[str], bool]  # (conversation title) -> delete?


class HistoryController(QObject):
    """Keeps the sidebar in step with the store and the chat controller."""

    def __init__(
        self,
        store: HistoryStore,
        sidebar: HistorySidebar,
        chat: ChatController,
        notice: NoticeBar,
        choose_export: ExportChooser,
        confirm_delete: Confirm,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._store, self._sidebar, self._chat, self._notice = store, sidebar, chat, notice
        self._choose_export = choose_export
        self._confirm_delete = confirm_delete
        self._query = ""
        sidebar.searchChanged.connect(self.search)
        sidebar.conversationActivated.connect(self.open)
        sidebar.newChatRequested.connect(self.new_chat)
        sidebar.renameRequested.connect(self.rename)
        sidebar.deleteRequested.connect(self.delete)
        sidebar.exportRequested.connect(self.export)
        chat.conversationSaved.connect(lambda _id: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        current = self._chat.conversation.conversation_id
        self._sidebar.set_conversations(self._store.list_conversations(self._query), current)

    def search(self, query: str) -> None:
        self._query = query
        self.refresh()

    def new_chat(self) -> None:
        self._chat.new_chat()
        self.refresh()

    def open(self, conversation_id: str) -> None:
        if conversation_id == self._chat.conversation.conversation_id:
            return
        try:
            conversation = self._store.load(conversation_id)
        except KeyError:
            self._notice.show_message(self.tr("That conversation no longer exists."))
            self.refresh()
            return
        self._chat.open(conversation)
        self.refresh()

    def rename(self, conversation_id: str, title: str) -> None:
        title = title.strip()
        if title:
            self._store.rename(conversation_id, title)
            if conversation_id == self._chat.conversation.conversation_id:
                self._chat.conversation.title = title
        self.refresh()

    def delete(self, conversation_id: str) -> None:
        title = next(
            (s.title for s in self._store.list_conversations() if s.conversation_id == conversation_id), ""
        )
        if not self._confirm_delete(title):
            return
        self._store.delete(conversation_id)
        if conversation_id == self._chat.conversation.conversation_id:
            self._chat.new_chat()
        self.refresh()

    def export(self, conversation_id: str, fmt: str) -> Path | None:
        conversation = self._store.load(conversation_id)
        suggested = _safe_file_name(conversation.title or "conversation") + f".{fmt}"
        target = self._choose_export(suggested, fmt)
        if target is None:
            return None
        if target.suffix.lower() != f".{fmt}":
            target = target.with_name(target.name + f".{fmt}")
        try:
            written = export_conversation(conversation, target)
        except OSError as exc:
            self._notice.show_message(self.tr("Export failed: %1").replace("%1", str(exc)))
            return None
        self._notice.show_message(self.tr("Exported to %1").replace("%1", str(written)), "info")
        return written


def _safe_file_name(title: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in " -_" else "_" for c in title).strip()
    return cleaned[:60] or "conversation"
