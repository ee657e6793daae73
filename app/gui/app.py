"""Start the desktop app: QApplication, language, theme, the main window, then Qt's event loop."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from app.gui import i18n, qt_fixes, theme
from app.gui.main_window import MainWindow
from app.gui.resources import icon_path
from app.gui.settings import AppSettings

APP_DISPLAY_NAME = "Gemma Desk"
# Briefcase installs the desktop entry as <bundle>.<app name>.desktop; Wayland finds the window's icon
# and name through this id (tests/test_packaging_config.py checks it against pyproject.toml).
APP_ID = "org.gemmadesk.gemma-desk"


def create_application(argv: Sequence[str] | None = None) -> QApplication:
    """The QApplication, named so QSettings and the desktop entry (StartupWMClass) agree."""
    qt_fixes.apply()
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    app = QApplication(list(argv) if argv is not None else sys.argv)
    app.setApplicationName(APP_DISPLAY_NAME)
    app.setApplicationDisplayName(APP_DISPLAY_NAME)
    app.setOrganizationName("GemmaDesk")
    app.setDesktopFileName(APP_ID)
    app.setWindowIcon(QIcon(str(icon_path())))
    return app


def main(argv: Sequence[str] | None = None) -> int:
    app = create_application(argv)
    settings = AppSettings()
    i18n.apply_language(settings.load().ui_language)
    theme.follow_system(app)
    window = MainWindow(settings)
    window.show()
    window.start()
    return app.exec()
