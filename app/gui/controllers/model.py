"""Choosing, validating and loading the model, and reporting progress, success or failure.

A chosen file is first inspected with :func:`model_io.model_info.inspect_model` on a background
thread, so a corrupt file or a projector is rejected with a clear message before the engine (and the
currently loaded model) is touched; only then does the bridge load it.
"""

from __future__ import annotations

from collections.abc import Callable
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


def discover_model(folder: Path) -> Path | None:
    """The only text GGUF in ``folder`` (projectors excluded), as the CLI does; else None."""
    if not folder.is_dir():
        return None
    candidates = [p for p in folder.glob("*.gguf") if "mmproj" not in p.name.lower()]
    return candidates[0] if len(candidates) == 1 else None


class ModelController(QObject):
    """Owns the "which model, is it loaded" state; ``readyChanged`` drives the rest of the window."""

    readyChanged = Signal(bool)
    loadingChanged = Signal(bool)

    def __init__(
        self,
        bridge: EngineBridge,
        settings: AppSettings,
        status: StatusPanel,
        notice: NoticeBar,
        choose_file: FileChooser,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._bridge = bridge
        self._settings = settings
        self._status = status
        self._notice = notice
        self._choose_file = choose_file
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
            self.open_model(path)

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
        self._load_id = self._bridge.load(path, self._settings.load().load_settings())

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
        self._set_ready(True)

    def _on_failed(self, event: EngineError) -> None:
        if event.request_id == self._load_id:
            self._load_id = None
            self._fail(event.message)

    def _fail(self, message: str) -> None:
        self._status.clear_model()
        self._notice.show_message(self.tr("The model could not be loaded: %1").replace("%1", message))
        self.loadingChanged.emit(False)
        self._set_ready(False)

    def _set_ready(self, ready: bool) -> None:
        if ready != self.ready:
            self.ready = ready
            self.readyChanged.emit(ready)
