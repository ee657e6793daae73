"""What one saved turn costs the GUI thread: HistoryStore.replace_messages with synchronous=FULL vs NORMAL.

    python tools/bench_history_commit.py [FOLDER]     # FOLDER: where the databases go (default: a temp dir)

FULL (what the store uses) fsyncs the WAL at every commit; NORMAL does not.  The figure depends on
the disk, and on what else is using it, so report it with the load average (``uptime``).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from app.gui.conversation import Message
from app.gui.history.store import HistoryStore

TURNS = 200


def measure(folder: Path, mode: str) -> list[float]:
    store = HistoryStore(Path(tempfile.mkdtemp(dir=folder)) / "history.sqlite3")
    store._db.execute(f"PRAGMA synchronous={mode}")  # the store sets FULL; override for the comparison
    cid = store.create_conversation("benchmark")
    seconds = []
    for index in range(TURNS):
        turn = Message("assistant" if index % 2 else "user", "word " * 300)
        started = time.perf_counter()
        store.replace_messages(cid, index, [turn])
        seconds.append(time.perf_counter() - started)
    store.close()
    return seconds


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.gettempdir())
    for mode in ("FULL", "NORMAL"):
        seconds = sorted(measure(folder, mode))
        median, p90 = statistics.median(seconds) * 1000, seconds[int(0.9 * len(seconds))] * 1000
        print(f"synchronous={mode}: median {median:.2f} ms, p90 {p90:.2f} ms per saved turn ({TURNS} turns)")


if __name__ == "__main__":
    main()
