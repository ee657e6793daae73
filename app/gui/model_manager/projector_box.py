"""Images and speech for the model in use: the projector it has, or how to get one (download or build)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.gui.model_manager.text import size_text
from app.gui.models_state import Job, ProjectorPlan


class ProjectorBox(QWidget):
    """Explains the projector situation and offers the one action that improves it."""

    downloadRequested = Signal(str)  # catalog name of the projector
    buildRequested = Signal(object)  # ProjectorSource

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action_button = QPushButton(self)
        self.action_button.clicked.connect(self._act)
        row = QHBoxLayout()
        row.addWidget(self.action_button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.text)
        layout.addLayout(row)
        self.plan = ProjectorPlan("none")
        self._job: Job | None = None
        self._retranslate()

    def show_plan(self, plan: ProjectorPlan, job: Job | None) -> None:
        self.plan, self._job = plan, job
        self._retranslate()

    def _act(self) -> None:
        if self.plan.how == "download" and self.plan.entry is not None:
            self.downloadRequested.emit(self.plan.entry.name)
        elif self.plan.how == "build" and self.plan.source is not None:
            self.buildRequested.emit(self.plan.source)

    def _explanation(self) -> str:
        plan = self.plan
        if plan.how == "present" and plan.present is not None:
            return (
                self.tr("%1 can see images and hear speech with the projector %2.")
                .replace("%1", plan.model_name)
                .replace("%2", plan.present.name)
            )
        if plan.how == "download" and plan.entry is not None:
            return (
                self.tr("Images and speech for %1 need its projector %2 (%3). Chat works meanwhile.")
                .replace("%1", plan.model_name)
                .replace("%2", plan.entry.local_name)
                .replace("%3", size_text(plan.entry.size))
            )
        if plan.how == "build" and plan.source is not None:
            return (
                self.tr(
                    "Images and speech for %1 need a projector. None is published for Gemma 3n, so Gemma "
                    "Desk builds one from Google's checkpoint %2, fetching only its image and speech "
                    "parts (about 2 GB). Google's repository is gated: accept its licence on Hugging "
                    "Face and save a token below first. Chat works while it builds."
                )
                .replace("%1", plan.model_name)
                .replace("%2", plan.source.repo_id)
            )
        if plan.model_name:
            return self.tr(
                "No projector is known for %1, so it answers text only. If you have one, choose it "
                "with File, Choose projector."
            ).replace("%1", plan.model_name)
        return self.tr("Choose or download a model first; its projector adds images and speech.")

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        super().changeEvent(event)

    def _retranslate(self) -> None:
        self.text.setText(self._explanation())
        how = self.plan.how
        running = self._job is not None and self._job.active
        self.action_button.setVisible(how in ("download", "build"))
        self.action_button.setEnabled(not running)
        if running:
            text = self.tr("Working on it (see Transfers)")
        elif how == "download":
            text = self.tr("Download &projector")
        else:
            text = self.tr("&Build projector")
        self.action_button.setText(text)
        self.action_button.setAccessibleName(text.replace("&", ""))
        self.setAccessibleName(self.tr("Images and speech"))
