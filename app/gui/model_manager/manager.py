"""The model manager feature put together: library state, controller, page and status-bar indicator.

The main window creates one :class:`ModelManager`, shows its ``page``, and connects three things:
``controller.modelArrived`` / ``projectorArrived`` and ``useRequested`` to the model controller, and
:meth:`ModelManager.set_current_model` from it, so the page knows which projector to offer.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtWidgets import QToolButton, QWidget

from app.gui.model_manager.controller import ModelManagerController, PathChooser
from app.gui.model_manager.page import ModelManagerPage
from app.gui.models_state import LibraryConfig, ModelLibrary
from app.gui.settings import AppSettings
from model_io.catalog import CATALOG
from model_io.model_info import ModelInfo
from model_io.paths import models_dir


class TransfersButton(QToolButton):
    """In the status bar while anything downloads or builds: overall progress; click opens the manager."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAutoRaise(True)
        self.setVisible(False)
        self._percent: int | None = None
        self._count = 0
        self._retranslate()

    def show_progress(self, count: int, percent: int | None) -> None:
        self._count, self._percent = count, percent
        self.setVisible(count > 0)
        self._retranslate()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        super().changeEvent(event)

    def _retranslate(self) -> None:
        text = self.tr("Transfers: %1").replace("%1", str(self._count))
        if self._percent is not None:
            text += f" ({self._percent}%)"
        self.setText(text)
        self.setAccessibleName(self.tr("Transfers in progress; open the model manager"))
        self.setToolTip(self.tr("Open the model manager"))


class ModelManager(QObject):
    """Builds the feature's pieces and connects the page's requests to the controller."""

    useRequested = Signal(Path, object)  # model, projector (None: the best fitting one found)
    openRequested = Signal()  # the status-bar indicator was clicked

    def __init__(
        self,
        settings: AppSettings,
        choose_file: PathChooser,
        choose_folder: PathChooser,
        config: LibraryConfig | None = None,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        config = config or LibraryConfig()
        entries = CATALOG if config.entries is None else config.entries
        folder = config.folder or models_dir()
        self.library = ModelLibrary(entries, folder, config.total_ram, config.projector_sources)
        self.controller = ModelManagerController(
            self.library, settings, choose_file, choose_folder, config.search_roots, config.endpoint, self
        )
        self.page = ModelManagerPage(config.total_ram, folder)
        self.indicator = TransfersButton()
        self._current: tuple[ModelInfo | None, Path | None] = (None, None)
        self._selected = ""
        self._scanned_once = False
        self._connect()  # the page is rendered when first shown: reading the disk can wait until then

    def _connect(self) -> None:
        c, page = self.controller, self.page
        page.catalog.downloadRequested.connect(c.download)
        page.catalog.cancelRequested.connect(c.cancel)
        page.catalog.useRequested.connect(self._use_entry)
        page.catalog.selectionChanged.connect(self._selection_changed)
        page.jobs.cancelRequested.connect(c.cancel)
        page.jobs.dismissRequested.connect(c.dismiss)
        page.projector.downloadRequested.connect(c.download)
        page.projector.buildRequested.connect(c.build_projector)
        page.token.tokenSaved.connect(c.save_token)
        page.local.useRequested.connect(self.useRequested)
        page.local.rescanRequested.connect(c.rescan)
        page.local.addFolderRequested.connect(c.add_folder)
        page.local.importRequested.connect(c.import_file)
        c.changed.connect(self.refresh)
        c.jobProgressed.connect(self._job_progressed)
        c.scanningChanged.connect(lambda _scanning: self._refresh_local())
        c.accessDenied.connect(page.token.ask)
        self.indicator.clicked.connect(self.openRequested)

    # -- from the window ------------------------------------------------------------------------

    def set_current_model(self, info: ModelInfo | None, projector: Path | None) -> None:
        """The model in use (None while there is none) and its projector, for the projector section."""
        self._current = (info, projector)
        self._refresh_projector()

    def page_shown(self) -> None:
        """Render the page; search the disk the first time it is seen (not at every start)."""
        self.refresh()
        if not self._scanned_once:
            self._scanned_once = True
            self.controller.rescan()

    # -- rendering ------------------------------------------------------------------------------

    def refresh(self) -> None:
        self.page.catalog.set_rows(self.library.catalog())
        jobs = list(self.library.jobs.values())
        self.page.jobs.set_jobs(jobs)
        self.page.show_jobs_group(bool(jobs))
        self.page.token.set_has_token(self.controller.token() is not None)
        self._refresh_projector()
        self._refresh_local()
        self._refresh_indicator()

    def _job_progressed(self, key: str) -> None:
        job = self.library.jobs.get(key)
        if job is None:
            return
        self.page.jobs.update_job(job)
        if job.role == "text" and job.kind == "download":
            self.page.catalog.set_rows(self.library.catalog())
        self._refresh_indicator()

    def _refresh_projector(self) -> None:
        info, projector = self._current
        entry = self.library.entry(self._selected) if self._selected and info is None else None
        plan = self.library.projector_plan(info, projector, entry)
        job = self.library.jobs.get(self.library.key_for(plan.target)) if plan.target else None
        self.page.projector.show_plan(plan, job)

    def _refresh_local(self) -> None:
        c = self.controller
        self.page.local.set_report(self.library.found, c.scanning, c.scan_error)

    def _refresh_indicator(self) -> None:
        active = self.library.active_jobs()
        sized = [job.progress for job in active if job.progress is not None and job.progress.total]
        done, total = sum(p.done for p in sized), sum(p.total for p in sized)
        self.indicator.show_progress(len(active), round(100 * done / total) if total else None)

    # -- requests -------------------------------------------------------------------------------

    def _use_entry(self, name: str) -> None:
        self.useRequested.emit(self.library.target_for(self.library.entry(name)), None)

    def _selection_changed(self, name: str) -> None:
        self._selected = name
        self._refresh_projector()
