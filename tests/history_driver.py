"""A child process that writes conversation turns through the real HistoryStore, for the SIGKILL test.

It saves turns exactly when and how ``ChatController`` does (``_save`` → ``create_conversation`` on the
first turn, then ``replace_messages(id, index, [turn])``; ``_truncate`` → ``truncate``; streamed
tokens are never written) and journals every store call to a log: an ``intent`` line before the call
and a ``done`` line after it returns, each written with one ``write`` and fsync'ed.  The test kills
the process at random moments and checks the database against the journal.

Run as ``python history_driver.py zygote``: the zygote imports everything once, then for each
``run DB LOG SEED`` line on stdin forks a driver child and prints its pid; ``reap PID`` waits for it
and prints its raw wait status.  Forking keeps 100 kill cycles to a few seconds instead of paying
the interpreter start-up and imports each time.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from app.gui.conversation import Message
from app.gui.history.store import HistoryStore
from model_io.media import MediaInput
from model_io.prompt import ContentPart

WORDS = (
    "the",
    "model",
    "answer",
    "été",
    "Straße",
    "漢字",
    "🙂",
    "```python\nprint(1)\n```",
    "**bold**",
    "\n\n",
)


def turn_text(rng: random.Random) -> str:
    """A body plus its own checksum, so a torn text in the database can never pass for a whole one."""
    size = rng.choice((0, 1, 8, 40, 300, 2_000)) if rng.random() < 0.97 else 60_000
    body = " ".join(rng.choice(WORDS) for _ in range(size))
    return f"{body}\n#{hashlib.sha256(body.encode()).hexdigest()[:16]}"


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def describe(message: Message) -> dict[str, Any]:
    """What the journal records of a turn: enough to recognise it exactly, not the text itself."""
    return {
        "role": message.role,
        "sha": text_digest(message.text),
        "finish_reason": message.finish_reason,
        "digests": list(message.attachments),
    }


class Journal:
    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, record: dict[str, Any]) -> None:
        os.write(self.fd, (json.dumps(record) + "\n").encode())
        os.fsync(self.fd)


class Driver:
    """Plays a user chatting: new conversations, turns with images, stops, regenerations, edits."""

    def __init__(self, db: Path, log: Path, seed: int) -> None:
        self.rng = random.Random(seed)
        self.journal = Journal(log)
        self.store = HistoryStore(db)
        self.conversation_id: str | None = None
        self.messages: list[Message] = []

    def call(self, intent: dict[str, Any], action: Any) -> Any:
        self.journal.write({"phase": "intent", **intent})
        result = action()
        self.journal.write({"phase": "done", **intent, "result": result})
        return result

    def save(self, index: int) -> None:
        """ChatController._save."""
        if self.conversation_id is None:
            title = self.messages[0].text[:60]
            self.conversation_id = self.call(
                {"op": "create", "title": title}, lambda: self.store.create_conversation(title)
            )
        cid, message = self.conversation_id, self.messages[index]
        self.call(
            {"op": "replace", "cid": cid, "start": index, "messages": [describe(message)]},
            lambda: self.store.replace_messages(cid, index, [message]),
        )

    def truncate(self, length: int) -> None:
        """ChatController._truncate."""
        del self.messages[length:]
        cid = self.conversation_id
        if cid is not None:
            self.call(
                {"op": "replace", "cid": cid, "start": length, "messages": []},
                lambda: self.store.truncate(cid, length),
            )

    def user_turn(self) -> None:
        text = turn_text(self.rng)
        if self.rng.random() < 0.2:
            parts: tuple[ContentPart, ...] = (*self.images(), text)
            self.messages.append(Message.with_media("user", text, parts))
        else:
            self.messages.append(Message("user", text))
        self.save(len(self.messages) - 1)

    def images(self) -> list[MediaInput]:
        side = self.rng.choice((8, 64, 400))
        pixels = np.random.default_rng(self.rng.getrandbits(32)).integers(0, 256, (side, side, 3), np.uint8)
        return [MediaInput("image", pixels, label=f"photo-{side}.png")] * self.rng.choice((1, 2))

    def answer(self) -> None:
        """Stream (nothing is written per token), then save the finished or stopped answer."""
        for _ in range(self.rng.randrange(40)):
            time.sleep(0.0005)
        stopped = self.rng.random() < 0.2
        reason = "cancelled" if stopped else self.rng.choice(("stop", "length"))
        self.messages.append(
            Message("assistant", turn_text(self.rng), "stopped" if stopped else "done", reason)
        )
        self.save(len(self.messages) - 1)

    def open_existing(self) -> None:
        """Reopen a saved conversation from the sidebar, as after an app restart."""
        summaries = self.store.list_conversations()
        if not summaries:
            return
        conversation = self.store.load(self.rng.choice(summaries).conversation_id)
        self.conversation_id, self.messages = conversation.conversation_id, conversation.messages

    def step(self) -> None:
        roll = self.rng.random()
        last_user = max((i for i, m in enumerate(self.messages) if m.role == "user"), default=None)
        if roll < 0.06:
            self.conversation_id, self.messages = None, []
        elif roll < 0.12:
            self.open_existing()
        elif roll < 0.17 and last_user is not None:  # regenerate
            self.truncate(last_user + 1)
            self.answer()
        elif roll < 0.21 and last_user is not None:  # edit the last question and resend
            self.truncate(last_user)
            self.user_turn()
            self.answer()
        elif roll < 0.23 and self.conversation_id is not None:
            cid, title = self.conversation_id, f"renamed {self.rng.randrange(1000)}"
            self.call({"op": "rename", "cid": cid, "title": title}, lambda: self.store.rename(cid, title))
        elif roll < 0.25 and self.conversation_id is not None:
            cid = self.conversation_id
            self.call({"op": "delete", "cid": cid}, lambda: self.store.delete(cid))
            self.conversation_id, self.messages = None, []
        elif self.messages and self.messages[-1].role == "user":
            self.answer()  # the app was killed while streaming this answer: answer it now
        else:
            self.user_turn()
            self.answer()

    def run(self) -> None:
        self.open_existing()
        while True:
            self.step()


def zygote() -> None:
    """Fork a driver per ``run`` command; the test kills it, then asks us to ``reap`` it."""
    for line in sys.stdin:
        command, *args = line.split()
        if command == "run":
            db, log, seed = args
            pid = os.fork()
            if pid == 0:
                try:
                    Driver(Path(db), Path(log), int(seed)).run()
                finally:
                    os._exit(1)  # only reached on an exception, which the test reports
            print(pid, flush=True)
        elif command == "reap":
            _, status = os.waitpid(int(args[0]), 0)
            print(status, flush=True)


if __name__ == "__main__":
    zygote()
