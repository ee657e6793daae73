"""History store, migrations, exporters and the conversation model (no Qt needed)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from app.gui.conversation import Conversation, Message
from app.gui.history.export import export_conversation, to_json, to_markdown
from app.gui.history.migrations import MIGRATIONS
from app.gui.history.store import HistoryStore, default_path
from model_io.paths import data_dir
from model_io.prompt import ChatMessage


def turns(*pairs: tuple[str, str]) -> list[Message]:
    return [Message(role, text) for role, text in pairs]  # type: ignore[arg-type]


@pytest.fixture
def store() -> HistoryStore:
    return HistoryStore()


def test_database_lives_in_data_dir_with_wal_and_all_migrations(store: HistoryStore) -> None:
    assert store.path == default_path() == data_dir() / "history.sqlite3"
    assert store.journal_mode() == "wal"
    assert store.applied_migrations == [name for name, _ in MIGRATIONS]
    with sqlite3.connect(store.path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"migrations", "conversations", "messages", "attachments", "message_attachments"} <= tables


def test_reopening_applies_nothing_twice(store: HistoryStore) -> None:
    store.close()
    again = HistoryStore()
    assert again.applied_migrations == []
    with sqlite3.connect(again.path) as db:
        assert db.execute("SELECT COUNT(*) FROM migrations").fetchone()[0] == len(MIGRATIONS)


def test_round_trip_and_newest_first(store: HistoryStore) -> None:
    first = store.create_conversation("First")
    second = store.create_conversation("Second")
    store.replace_messages(first, 0, turns(("user", "hi"), ("assistant", "hello")))
    assert [s.conversation_id for s in store.list_conversations()] == [first, second]
    loaded = store.load(first)
    assert loaded.title == "First" and [m.text for m in loaded.messages] == ["hi", "hello"]
    assert store.list_conversations()[0].message_count == 2


def test_replace_messages_truncates_the_tail_atomically(store: HistoryStore) -> None:
    cid = store.create_conversation("Edit me")
    store.replace_messages(
        cid, 0, turns(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d"))
    )
    store.replace_messages(cid, 2, turns(("user", "c2")))
    assert [m.text for m in store.load(cid).messages] == ["a", "b", "c2"]
    with pytest.raises(sqlite3.IntegrityError):  # CHECK(role) fails mid-transaction: nothing changes
        store.replace_messages(cid, 1, [Message("assistant", "ok"), Message("robot", "bad")])  # type: ignore[arg-type]
    assert [m.text for m in store.load(cid).messages] == ["a", "b", "c2"]


def test_search_matches_titles_and_text_case_insensitively(store: HistoryStore) -> None:
    cid = store.create_conversation("Été à Paris")
    store.replace_messages(cid, 0, turns(("user", "Where is the 50% discount_code?")))
    other = store.create_conversation("Unrelated")
    assert [s.conversation_id for s in store.list_conversations("été")] == [cid]
    assert [s.conversation_id for s in store.list_conversations("50%")] == [cid]
    assert [s.conversation_id for s in store.list_conversations("DISCOUNT_")] == [cid]
    assert store.list_conversations("5_%") == []  # wildcards are literal
    assert {s.conversation_id for s in store.list_conversations("")} == {cid, other}


def test_rename_and_delete_cascade(store: HistoryStore) -> None:
    cid = store.create_conversation("Old")
    store.replace_messages(cid, 0, turns(("user", "x")))
    store.rename(cid, "  New name ")
    assert store.load(cid).title == "New name"
    store.delete(cid)
    assert store.list_conversations() == []
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    with pytest.raises(KeyError):
        store.load(cid)


def test_stopped_answers_come_back_as_stopped(store: HistoryStore) -> None:
    cid = store.create_conversation("Stop")
    store.replace_messages(
        cid, 0, [Message("user", "q"), Message("assistant", "part", finish_reason="cancelled")]
    )
    assert store.load(cid).messages[1].state == "stopped"


def sample() -> Conversation:
    messages = [
        Message("user", "Show code"),
        Message("assistant", "```python\nprint('hi')\n```", finish_reason="stop"),
        Message("user", "More"),
        Message("assistant", "Partial", finish_reason="cancelled"),
    ]
    return Conversation("abc", "Código y más", messages)


def test_markdown_export_keeps_code_and_marks_stopped_answers() -> None:
    text = to_markdown(sample())
    assert text.startswith("# Código y más\n")
    assert "## You\n\nShow code" in text and "```python\nprint('hi')\n```" in text
    assert "## Gemma (stopped)\n\nPartial" in text


def test_json_export_is_versioned_and_complete() -> None:
    data = json.loads(to_json(sample()))
    assert data["format"] == "gemma-desk-conversation" and data["version"] == 1
    assert data["title"] == "Código y más" and len(data["messages"]) == 4
    assert data["messages"][3] == {
        "role": "assistant",
        "text": "Partial",
        "finish_reason": "cancelled",
        "attachments": [],
    }


def test_export_writes_by_suffix(tmp_path: Path) -> None:
    md = export_conversation(sample(), tmp_path / "out" / "c.md")
    js = export_conversation(sample(), tmp_path / "out" / "c.json")
    assert md.read_text(encoding="utf-8").startswith("# Código")
    assert json.loads(js.read_text(encoding="utf-8"))["id"] == "abc"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["c.json", "c.md"]  # no temp files left


def test_prompt_skips_failed_answers_and_merges_unanswered_turns() -> None:
    conversation = Conversation(
        messages=[
            Message("user", "first"),
            Message("assistant", "boom", state="error"),
            Message("user", "second"),
        ]
    )
    assert conversation.prompt() == (ChatMessage("user", "first\n\nsecond"),)
    conversation.messages.append(Message("assistant", "", state="streaming"))
    assert conversation.prompt() == (ChatMessage("user", "first\n\nsecond"),)


def test_suggested_title_is_first_user_line_shortened() -> None:
    long_line = "word " * 40
    assert Conversation(messages=[Message("user", "Hi\nsecond line")]).suggested_title() == "Hi"
    title = Conversation(messages=[Message("user", long_line)]).suggested_title()
    assert len(title) <= 60 and title.endswith("…")
