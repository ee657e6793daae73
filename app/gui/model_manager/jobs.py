"""One background job (download, build, import) on its own thread, reporting to the GUI thread by signal.

A plain daemon thread, like :class:`app.gui.tasks.BackgroundCall`, rather than a QThread: a QThread
object destroyed while its thread still runs aborts the process, whereas a job that outlives a
forced window close (the fallback when it ignores ``cancel``) must simply be abandoned.  Cancel is a
``threading.Event`` the work checks; the download code also shuts its socket down at once.
"""

from __future__ import annotations

import contextlib
import threading
import time

from PySide6.QtCore import QObject, Qt, Signal

from app.gui.model_manager.work import Work
from app.gui.models_state import JobProgress

PROGRESS_INTERVAL_S = 0.1  # at most ten progress updates a second reach the GUI thread


class JobRunner(QObject):
    """Runs ``work`` once; ``progressed(key, JobProgress)`` then ``ended(key, arrival, error)``.

    ``error`` is the exception (errors as values): DownloadCancelled after a cancel.
    """

    progressed = Signal(str, object)
    ended = Signal(str, object, object)
    _progress = Signal(object)  # emitted on the worker thread, delivered queued
    _done = Signal(object, object)

    def __init__(self, key: str, work: Work, parent: QObject | None = None):
        super().__init__(parent)
        self.key = key
        self._work = work
        self.cancel_event = threading.Event()
        self._last_report = 0.0
        self._progress.connect(self._deliver_progress, Qt.ConnectionType.QueuedConnection)
        self._done.connect(self._deliver_done, Qt.ConnectionType.QueuedConnection)
        self._thread = threading.Thread(target=self._run, name=f"gemma-desk-job-{key[-40:]}", daemon=True)
        self.running = False

    def start(self) -> None:
        self.running = True
        self._thread.start()

    def cancel(self) -> None:
        self.cancel_event.set()

    def _run(self) -> None:
        arrival: object = None
        error: BaseException | None = None
        try:
            arrival = self._work(self._report, self.cancel_event)
        except Exception as exc:
            error = exc
        # RuntimeError: the runner was deleted (forced close), so nobody wants the outcome.
        with contextlib.suppress(RuntimeError):
            self._done.emit(arrival, error)

    def _report(self, progress: JobProgress) -> None:
        now = time.monotonic()
        final = progress.total > 0 and progress.done >= progress.total
        if now - self._last_report < PROGRESS_INTERVAL_S and not final:
            return
        self._last_report = now
        with contextlib.suppress(RuntimeError):
            self._progress.emit(progress)

    def _deliver_progress(self, progress: JobProgress) -> None:
        if self.running:
            self.progressed.emit(self.key, progress)

    def _deliver_done(self, arrival: object, error: object) -> None:
        self._thread.join(1.0)  # it has emitted its outcome and is only returning
        self.running = False
        self.ended.emit(self.key, arrival, error)
        self.deleteLater()
