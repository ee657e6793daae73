"""Durable history: SIGKILL a process saving turns 100 times and find every committed turn intact.

``history_driver.py`` saves turns through the real :class:`HistoryStore` the way the chat controller
does and journals each store call (``intent`` before, ``done`` after, fsync'ed).  After every kill
the database must pass ``PRAGMA integrity_check`` and ``foreign_key_check`` and hold exactly what the
journal says was committed, plus at most the one call that was in flight, applied whole or not at
all.  Every fourth of the run starts a fresh database and kills within milliseconds, while the
store is still creating its schema.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest

from app.gui.history.migrations import MIGRATIONS
from app.gui.history.store import HistoryStore
from model_io.media import MediaInput

REPO = Path(__file__).resolve().parents[1]
KILLS = 100
FRESH_DATABASE_EVERY = 25
Turn = tuple[str, str, str | None, tuple[str, ...]]  # role, sha256 of the text, finish reason, media digests
State = dict[str, dict[str, Any]]  # conversation id -> {"title": str, "turns": list[Turn]}


class Zygote:
    """The driver's fork server (see history_driver.py)."""

    def __init__(self, stderr: IO[bytes]) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "history_driver.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
        )

    def ask(self, line: str) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


def turn_of(record: dict[str, Any]) -> Turn:
    return record["role"], record["sha"], record["finish_reason"], tuple(record["digests"])


def apply(state: State, record: dict[str, Any], new_id: str | None) -> State:
    """The store call ``record`` applied to ``state`` (``new_id``: the id a create returned)."""
    after = copy.deepcopy(state)
    op = record["op"]
    if op == "create":
        assert new_id is not None
        after[new_id] = {"title": record["title"], "turns": []}
    elif op == "replace":
        turns = after[record["cid"]]["turns"]
        after[record["cid"]]["turns"] = turns[: record["start"]] + [turn_of(m) for m in record["messages"]]
    elif op == "rename":
        after[record["cid"]]["title"] = record["title"].strip()
    elif op == "delete":
        after.pop(record["cid"], None)
    return after


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Journal records; a line torn by the kill (the last one) counts as never written."""
    if not path.exists():
        return []
    records = []
    for line in path.read_bytes().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            assert line is path.read_bytes().splitlines()[-1], "only the last journal line can be torn"
    return records


def database_state(db: sqlite3.Connection) -> State:
    state: State = {
        cid: {"title": title, "turns": []} for cid, title in db.execute("SELECT id, title FROM conversations")
    }
    media: dict[int, list[str]] = {}
    for message_id, digest in db.execute(
        "SELECT message_id, digest FROM message_attachments ORDER BY message_id, position"
    ):
        media.setdefault(message_id, []).append(digest)
    rows = db.execute(
        "SELECT id, conversation_id, position, role, text, finish_reason FROM messages "
        "ORDER BY conversation_id, position"
    )
    for message_id, cid, position, role, text, reason in rows:
        turns = state[cid]["turns"]
        assert position == len(turns), f"conversation {cid} has a gap before position {position}"
        assert _self_consistent(text), f"turn {position} of {cid} holds a torn text"
        sha = hashlib.sha256(text.encode()).hexdigest()
        turns.append((role, sha, reason, tuple(media.get(message_id, ()))))
    return state


def _self_consistent(text: str) -> bool:
    body, _, checksum = text.rpartition("\n#")
    return hashlib.sha256(body.encode()).hexdigest()[:16] == checksum


@dataclass
class Checker:
    """The expected database, advanced by each killed driver's journal."""

    state: State = field(default_factory=dict)
    verified_files: set[Path] = field(default_factory=set)
    in_flight_kills: int = 0
    committed_calls: int = 0

    def new_database(self) -> None:
        self.state, self.verified_files = {}, set()

    def check(self, db_path: Path, journal: Path) -> None:
        records = read_journal(journal)
        pending = None
        for record in records:
            if record["phase"] == "intent":
                pending = record
            else:
                self.state = apply(self.state, record, record["result"])
                self.committed_calls += 1
                pending = None
        self.in_flight_kills += pending is not None
        _check_integrity(db_path)
        store = HistoryStore(db_path)  # recovers the WAL and finishes any interrupted migration
        try:
            assert store.journal_mode() == "wal"
            with sqlite3.connect(db_path) as db:
                actual = database_state(db)
                self._match(actual, pending)
                self._check_media(db)
            for cid in _touched(records):
                if cid in self.state:
                    _check_loads(store, cid, self.state[cid])
        finally:
            store.close()

    def _match(self, actual: State, pending: dict[str, Any] | None) -> None:
        """Actual == committed, or committed plus the in-flight call applied as a whole."""
        if actual == self.state:
            return
        assert pending is not None, f"committed turns lost or changed: {_diff(self.state, actual)}"
        new_ids = [cid for cid in actual if cid not in self.state]
        new_id = new_ids[0] if pending["op"] == "create" and len(new_ids) == 1 else None
        if pending["op"] == "create" and new_id is None:
            raise AssertionError(f"in-flight create left {new_ids}: {_diff(self.state, actual)}")
        after = apply(self.state, pending, new_id)
        assert actual == after, f"in-flight {pending['op']} applied partially: {_diff(after, actual)}"
        self.state = after

    def _check_media(self, db: sqlite3.Connection) -> None:
        """Every attachment a turn references is on disk, complete, with the digest it is filed under."""
        for digest, kind, path in db.execute(
            "SELECT DISTINCT a.digest, a.kind, a.path FROM attachments a "
            "JOIN message_attachments m ON m.digest = a.digest"
        ):
            file = Path(path)
            if file in self.verified_files:
                continue
            assert file.is_file(), f"attachment {digest} points to a missing file {path}"
            assert MediaInput(kind, np.load(file, allow_pickle=False)).digest == digest
            self.verified_files.add(file)


