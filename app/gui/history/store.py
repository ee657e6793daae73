"""Conversation history in SQLite under ``data_dir()``: WAL, foreign keys, one transaction per change.

Calls are made on the GUI thread: each is a handful of indexed rows, which is cheaper than a thread
hop.  Only finished turns are written, never individual streamed tokens, so a crash mid-answer
loses only that answer (tests/test_history_durability.py kills a writer 100 times to check).
``synchronous=FULL``: in WAL mode NORMAL is already crash-consistent and survives a killed process,
but a power cut or OS crash can roll back the last commits; FULL fsyncs the WAL at each commit, so a
turn shown as saved stays saved.  It costs one fsync per saved turn on the GUI thread: a median of
4-9 ms (p90 8-17 ms) against 0.1 ms for NORMAL on the dev machine's busy shared disk
(tools/bench_history_commit.py); about a frame, once per turn, nothing next to generating it.
Attachment payloads go to ``attachments/<digest>.npy`` beside the database (see
:mod:`app.gui.history.media_files`), written once per distinct image or clip.
A failed write (a full disk, a read-only folder) rolls back whole and raises ``HistoryError`` or
``DiskFullError`` with a one-line message; nothing saved before is touched.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.gui.conversation import Conversation, Message, MessageState
from app.gui.history.media_files import read_media, write_media
from app.gui.history.migrations import migrate
from model_io.errors import DiskFullError, GemmaDeskError
from model_io.media import MediaInput
from model_io.paths import data_dir

DB_NAME = "history.sqlite3"
_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class HistoryError(GemmaDeskError):
    """The history database could not be written; earlier saved turns are unaffected."""


@dataclass(frozen=True)
class ConversationSummary:
    """A row of the sidebar."""

    conversation_id: str
    title: str
    updated_at: str
    message_count: int


def default_path() -> Path:
    return data_dir() / DB_NAME


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class HistoryStore:
    """Saved conversations: create, append, truncate, list/search, rename, delete, load."""

    def __init__(self, path: Path | None = None):
        self.path = path or default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE … COMMIT) in _transaction.
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        # SQLite's LIKE folds ASCII only; casefold() makes "ÉTÉ" find "été" too.
        self._db.create_function("casefold", 1, _casefold, deterministic=True)
        self.applied_migrations = migrate(self._db, _now())
        self.media_dir = self.path.parent / "attachments"

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing; a failed COMMIT (disk full) is rolled back too, so the next call can begin."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError | OSError):  # disk, permissions, locks; not bugs
                raise self._write_error(exc) from exc
            raise

    def _write_error(self, exc: sqlite3.OperationalError | OSError) -> GemmaDeskError:
        if _is_disk_full(exc):
            return DiskFullError(
                f"cannot save the conversation: the disk holding {self.path.parent} is full; "
                "free some space (what was saved before is kept)"
            )
        return HistoryError(f"cannot save the conversation in {self.path} ({exc})")

    # -- writes -------------------------------------------------------------------------------------

    def create_conversation(self, title: str, model: str = "") -> str:
        conversation_id = uuid.uuid4().hex
        now = _now()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO conversations (id, title, created_at, updated_at, model) VALUES (?, ?, ?, ?, ?)",
                (conversation_id, title, now, now, model),
            )
        return conversation_id

    def append_message(self, conversation_id: str, position: int, message: Message) -> None:
        self.replace_messages(conversation_id, position, [message])

    def replace_messages(self, conversation_id: str, start: int, messages: Sequence[Message]) -> None:
        """Drop the turns from ``start`` on and write ``messages`` there, atomically (edit, regenerate)."""
        now = _now()
        with self._transaction() as db:
            db.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND position >= ?", (conversation_id, start)
            )
            for offset, m in enumerate(messages):
                cursor = db.execute(
                    "INSERT INTO messages (conversation_id, position, role, text, finish_reason, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (conversation_id, start + offset, m.role, m.text, m.finish_reason, now),
                )
                self._link_attachments(db, cursor.lastrowid, m, now)
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))

    def _link_attachments(
        self, db: sqlite3.Connection, message_id: int | None, message: Message, now: str
    ) -> None:
        """Record the turn's media by digest, with the payload file when the turn still has it."""
        media = {p.digest: p for p in message.parts if isinstance(p, MediaInput)}
        kinds = message.attachment_kinds or ("image",) * len(message.attachments)
        for position, (digest, kind) in enumerate(zip(message.attachments, kinds, strict=True)):
            item = media.get(digest)
            path = str(write_media(self.media_dir, item)) if item is not None else ""
            db.execute(
                "INSERT INTO attachments (digest, kind, label, path, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(digest) DO UPDATE SET path = excluded.path WHERE attachments.path = ''",
                (digest, kind, item.label if item is not None else "", path, now),
            )
            db.execute(
                "INSERT INTO message_attachments (message_id, position, digest) VALUES (?, ?, ?)",
                (message_id, position, digest),
            )

    def truncate(self, conversation_id: str, length: int) -> None:
        self.replace_messages(conversation_id, length, [])

    def rename(self, conversation_id: str, title: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title.strip(), conversation_id))

    def delete(self, conversation_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # -- reads --------------------------------------------------------------------------------------

    def list_conversations(self, query: str = "") -> list[ConversationSummary]:
        """Newest first; ``query`` matches the title or any message text, case-insensitively."""
        sql = (
            "SELECT c.id, c.title, c.updated_at, "
            "(SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) FROM conversations c"
        )
        params: tuple[str, ...] = ()
        if query.strip():
            pattern = "%" + _escape_like(query.strip().casefold()) + "%"
            sql += (
                " WHERE casefold(c.title) LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m "
                "WHERE m.conversation_id = c.id AND casefold(m.text) LIKE ? ESCAPE '\\')"
            )
            params = (pattern, pattern)
        sql += " ORDER BY c.updated_at DESC, c.rowid DESC"
        return [ConversationSummary(*row) for row in self._db.execute(sql, params)]

    def load(self, conversation_id: str) -> Conversation:
        row = self._db.execute("SELECT title FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise KeyError(conversation_id)
        messages = []
        for message_id, role, text, reason in self._db.execute(
            "SELECT id, role, text, finish_reason FROM messages WHERE conversation_id = ? ORDER BY position",
            (conversation_id,),
        ).fetchall():
            media = self._db.execute(
                "SELECT a.digest, a.kind, a.label, a.path FROM message_attachments m "
                "JOIN attachments a ON a.digest = m.digest "
                "WHERE m.message_id = ? ORDER BY m.position",
                (message_id,),
            ).fetchall()
            state: MessageState = "stopped" if reason == "cancelled" else "done"
            inputs = [read_media(path, kind, label, digest) for digest, kind, label, path in media]
            found = tuple(m for m in inputs if m is not None)
            # Media first, then the text, as the composer sends them; only when every file is there.
            parts = (*found, text) if text else found
            messages.append(
                Message(
                    role,
                    text,
                    state=state,
                    finish_reason=reason,
                    attachments=tuple(row[0] for row in media),
                    attachment_kinds=tuple(row[1] for row in media),
                    parts=parts if media and len(found) == len(media) else (),
                )
            )
        return Conversation(conversation_id, row[0], messages)

    def journal_mode(self) -> str:
        return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])


def _is_disk_full(exc: sqlite3.OperationalError | OSError) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in _DISK_FULL_ERRNOS
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_FULL


def _casefold(text: object) -> str:
    return str(text).casefold() if text is not None else ""


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
