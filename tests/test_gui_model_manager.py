"""The model manager: first run, downloads from the local fake hub (progress, cancel, resume, gated repos),
imports, projector downloads and builds while chatting, models already on disk, keyboard and language.

Windows run on the real engine with the tiny synthetic Gemma 3n; downloads go to tests/fake_hub.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gui_support
import hf_checkpoint
import numpy as np
import pytest
from fake_hub import FakeHub, isolate_from_the_real_hub
from gguf_fixtures import truncated_copy, write_gguf, write_tiny_clip
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QApplication,
    QLineEdit,
    QProgressBar,
    QWidget,
)
from pytestqt.qtbot import QtBot

from app.gui import i18n
from app.gui.main_window import MainWindow
from app.gui.model_manager.work import Arrival
from app.gui.models_state import (
    RUNTIME_OVERHEAD,
    Job,
    LibraryConfig,
    ModelLibrary,
    ProjectorSource,
    RamFit,
    estimated_size,
    ram_fit,
)
from app.gui.settings import AppSettings
from app.gui.widgets.status_panel import human_bytes
from model_io.catalog import CATALOG, CatalogEntry, find_entry
from model_io.discovery import SearchRoots, user_folders
from model_io.download import partial_path, read_receipt
from model_io.model_info import inspect_model
from model_io.paths import models_dir

GIB = 1 << 30
TOKEN = "hf_test_token_accepted"


# -- helpers ---------------------------------------------------------------------------------------


def entry(
    name: str, repo: str, filename: str, size: int | None, *, role: str = "text", **extra: Any
) -> CatalogEntry:
    values: dict[str, Any] = {
        "family": "gemma-3n", "variant": "E2B", "quant": "TQ1_0", "sha256": None, "revision": None,
        "verified": False, "gated": None, "license": "test data", "source": "tests",
    }  # fmt: skip
    values.update(extra)
    return CatalogEntry(name, role=role, repo=repo, filename=filename, size=size, **values)  # type: ignore[arg-type]


def local_roots() -> SearchRoots:
    """Only the models folder and added folders: never the real HF cache, LM Studio or Ollama."""
    return SearchRoots(models=models_dir(), folders=user_folders())


def library_config(hub: FakeHub | None, entries: list[CatalogEntry] | None, **extra: Any) -> LibraryConfig:
    values: dict[str, Any] = {"total_ram": 16 * GIB, "search_roots": local_roots}
    values.update(extra)
    return LibraryConfig(entries=entries, endpoint=hub.url if hub else None, **values)


def open_window(
    gui: gui_support.GuiHarness,
    config: LibraryConfig,
    *,
    model: Path | None = None,
    dialogs: gui_support.FakeDialogs | None = None,
    folder: Path | None = None,
    **settings: Any,
) -> MainWindow:
    """Like GuiHarness.open, with the model manager's catalog, hub and search roots under test control."""
    app_settings = AppSettings()
    app_settings.update(**{**gui_support.TEST_SETTINGS, "model_path": str(model or ""), **settings})
    answers = dataclasses.replace(
        (dialogs or gui_support.FakeDialogs()).dialogs(), choose_folder=lambda: folder
    )
    window = MainWindow(app_settings, dialogs=answers, devices=gui_support.no_devices(), model_library=config)
    return gui.show(window, (1100, 820), ready=model is not None)


def job_of(window: MainWindow, target: Path) -> Job | None:
    return window.models.library.jobs.get(str(target))


def click(qtbot: QtBot, button: QAbstractButton) -> None:
    assert button.isVisible() and button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def hermetic_hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_from_the_real_hub(monkeypatch, tmp_path)


@pytest.fixture
def gui(qtbot: QtBot) -> Iterator[gui_support.GuiHarness]:
    harness = gui_support.GuiHarness(qtbot)
    yield harness
    harness.close_all()


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub(lifetime=300) as fake:
        yield fake


@pytest.fixture(scope="module")
def tiny_projector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's projector (vision + audio towers, ≈ 1 MB)."""
    from model_io.synth.mmproj import write_mmproj_for

    return write_mmproj_for("tiny", tmp_path_factory.mktemp("projector") / "gemma-3n-tiny-mmproj.gguf")


# -- the library state, without Qt -----------------------------------------------------------------


def test_ram_fit_leaves_room_for_the_system() -> None:
    assert ram_fit(4 * GIB, 16 * GIB) is RamFit.FITS
    assert ram_fit(12 * GIB, 16 * GIB) is RamFit.TIGHT
    assert ram_fit(14 * GIB, 16 * GIB) is RamFit.TOO_LARGE
    assert ram_fit(4 * GIB, None) is RamFit.UNKNOWN and ram_fit(None, 16 * GIB) is RamFit.UNKNOWN


