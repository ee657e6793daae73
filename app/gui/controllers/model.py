"""Choosing, validating and loading the model, and reporting progress, success or failure.

A chosen file is first inspected with :func:`model_io.model_info.inspect_model` on a background
thread, so a corrupt file or a projector is rejected with a clear message before the engine (and the
currently loaded model) is touched; only then does the bridge load it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.gui.bridge import EngineBridge
from app.gui.settings import AppSettings
from app.gui.tasks import BackgroundCall
from app.gui.widgets.notice_bar import NoticeBar
from app.gui.widgets.status_panel import StatusPanel
from model_io.errors import GemmaDeskError
from model_io.events import EngineError, LoadProgress, ModelLoaded
from model_io.model_info import ModelInfo, inspect_model
from model_io.paths import models_dir

FileChooser = Callable[[], Path | None]


@dataclass(frozen=True)
class MediaSupport:
    """What the loaded model can take besides text; ``projector`` is None when none was loaded."""

    projector: Path | None = None
    has_vision: bool = False
    has_audio: bool = False


def discover_model(folder: Path) -> Path | None:
    """The only text GGUF in ``folder`` (projectors excluded), as the CLI does; else None."""
    if not folder.is_dir():
        return None
    candidates = [p for p in folder.glob("*.gguf") if "mmproj" not in p.name.lower()]
    return candidates[0] if len(candidates) == 1 else None


def discover_projector(model: Path) -> Path | None:
    """The only ``*mmproj*.gguf`` beside ``model``; None when there is none or the choice is ambiguous."""
    folder = model.parent
    if not folder.is_dir():
        return None
    candidates = [p for p in folder.glob("*.gguf") if "mmproj" in p.name.lower() and p != model]
    return candidates[0] if len(candidates) == 1 else None


class ModelController(QObject):
    """Owns the "which model, is it loaded" state; ``readyChanged`` drives the rest of the window."""

    readyChanged = Signal(bool)
    loadingChanged = Signal(bool)
    mediaChanged = Signal(MediaSupport)

    def __init__(
        self,
        bridge: EngineBridge,
        settings: AppSettings,
        status: StatusPanel,
        notice: NoticeBar,
        choose_file: FileChooser,
        parent: QObject | None = None,
        *,
        choose_projector: FileChooser | None = None,
    ):
        super().__init__(parent)
        self._bridge = bridge
        self._settings = settings
        self._status = status
        self._notice = notice
        self._choose_file = choose_file
        self._choose_projector = choose_projector or (lambda: None)
        self.media = MediaSupport()
        self._pending_projector: Path | None = None
        self._load_id: int | None = None
        self._pending: tuple[Path, str] = (Path(), "")
        self.ready = False
        self.info: ModelInfo | None = None
        bridge.loadProgress.connect(self._on_progress)
        bridge.modelLoaded.connect(self._on_loaded)
        bridge.failed.connect(self._on_failed)

    @property
    def loading(self) -> bool:
        return self._load_id is not None

    def start(self) -> None:
        """At launch: the saved model, else the only one in the models folder, else the empty state."""
        saved = self._settings.load().model_path
        if saved:
            self.open_model(Path(saved))
            return
        found = discover_model(models_dir())
        if found is not None:
            self.open_model(found)

    def choose(self) -> None:
        path = self._choose_file()
        if path is not None:
            if str(path) != self._settings.load().model_path:
                self._settings.update(mmproj_path="")  # a chosen projector belonged to the old model
            self.open_model(path)

    def choose_projector(self) -> None:
        """Pick the projector (mmproj) explicitly and load the model again with it."""
        path = self._choose_projector()
        if path is None:
            return
        self._settings.update(mmproj_path=str(path))
        if self._settings.load().model_path:
            self.reload()

    def projector_for(self, model: Path) -> Path | None:
        """The chosen projector if it still exists, else the only one beside the model."""
        chosen = self._settings.load().mmproj_path
        if chosen and Path(chosen).is_file():
            return Path(chosen)
        return discover_projector(model)

    def open_model(self, path: Path) -> None:
        """Validate ``path`` off the GUI thread, then load it; a loaded model stays until then."""
        self._notice.dismiss()
        call = BackgroundCall(lambda: inspect_model(path), self)
        call.succeeded.connect(lambda info: self._on_inspected(path, info))
        call.failed.connect(self._on_inspect_failed)
        call.start()

    def reload(self) -> None:
        """Load the configured model again with the current settings (after a settings change)."""
        path = self._settings.load().model_path
        if path:
            self.open_model(Path(path))

    # -- steps ----------------------------------------------------------------------------------------

    def _on_inspected(self, path: Path, info: ModelInfo) -> None:
        if info.kind == "mmproj":
            self._reject(
                self.tr(
                    "%1 is a multimodal projector (mmproj), not a language model. Choose the Gemma 3n "
                    "model file itself; projectors are loaded alongside it."
                ).replace("%1", path.name)
            )
            return
        self.info = info
        self._pending = (path, info.name or path.stem)
        self._status.show_loading(path.name)
        self._set_ready(False)
        self.loadingChanged.emit(True)
        self._pending_projector = self.projector_for(path)
        self._set_media(MediaSupport())
        settings = self._settings.load().load_settings()
        self._load_id = self._bridge.load(path, settings, self._pending_projector)

    def _on_inspect_failed(self, error: BaseException) -> None:
        if isinstance(error, GemmaDeskError):
            self._reject(str(error))
        else:
            self._reject(self.tr("could not read the file: %1").replace("%1", repr(error)))

    def _reject(self, message: str) -> None:
        """The file was refused before loading: whatever model is loaded keeps working."""
        self._notice.show_message(self.tr("The model could not be loaded: %1").replace("%1", message))

    def _on_progress(self, event: LoadProgress) -> None:
        if event.request_id == self._load_id:
            self._status.set_progress(event.fraction)

    def _on_loaded(self, event: ModelLoaded) -> None:
        if event.request_id != self._load_id:
            return
        self._load_id = None
        path, name = self._pending
        self._settings.update(model_path=str(path))
        self._status.show_model(name, event.info)
        self.loadingChanged.emit(False)
        info = event.info
        self._set_media(MediaSupport(info.mmproj_path, info.has_vision, info.has_audio))
        self._set_ready(True)

    def _set_media(self, media: MediaSupport) -> None:
        if media != self.media:
            self.media = media
            self.mediaChanged.emit(media)

    def _on_failed(self, event: EngineError) -> None:
        if event.request_id == self._load_id:
            self._load_id = None
            message = event.message
            if self._pending_projector is not None:
                message = (
                    self.tr("%1 (with the projector %2; choose another with File, Choose projector)")
                    .replace("%1", message)
                    .replace("%2", self._pending_projector.name)
                )
                if self._settings.load().mmproj_path == str(self._pending_projector):
                    self._settings.update(mmproj_path="")  # the next start is not stuck on it
            self._fail(message)

    def _fail(self, message: str) -> None:
        self._status.clear_model()
        self._notice.show_message(self.tr("The model could not be loaded: %1").replace("%1", message))
        self.loadingChanged.emit(False)
        self._set_ready(False)

    def _set_ready(self, ready: bool) -> None:
        if ready != self.ready:
            self.ready = ready
            self.readyChanged.emit(ready)
