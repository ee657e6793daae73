"""Choosing, validating and loading the model, and reporting progress, success or failure.

A chosen file is first inspected with :func:`model_io.model_info.inspect_model` on a background
thread, so a corrupt file or a projector is rejected with a clear message before the engine (and the
currently loaded model) is touched; only then does the bridge load it.  The projector is picked on
the same thread: the chosen one, else the one that fits best beside the model or in the models folder.
A projector that arrives later (downloaded or built while the user chats) is attached by loading the
model again once the answer in progress has finished.
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
from model_io.events import Done, EngineError, EngineRestart, LoadProgress, MemoryUsage, ModelLoaded
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


def find_projector(model: Path, info: ModelInfo, folders: tuple[Path, ...] = ()) -> Path | None:
    """The projector that fits ``model`` best: beside it first, then in ``folders``; None if none fits.

    Fitting means what mtmd checks when it loads the pair (see :func:`model_io.discovery.projector_score`),
    so a folder holding projectors for several models still gives each model its own.
    """
    from model_io.discovery import Candidate, FoundFile, inspect_candidate, projector_score  # on a worker

    text = FoundFile(Candidate(model, "models", "pair", model.name), info)
    for folder in dict.fromkeys((model.parent, *folders)):
        scored = []
        for path in _projector_files(folder, model):
            found = inspect_candidate(Candidate(path, "models", "pair", path.name))
            score = projector_score(text, found) if found.info and found.info.kind == "mmproj" else None
            if score is not None:
                scored.append((score, str(path)))
        if scored:
            return Path(max(scored)[1])
    return None


def projector_fits(info: ModelInfo, projector: Path) -> bool:
    """Whether ``projector`` is a projector that can be loaded beside the model ``info`` describes."""
    from model_io.discovery import Candidate, FoundFile, inspect_candidate, projector_score  # on a worker

    found = inspect_candidate(Candidate(projector, "models", "pair", projector.name))
    text = FoundFile(Candidate(info.path, "models", "pair", info.path.name), info)
    return found.info is not None and found.info.kind == "mmproj" and projector_score(text, found) is not None


def _projector_files(folder: Path, model: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.gguf") if "mmproj" in p.name.lower() and p != model)


def _inspect_for_loading(path: Path, chosen: Path | None) -> tuple[ModelInfo, Path | None]:
    """Runs on a worker thread: the model's facts and the projector to load with it."""
    info = inspect_model(path)
    if info.kind != "text" or chosen is not None:
        return info, chosen
    return info, find_projector(path, info, (models_dir(),))