def test_unknown_sizes_are_estimated_from_a_sibling_quant() -> None:
    bartowski = find_entry("gemma-3n-e2b-q4_k_m-bartowski")
    assert bartowski.size is None
    size, estimate = estimated_size(bartowski, CATALOG)
    assert (size, estimate) == (find_entry("gemma-3n-e2b-q4_k_m-unsloth").size, True)
    assert estimated_size(find_entry("gemma-3n-e4b-q8_0-ggml-org"), CATALOG) == (7_353_292_256, False)
    lonely = entry("x", "o/r", "x-Q5_K_M.gguf", None, quant="Q5_K_M")
    assert estimated_size(lonely, [lonely]) == (None, False)


def test_catalog_rows_put_gemma_3n_first_and_price_them(tmp_path: Path) -> None:
    library = ModelLibrary(CATALOG, tmp_path, 8 * GIB)
    rows = library.catalog()
    assert [r.entry.family for r in rows] == sorted(
        (r.entry.family for r in rows), key=lambda f: f != "gemma-3n"
    )
    assert all(r.entry.role == "text" for r in rows)
    by_name = {r.entry.name: r for r in rows}
    e2b = by_name["gemma-3n-e2b-q4_k_m-unsloth"]
    assert e2b.ram_needed == 3_026_881_888 + RUNTIME_OVERHEAD and e2b.fit is RamFit.FITS
    assert by_name["gemma-3n-e4b-q4_k_m-unsloth"].fit is RamFit.TIGHT
    assert by_name["gemma-3n-e4b-q8_0-ggml-org"].fit is RamFit.TOO_LARGE
    partial_path(tmp_path / e2b.entry.local_name).write_bytes(b"x" * 1000)
    assert (
        library.row(e2b.entry).local.state == "partial" and library.row(e2b.entry).local.partial_bytes == 1000
    )


def test_projector_plans(tmp_path: Path, tiny_model: Path, tiny_projector: Path) -> None:
    tiny = ProjectorSource("tiny", "google/gemma-3n-tiny-it", 4)
    library = ModelLibrary(
        CATALOG, tmp_path, 8 * GIB, (*ModelLibrary(CATALOG, tmp_path, None).projector_sources, tiny)
    )
    e2b = library.projector_plan(None, None, find_entry("gemma-3n-e2b-q4_k_m-unsloth"))
    assert e2b.how == "build" and e2b.source is not None and e2b.source.repo_id == "google/gemma-3n-E2B-it"
    assert (
        e2b.target == tmp_path / "gemma-3n-E2B-it-mmproj-F16.gguf" and e2b.model_name == "Gemma 3n E2B Q4_K_M"
    )
    gemma4 = library.projector_plan(None, None, find_entry("gemma-4-e2b-q4_0-ggml-org"))
    assert gemma4.how == "download" and gemma4.entry == find_entry("gemma-4-e2b-mmproj-q8_0-ggml-org")
    info = inspect_model(tiny_model)
    loaded = library.projector_plan(info, None)
    assert loaded.how == "build" and loaded.source == tiny
    assert library.projector_plan(info, tiny_projector).how == "present"
    llama = dataclasses.replace(info, architecture="llama")
    assert library.projector_plan(llama, None).how == "none"
    assert library.projector_plan(None, None).how == "none"


def test_one_job_per_file(tmp_path: Path) -> None:
    library = ModelLibrary(CATALOG, tmp_path, None)
    job = library.start_job("download", tmp_path / "a.gguf", "text")
    with pytest.raises(ValueError, match="already"):
        library.start_job("build", tmp_path / "a.gguf", "mmproj")
    library.update_job(job.key, state="failed", error="boom")
    assert library.start_job("download", tmp_path / "a.gguf", "text").state == "running"


# -- first run -------------------------------------------------------------------------------------


