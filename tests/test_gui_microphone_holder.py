"""The push-to-talk microphone opens off the GUI thread; a press while it opens still records."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import gui_support  # noqa: F401  (sets up the offscreen Qt platform before Qt is imported)
import numpy as np
import pytest
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from app.gui.controllers import microphone_holder
from app.gui.controllers.microphone_holder import MicrophoneHolder
from model_io.capture import Microphone
from model_io.capture_fakes import FakeAudioBackend
from model_io.errors import InputError

TONE = (0.3 * np.sin(np.arange(16_000) * 2 * np.pi * 300 / 16_000)).astype(np.float32)


class SlowDevices:
    """A microphone factory that takes ``delay`` seconds, as a busy sound server does."""

    def __init__(self, delay: float, missing: bool = False):
        self.delay, self.missing = delay, missing
        self.opened: list[Microphone] = []
        self.threads: list[str] = []

    def __call__(self, device: str) -> Microphone:
        self.threads.append(threading.current_thread().name)
        time.sleep(self.delay)
        if self.missing:
            raise InputError("No microphone found")
        microphone = Microphone(device or None, backend=FakeAudioBackend(source=TONE, loop=True))
        self.opened.append(microphone)
        return microphone


MakeHolder = Callable[[SlowDevices], MicrophoneHolder]


@pytest.fixture
def make_holder(qtbot: QtBot) -> Iterator[MakeHolder]:
    """Holders parented to a widget qtbot owns, so Qt deletes them after pending events, not Python."""
    owner = QWidget()
    qtbot.addWidget(owner)
    holders: list[MicrophoneHolder] = []

    def make(devices: SlowDevices) -> MicrophoneHolder:
        holders.append(MicrophoneHolder(devices, owner))
        return holders[-1]

    yield make
    for holder in holders:
        holder.close()


def test_opening_never_blocks_the_gui_thread(qtbot: QtBot, make_holder: MakeHolder) -> None:
    devices = SlowDevices(0.4)
    holder = make_holder(devices)
    started = time.monotonic()
    with qtbot.waitSignal(holder.ready, timeout=5_000) as ready:
        holder.want("")
        assert time.monotonic() - started < 0.1 and holder.opening and holder.current is None
    assert ready.args[0] is holder.current and holder.current.is_running
    assert devices.threads == ["gemma-desk-background"]
    holder.want("")  # already open: nothing more
    assert len(devices.opened) == 1
    holder.close()
    assert not devices.opened[0].is_running


def test_a_device_nobody_wants_any_more_is_closed_when_it_lands(
    qtbot: QtBot, make_holder: MakeHolder
) -> None:
    devices = SlowDevices(0.3)
    holder = make_holder(devices)
    holder.want("")
    holder.close()  # e.g. the window closed while the device was opening
    qtbot.waitUntil(lambda: len(devices.opened) == 1 and not holder.opening, timeout=5_000)
    qtbot.waitUntil(lambda: not devices.opened[0].is_running, timeout=2_000)
    assert holder.current is None


def test_failures_arrive_as_messages(qtbot: QtBot, make_holder: MakeHolder) -> None:
    holder = make_holder(SlowDevices(0.05, missing=True))
    with qtbot.waitSignal(holder.failed, timeout=5_000) as failed:
        holder.want("")
    assert failed.args == ["No microphone found"] and holder.current is None and not holder.opening


def test_release_later_keeps_it_for_a_moment(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch, make_holder
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(microphone_holder, "RELEASE_GRACE_MS", 200)
    devices = SlowDevices(0.0)
    holder = make_holder(devices)
    with qtbot.waitSignal(holder.ready, timeout=5_000):
        holder.want("")
    holder.release_later()
    holder.want("")  # back in time: kept
    qtbot.wait(300)
    assert holder.current is not None
    holder.release_later()
    qtbot.waitUntil(lambda: holder.current is None, timeout=2_000)
    assert not devices.opened[0].is_running