class ModelController(QObject):
    """Owns the "which model, is it loaded" state; ``readyChanged`` drives the rest of the window."""

    readyChanged = Signal(bool)
    loadingChanged = Signal(bool)
    openingChanged = Signal(bool)  # a file is being inspected before loading
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
        self._reload_when_idle = False
        self._opening = 0  # inspections in flight
        self.ready = False
        self.info: ModelInfo | None = None
        bridge.loadProgress.connect(self._on_progress)
        bridge.modelLoaded.connect(self._on_loaded)
        bridge.failed.connect(self._on_failed)
        bridge.finished.connect(self._on_answer_finished)
        bridge.memoryUsage.connect(self._on_memory)
        bridge.engineRestarted.connect(self._on_engine_restart)

    @property
    def loading(self) -> bool:
        return self._load_id is not None

    @property
    def opening(self) -> bool:
        """A chosen file is being checked; loading follows unless it is refused."""
        return self._opening > 0

    def start(self) -> None:
        """At launch: the saved model, else the only one in the models folder, else the model manager."""
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

    def use(self, model: Path, projector: Path | None = None) -> None:
        """Load ``model`` (with ``projector``, else the best fitting one found), as the manager asks."""
        self._settings.update(mmproj_path=str(projector) if projector is not None else "")
        self.open_model(model)

    def offer_model(self, model: Path) -> None:
        """A model just arrived (downloaded or imported): load it unless one is loaded or loading."""
        if not (self.ready or self.loading):
            self.use(model)

    def attach_projector(self, projector: Path) -> None:
        """A projector just arrived: if it fits the current model, load the model again with it.

        The reload waits for the answer in progress, so chatting goes on while towers download or build.
        """
        info = self.info
        if info is None or self.media.projector == projector:
            return
        call = BackgroundCall(lambda: projector_fits(info, projector), self)
        call.succeeded.connect(lambda fits: self._on_projector_checked(info, projector, bool(fits)))
        call.failed.connect(self._on_inspect_failed)
        call.start()

    def open_model(self, path: Path) -> None:
        """Validate ``path`` off the GUI thread, then load it; a loaded model stays until then."""
        self._notice.dismiss()
        chosen = self._chosen_projector()
        call = BackgroundCall(lambda: _inspect_for_loading(path, chosen), self)
        call.succeeded.connect(lambda found: self._finish_opening(lambda: self._on_inspected(path, *found)))
        call.failed.connect(lambda error: self._finish_opening(lambda: self._on_inspect_failed(error)))
        self._opening += 1
        if self._opening == 1:
            self.openingChanged.emit(True)
        call.start()

    def _finish_opening(self, handle: Callable[[], None]) -> None:
        """Handle the inspection's outcome (which may start the load), then say the check is over."""
        self._opening -= 1
        handle()
        if not self._opening:
            self.openingChanged.emit(False)

    def reload(self) -> None:
        """Load the configured model again with the current settings (after a settings change)."""
        path = self._settings.load().model_path
        if path:
            self.open_model(Path(path))

    def _chosen_projector(self) -> Path | None:
        chosen = self._settings.load().mmproj_path
        return Path(chosen) if chosen and Path(chosen).is_file() else None

    # -- steps ----------------------------------------------------------------------------------------

    def _on_inspected(self, path: Path, info: ModelInfo, projector: Path | None) -> None:
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
        self._pending_projector = projector
        self._set_media(MediaSupport())
        settings = self._settings.load().load_settings()
        self._load_id = self._bridge.load(path, settings, projector)

    def _on_projector_checked(self, info: ModelInfo, projector: Path, fits: bool) -> None:
        if self.info is None or info.path != self.info.path:
            return  # another model was opened meanwhile
        if not fits:
            message = self.tr("The projector %1 does not fit %2, so it was not attached.")
            self._notice.show_message(
                message.replace("%1", projector.name).replace("%2", info.path.name), "info"
            )
            return
        self._settings.update(mmproj_path=str(projector))
        self._reload_when_idle = True
        self._reload_if_idle()

    def _reload_if_idle(self) -> None:
        if self._reload_when_idle and not self._bridge.generating and not self.loading:
            self._reload_when_idle = False
            if self.info is not None:
                self.open_model(self.info.path)

    def _on_answer_finished(self, _event: Done) -> None:
        self._reload_if_idle()

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

    def _on_memory(self, event: MemoryUsage) -> None:
        if self.ready or self.loading:
            self._status.show_memory(event)

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
        self._reload_if_idle()

    def _on_engine_restart(self, event: EngineRestart) -> None:
        """The engine process crashed: say what happened and follow it back; the conversation is kept.

        The model stays "ready" while the engine restarts: a message sent meanwhile waits in the
        engine and is answered once the model is loaded again.
        """
        if event.phase == "restarting":
            text = self.tr("The engine stopped unexpectedly and is restarting: %1")
            self._notice.show_message(text.replace("%1", event.message))
        elif event.phase == "ready" and not self.loading:
            if event.info is not None and self.ready:
                self._status.show_model(self._pending[1], event.info)
            text = self.tr(
                "The engine was restarted in %1 s after it stopped unexpectedly: %2. Your conversation "
                "is kept: press Retry to answer the last message again."
            )
            seconds = f"{event.elapsed_ms / 1000:.1f}"
            self._notice.show_message(text.replace("%1", seconds).replace("%2", event.message), "info")
        elif event.phase == "failed" and not self.loading:
            self._fail(event.message)

    def _set_media(self, media: MediaSupport) -> None:
        if media != self.media:
            self.media = media
            self.mediaChanged.emit(media)

    def _on_failed(self, event: EngineError) -> None:
        if event.request_id != self._load_id:
            self._reload_if_idle()  # an answer failed: the chat is idle
            return
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
