"""A full disk during a download, a synthetic model build and a history write: a clear error, and
never a half-written file that later loads as a model.

Each test runs on a real 2 MiB tmpfs mounted for it (``mount -t tmpfs -o size=2m``, needs root on
Linux) and fills it with a second file at the worst moment, so the kernel itself answers ENOSPC.
Where mounting is impossible the same tests run against a simulated disk: the write path under test
raises ENOSPC after a byte budget (download: ``_write_all``; GGUF writer: its ``open``; SQLite:
``PRAGMA max_page_count``); ``GEMMA_DESK_SIMULATE_FULL_DISK=1`` selects that mode anywhere.  Each
test prints which disk it used.
"""

from __future__ import annotations

import errno
import io
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf.gguf_writer
import gui_support
import numpy as np
import pytest
from conftest import TEST_CACHE
from fake_hub import FakeHub, isolate_from_the_real_hub
from pytestqt.qtbot import QtBot

from app.gui.conversation import Message
from app.gui.history.store import HistoryStore
from model_io import download
from model_io.catalog import FileSource
from model_io.discovery import SearchRoots, scan
from model_io.errors import DiskFullError, ModelFileError
from model_io.gguf_check import validate_gguf
from model_io.media import MediaInput
from model_io.synth import writer
from model_io.synth.mmproj import write_mmproj_for
from model_io.synth.writer import write_text_model

REPO = Path(__file__).resolve().parents[1]
DISK_SIZE = 2 << 20
SIMULATE_ENV = "GEMMA_DESK_SIMULATE_FULL_DISK"  # set to run the fallback even where mounting works
CHUNK = 64 << 10


@dataclass
class SmallDisk:
    """A 2 MiB file system (``mounted``) or a plain folder whose writes the test makes fail."""

    path: Path
    mounted: bool

    @property
    def kind(self) -> str:
        return "2 MiB tmpfs" if self.mounted else "simulated (ENOSPC injected)"

    def fill(self, leave: int = 0) -> Path:
        """Write a filler file until the disk is full, then give back about ``leave`` bytes."""
        filler = self.path / "filler.bin"
        with filler.open("ab", buffering=0) as handle:  # unbuffered: closing has nothing left to flush
            try:
                while True:
                    handle.write(bytes(CHUNK))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        if leave:
            os.truncate(filler, max(0, filler.stat().st_size - leave))
        return filler


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    folder = tmp_path / "disk"
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(folder)]
    try:
        mounted = (
            sys.platform == "linux"
            and not os.environ.get(SIMULATE_ENV)
            and subprocess.run(mount, capture_output=True, timeout=30).returncode == 0
        )
    except (OSError, subprocess.SubprocessError):
        mounted = False
    disk = SmallDisk(folder, mounted)
    print(f"disk: {disk.kind}")
    try:
        yield disk
    finally:
        if mounted:
            subprocess.run(["umount", "--lazy", str(folder)], capture_output=True, timeout=30)


class _FillingFile(io.FileIO):
    """Stands in for a disk with ``budget`` bytes left (simulated mode only)."""

    budget = 0

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > self.budget:
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        return super().write(data)


