"""The settings presenter: runs the dialog, saves what changed, and reloads or retranslates as needed."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from app.gui import i18n
from app.gui.controllers.model import ModelController
from app.gui.settings import AppSettings, GuiSettings
from app.gui.widgets.notice_bar import NoticeBar
from model_io.errors import InputError

# Shows the dialog for the given settings; returns the edited settings, or None if cancelled.
SettingsEditor = Callable[[GuiSettings], GuiSettings | None]


class SettingsController(QObject):
    """Applies settings live: a model reload when load settings change, a new translator for language."""

    settingsChanged = Signal(object)

    def __init__(
        self,
        settings: AppSettings,
        model: ModelController,
        notice: NoticeBar,
        editor: SettingsEditor,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._settings, self._model, self._notice, self._editor = settings, model, notice, editor

    def edit(self) -> None:
        edited = self._editor(self._settings.load())
        if edited is not None:
            self.apply(edited)

    def apply(self, new: GuiSettings) -> bool:
        """Validate, save and act on ``new``; returns whether a model reload was started."""
        old = self._settings.load()
        try:
            new.validated()
        except InputError as exc:
            self._notice.show_message(self.tr("Settings not saved: %1").replace("%1", str(exc)))
            return False
        self._settings.save(new)
        if new.ui_language != old.ui_language:
            i18n.apply_language(new.ui_language)
        self.settingsChanged.emit(new)
        reload = old.needs_reload(new) and (self._model.ready or self._model.loading or bool(new.model_path))
        if reload:
            self._model.reload()
        return reload
