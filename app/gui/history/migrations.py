"""Named, ordered schema migrations for the history database, recorded in a ``migrations`` table.

Append new migrations to the end of ``MIGRATIONS`` and never edit or reorder applied ones: the name is
what records that a database already has a change.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]


def m001_conversations_and_messages(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            model TEXT NOT NULL DEFAULT ''
        )"""
    )
    db.execute(
        """CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            text TEXT NOT NULL,
            finish_reason TEXT,
            created_at TEXT NOT NULL,
            UNIQUE (conversation_id, position)
        )"""
    )
    db.execute("CREATE INDEX conversations_by_update ON conversations(updated_at)")


def m002_attachments(db: sqlite3.Connection) -> None:
    """Images and audio by content hash, so a clip sent twice is stored once (used by the media issues)."""
    db.execute(
        """CREATE TABLE attachments (
            digest TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('image', 'audio')),
            label TEXT NOT NULL DEFAULT '',
            path TEXT NOT NULL,
            created_at TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE message_attachments (
            message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            digest TEXT NOT NULL REFERENCES attachments(digest),
            PRIMARY KEY (message_id, position)
        )"""
    )


MIGRATIONS: tuple[tuple[str, Migration], ...] = (
    ("001_conversations_and_messages", m001_conversations_and_messages),
    ("002_attachments", m002_attachments),
)


def migrate(db: sqlite3.Connection, now: str) -> list[str]:
    """Apply the migrations this database lacks, each in its own transaction; return their names."""
    db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    applied = {row[0] for row in db.execute("SELECT name FROM migrations")}
    done = []
    for name, migration in MIGRATIONS:
        if name in applied:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            migration(db)
            db.execute("INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, now))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        done.append(name)
    return done
