"""Where Gemma Desk keeps its files.

``GEMMA_DESK_HOME`` overrides the platform directories (tests and portable
installs use it); otherwise platformdirs picks the per-user locations.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "GemmaDesk"
HOME_ENV = "GEMMA_DESK_HOME"


def _home_override() -> Path | None:
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    """Models, history and other durable user data."""
    override = _home_override()
    return override / "data" if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    """Rebuildable files: synthetic test models, extracted tokenizers."""
    override = _home_override()
    return override / "cache" if override else Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    """Default folder for downloaded and imported GGUF files."""
    return data_dir() / "models"
