"""Typed settings: QSettings round trip, the settings dialog, and live application (reload, language)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import gui_support
import pytest
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QLineEdit
from pytestqt.qtbot import QtBot

from app.gui import i18n
from app.gui.dialogs.settings_dialog import SettingsDialog
from app.gui.settings import (
    AUTO_GPU_LAYERS,
    AppSettings,
    GuiSettings,
    Key,
    gui_default_threads,
    settings_path,
)
from model_io.settings import AUTO_CONTEXT, SamplingSettings


@pytest.fixture
def gui(qtbot: QtBot) -> Iterator[gui_support.GuiHarness]:
    harness = gui_support.GuiHarness(qtbot)
    yield harness
    harness.close_all()
    i18n.apply_language("en")


CUSTOM = GuiSettings(
    model_path="/models/gemma.gguf",
    threads=3,
    context=4096,
    gpu_layers=-1,
    temperature=0.7,
    top_k=40,
    top_p=0.9,
    seed=42,
    max_tokens=256,
    ui_language="es",
)


def test_round_trip_through_the_ini_file_under_gemma_desk_home(isolated_home: Path) -> None:
    AppSettings().save(CUSTOM)
    assert settings_path() == isolated_home / "config" / "settings.ini"
    assert AppSettings().load() == CUSTOM
    text = settings_path().read_text()
    assert "[model]" in text and "context=4096" in text and "[sampling]" in text
    assert {key.value.split("/")[0] for key in Key} == {"model", "sampling", "ui", "media"}


def test_missing_or_broken_values_fall_back_to_defaults_one_by_one() -> None:
    assert AppSettings().load() == GuiSettings()
    settings_path().write_text("[model]\npath=/m.gguf\ncontext=lots\n[sampling]\ntop_p=7\ntop_k=5\n")
    assert AppSettings().load() == GuiSettings(model_path="/m.gguf", top_k=5)


def test_snapshot_maps_to_model_io_settings() -> None:
    load = CUSTOM.load_settings()
    assert (load.n_ctx, load.n_threads, load.n_gpu_layers) == (4096, 3, -1)
    assert CUSTOM.sampling() == SamplingSettings(temperature=0.7, top_k=40, top_p=0.9, seed=42)
    assert GuiSettings(seed=-1).sampling().seed is None
    assert GuiSettings().load_settings().n_threads == gui_default_threads()


def test_context_and_gpu_layers_are_left_to_the_memory_plan_by_default(qtbot: QtBot) -> None:
    load = GuiSettings().load_settings()
    assert (load.n_ctx, load.n_gpu_layers) == (AUTO_CONTEXT, None)  # the engine fills both in from the plan
    dialog = SettingsDialog(GuiSettings())
    qtbot.addWidget(dialog)
    assert dialog.context.text() == "automatic" and dialog.gpu_layers.text() == "automatic"
    dialog.gpu_layers.stepBy(1)
    assert dialog.gpu_layers.text() == "all" and dialog.value().gpu_layers == -1
    dialog.gpu_layers.stepBy(3)
    assert dialog.value().gpu_layers == 2 and dialog.value().load_settings().n_gpu_layers == 2
    dialog.context.stepBy(1)
    assert dialog.value().context == 512
    for typed, expected in (("automatic", AUTO_GPU_LAYERS), ("all", -1), ("7", 7)):
        dialog.gpu_layers.lineEdit().selectAll()
        qtbot.keyClicks(dialog.gpu_layers, typed)
        dialog.gpu_layers.interpretText()
        assert dialog.gpu_layers.value() == expected, typed


def test_only_load_settings_need_a_reload() -> None:
    assert CUSTOM.needs_reload(dataclasses.replace(CUSTOM, context=8192))
    assert CUSTOM.needs_reload(dataclasses.replace(CUSTOM, model_path="/other.gguf"))
    assert not CUSTOM.needs_reload(dataclasses.replace(CUSTOM, temperature=0.2, ui_language="en"))


def test_dialog_round_trip_and_accessible_fields(qtbot: QtBot) -> None:
    dialog = SettingsDialog(CUSTOM)
    qtbot.addWidget(dialog)
    assert dialog.value() == CUSTOM
    dialog.context.setValue(2048)
    dialog.temperature.setValue(0.0)
    dialog.seed.setValue(-1)
    assert dialog.value() == dataclasses.replace(CUSTOM, context=2048, temperature=0.0, seed=-1)
    assert dialog.seed.text() == "random" and dialog.gpu_layers.text() == "all"
    line_edits = [e for e in dialog.findChildren(QLineEdit) if not isinstance(e.parent(), QAbstractSpinBox)]
    fields = [*dialog.findChildren(QAbstractSpinBox), *dialog.findChildren(QComboBox), *line_edits]
    # 10 model/sampling/interface fields + projector, microphone and the hold-to-talk key's editor
    assert len(fields) == 13 and all(f.accessibleName() for f in fields)
    assert dialog.model_path.accessibleName() and dialog.context.accessibleName() == "Context (tokens)"


def test_dialog_in_spanish(qtbot: QtBot) -> None:
    i18n.apply_language("es")
    try:
        dialog = SettingsDialog(CUSTOM)
        qtbot.addWidget(dialog)
        assert dialog.windowTitle() == "Ajustes"
        assert dialog.seed.specialValueText() == "aleatoria"
    finally:
        i18n.apply_language("en")


def test_changing_context_reloads_the_model(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    dialogs = gui_support.FakeDialogs()
    window = gui.open(tiny_model, dialogs=dialogs)
    assert window.status_panel.context_label.text() == "context 2,048"
    dialogs.settings_result = dataclasses.replace(window.settings.load(), context=1024)
    with gui.qtbot.waitSignal(window.bridge.modelLoaded, timeout=gui_support.LOAD_TIMEOUT_MS):
        window.commands.settings.trigger()
    assert dialogs.asked == ["settings"] and window.model.ready
    assert window.status_panel.context_label.text() == "context 1,024"
    assert window.settings.load().context == 1024


def test_sampling_change_applies_without_reload(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    window = gui.open(tiny_model)
    new = dataclasses.replace(window.settings.load(), temperature=0.0, max_tokens=3)
    assert window.settings_controller.apply(new) is False
    assert not window.model.loading and window.model.ready
    gui.send(window, "Hi")
    gui.wait_answer(window)
    assert window.settings.load().temperature == 0.0


def test_invalid_settings_are_refused_visibly(gui: gui_support.GuiHarness) -> None:
    window = gui.open()
    assert window.settings_controller.apply(dataclasses.replace(GuiSettings(), top_p=0.0)) is False
    assert "Settings not saved" in window.notice.text() and "top-p" in window.notice.text()
    assert window.settings.load() == dataclasses.replace(GuiSettings(), **gui_support.TEST_SETTINGS)


def test_language_setting_switches_the_ui_live(gui: gui_support.GuiHarness) -> None:
    window = gui.open()
    window.settings_controller.apply(dataclasses.replace(window.settings.load(), ui_language="es"))
    gui.qtbot.waitUntil(lambda: window.sidebar.new_button.text() == "Nuevo chat")  # LanguageChange is posted
    assert window.model_manager.catalog.action_button.text() == "&Descargar"
    assert window.menuBar().actions()[0].text() == "&Archivo"
    window.settings_controller.apply(dataclasses.replace(window.settings.load(), ui_language="en"))
    gui.qtbot.waitUntil(lambda: window.sidebar.new_button.text() == "New chat")


def test_dialog_picks_the_microphone_and_the_hold_to_talk_key(qtbot: QtBot) -> None:
    dialog = SettingsDialog(CUSTOM, microphones=["Built-in", "USB headset"])
    qtbot.addWidget(dialog)
    assert dialog.microphone.currentText() == "System default" and dialog.value().microphone == ""
    dialog.microphone.setCurrentIndex(dialog.microphone.findData("USB headset"))
    dialog.talk_shortcut.setKeySequence(QKeySequence("F8"))
    dialog.mmproj_path.setText(" /models/mmproj.gguf ")
    value = dialog.value()
    assert (value.microphone, value.talk_shortcut, value.mmproj_path) == (
        "USB headset",
        "F8",
        "/models/mmproj.gguf",
    )
    assert value.validated() == value
