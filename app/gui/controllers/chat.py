"""The conversation's behaviour: send, stream, stop, regenerate, edit-and-resend, and saving turns.

The controller keeps :class:`Conversation`, the view and the history store in step.  Streamed events
are matched to the request id it started; stopping cancels through the bridge, which then drops the
rest of that answer, so the partial text shown is exactly what is saved.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from app.gui.bridge import EngineBridge
from app.gui.conversation import Conversation, Message, MessageState
from app.gui.history.store import HistoryStore
from app.gui.settings import GuiSettings
from app.gui.widgets.composer import Composer, Mode, Submission
from app.gui.widgets.conversation_view import ConversationView
from app.gui.widgets.notice_bar import NoticeBar
from model_io.errors import GemmaDeskError
from model_io.events import Done, EngineError, TextDelta
from model_io.media import MediaInput
from model_io.prompt import ChatMessage, ContentPart

SettingsSource = Callable[[], GuiSettings]


class ChatController(QObject):
    """Owns the open conversation; ``conversationSaved(id)`` tells the sidebar to refresh."""

    conversationSaved = Signal(str)
    conversationChanged = Signal()
    busyChanged = Signal(bool)

    def __init__(
        self,
        bridge: EngineBridge,
        view: ConversationView,
        composer: Composer,
        store: HistoryStore,
        notice: NoticeBar,
        settings: SettingsSource,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._bridge, self._view, self._composer = bridge, view, composer
        self._store, self._notice, self._settings = store, notice, settings
        self.conversation = Conversation()
        self._request_id: int | None = None
        self._edit_index: int | None = None
        self._unsaved_from: int | None = None  # first turn a failed save (full disk) left out of history
        self.model_ready = False
        bridge.textDelta.connect(self._on_delta)
        bridge.finished.connect(self._on_done)
        bridge.failed.connect(self._on_error)
        composer.submitted.connect(self.send)
        composer.stopRequested.connect(self.stop)
        composer.editCancelled.connect(self._on_edit_cancelled)
        view.editRequested.connect(lambda _index: self.edit_last())
        view.regenerateRequested.connect(lambda _index: self.regenerate())

    @property
    def busy(self) -> bool:
        return self._request_id is not None

    @property
    def can_generate(self) -> bool:
        """A model is loaded and no answer is streaming: regenerate and edit make sense."""
        return self.model_ready and not self.busy

    def set_model_ready(self, ready: bool) -> None:
        self.model_ready = ready
        self._refresh_actions()

    # -- user intents ---------------------------------------------------------------------------------

    def send(self, submission: Submission) -> None:
        """Append the user's turn (media first, then the text, as one turn) and start the answer."""
        if self.busy or submission.mode is not Mode.CHAT or not (submission.text or submission.attachments):
            return
        self._drop_failed_tail()
        if self._edit_index is not None:
            self._truncate(self._edit_index)
            self._edit_index = None
            self._composer.finish_edit()
        if submission.attachments:
            text: tuple[ContentPart, ...] = (submission.text,) if submission.text else ()
            parts: tuple[ContentPart, ...] = (*submission.attachments, *text)
            self._append(Message.with_media("user", submission.text, parts))
        else:
            self._append(Message("user", submission.text))
        self._start_answer()

    def send_speech(self, request: tuple[ChatMessage, ...]) -> None:
        """A transcription or translation recipe: shown as a turn, answered on its own (no history)."""
        if self.busy or not request:
            return
        self._drop_failed_tail()
        self._cancel_edit_state()
        turn = request[-1]
        self._append(Message.with_media("user", turn.text, turn.parts, standalone=True))
        self._start_answer()

    def stop(self) -> None:
        """Cancel the answer; what has streamed so far stays, marked as stopped."""
        if self._request_id is None:
            return
        self._bridge.cancel_chat()
        self._request_id = None
        self._finish_last("stopped", "cancelled")

    def regenerate(self) -> None:
        """Answer the last user turn again, replacing the previous answer."""
        last_user = self.conversation.last_index("user")
        if not self.can_generate or last_user is None:
            return
        self._truncate(last_user + 1)
        self._start_answer()

    def edit_last(self) -> None:
        """Put the last user turn back into the composer; sending replaces it and everything after."""
        last_user = self.conversation.last_index("user")
        if not self.can_generate or last_user is None:
            return
        self._edit_index = last_user
        message = self.conversation.messages[last_user]
        self._composer.begin_edit(message.text)
        for part in message.parts:  # the turn's images and clip come back too (not after a reopen)
            if isinstance(part, MediaInput):
                self._composer.add_attachment(part)

    def new_chat(self) -> None:
        self.open(Conversation())

    def open(self, conversation: Conversation) -> None:
        """Show ``conversation``; the engine forgets its KV cache, since the history changed."""
        if self.busy:
            self.stop()
        self._cancel_edit_state()
        self.conversation = conversation
        self._unsaved_from = None
        self._view.set_messages(conversation.messages)
        self._bridge.new_conversation()
        self._refresh_actions()
        self.conversationChanged.emit()

    # -- engine events --------------------------------------------------------------------------------

    def _on_delta(self, event: TextDelta) -> None:
        if event.request_id == self._request_id:
            index = len(self.conversation.messages) - 1
            self.conversation.messages[index].text += event.text
            self._view.message_widget(index).refresh()

    def _on_done(self, event: Done) -> None:
        if event.request_id != self._request_id:
            return
        self._request_id = None
        self.conversation.messages[-1].text = event.text  # the engine's full text is authoritative
        self._finish_last("stopped" if event.finish_reason == "cancelled" else "done", event.finish_reason)

    def _on_error(self, event: EngineError) -> None:
        if event.request_id != self._request_id:
            return
        self._request_id = None
        message = self.conversation.messages[-1]
        message.text, message.state = event.message, "error"
        self._view.message_widget(len(self.conversation.messages) - 1).refresh(now=True)
        self._notice.show_message(self.tr("The answer failed: %1").replace("%1", event.message))
        self._set_busy(False)

    def _finish_last(self, state: MessageState, finish_reason: str) -> None:
        index = len(self.conversation.messages) - 1
        message = self.conversation.messages[index]
        message.state, message.finish_reason = state, finish_reason
        self._view.message_widget(index).refresh(now=True)
        self._save(index)
        self._set_busy(False)

    # -- steps ----------------------------------------------------------------------------------------

    def _start_answer(self) -> None:
        settings = self._settings()
        prompt = self.conversation.prompt()
        self._append(Message("assistant", "", state="streaming"), save=False)
        self._request_id = self._bridge.chat(prompt, settings.sampling(), settings.max_tokens)
        self._set_busy(True)

    def _append(self, message: Message, *, save: bool = True) -> None:
        self.conversation.messages.append(message)
        self._view.add_message(message)
        if save:
            self._save(len(self.conversation.messages) - 1)

    def _save(self, index: int) -> None:
        """Write turn ``index`` (and drop any stored turns after it); the first save creates the row.

        A failed write (e.g. a full disk) is shown, not raised: the turn stays on screen, and the next
        save writes it too, so history never keeps an answer without its question.
        """
        conversation = self.conversation
        start = index if self._unsaved_from is None else min(self._unsaved_from, index)
        try:
            if conversation.conversation_id is None:
                conversation.title = conversation.suggested_title()
                conversation.conversation_id = self._store.create_conversation(conversation.title)
            self._store.replace_messages(
                conversation.conversation_id, start, conversation.messages[start : index + 1]
            )
        except GemmaDeskError as exc:
            self._unsaved_from = start
            self._notice.show_message(str(exc))
            return
        self._unsaved_from = None
        self.conversationSaved.emit(conversation.conversation_id)

    def _truncate(self, length: int) -> None:
        self.conversation.truncate(length)
        self._view.remove_from(length)
        if self.conversation.conversation_id is not None:
            try:
                self._store.truncate(self.conversation.conversation_id, length)
            except GemmaDeskError as exc:
                self._notice.show_message(str(exc))

    def _drop_failed_tail(self) -> None:
        """Failed answers are shown but never saved or sent; remove them before the next turn."""
        messages = self.conversation.messages
        while messages and messages[-1].state == "error":
            self._truncate(len(messages) - 1)

    def _on_edit_cancelled(self) -> None:
        self._edit_index = None

    def _cancel_edit_state(self) -> None:
        if self._edit_index is not None:
            self._edit_index = None
            self._composer.cancel_edit()

    def _set_busy(self, busy: bool) -> None:
        self._composer.set_busy(busy)
        self._refresh_actions()
        self.busyChanged.emit(busy)

    def _refresh_actions(self) -> None:
        self._view.update_actions(enabled=self.can_generate)