def test_first_run_opens_the_model_manager(gui: gui_support.GuiHarness) -> None:
    window = open_window(gui, library_config(None, None, total_ram=8 * GIB))  # the real catalog
    page = window.model_manager
    assert window.pages.currentWidget() is page and not window.composer.isVisible()
    assert not page.back_button.isVisible() and "8.0 GiB of RAM" in page.intro.text()
    tree = page.catalog.tree
    assert tree.topLevelItem(0).text(0) == "Gemma 3n" and tree.topLevelItem(1).text(0) == "Gemma 4"
    rows = {tree.topLevelItem(0).child(i).text(0) + " " + tree.topLevelItem(0).child(i).text(1): i
            for i in range(tree.topLevelItem(0).childCount())}  # fmt: skip
    e2b = tree.topLevelItem(0).child(rows["E2B · unsloth Q4_K_M"])
    assert e2b.text(2) == human_bytes(3_026_881_888) == "2.8 GiB"
    assert e2b.text(3) == human_bytes(3_026_881_888 + GIB) + " · fits this computer"
    assert (
        tree.topLevelItem(0)
        .child(rows["E4B · ggml-org Q8_0"])
        .text(3)
        .endswith("too large for this computer")
    )
    assert tree.topLevelItem(0).child(rows["E2B · bartowski Q4_K_M"]).text(2) == "≈ 2.8 GiB"
    assert page.catalog.action_button.text() == "&Download"
    assert "google/gemma-3n-E2B-it" in page.projector.text.text()  # the selected E2B's projector is built
    gui.qtbot.waitUntil(lambda: "No usable model" in page.local.status.text(), timeout=10_000)
    assert page.token.state.text() == "No token saved."
    gui_support.screenshot(window, "model-manager-first-run")


def test_manager_is_reachable_later_and_leads_back(gui: gui_support.GuiHarness, tiny_model: Path) -> None:
    window = open_window(gui, library_config(None, []), model=tiny_model)
    assert window.pages.currentWidget() is window.conversation_view
    window.commands.manage_models.trigger()
    page = window.model_manager
    assert window.pages.currentWidget() is page and page.back_button.isVisible()
    gui_support.activate(gui.qtbot, window)
    assert "Gemma 3n synthetic tiny" in page.projector.text.text()  # the loaded model, text only
    gui.qtbot.keyClick(page.back_button, Qt.Key.Key_B, Qt.KeyboardModifier.AltModifier)  # a mnemonic
    gui.qtbot.waitUntil(lambda: window.pages.currentWidget() is window.conversation_view)  # animated click
    assert window.composer.isVisible()


# -- downloads -------------------------------------------------------------------------------------


def test_download_shows_progress_cancels_and_resumes_then_chat_works(
    gui: gui_support.GuiHarness, hub: FakeHub, tiny_model: Path
) -> None:
    data = tiny_model.read_bytes()
    hub.add_repo("test/gemma-3n-tiny-GGUF", {"gemma-3n-tiny.gguf": data})
    tiny = entry("tiny-gemma-3n", "test/gemma-3n-tiny-GGUF", "gemma-3n-tiny.gguf", len(data))
    window = open_window(gui, library_config(hub, [tiny]))
    page = window.model_manager
    target = models_dir() / "gemma-3n-tiny.gguf"
    seen: list[tuple[int, float, float | None]] = []

    def record(key: str) -> None:
        progress = window.models.library.jobs[key].progress
        if progress is not None and progress.stage == "downloading":
            seen.append((progress.done, progress.bytes_per_s, progress.eta_s))

    window.models.controller.jobProgressed.connect(record)
    hub.faults.throttle_bps = 6_000_000
    click(gui.qtbot, page.catalog.action_button)
    gui.qtbot.waitUntil(lambda: len(seen) >= 4 and seen[-1][0] > 2_000_000, timeout=30_000)
    row = page.jobs.rows[str(target)]
    assert row.title.text() == "Downloading gemma-3n-tiny.gguf" and row.bar.value() > 0
    assert "/s" in row.detail.text() and "left" in row.detail.text(), row.detail.text()
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen) and any(
        rate > 0 and eta for _, rate, eta in seen
    )
    assert page.catalog.selected().job is not None  # type: ignore[union-attr]
    assert "Downloading" in page.catalog.tree.currentItem().text(4) and window.models.indicator.isVisible()
    gui_support.screenshot(window, "model-manager-downloading")
    click(gui.qtbot, page.catalog.cancel_button)
    gui.qtbot.waitUntil(lambda: job_of(window, target).state == "cancelled", timeout=10_000)  # type: ignore[union-attr]
    kept = partial_path(target).stat().st_size
    assert 0 < kept < len(data) and not target.exists() and read_receipt(target) is not None
    assert row.detail.text().startswith("Cancelled.") and row.button.text() == "Dismiss"
    assert page.catalog.action_button.text() == "&Resume download"
    assert f"({human_bytes(kept)} kept)" in page.catalog.tree.currentItem().text(4)
    assert not window.model.ready and not window.models.indicator.isVisible()

    hub.faults.throttle_bps = None
    arrivals: list[Arrival] = []
    window.models.controller.modelArrived.connect(arrivals.append)
    click(gui.qtbot, page.catalog.action_button)
    gui.qtbot.waitUntil(lambda: bool(arrivals), timeout=60_000)
    assert (arrivals[0].resumed_from, arrivals[0].transferred) == (kept, len(data) - kept)
    assert hub.downloads()[-1].range == f"bytes={kept}-"
    assert sha256(target) == hashlib.sha256(data).hexdigest() and not partial_path(target).exists()
    gui.wait_ready(window)  # the first model to arrive is loaded at once
    assert window.settings.load().model_path == str(target) and str(target) not in page.jobs.rows
    assert window.pages.currentWidget() is window.conversation_view
    gui.send(window, "Hello")
    gui.wait_answer(window)
    assert window.chat.conversation.messages[-1].text