def _simulate_full_writes(monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    _FillingFile.budget = budget
    monkeypatch.setattr(
        gguf.gguf_writer,
        "open",
        lambda name, mode="r": _FillingFile(name, mode.replace("b", "")),
        raising=False,
    )


def _no_model_left(folder: Path) -> None:
    """Nothing in ``folder`` passes validation, and discovery lists no model there."""
    for path in folder.iterdir():
        if path.is_file() and path.name != "filler.bin":
            with pytest.raises(ModelFileError):
                validate_gguf(path)
    assert scan(SearchRoots(folders=(folder,))) == []  # model discovery does not even consider them


# -- downloads --------------------------------------------------------------------------------------


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    isolate_from_the_real_hub(monkeypatch, tmp_path)
    with FakeHub(lifetime=120) as fake:
        yield fake


def test_download_larger_than_the_disk_is_refused_before_any_transfer(
    small_disk: SmallDisk, hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo("someone/big", {"big.gguf": os.urandom(3 << 20)})
    if not small_disk.mounted:
        monkeypatch.setattr(download, "free_disk_bytes", lambda path: DISK_SIZE)
    with pytest.raises(
        download.DiskSpaceError, match=r"not enough free disk space .* big\.gguf needs 3,145,728"
    ):
        download.download_model(
            FileSource("someone/big", "big.gguf"), dest_dir=small_disk.path, endpoint=hub.url
        )
    assert [p.name for p in small_disk.path.iterdir()] == [".big.gguf.lock"]  # no partial, no receipt
    assert [r.server for r in hub.requests if r.method == "GET"] == []


def test_disk_filling_up_during_a_download_keeps_only_a_resumable_partial(
    small_disk: SmallDisk, hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(1_500_000)
    hub.add_repo("someone/tiny", {"tiny.gguf": data})
    hub.faults.throttle_bps = 3_000_000  # half a second: progress is reported while bytes still arrive
    source = FileSource("someone/tiny", "tiny.gguf")
    monkeypatch.setattr(download, "DISK_RESERVE", 0)  # the 64 MiB reserve would refuse a 2 MiB disk outright
    filler: list[Path] = []

    def another_program_fills_the_disk(progress: download.DownloadProgress) -> None:
        if progress.phase == "downloading" and progress.done > 200_000 and not filler:
            filler.append(small_disk.fill(leave=0) if small_disk.mounted else small_disk.path)

    if not small_disk.mounted:
        real_write = download._write_all
        written = [0]

        def filling_write(handle: Any, chunk: bytes) -> None:
            if filler and written[0] > 400_000:
                raise OSError(errno.ENOSPC, "No space left on device (simulated)")
            written[0] += len(chunk)
            real_write(handle, chunk)

        monkeypatch.setattr(download, "_write_all", filling_write)
    with pytest.raises(download.DiskSpaceError, match=r"disk filled up .* saved in this \.partial file"):
        download.download_model(
            source, dest_dir=small_disk.path, endpoint=hub.url, progress=another_program_fills_the_disk
        )
    target = small_disk.path / "tiny.gguf"
    partial = download.partial_path(target)
    assert not target.exists() and 0 < partial.stat().st_size < len(data)
    _no_model_left(small_disk.path)

    if small_disk.mounted:
        filler[0].unlink()  # space is freed; the next download resumes from the partial file
    else:
        monkeypatch.setattr(download, "_write_all", real_write)
    kept = partial.stat().st_size
    result = download.download_model(source, dest_dir=small_disk.path, endpoint=hub.url)
    assert result.resumed_from == kept and target.read_bytes() == data and not partial.exists()


def test_disk_full_just_as_a_download_completes_still_delivers_the_verified_file(
    small_disk: SmallDisk, hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last bytes fit but the final bookkeeping (the receipt) does not: the model is complete and
    verified, so the download succeeds; the next request re-hashes the file instead of trusting a receipt."""
    data = os.urandom(1_000_000)
    hub.add_repo("someone/tiny", {"tiny.gguf": data})
    source = FileSource("someone/tiny", "tiny.gguf")
    monkeypatch.setattr(download, "DISK_RESERVE", 0)
    real_replace = os.replace

    def fill_before_the_receipt(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        if str(dst).endswith("tiny.gguf"):  # the model is in place; now the disk is full
            if small_disk.mounted:
                small_disk.fill()
            else:
                monkeypatch.setattr(download.Path, "write_text", _raise_enospc)

    monkeypatch.setattr(download.os, "replace", fill_before_the_receipt)
    result = download.download_model(source, dest_dir=small_disk.path, endpoint=hub.url)
    assert result.path.read_bytes() == data
    assert not list(small_disk.path.glob("*.tmp")) and not list(small_disk.path.glob(".*.tmp"))
    receipt = download.read_receipt(result.path)
    assert receipt is not None and not receipt.complete  # the update did not fit; the bytes are verified
    monkeypatch.undo()
    again = download.download_model(source, dest_dir=small_disk.path, endpoint=hub.url)
    assert again.already_present and again.transferred == 0


def _raise_enospc(*_args: Any, **_kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device (simulated)")


# -- synthetic models --------------------------------------------------------------------------------


def test_synthetic_model_larger_than_the_disk_is_refused_before_writing(
    small_disk: SmallDisk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 76 MB tiny model on a 2 MiB disk: the CLI says so in one line (exit 3) and writes nothing."""
    target = small_disk.path / "gemma-3n-synthetic-tiny.gguf"
    expected = f"not enough free disk space for {target}: it needs 76,143,104 bytes, {DISK_SIZE:,} are free"
    if small_disk.mounted:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "app",
                "models",
                "synth",
                "--preset",
                "tiny",
                "--out",
                str(small_disk.path),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "GEMMA_DESK_HOME": str(TEST_CACHE)},  # the cached tokenizer; output: --out
            timeout=120,
            cwd=REPO,
        )
        assert done.returncode == 3, done.stderr
        assert done.stderr.strip().splitlines() == [f"gemma-desk: error: {expected}"]
    else:  # a child process cannot be given a simulated disk: the same check, in this process
        monkeypatch.setattr(
            writer.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(DISK_SIZE, 0, DISK_SIZE)
        )
        with pytest.raises(DiskFullError, match=re.escape(expected)):
            write_text_model("tiny", target, vocab_cache=TEST_CACHE / "cache" / "tokenizer")
    assert list(small_disk.path.iterdir()) == []


def test_disk_filling_up_during_a_synthetic_write_leaves_nothing(
    small_disk: SmallDisk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ~1 MB projector: space checked up front, then another program fills the disk mid-write."""
    target = small_disk.path / "gemma-3n-tiny-mmproj.gguf"
    filled: list[Path] = []

    def another_program_fills_the_disk(done: int, total: int) -> None:
        if small_disk.mounted and done > total // 4 and not filled:
            filled.append(small_disk.fill())

    if not small_disk.mounted:
        _simulate_full_writes(monkeypatch, budget=300_000)
    with pytest.raises(
        DiskFullError, match=r"the disk filled up while writing .*mmproj\.gguf.*nothing was kept"
    ):
        write_mmproj_for("tiny", target, progress=another_program_fills_the_disk)
    assert sorted(p.name for p in small_disk.path.iterdir()) == (["filler.bin"] if small_disk.mounted else [])
    if filled:
        filled[0].unlink()
    else:
        monkeypatch.undo()
    validate_gguf(write_mmproj_for("tiny", target), expect="mmproj")  # with space again, it just works


# -- history -------------------------------------------------------------------------------------------


def test_history_on_a_full_disk_reports_it_and_loses_nothing_saved(small_disk: SmallDisk) -> None:
    store = HistoryStore(small_disk.path / "history.sqlite3")
    cid = store.create_conversation("Before the disk filled")
    saved = [Message("user", "hello"), Message("assistant", "hi there", finish_reason="stop")]
    store.replace_messages(cid, 0, saved)
    if small_disk.mounted:
        filler = small_disk.fill()
    else:
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages}")
    picture = MediaInput("image", np.random.default_rng(1).integers(0, 255, (300, 300, 3), np.uint8))
    turn = Message.with_media("user", "a long question " * 4000, (picture, "a long question"))
    with pytest.raises(DiskFullError, match=r"cannot save the conversation: the disk holding .* is full"):
        store.replace_messages(cid, 2, [turn])
    assert [m.text for m in store.load(cid).messages] == ["hello", "hi there"]
    assert not [p for p in small_disk.path.rglob("*.partial")]

    if small_disk.mounted:
        filler.unlink()
    else:
        store._db.execute("PRAGMA max_page_count = 1073741823")
    store.replace_messages(cid, 2, [turn])  # the failed transaction left nothing open
    store.close()
    with sqlite3.connect(small_disk.path / "history.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    reopened = HistoryStore(small_disk.path / "history.sqlite3").load(cid)
    assert [m.text for m in reopened.messages] == ["hello", "hi there", turn.text]
    assert reopened.messages[2].parts[0] == picture


# -- the window ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_full_disk_in_the_window_is_shown_and_the_chat_goes_on(
    small_disk: SmallDisk, tiny_model: Path, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """History on the small disk: once it is full, the answer still arrives, the notice says why it
    was not saved, and the window is ready for the next question (it used to stay busy forever)."""
    monkeypatch.setenv("GEMMA_DESK_HOME", str(small_disk.path / "home"))
    harness = gui_support.GuiHarness(qtbot)
    try:
        window = harness.open(tiny_model, max_tokens=4)
        harness.send(window, "First question")
        harness.wait_answer(window)
        cid = window.chat.conversation.conversation_id
        assert cid is not None and len(window.store.load(cid).messages) == 2
        if small_disk.mounted:
            small_disk.fill()
        else:
            pages = window.store._db.execute("PRAGMA page_count").fetchone()[0]
            window.store._db.execute(f"PRAGMA max_page_count = {pages}")
        harness.send(window, "A second, long question " * 400)
        harness.wait_answer(window)
        assert "cannot save the conversation: the disk holding" in window.notice.text()
        assert window.chat.conversation.messages[-1].state == "done" and not window.chat.busy
        assert window.composer.send_button.isEnabled()
        assert len(window.store.load(cid).messages) == 2  # what was saved before is intact

        if small_disk.mounted:  # space again: the next answer saves the turns that did not fit too
            (small_disk.path / "filler.bin").unlink()
        else:
            window.store._db.execute("PRAGMA max_page_count = 1073741823")
        harness.send(window, "Third question")
        harness.wait_answer(window)
        stored = [m.text for m in window.store.load(cid).messages]
        assert stored == [m.text for m in window.chat.conversation.messages] and len(stored) == 6
    finally:
        harness.close_all()
