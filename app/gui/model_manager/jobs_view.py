"""Running and recently ended transfers: one row per job with progress, speed, time left and Cancel.

Failed and cancelled jobs stay (with their message) until dismissed, so an error is never lost.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from app.gui.model_manager.text import progress_detail, stage_name
from app.gui.models_state import Job


class JobRow(QWidget):
    """One job: title, progress bar, detail line, error text, and Cancel or Dismiss."""

    cancelRequested = Signal(str)
    dismissRequested = Signal(str)

    def __init__(self, job: Job, parent: QWidget | None = None):
        super().__init__(parent)
        self.job = job
        self.title = QLabel(self)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.detail = QLabel(self)
        self.error = QLabel(self)
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.button = QPushButton(self)
        self.button.clicked.connect(self._clicked)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        layout.addLayout(top)
        layout.addWidget(self.bar)
        layout.addWidget(self.detail)
        layout.addWidget(self.error)
        self.show_job(job)

    def show_job(self, job: Job) -> None:
        self.job = job
        name = job.target.name
        titles = {
            "download": self.tr("Downloading %1"),
            "build": self.tr("Building the projector %1"),
            "import": self.tr("Importing %1"),
        }
        self.title.setText(titles[job.kind].replace("%1", name))
        progress = job.progress
        if job.active:
            self.bar.setRange(0, 1000 if progress and progress.total else 0)  # busy until sizes are known
            self.bar.setValue(round(progress.fraction * 1000) if progress else 0)
        self.bar.setVisible(job.active)
        self.bar.setAccessibleName(self.tr("Progress of %1").replace("%1", name))
        self.detail.setText(self._detail())
        self.error.setText(job.error)
        self.error.setVisible(bool(job.error))
        self.error.setAccessibleName(self.tr("Error") if job.state == "failed" else self.tr("Notice"))
        cancel = job.active
        self.button.setText(self.tr("Cancel") if cancel else self.tr("Dismiss"))
        self.button.setEnabled(job.state != "cancelling")
        what = self.tr("Cancel %1") if cancel else self.tr("Dismiss %1")
        self.button.setAccessibleName(what.replace("%1", name))

    def _detail(self) -> str:
        job = self.job
        if job.state == "cancelling":
            return self.tr("Cancelling…")
        if job.state == "cancelled":
            return self.tr("Cancelled. Start it again to continue where it stopped.")
        if job.state == "failed":
            return self.tr("Failed.")
        if job.progress is None:
            return self.tr("Starting…")
        return f"{stage_name(job.progress.stage)}: {progress_detail(job.progress)}"

    def _clicked(self) -> None:
        if self.job.active:
            self.cancelRequested.emit(self.job.key)
        else:
            self.dismissRequested.emit(self.job.key)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.show_job(self.job)
        super().changeEvent(event)


class JobsView(QWidget):
    """The list of job rows; hidden when there is nothing to show."""

    cancelRequested = Signal(str)
    dismissRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.rows: dict[str, JobRow] = {}
        self.tab_anchor: QWidget | None = None  # rows' buttons follow it in the tab order
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.setVisible(False)

    def set_jobs(self, jobs: Sequence[Job]) -> None:
        wanted = {job.key for job in jobs}
        for key in [k for k in self.rows if k not in wanted]:
            row = self.rows.pop(key)
            self._layout.removeWidget(row)
            row.deleteLater()
        for job in jobs:
            self.update_job(job)
        self.setVisible(bool(self.rows))

    def update_job(self, job: Job) -> None:
        row = self.rows.get(job.key)
        if row is None:
            row = self.rows[job.key] = JobRow(job, self)
            row.cancelRequested.connect(self.cancelRequested)
            row.dismissRequested.connect(self.dismissRequested)
            self._layout.addWidget(row)
            previous = [r.button for r in self.rows.values() if r is not row]
            anchor = previous[-1] if previous else self.tab_anchor
            if anchor is not None:  # created last, the row would otherwise be reached last by Tab
                QWidget.setTabOrder(anchor, row.button)
        else:
            row.show_job(job)