def test_closing_during_a_download_is_quick_and_the_next_start_resumes(
    gui: gui_support.GuiHarness, hub: FakeHub, tiny_projector: Path
) -> None:
    data = tiny_projector.read_bytes()
    hub.add_repo("test/tiny-GGUF", {"mmproj-tiny.gguf": data})
    text = entry("tiny", "test/tiny-GGUF", "tiny.gguf", 1000, mmproj="tiny-mmproj")
    projector = entry("tiny-mmproj", "test/tiny-GGUF", "mmproj-tiny.gguf", len(data), role="mmproj")
    config = library_config(hub, [text, projector])
    window = open_window(gui, config)
    box = window.model_manager.projector
    assert box.action_button.text() == "Download &projector" and "mmproj-tiny.gguf" in box.text.text()
    hub.faults.throttle_bps = 40_000
    target = models_dir() / "mmproj-tiny.gguf"
    click(gui.qtbot, box.action_button)
    gui.qtbot.waitUntil(
        lambda: partial_path(target).exists() and partial_path(target).stat().st_size > 40_000
    )
    assert not box.action_button.isEnabled()  # one job per file
    started = time.monotonic()
    gui.close(window)
    closing_s = time.monotonic() - started
    assert closing_s < 3.0, f"closing took {closing_s:.1f} s (the forced-close fallback is 5 s)"
    kept = partial_path(target).stat().st_size
    assert 0 < kept < len(data) and read_receipt(target) is not None

    hub.faults.throttle_bps = None
    again = open_window(gui, config)
    arrivals: list[Arrival] = []
    again.models.controller.projectorArrived.connect(arrivals.append)
    click(gui.qtbot, again.model_manager.projector.action_button)
    gui.qtbot.waitUntil(lambda: bool(arrivals), timeout=30_000)
    assert arrivals[0].resumed_from == kept and arrivals[0].transferred == len(data) - kept
    assert sha256(target) == hashlib.sha256(data).hexdigest()


def test_gated_download_asks_for_a_token_and_keeps_it(
    gui: gui_support.GuiHarness, hub: FakeHub, tmp_path: Path
) -> None:
    clip = write_tiny_clip(tmp_path / "mmproj-gated.gguf").read_bytes()
    hub.add_repo("google/gated-GGUF", {"mmproj-gated.gguf": clip}, gated=True)
    hub.add_token(TOKEN)
    text = entry("gated", "google/gated-GGUF", "gated.gguf", 1000, mmproj="gated-mmproj")
    projector = entry("gated-mmproj", "google/gated-GGUF", "mmproj-gated.gguf", len(clip), role="mmproj")
    window = open_window(gui, library_config(hub, [text, projector]))
    gui_support.activate(gui.qtbot, window)
    page = window.model_manager
    target = models_dir() / "mmproj-gated.gguf"
    click(gui.qtbot, page.projector.action_button)
    gui.qtbot.waitUntil(lambda: job_of(window, target).state == "failed", timeout=10_000)  # type: ignore[union-attr]
    error = page.jobs.rows[str(target)].error
    assert error.isVisible() and "is gated" in error.text() and "accept the licence" in error.text()
    assert "is gated" in page.token.state.text() and QApplication.focusWidget() is page.token.field
    gui.qtbot.keyClicks(page.token.field, TOKEN)
    gui.qtbot.keyClick(page.token.field, Qt.Key.Key_Return)
    assert window.settings.load().hf_token == TOKEN and page.token.state.text() == "A token is saved."
    assert page.token.field.text() == "" and TOKEN not in repr(window.settings.load())
    assert AppSettings().load().hf_token == TOKEN  # stored in the settings file, so the next start has it
    click(gui.qtbot, page.jobs.rows[str(target)].button)  # Dismiss
    assert str(target) not in page.jobs.rows
    click(gui.qtbot, page.projector.action_button)
    gui.qtbot.waitUntil(target.exists, timeout=10_000)
    assert any(r.authorization == f"Bearer {TOKEN}" for r in hub.requests if r.server == "hub")


