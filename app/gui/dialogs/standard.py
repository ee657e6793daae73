"""The real dialogs behind the window's injectable callables (file pickers, confirmations, settings)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDialog, QFileDialog, QMessageBox, QWidget

from app.gui.controllers.attachments import ImageChooser
from app.gui.controllers.history import Confirm, ExportChooser
from app.gui.controllers.model import FileChooser
from app.gui.controllers.settings import SettingsEditor
from app.gui.devices import default_microphones
from app.gui.dialogs.settings_dialog import SettingsDialog
from app.gui.settings import GuiSettings
from model_io.paths import models_dir


def _no_file() -> Path | None:
    return None


def _no_files() -> list[Path]:
    return []


@dataclass(frozen=True)
class Dialogs:
    """Everything the window asks the user through a modal dialog."""

    choose_model: FileChooser
    choose_export: ExportChooser
    confirm_delete: Confirm
    edit_settings: SettingsEditor
    choose_projector: FileChooser = _no_file
    choose_images: ImageChooser = _no_files
    choose_folder: FileChooser = _no_file


class StandardDialogs(QObject):
    """Qt's file dialogs and message boxes, parented to the window."""

    def __init__(self, window: QWidget):
        super().__init__(window)
        self._window = window

    def choose_model(self) -> Path | None:
        start = str(models_dir()) if models_dir().is_dir() else ""
        path, _ = QFileDialog.getOpenFileName(
            self._window,
            self.tr("Choose a Gemma 3n model"),
            start,
            self.tr("GGUF models (*.gguf);;All files (*)"),
        )
        return Path(path) if path else None

    def choose_projector(self) -> Path | None:
        path, _ = QFileDialog.getOpenFileName(
            self._window,
            self.tr("Choose the projector (mmproj) for images and speech"),
            str(models_dir()) if models_dir().is_dir() else "",
            self.tr("Projectors (*mmproj*.gguf);;GGUF files (*.gguf);;All files (*)"),
        )
        return Path(path) if path else None

    def choose_folder(self) -> Path | None:
        path = QFileDialog.getExistingDirectory(self._window, self.tr("Add a folder to search for models"))
        return Path(path) if path else None

    def choose_images(self) -> list[Path]:
        paths, _ = QFileDialog.getOpenFileNames(
            self._window,
            self.tr("Attach images"),
            "",
            self.tr("Images (*.png *.jpg *.jpeg *.webp *.gif *.bmp *.tif *.tiff);;All files (*)"),
        )
        return [Path(p) for p in paths]

    def choose_export(self, suggested: str, fmt: str) -> Path | None:
        name_filter = self.tr("Markdown (*.md)") if fmt == "md" else self.tr("JSON (*.json)")
        path, _ = QFileDialog.getSaveFileName(
            self._window, self.tr("Export conversation"), suggested, name_filter
        )
        return Path(path) if path else None

    def confirm_delete(self, title: str) -> bool:
        shown = title or self.tr("Untitled conversation")
        question = self.tr("Delete “%1”? This cannot be undone.").replace("%1", shown)
        answer = QMessageBox.question(self._window, self.tr("Delete conversation"), question)
        return answer == QMessageBox.StandardButton.Yes

    def edit_settings(self, current: GuiSettings) -> GuiSettings | None:
        dialog = SettingsDialog(current, self._window, default_microphones())
        try:
            return dialog.value() if dialog.exec() == QDialog.DialogCode.Accepted else None
        finally:
            dialog.deleteLater()


def standard_dialogs(window: QWidget) -> Dialogs:
    dialogs = StandardDialogs(window)
    return Dialogs(
        dialogs.choose_model,
        dialogs.choose_export,
        dialogs.confirm_delete,
        dialogs.edit_settings,
        dialogs.choose_projector,
        dialogs.choose_images,
        dialogs.choose_folder,
    )
