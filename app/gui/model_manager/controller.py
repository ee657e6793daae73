"""The model manager's controller: starts and cancels downloads, builds and imports, and scans the disk.

It owns the :class:`~app.gui.models_state.ModelLibrary` and the running jobs, and says what arrived
(``modelArrived`` / ``projectorArrived``); loading is the model controller's business, wired up by
the main window.  Every slow step runs off the GUI thread.  ``model_io.discovery`` and
``model_io.download`` (huggingface_hub) are imported when first needed, not at window start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from app.gui.model_manager.jobs import JobRunner
from app.gui.model_manager.work import Arrival, Work, build_work, download_work, import_work
from app.gui.models_state import JobKind, JobProgress, JobRole, ModelLibrary, ProjectorSource
from app.gui.settings import AppSettings
from app.gui.tasks import BackgroundCall
from model_io.catalog import FileSource
from model_io.errors import GemmaDeskError

if TYPE_CHECKING:
    from model_io.discovery import DiscoveryReport, SearchRoots

log = logging.getLogger("gemma_desk.gui.models")

PathChooser = Callable[[], Path | None]


class ModelManagerController(QObject):
    """Carries out what the manager's widgets ask; ``changed`` tells them to re-read the library."""

    changed = Signal()
    jobProgressed = Signal(str)  # job key: only that job's row needs redrawing
    scanningChanged = Signal(bool)
    modelArrived = Signal(object)  # Arrival of a text model
    projectorArrived = Signal(object)  # Arrival of a projector
    accessDenied = Signal(str)  # the hub refused a gated file: the page asks for a token
    allStopped = Signal()  # after shutdown(): the last job has ended

    def __init__(
        self,
        library: ModelLibrary,
        settings: AppSettings,
        choose_file: PathChooser,
        choose_folder: PathChooser,
        search_roots: Callable[[], SearchRoots],
        endpoint: str | None = None,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.library = library
        self._settings = settings
        self._choose_file = choose_file
        self._choose_folder = choose_folder
        self._search_roots = search_roots
        self._endpoint = endpoint
        self._runners: dict[str, JobRunner] = {}
        self._scan: BackgroundCall | None = None
        self._scan_again = False  # something changed on disk during the scan in flight
        self._shutting_down = False
        self.scan_error = ""

    # -- state ----------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return bool(self._runners)

    @property
    def scanning(self) -> bool:
        return self._scan is not None

    def token(self) -> str | None:
        """The saved Hugging Face token; None lets huggingface_hub use HF_TOKEN or ``hf auth login``."""
        return self._settings.load().hf_token or None

    def save_token(self, token: str) -> None:
        self._settings.update(hf_token=token.strip())
        self.changed.emit()

    # -- actions --------------------------------------------------------------------------------

    def download(self, name: str) -> None:
        """Download (or resume) the catalog entry ``name``: a text model or a projector."""
        entry = self.library.entry(name)
        target = self.library.target_for(entry)
        work = download_work(FileSource.from_entry(entry), target.parent, self.token(), self._endpoint)
        self._start("download", target, entry.role, work)

    def build_projector(self, source: ProjectorSource) -> None:
        """Build the audio + vision projector from the official checkpoint ``source``."""
        target = self.library.folder / source.file_name
        self._start(
            "build", target, "mmproj", build_work(source.repo_id, target, self.token(), self._endpoint)
        )

    def import_file(self) -> None:
        """Ask for a GGUF and copy it into the models folder once it has been validated."""
        path = self._choose_file()
        if path is None:
            return
        name = path.name if path.name.lower().endswith(".gguf") else f"{path.name}.gguf"
        self._start("import", self.library.folder / name, "file", import_work(path, self.library.folder))

    def add_folder(self) -> None:
        """Ask for a folder to search for GGUF files from now on, then scan again."""
        folder = self._choose_folder()
        if folder is None:
            return
        from model_io.discovery import add_user_folder

        try:
            add_user_folder(folder)
        except GemmaDeskError as exc:
            self.scan_error = str(exc)
            self.changed.emit()
            return
        self.rescan()

    def rescan(self) -> None:
        """Look for GGUF files on this computer again (in the background)."""
        if self._shutting_down:
            return
        if self._scan is not None:
            self._scan_again = True
            return
        self._scan = call = BackgroundCall(lambda: _discover(self._search_roots), self)
        call.succeeded.connect(self._scanned)
        call.failed.connect(self._scan_failed)
        call.start()
        self.scanningChanged.emit(True)

    def cancel(self, key: str) -> None:
        runner = self._runners.get(key)
        if runner is not None:
            runner.cancel()
            self.library.update_job(key, state="cancelling")
            self.changed.emit()

    def dismiss(self, key: str) -> None:
        """Drop a finished job's row (failed or cancelled ones stay until dismissed)."""
        self.library.forget_job(key)
        self.changed.emit()

    def shutdown(self) -> None:
        """Cancel every job; ``allStopped`` follows once they have all returned (partial files are kept)."""
        self._shutting_down = True
        for runner in self._runners.values():
            runner.cancel()
        if not self._runners:
            self.allStopped.emit()

    # -- jobs -----------------------------------------------------------------------------------

    def _start(self, kind: JobKind, target: Path, role: JobRole, work: Work) -> None:
        if self._shutting_down:
            return
        try:
            job = self.library.start_job(kind, target, role)
        except ValueError:
            return  # already running for this file: the button was pressed twice
        runner = JobRunner(job.key, work, self)
        runner.progressed.connect(self._progressed)
        runner.ended.connect(self._ended)
        self._runners[job.key] = runner
        runner.start()
        self.changed.emit()

    def _progressed(self, key: str, progress: JobProgress) -> None:
        job = self.library.jobs.get(key)
        if job is not None:
            self.library.update_job(key, progress=progress)
            self.jobProgressed.emit(key)

    def _ended(self, key: str, arrival: object, error: object) -> None:
        from model_io.download import AccessDeniedError, DownloadCancelled  # loaded by the job already

        self._runners.pop(key, None)
        if isinstance(arrival, Arrival):
            self.library.update_job(key, state="done")
            self.library.forget_job(key)
            self._arrived(arrival)
        elif isinstance(error, DownloadCancelled):
            self.library.update_job(key, state="cancelled", error=str(error))
        else:
            self.library.update_job(key, state="failed", error=_message(error))
            if isinstance(error, AccessDeniedError):
                self.accessDenied.emit(str(error))
        self.changed.emit()
        if self._shutting_down and not self._runners:
            self.allStopped.emit()

    def _arrived(self, arrival: Arrival) -> None:
        if arrival.info.kind == "mmproj":
            self.projectorArrived.emit(arrival)
        else:
            self.modelArrived.emit(arrival)
        self.rescan()

    # -- scanning -------------------------------------------------------------------------------

    def _scanned(self, report: DiscoveryReport) -> None:
        self.scan_error = ""
        self.library.found = report
        self._scan_done()

    def _scan_failed(self, error: BaseException) -> None:
        self.scan_error = _message(error)
        self._scan_done()

    def _scan_done(self) -> None:
        self._scan = None
        self.scanningChanged.emit(False)
        self.changed.emit()
        if self._scan_again:
            self._scan_again = False
            self.rescan()


def _discover(roots: Callable[[], SearchRoots]) -> DiscoveryReport:
    from model_io.discovery import discover  # on the scanning thread

    return discover(roots())


def _message(error: object) -> str:
    """User errors keep their own sentence; anything else is a bug, logged and named."""
    if isinstance(error, GemmaDeskError):
        return str(error)
    if isinstance(error, BaseException):
        log.error("model manager job failed", exc_info=error)
        return f"internal error: {type(error).__name__}: {error}"
    return "internal error: the job ended without a result"
