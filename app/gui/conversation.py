"""The conversation being shown: a Qt-free list of turns that the chat controller edits and history saves.

Keeping it free of Qt lets the history store, the exporters and the controller share one type, and
keeps "what is the prompt for this request" testable without a window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from model_io.media import MediaInput
from model_io.prompt import ChatMessage, ContentPart, Role

MessageState = Literal["done", "streaming", "stopped", "error"]
TITLE_LENGTH = 60


@dataclass
class Message:
    """One turn.

    ``attachments`` holds content digests and ``attachment_kinds`` their kinds (what history keeps).
    ``parts`` is what the engine sees when the turn has media (images, a clip and the text, in order);
    history restores it from the stored payloads, and if those are gone the turn keeps only its text.
    A ``standalone`` turn (transcribe, translate) is answered on its own, without the turns before it.
    """

    role: Role
    text: str
    state: MessageState = "done"
    finish_reason: str | None = None
    attachments: tuple[str, ...] = ()
    attachment_kinds: tuple[str, ...] = ()
    parts: tuple[ContentPart, ...] = field(default=(), compare=False, repr=False)
    standalone: bool = False

    @classmethod
    def with_media(cls, role: Role, text: str, parts: tuple[ContentPart, ...], **kwargs: object) -> Message:
        media = [p for p in parts if isinstance(p, MediaInput)]
        return cls(
            role,
            text,
            attachments=tuple(m.digest for m in media),
            attachment_kinds=tuple(m.kind for m in media),
            parts=parts,
            **kwargs,  # type: ignore[arg-type]
        )

    def content(self) -> str | tuple[ContentPart, ...]:
        return self.parts if self.parts else self.text


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
            content = message.content()
            if turns and turns[-1].role == message.role:
                previous = turns[-1].content
                if isinstance(previous, str) and isinstance(content, str):
                    turns[-1] = ChatMessage(message.role, f"{previous}\n\n{content}".strip())
                else:
                    turns[-1] = ChatMessage(
                        message.role, (*turns[-1].parts, "\n\n", *(message.parts or (content,)))
                    )
            else:
                turns.append(ChatMessage(message.role, content))
        last = self.last_index("user")
        if last is not None and self.messages[last].standalone and turns and turns[-1].role == "user":
            return (ChatMessage("user", self.messages[last].content()),)  # answered on its own
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