# -- imports and models on disk --------------------------------------------------------------------


def test_import_refuses_bad_files_specifically_and_takes_a_good_one(
    gui: gui_support.GuiHarness, tiny_model: Path, tmp_path: Path
) -> None:
    corrupt = truncated_copy(tiny_model, tmp_path / "cut-short.gguf", 1_000_000)
    foreign = write_gguf(tmp_path / "foreign.gguf", "notgemma", {"w": np.zeros((4, 4), np.float32)})
    dialogs = gui_support.FakeDialogs()
    window = open_window(gui, library_config(None, []), dialogs=dialogs)
    page = window.model_manager
    expected = {
        corrupt: "metadata array 'tokenizer.ggml.tokens' claims 262,400 elements, more than the file can "
        "hold; the file is truncated or corrupt",
        foreign: "model architecture 'notgemma' is not supported by the bundled llama.cpp",
    }
    for path, message in expected.items():
        dialogs.model_file = path
        click(gui.qtbot, page.local.import_button)
        target = models_dir() / path.name
        gui.qtbot.waitUntil(lambda t=target: job_of(window, t).state == "failed", timeout=10_000)  # type: ignore[union-attr]
        row = page.jobs.rows[str(target)]
        assert row.error.text() == f"{path}: {message}" and row.error.accessibleName() == "Error"
        assert not target.exists() and not partial_path(target).exists()
    assert not window.model.ready and window.pages.currentWidget() is page
    gui_support.screenshot(window, "model-manager-import-refused")

    dialogs.model_file = tiny_model
    click(gui.qtbot, page.local.import_button)
    gui.wait_ready(window)
    imported = models_dir() / tiny_model.name
    assert imported.is_file() and not imported.is_symlink() and sha256(imported) == sha256(tiny_model)
    assert window.settings.load().model_path == str(imported)


