"""Typed user settings: one ``Key`` enum over QSettings, stored as an INI file beside the user's data.

The INI file (rather than the registry or a plist) lives under ``GEMMA_DESK_HOME`` when that is set, so
tests and portable installs never touch the real user's settings; otherwise in platformdirs' config dir.
Widgets never read QSettings directly: they get a frozen :class:`GuiSettings` snapshot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import platformdirs
from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtGui import QKeySequence

from model_io.errors import InputError
from model_io.paths import APP_NAME, HOME_ENV
from model_io.settings import AUTO_CONTEXT, LoadSettings, SamplingSettings, default_threads

UI_LANGUAGES = ("system", "en", "es")
DEFAULT_TALK_SHORTCUT = "Ctrl+Space"


AUTO_GPU_LAYERS = -2  # stored value for "let the memory plan choose" (-1 means all layers)


class Key(StrEnum):
    """Every persisted setting, as a ``group/key`` path."""

    MODEL_PATH = "model/path"
    MMPROJ_PATH = "model/mmproj_path"
    THREADS = "model/threads"
    CONTEXT = "model/context"
    GPU_LAYERS = "model/gpu_layers"
    TEMPERATURE = "sampling/temperature"
    TOP_K = "sampling/top_k"
    TOP_P = "sampling/top_p"
    SEED = "sampling/seed"
    MAX_TOKENS = "sampling/max_tokens"
    UI_LANGUAGE = "ui/language"
    MICROPHONE = "media/microphone"
    TALK_SHORTCUT = "media/talk_shortcut"
    CAMERA = "media/camera"
    HF_TOKEN = "model/hf_token"
    WINDOW_GEOMETRY = "ui/window_geometry"
    SPLITTER_STATE = "ui/splitter_state"


def gui_default_threads() -> int:
    """Like model_io's default, but leaving one core to the GUI thread.

    llama.cpp's worker threads synchronise by spinning; when they occupy every core, the GUI
    thread's rendering deschedules one of them and decoding collapses (measured on 2 cores: 180
    tok/s with 1 thread while streaming into the window, 11-16 tok/s with 2).
    """
    return max(1, min(default_threads(), (os.cpu_count() or 1) - 1))


@dataclass(frozen=True)
class GuiSettings:
    """A validated snapshot of everything the settings dialog edits."""

    model_path: str = ""
    threads: int = 0
    context: int = AUTO_CONTEXT  # AUTO_CONTEXT: the memory plan chooses
    gpu_layers: int = AUTO_GPU_LAYERS  # AUTO_GPU_LAYERS: the memory plan chooses; -1: all
    temperature: float = 1.0
    top_k: int = 64
    top_p: float = 0.95
    seed: int = -1  # -1: a fresh random seed per answer
    max_tokens: int = 1024
    ui_language: str = "system"
    mmproj_path: str = ""  # "" = the only *mmproj*.gguf beside the model, if there is exactly one
    microphone: str = ""  # device name; "" = the system default
    talk_shortcut: str = DEFAULT_TALK_SHORTCUT
    camera: str = ""  # camera index or video path; "" = the first camera
    hf_token: str = dataclasses.field(default="", repr=False)  # Hugging Face token for gated repos

    def load_settings(self) -> LoadSettings:
        threads = self.threads or gui_default_threads()
        layers = None if self.gpu_layers == AUTO_GPU_LAYERS else self.gpu_layers
        return LoadSettings(n_ctx=self.context, n_threads=threads, n_gpu_layers=layers)

    def sampling(self) -> SamplingSettings:
        return SamplingSettings(
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            seed=None if self.seed < 0 else self.seed,
        )

    def needs_reload(self, other: GuiSettings) -> bool:
        """Whether going from ``self`` to ``other`` means loading the model again."""
        mine = (self.model_path, self.mmproj_path, self.load_settings())
        return mine != (other.model_path, other.mmproj_path, other.load_settings())

    def validated(self) -> GuiSettings:
        """Raise InputError (with model_io's own message) if any value is out of range."""
        self.load_settings()
        self.sampling()
        if self.max_tokens < 1:
            raise InputError(f"max tokens must be at least 1, got {self.max_tokens}")
        if self.ui_language not in UI_LANGUAGES:
            raise InputError(f"unknown UI language {self.ui_language!r}")
        if QKeySequence(self.talk_shortcut).isEmpty():
            raise InputError(f"not a keyboard shortcut: {self.talk_shortcut!r}")
        return self


_FIELD_KEYS: dict[str, Key] = {
    "model_path": Key.MODEL_PATH,
    "threads": Key.THREADS,
    "context": Key.CONTEXT,
    "gpu_layers": Key.GPU_LAYERS,
    "temperature": Key.TEMPERATURE,
    "top_k": Key.TOP_K,
    "top_p": Key.TOP_P,
    "seed": Key.SEED,
    "max_tokens": Key.MAX_TOKENS,
    "ui_language": Key.UI_LANGUAGE,
    "mmproj_path": Key.MMPROJ_PATH,
    "microphone": Key.MICROPHONE,
    "talk_shortcut": Key.TALK_SHORTCUT,
    "camera": Key.CAMERA,
    "hf_token": Key.HF_TOKEN,
}


def settings_path() -> Path:
    """``$GEMMA_DESK_HOME/config/settings.ini``, else the platform's per-user config folder."""
    home = os.environ.get(HOME_ENV, "").strip()
    folder = (
        Path(home).expanduser() / "config"
        if home
        else Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
    )
    return folder / "settings.ini"


class AppSettings:
    """Reads and writes :class:`GuiSettings` and window state through QSettings."""

    def __init__(self, path: Path | None = None):
        self.path = path or settings_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._qsettings = QSettings(str(self.path), QSettings.Format.IniFormat)

    def load(self) -> GuiSettings:
        """The stored settings; each value that is missing, mistyped or out of range gets its default.

        Field by field, so one bad hand-edited value never costs the user their model path.
        """
        settings = GuiSettings()
        for name, key in _FIELD_KEYS.items():
            default = getattr(settings, name)
            value = _coerce(self._qsettings.value(key.value, default), default)
            with contextlib.suppress(InputError):
                settings = dataclasses.replace(settings, **{name: value}).validated()
        return settings

    def save(self, settings: GuiSettings) -> None:
        for field in dataclasses.fields(settings):
            self._qsettings.setValue(_FIELD_KEYS[field.name].value, getattr(settings, field.name))
        self._qsettings.sync()

    def update(self, **changes: Any) -> GuiSettings:
        """Change some fields, validate, persist and return the new snapshot."""
        new = dataclasses.replace(self.load(), **changes).validated()
        self.save(new)
        return new

    def bytes_value(self, key: Key) -> QByteArray | None:
        value = self._qsettings.value(key.value)
        return value if isinstance(value, QByteArray) else None

    def set_bytes_value(self, key: Key, value: QByteArray) -> None:
        self._qsettings.setValue(key.value, value)
        self._qsettings.sync()


def _coerce(value: object, default: object) -> Any:
    """INI files give strings back; convert to the default's type, or fall back to the default."""
    try:
        if isinstance(default, bool):
            return value in (True, "true", "1", 1)
        if isinstance(default, int):
            return int(str(value))
        if isinstance(default, float):
            return float(str(value))
        return str(value) if value is not None else default
    except ValueError:
        return default
