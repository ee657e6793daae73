"""The conversation being shown: a Qt-free list of turns that the chat controller edits and history saves.

Keeping it free of Qt lets the history store, the exporters and the controller share one type, and
keeps "what is the prompt for this request" testable without a window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from model_io.prompt import ChatMessage, Role

MessageState = Literal["done", "streaming", "stopped", "error"]
TITLE_LENGTH = 60


@dataclass
class Message:
    """One turn; ``attachments`` holds content digests (images/audio arrive with the media issues)."""

    role: Role
    text: str
    state: MessageState = "done"
    finish_reason: str | None = None
    attachments: tuple[str, ...] = ()


@dataclass
class Conversation:
    """Ordered turns plus the history id (None until the first message is saved)."""

    conversation_id: str | None = None
    title: str = ""
    messages: list[Message] = field(default_factory=list)

    def prompt(self) -> tuple[ChatMessage, ...]:
        """The turns the engine sees: no streaming or failed answers, and roles strictly alternating.

        A user turn left unanswered by an error is merged into the next one, so the user's words are
        kept and the prompt stays valid for the chat template.
        """
        turns: list[ChatMessage] = []
        for message in self.messages:
            if message.state in ("streaming", "error"):
                continue
            if turns and turns[-1].role == message.role:
                merged = f"{turns[-1].text}\n\n{message.text}".strip()
                turns[-1] = ChatMessage(message.role, merged)
            else:
                turns.append(ChatMessage(message.role, message.text))
        return tuple(turns)

    def last_index(self, role: Role) -> int | None:
        for index in range(len(self.messages) - 1, -1, -1):
            if self.messages[index].role == role:
                return index
        return None

    def can_regenerate(self) -> bool:
        """There is a user turn to answer again."""
        return self.last_index("user") is not None

    def truncate(self, length: int) -> None:
        del self.messages[length:]

    def suggested_title(self) -> str:
        """The first user line, shortened: a readable default the user can rename."""
        index = next((i for i, m in enumerate(self.messages) if m.role == "user"), None)
        if index is None:
            return ""
        line = self.messages[index].text.strip().splitlines()[0] if self.messages[index].text.strip() else ""
        return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"
