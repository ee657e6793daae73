"""Export a conversation as Markdown (for people) or JSON (for programs), written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from app.gui.conversation import Conversation

EXPORT_FORMAT_VERSION = 1
_HEADINGS = {"system": "System", "user": "You", "assistant": "Gemma"}


def to_markdown(conversation: Conversation) -> str:
    """A heading per turn; answers are already Markdown, so they are written as they are."""
    parts = [f"# {conversation.title or 'Conversation'}"]
    for message in conversation.messages:
        heading = _HEADINGS[message.role]
        if message.finish_reason == "cancelled":
            heading += " (stopped)"
        parts.append(f"## {heading}\n\n{message.text.strip()}")
    return "\n\n".join(parts) + "\n"


def to_json(conversation: Conversation) -> str:
    payload = {
        "format": "gemma-desk-conversation",
        "version": EXPORT_FORMAT_VERSION,
        "id": conversation.conversation_id,
        "title": conversation.title,
        "messages": [
            {
                "role": m.role,
                "text": m.text,
                "finish_reason": m.finish_reason,
                "attachments": list(m.attachments),
            }
            for m in conversation.messages
        ],
    }
    return json.dumps(payload, ensure_ascii=False, indent=2) + "\n"


def export_conversation(conversation: Conversation, target: Path) -> Path:
    """Write ``.json`` as JSON and anything else as Markdown; a crash never leaves half a file."""
    text = to_json(conversation) if target.suffix.lower() == ".json" else to_markdown(conversation)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target