def test_added_folder_is_searched_and_a_found_model_is_used(
    gui: gui_support.GuiHarness, tiny_model: Path, tiny_projector: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "my models"
    folder.mkdir()
    (folder / tiny_model.name).symlink_to(tiny_model)
    (folder / tiny_projector.name).symlink_to(tiny_projector)
    window = open_window(gui, library_config(None, []), folder=folder)
    local = window.model_manager.local
    gui.qtbot.waitUntil(lambda: "No usable model" in local.status.text(), timeout=10_000)
    click(gui.qtbot, local.add_folder_button)
    gui.qtbot.waitUntil(lambda: local.tree.topLevelItemCount() == 1, timeout=10_000)
    item = local.tree.topLevelItem(0)
    assert item.text(1) == "Added folder" and item.text(3) == tiny_projector.name
    click(gui.qtbot, local.use_button)
    gui.wait_ready(window)
    assert window.model.media.projector == folder / tiny_projector.name and window.model.media.has_audio
    assert window.pages.currentWidget() is window.conversation_view


# -- projectors while chatting ---------------------------------------------------------------------


def test_chat_works_while_the_projector_downloads_then_it_is_attached(
    gui: gui_support.GuiHarness, hub: FakeHub, tiny_model: Path, tiny_projector: Path
) -> None:
    data = tiny_projector.read_bytes()
    hub.add_repo("test/tiny-GGUF", {"mmproj-tiny.gguf": data})
    text = entry("tiny", "test/tiny-GGUF", tiny_model.name, tiny_model.stat().st_size, mmproj="tiny-mmproj")
    projector = entry("tiny-mmproj", "test/tiny-GGUF", "mmproj-tiny.gguf", len(data), role="mmproj")
    window = open_window(gui, library_config(hub, [text, projector]), model=tiny_model)
    assert not window.model.media.has_vision
    window.commands.manage_models.trigger()
    box = window.model_manager.projector
    hub.faults.throttle_bps = len(data) // 6  # about six seconds
    click(gui.qtbot, box.action_button)
    target = models_dir() / "mmproj-tiny.gguf"
    window.model_manager.back_button.click()
    gui.send(window, "Hello while it downloads")
    gui.wait_answer(window)
    assert window.chat.conversation.messages[-1].text
    assert job_of(window, target) is not None and job_of(window, target).active  # type: ignore[union-attr]
    assert window.models.indicator.isVisible() and window.models.indicator.text().startswith("Transfers: 1")
    gui.qtbot.waitUntil(lambda: window.model.media.has_vision, timeout=60_000)
    assert window.model.media.projector == target and window.model.media.has_audio
    assert window.settings.load().mmproj_path == str(target) and window.composer.attach_button.isEnabled()
    assert window.chat.conversation.messages[-1].text  # the conversation survived the reload


def test_projector_is_built_from_the_checkpoint_while_chatting(
    gui: gui_support.GuiHarness, hub: FakeHub, tiny_model: Path, tmp_path: Path
) -> None:
    checkpoint = hf_checkpoint.make_checkpoint(hf_checkpoint.synthetic_projector(tmp_path / "reference.gguf"))
    hub.add_repo("google/gemma-3n-tiny-it", checkpoint.files, gated=True)
    hub.add_token(TOKEN)
    source = ProjectorSource("tiny", "google/gemma-3n-tiny-it", 4)
    config = library_config(hub, [], projector_sources=(source,))
    window = open_window(gui, config, model=tiny_model, hf_token=TOKEN)
    window.commands.manage_models.trigger()
    box = window.model_manager.projector
    assert "google/gemma-3n-tiny-it" in box.text.text() and box.action_button.text() == "&Build projector"
    stages: list[str] = []
    window.models.controller.jobProgressed.connect(
        lambda key: stages.append(window.models.library.jobs[key].progress.stage)  # type: ignore[union-attr]
    )
    hub.faults.throttle_bps = 100_000  # the towers' ≈ 0.5 MB then take seconds to fetch
    click(gui.qtbot, box.action_button)
    target = models_dir() / source.file_name
    assert window.model_manager.jobs.rows[str(target)].title.text() == f"Building the projector {target.name}"
    window.model_manager.back_button.click()
    gui.send(window, "Hello while it builds")
    gui.wait_answer(window)
    assert window.chat.conversation.messages[-1].text
    assert job_of(window, target) is not None and job_of(window, target).active  # type: ignore[union-attr]
    gui.qtbot.waitUntil(lambda: window.model.media.has_audio, timeout=120_000)
    assert window.model.media.projector == target and window.model.media.has_vision
    assert "fetch" in stages and inspect_model(target).kind == "mmproj"
    assert "can see images and hear speech" in box.text.text() and not box.action_button.isVisible()


# -- keyboard, names, language ---------------------------------------------------------------------


def test_manager_is_keyboard_navigable_and_every_control_is_named(gui: gui_support.GuiHarness) -> None:
    window = open_window(gui, library_config(None, None))
    page = window.model_manager
    gui_support.activate(gui.qtbot, window)
    visited = gui_support.tab_walk(gui.qtbot, page.catalog.tree, 25)
    order = [page.catalog.tree, page.catalog.action_button, page.projector.action_button, page.token.field]
    order += [page.token.save_button, page.local.tree, page.local.import_button, page.local.add_folder_button]
    positions = [visited.index(widget) for widget in order]
    assert positions == sorted(positions)
    page.catalog.tree.setFocus()
    gui.qtbot.keyClick(page.catalog.tree, Qt.Key.Key_Down)  # arrow keys move through the models
    assert page.catalog.selected() is not None and page.catalog.selected().entry.variant == "E4B"  # type: ignore[union-attr]
    controls = [
        w
        for w in page.findChildren(QWidget)
        if isinstance(w, QAbstractButton | QLineEdit | QAbstractItemView | QProgressBar)
        and not w.objectName().startswith("qt_")
    ]
    unnamed = [f"{type(w).__name__} {w.objectName()!r}" for w in controls if not w.accessibleName()]
    assert len(controls) > 10 and not unnamed
    assert window.models.indicator.accessibleName()


def test_manager_in_spanish(gui: gui_support.GuiHarness) -> None:
    i18n.apply_language("es")
    try:
        window = open_window(gui, library_config(None, None, total_ram=8 * GIB))
        page = window.model_manager
        assert page.title.text() == "Modelos" and page.catalog.action_button.text() == "&Descargar"
        assert page.catalog.tree.topLevelItem(0).child(0).text(3).endswith("cabe en este equipo")
        gui_support.screenshot(window, "model-manager-first-run-es")
    finally:
        i18n.apply_language("en")
