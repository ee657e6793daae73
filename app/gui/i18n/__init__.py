"""UI translations: Qt's own translator with ``gemma_desk_<lang>.qm`` files shipped in this package.

English is the source language (no file needed).  ``.ts`` files are the editable sources; run
``python -m app.gui.i18n.build`` after changing strings to refresh them with lupdate and compile the
``.qm`` files with lrelease (both come with PySide6-Essentials).  Widgets retranslate themselves on
``QEvent.LanguageChange``, so switching language needs no restart.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QLibraryInfo, QLocale, QTranslator

log = logging.getLogger("gemma_desk.gui.i18n")
SHIPPED = ("en", "es")
_installed: list[QTranslator] = []


def language_names() -> dict[str, str]:
    """Each shipped language in its own name, as language pickers conventionally show them."""
    return {"en": "English", "es": "Español"}


def qm_path(language: str) -> Path:
    return Path(str(resources.files(__name__).joinpath(f"gemma_desk_{language}.qm")))


def resolve(language: str) -> str:
    """``system`` becomes the first shipped language the system prefers, else English."""
    if language != "system":
        return language if language in SHIPPED else "en"
    for name in QLocale.system().uiLanguages():
        code = name.replace("_", "-").split("-")[0].lower()
        if code in SHIPPED:
            return code
    return "en"


def apply_language(language: str) -> str:
    """Install the translators for ``language`` (replacing earlier ones); return the code applied."""
    app = QCoreApplication.instance()
    code = resolve(language)
    for translator in _installed:
        if app is not None:
            app.removeTranslator(translator)
    _installed.clear()
    if code == "en" or app is None:
        return code
    for path in (qm_path(code), _qt_translations(code)):
        translator = QTranslator(app)
        if path is not None and translator.load(str(path)):
            app.installTranslator(translator)
            _installed.append(translator)
        elif path is not None and path.name.startswith("gemma_desk"):
            log.warning("translation %s is missing or unreadable", path)
    return code


def _qt_translations(code: str) -> Path | None:
    """Qt's own strings (standard dialog buttons) in ``code``, when the Qt build ships them."""
    folder = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath))
    candidate = folder / f"qtbase_{code}.qm"
    return candidate if candidate.exists() else None
