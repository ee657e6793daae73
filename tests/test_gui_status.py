"""The status panel's RAM per part (text, KV cache, vision, audio), fed by the engine's MemoryUsage event."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import gui_support
import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QCoreApplication, QEvent
from pytestqt.qtbot import QtBot

from app.gui import i18n
from app.gui.widgets.status_panel import StatusPanel, compact_bytes, human_bytes
from model_io.events import MemoryUsage, ModelInfoSummary, ResponseStats

MIB = 1 << 20
USAGE = MemoryUsage(
    request_id=0,
    parts=(("text", 900 * MIB), ("kv cache", 96 * MIB), ("vision", 310 * MIB), ("audio", 0)),
    process_rss_bytes=1700 * MIB,
    mapped_bytes=1600 * MIB,
)
SUMMARY = ModelInfoSummary(Path("m.gguf"), "gemma3n", 2048, 32768, 1, 0, False)


@pytest.fixture
def gui(qtbot: QtBot) -> Iterator[gui_support.GuiHarness]:
    harness = gui_support.GuiHarness(qtbot)
    yield harness
    harness.close_all()


def test_parts_are_listed_with_their_ram_and_details_in_the_tooltip(qtbot: QtBot) -> None:
    panel = StatusPanel()
    qtbot.addWidget(panel)
    panel.show_memory(USAGE)
    assert panel.parts_label.text() == ""  # nothing to say while no model is loaded or loading
    panel.show_model("Gemma", SUMMARY)
    assert panel.parts_label.text() == "RAM: text 900 MiB · KV 96 MiB · vision 310 MiB"
    tooltip = panel.parts_label.toolTip().splitlines()
    assert tooltip[:4] == [
        "Text model weights: 900.0 MiB",
        "KV cache (the conversation's context): 96.0 MiB",
        "Vision tower: 310.0 MiB",
        "Audio tower: 0 B",
    ]
    assert f"Whole process: {human_bytes(1700 * MIB)}" in tooltip
    assert "Mapped from the model file, loaded only as needed: 1.6 GiB" in tooltip
    assert panel.parts_label.accessibleName() == "Memory held by each part of the model"
    panel.show_stats(ResponseStats(40, 12, 80.0, 95.0, 8, 100.0, 80.0, 1800 * MIB))
    assert panel.stats_label.text() == "first token 95 ms · 80.0 tok/s"
    assert panel.stats_label.toolTip() == "12 of 40 prompt tokens prefilled; the rest came from the KV cache"
    assert not panel.memory_label.text()  # the peak moved into the tooltip of RAM per part
    assert "Peak during the last answer: 1.8 GiB" in panel.parts_label.toolTip().splitlines()
    panel.show_memory(MemoryUsage(1, (("text", 900 * MIB), ("kv cache", 96 * MIB)), 1000 * MIB))
    assert panel.parts_label.text() == "RAM: text 900 MiB · KV 96 MiB"  # towers released
    panel.clear_model()
    assert panel.parts_label.text() == "" and not panel.parts_label.isVisibleTo(panel)


def test_parts_in_spanish(qtbot: QtBot) -> None:
    panel = StatusPanel()
    qtbot.addWidget(panel)
    panel.show_model("Gemma", SUMMARY)
    panel.show_memory(USAGE)
    i18n.apply_language("es")
    try:
        QCoreApplication.sendEvent(panel, QEvent(QEvent.Type.LanguageChange))
        assert panel.parts_label.text() == "RAM: texto 900 MiB · KV 96 MiB · visión 310 MiB"
    finally:
        i18n.apply_language("en")


def test_memory_event_from_the_engine_thread_reaches_the_window(
    gui: gui_support.GuiHarness, tiny_model: Path
) -> None:
    """Whatever request caused it (here the engine's own idle release, id 0), it is never dropped."""
    window = gui.open(tiny_model)
    sender = threading.Thread(target=window.bridge._sink, args=(USAGE,))  # as the engine's worker calls it
    sender.start()
    sender.join()
    gui.qtbot.waitUntil(lambda: "vision 310 MiB" in window.status_panel.parts_label.text())
    assert window.bridge.dropped_events == 0


def test_real_engine_reports_ram_per_part_on_the_tiny_model(
    gui: gui_support.GuiHarness, tiny_model: Path, tmp_path: Path
) -> None:
    """Text and KV cache after the load; the vision tower once an image has been asked about."""
    from model_io.synth.mmproj import write_mmproj_for

    (tmp_path / tiny_model.name).symlink_to(tiny_model)
    write_mmproj_for("tiny", tmp_path / "gemma-3n-tiny-mmproj.gguf")
    pixels = np.random.default_rng(3).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(tmp_path / "picture.png")
    seen: list[MemoryUsage] = []
    window = gui.open(dialogs=gui_support.FakeDialogs(image_files=[tmp_path / "picture.png"]), max_tokens=4)
    window.bridge.memoryUsage.connect(seen.append)
    window.model.open_model(tmp_path / tiny_model.name)
    gui.wait_ready(window)
    gui.qtbot.waitUntil(lambda: bool(seen), timeout=10_000)
    parts = dict(seen[-1].parts)
    assert parts["text"] > 0 and parts["kv cache"] > 0 and parts["vision"] == parts["audio"] == 0, seen[-1]
    label = window.status_panel.parts_label
    assert label.isVisible() and label.text().startswith("RAM: text ") and " · KV " in label.text()
    assert f"text {compact_bytes(parts['text'])}" in label.text() and "vision" not in label.text()
    assert "Whole process" in label.toolTip()

    window.commands.attach_image.trigger()
    gui.qtbot.waitUntil(lambda: len(window.composer.attachments.items) == 1, timeout=10_000)
    gui.send(window, "What is in the picture?")
    gui.wait_answer(window)
    gui.qtbot.waitUntil(lambda: dict(seen[-1].parts)["vision"] > 0, timeout=10_000)
    vision = dict(seen[-1].parts)["vision"]
    assert f"vision {compact_bytes(vision)}" in label.text()
    gui_support.screenshot(window, "status-ram-per-part")