def _check_integrity(db_path: Path) -> None:
    if not db_path.exists():
        return  # killed before the store created the file
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []


def _check_loads(store: HistoryStore, cid: str, expected: dict[str, Any]) -> None:
    """The app's own load path gives back each turn, complete, with its images."""
    conversation = store.load(cid)
    assert conversation.title == expected["title"]
    loaded = [
        (m.role, hashlib.sha256(m.text.encode()).hexdigest(), m.finish_reason, m.attachments)
        for m in conversation.messages
    ]
    assert loaded == expected["turns"]
    for message in conversation.messages:
        assert message.state == ("stopped" if message.finish_reason == "cancelled" else "done")
        assert len(message.parts) == (len(message.attachments) + 1 if message.attachments else 0)


def _touched(records: list[dict[str, Any]]) -> set[str]:
    return {r["cid"] for r in records if "cid" in r} | {
        r["result"] for r in records if r["op"] == "create" and r.get("result")
    }


def _diff(expected: State, actual: State) -> str:
    lines = []
    for cid in sorted(set(expected) | set(actual)):
        if expected.get(cid) != actual.get(cid):
            lines.append(f"{cid}: expected {expected.get(cid)!r:.300}, found {actual.get(cid)!r:.300}")
    return "; ".join(lines) or "no difference"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the driver's fork server and SIGKILL are POSIX")
def test_sigkill_at_random_moments_never_loses_a_committed_turn(tmp_path: Path) -> None:
    rng = random.Random(20240609)
    stderr_path = tmp_path / "driver-stderr.txt"
    checker = Checker()
    started = time.monotonic()
    with stderr_path.open("wb") as stderr:
        zygote = Zygote(stderr)
        try:
            for kill in range(KILLS):
                fresh = kill % FRESH_DATABASE_EVERY == 0
                if fresh:
                    db_path = tmp_path / f"db{kill}" / "history.sqlite3"
                    checker.new_database()
                journal = tmp_path / f"journal{kill}.jsonl"
                pid = zygote.ask(f"run {db_path} {journal} {kill}")
                time.sleep(rng.uniform(0, 0.01) if fresh else rng.uniform(0.0, 0.3))
                os.kill(pid, signal.SIGKILL)
                status = zygote.ask(f"reap {pid}")
                assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
                    f"driver {kill} ended on its own (status {status}): {stderr_path.read_text()[-2000:]}"
                )
                checker.check(db_path, journal)
        finally:
            zygote.close()
    print(
        f"{KILLS} kills in {time.monotonic() - started:.1f} s: {checker.committed_calls} committed store "
        f"calls, {checker.in_flight_kills} kills landed inside a store call"
    )
    assert checker.committed_calls > 3 * KILLS
    assert checker.in_flight_kills >= 3, "the kills never landed inside a store call; the test proves little"
    with sqlite3.connect(db_path) as db:
        applied = [row[0] for row in db.execute("SELECT name FROM migrations ORDER BY name")]
    assert applied == [name for name, _ in MIGRATIONS]
