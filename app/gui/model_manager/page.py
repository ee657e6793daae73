"""The model manager page: the sections stacked in a scroll area, under a title and a way back to chat.

It only lays the sections out and renders library snapshots; the sections emit what the user asks
for and :class:`app.gui.model_manager.manager.ModelManager` connects those requests to the controller.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.gui.model_manager.catalog_view import CatalogView
from app.gui.model_manager.jobs_view import JobsView
from app.gui.model_manager.local_view import LocalView
from app.gui.model_manager.projector_box import ProjectorBox
from app.gui.model_manager.token_box import TokenBox
from app.gui.widgets.status_panel import human_bytes


class ModelManagerPage(QWidget):
    """Download, transfers, projector, token and local models, one titled group each."""

    backRequested = Signal()

    def __init__(self, total_ram: int | None, folder: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self._total_ram = total_ram
        self._folder = folder
        self.title = QLabel(self)
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.title.setFont(font)
        self.intro = QLabel(self)
        self.intro.setWordWrap(True)
        self.back_button = QPushButton(self)
        self.back_button.clicked.connect(self.backRequested)
        self.back_button.setVisible(False)
        self.catalog = CatalogView(self)
        self.jobs = JobsView(self)
        self.projector = ProjectorBox(self)
        self.token = TokenBox(self)
        self.local = LocalView(self)
        self._groups = {  # transfers first: progress stays in view above the long catalog
            "jobs": self._group(self.jobs),
            "catalog": self._group(self.catalog),
            "projector": self._group(self.projector),
            "token": self._group(self.token),
            "local": self._group(self.local),
        }
        self.jobs.tab_anchor = self.back_button  # job buttons come first when tabbing through the page
        self.jobs_group = self._groups["jobs"]
        self.jobs_group.setVisible(False)
        self._layout()
        self._retranslate()

    def _group(self, content: QWidget) -> QGroupBox:
        group = QGroupBox(self)
        layout = QVBoxLayout(group)
        layout.addWidget(content)
        return group

    def _layout(self) -> None:
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.back_button, 0, Qt.AlignmentFlag.AlignTop)
        body = QWidget(self)
        column = QVBoxLayout(body)
        column.addLayout(header)
        column.addWidget(self.intro)
        for group in self._groups.values():
            column.addWidget(group)
        column.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(body)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    def set_can_go_back(self, can: bool) -> None:
        self.back_button.setVisible(can)

    def show_jobs_group(self, visible: bool) -> None:
        self.jobs_group.setVisible(visible)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        super().changeEvent(event)

    def _retranslate(self) -> None:
        self.title.setText(self.tr("Models"))
        ram = (
            self.tr("This computer has %1 of RAM.").replace("%1", human_bytes(self._total_ram))
            if self._total_ram
            else ""
        )
        self.intro.setText(
            self.tr(
                "Gemma Desk runs Google's Gemma 3n entirely on this computer, so it needs a model file. "
                "%1 Download one below (E2B is smaller and faster, E4B answers better), or use one you "
                "already have. Downloads go on while you chat, and an interrupted one resumes where it "
                "stopped. Downloaded and imported models are kept in %2."
            )
            .replace("%1", ram)
            .replace("%2", str(self._folder))
        )
        self.back_button.setText(self.tr("&Back to the conversation"))
        self.back_button.setAccessibleName(self.tr("Back to the conversation"))
        titles = {
            "catalog": self.tr("Download a model"),
            "jobs": self.tr("Transfers"),
            "projector": self.tr("Images and speech"),
            "token": self.tr("Hugging Face token"),
            "local": self.tr("On this computer"),
        }
        for key, title in titles.items():
            self._groups[key].setTitle(title)
            self._groups[key].setAccessibleName(title)
        self.setAccessibleName(self.tr("Model manager"))
