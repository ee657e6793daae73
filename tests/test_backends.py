"""Run-time backend detection on the installed llama.cpp build, the CLI command and the settings dialog.

The test environment's llama-cpp-python is a CPU build, so detection must report the CPU only and
the dialog must not offer GPU layers. A GPU build is checked by packaging/check-vulkan.sh (lavapipe);
here, GPU reports are built as plain data to test what the dialog and the CLI make of them.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import gui_support
import llama_cpp as ll
import pytest
from pytestqt.qtbot import QtBot

from app.cli import main
from app.gui.dialogs.settings_dialog import SettingsDialog
from app.gui.settings import GuiSettings
from model_io.backends import (
    BackendReport,
    ComputeDevice,
    DeviceKind,
    detect_backends,
    probe_backends,
    probe_command,
)
from model_io.errors import EngineFailure
from model_io.ggml_registry import library_dir, load_backend_modules
from model_io.settings import Backend

assert gui_support  # imported for its offscreen Qt set-up

SETTINGS = GuiSettings(gpu_layers=-1)
GIB = 1024**3
LAVAPIPE = ComputeDevice(
    "Vulkan0", "llvmpipe (LLVM 15.0.6, 256 bits)", DeviceKind.IGPU, "Vulkan", 2 * GIB, 4 * GIB
)


def _cpu_report(**changes: Any) -> BackendReport:
    cpu = ComputeDevice("CPU", "Test CPU", DeviceKind.CPU, "CPU", 8 * GIB, 16 * GIB)
    report = BackendReport("0.3.36+cpu", ("CPU",), (cpu,), False, "libggml-cpu-haswell.so", ("AVX2",))
    return dataclasses.replace(report, **changes)


def test_this_cpu_build_reports_the_cpu_only() -> None:
    report = detect_backends()
    assert report.backends == ("CPU",)
    assert not report.gpu_offload and report.gpu_devices == ()
    assert [d.kind for d in report.devices] == [DeviceKind.CPU]
    assert report.devices[0].memory_total > report.devices[0].memory_free / 2 > 0
    assert report.offered_backends() == (Backend.AUTO, Backend.CPU)
    # Every feature read through the backend registry is one llama.cpp itself reports as present.
    system_info = ll.llama_print_system_info().decode()
    assert report.cpu_features and all(f"{name} = 1" in system_info for name in report.cpu_features)


def test_cpu_module_is_reported_exactly_when_the_build_has_cpu_variant_modules() -> None:
    report = detect_backends()
    modules = sorted(p.name for p in library_dir().glob("libggml-cpu-*.so"))
    if modules:
        assert report.cpu_module in modules
    else:
        assert report.cpu_module is None and report.cpu_variant is None
    assert not load_backend_modules()  # already registered: loading again is a no-op


def test_report_with_a_gpu_offers_its_backend_and_describes_it() -> None:
    report = _cpu_report(backends=("Vulkan", "CPU"), devices=(LAVAPIPE, *_cpu_report().devices))
    assert report.gpu_devices == (LAVAPIPE,)
    assert report.offered_backends() == (Backend.AUTO, Backend.CPU, Backend.VULKAN)
    assert report.cpu_variant == "haswell"
    assert report.summary() == "CPU (haswell) · Vulkan0: llvmpipe (LLVM 15.0.6, 256 bits), 2.0 GiB free"
    assert "Vulkan0 (igpu): llvmpipe (LLVM 15.0.6, 256 bits) — 2.0 of 4.0 GiB free" in report.describe()
    assert json.loads(json.dumps(report.to_dict()))["offered_backends"] == ["auto", "cpu", "vulkan"]


def test_backends_command_prints_what_detection_finds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backends", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = detect_backends()
    assert printed["backends"] == list(expected.backends) and printed["gpu_offload"] is False
    assert [d["name"] for d in printed["devices"]] == [d.name for d in expected.devices]
    assert main(["backends"]) == 0
    text = capsys.readouterr().out
    assert "GPU offload: no" in text and f"llama-cpp-python {expected.llama_cpp_version}" in text


def test_probe_in_a_child_process_reports_what_this_process_sees() -> None:
    assert probe_command()[1:] == ["-m", "model_io.backends"]  # the tests run from an interpreter
    probed, here = probe_backends(), detect_backends()
    assert (probed.backends, probed.gpu_offload, probed.cpu_module) == (here.backends, False, here.cpu_module)
    assert [(d.name, d.kind, d.memory_total) for d in probed.devices] == [
        (d.name, d.kind, d.memory_total) for d in here.devices
    ]
    assert BackendReport.from_dict(here.to_dict()) == here


def test_a_crashing_probe_is_an_error_value_with_its_last_words() -> None:
    crash = [
        sys.executable,
        "-c",
        "import os, sys; print('ggml_vulkan: driver exploded', file=sys.stderr); os.abort()",
    ]
    with pytest.raises(EngineFailure, match="backend detection failed: ggml_vulkan: driver exploded"):
        probe_backends(crash)
    with pytest.raises(EngineFailure, match="did not finish within 1 s"):
        probe_backends([sys.executable, "-c", "import time; time.sleep(30)"], timeout=1)


def test_the_settings_dialog_keeps_llama_cpp_out_of_the_gui_process() -> None:
    code = (
        "import sys, app.gui.dialogs.settings_dialog; print(sorted(m for m in sys.modules if 'llama' in m))"
    )
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert imported.strip() == "[]"


def _gpu_row_visible(dialog: SettingsDialog) -> bool:
    return dialog._model_form.isRowVisible(dialog.gpu_layers)


def test_dialog_detects_in_the_background_and_hides_gpu_layers_on_this_build(qtbot: QtBot) -> None:
    dialog = SettingsDialog(SETTINGS)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.compute.text().startswith("CPU"), timeout=90_000)
    assert not _gpu_row_visible(dialog)
    assert dialog.value().gpu_layers == -1  # a hidden setting is kept for when a GPU build returns


def test_dialog_offers_gpu_layers_when_a_device_can_hold_them(qtbot: QtBot) -> None:
    pending: Future[BackendReport] = Future()
    dialog = SettingsDialog(SETTINGS, backends=pending)
    qtbot.addWidget(dialog)
    assert dialog.compute.text() == "detecting…" and not _gpu_row_visible(dialog)
    pending.set_result(_cpu_report(devices=(LAVAPIPE,)))
    qtbot.waitUntil(lambda: _gpu_row_visible(dialog), timeout=5_000)
    assert "Vulkan0: llvmpipe" in dialog.compute.text()
    dialog.gpu_layers.setValue(20)
    assert dialog.value().gpu_layers == 20


def test_dialog_explains_a_failed_detection_and_offers_cpu_settings_only(qtbot: QtBot) -> None:
    failed: Future[BackendReport] = Future()
    failed.set_exception(EngineFailure("this llama.cpp build lacks ggml_backend_dev_count"))
    dialog = SettingsDialog(SETTINGS, backends=failed)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: "lacks ggml_backend_dev_count" in dialog.compute.text(), timeout=5_000)
    assert dialog.compute.text().startswith("unknown (") and not _gpu_row_visible(dialog)


def test_library_dir_holds_the_libraries_llama_cpp_loaded() -> None:
    assert library_dir() == Path(ll.__file__).resolve().parent / "lib"
    assert any(library_dir().glob("*llama*"))


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the Linux process map")
def test_detection_uses_the_libggml_libllama_is_linked_to() -> None:
    """The wheel holds libggml.so and libggml.so.0 as two files; opening both means two registries."""
    detect_backends()
    mapped = {line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines() if "/" in line}
    ggml = {Path(path).name for path in mapped if Path(path).name.startswith("libggml.so")}
    assert len(ggml) == 1, ggml
