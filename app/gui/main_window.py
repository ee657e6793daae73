"""The main window: a composition root that builds the panels and controllers and wires them together.

It holds no chat, model or history logic.  Its own jobs are layout, the page shown (model manager or
conversation), window state, and the non-blocking close: the first close request is ignored while
the engine shuts down on a helper thread and downloads are cancelled (their partial files kept), and
the window closes when the bridge reports ``closed`` and the last job has stopped (or after
``CLOSE_FALLBACK_MS`` if either does not answer).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMainWindow, QSplitter, QStackedWidget, QVBoxLayout, QWidget

from app.gui.actions import WindowActions
from app.gui.bridge import EngineBridge, EngineFactory
from app.gui.controllers.attachments import AttachmentController
from app.gui.controllers.camera import CameraController
from app.gui.controllers.chat import ChatController
from app.gui.controllers.history import HistoryController
from app.gui.controllers.model import MediaSupport, ModelController
from app.gui.controllers.settings import SettingsController
from app.gui.controllers.voice import VoiceController
from app.gui.devices import Devices
from app.gui.dialogs.standard import Dialogs, standard_dialogs
from app.gui.history.store import HistoryStore
from app.gui.model_manager.manager import ModelManager
from app.gui.models_state import LibraryConfig
from app.gui.settings import AppSettings, GuiSettings, Key
from app.gui.widgets.camera_panel import CameraPanel
from app.gui.widgets.composer import Composer
from app.gui.widgets.conversation_view import ConversationView
from app.gui.widgets.notice_bar import NoticeBar
from app.gui.widgets.sidebar import HistorySidebar
from app.gui.widgets.status_panel import StatusPanel
from model_io.engine_process import ProcessEngine
from model_io.events import Stats

CLOSE_FALLBACK_MS = 5000


class MainWindow(QMainWindow):
    """Builds panels and controllers; see the module docstring for what it does itself."""

    close_fallback_ms = CLOSE_FALLBACK_MS

    def __init__(
        self,
        settings: AppSettings,
        store: HistoryStore | None = None,
        *,
        engine_factory: EngineFactory = ProcessEngine,  # isolated: a native crash cannot close the window
        dialogs: Dialogs | None = None,
        devices: Devices | None = None,
        model_library: LibraryConfig | None = None,
    ):
        super().__init__()
        self.devices = devices or Devices()
        self.settings = settings
        self.store = store or HistoryStore()
        self.bridge = EngineBridge(engine_factory, self)
        self._closing = False
        self._force_close = False
        self._closed = False
        self._manager_requested = False
        self._build_panels()
        self._build_controllers(dialogs or standard_dialogs(self), model_library)
        self.commands = WindowActions(self)
        self._layout()
        self._wire()
        self._retranslate()
        self._restore_state()
        self._update_page()

    def start(self) -> None:
        """Begin loading the saved model (after show, so the window appears at once)."""
        self.model.start()
        self._update_page()

    # -- construction ---------------------------------------------------------------------------------

    def _build_panels(self) -> None:
        self.sidebar = HistorySidebar(self)
        self.notice = NoticeBar(self)
        self.conversation_view = ConversationView(self)
        self.composer = Composer(self)
        self.status_panel = StatusPanel(self)
        self.camera_panel = CameraPanel(self)

    def _build_controllers(self, dialogs: Dialogs, model_library: LibraryConfig | None) -> None:
        self.models = ModelManager(
            self.settings, dialogs.choose_model, dialogs.choose_folder, model_library, self
        )
        self.model_manager = self.models.page
        self.model = ModelController(
            self.bridge,
            self.settings,
            self.status_panel,
            self.notice,
            dialogs.choose_model,
            self,
            choose_projector=dialogs.choose_projector,
        )
        self.chat = ChatController(
            self.bridge, self.conversation_view, self.composer, self.store, self.notice, self.settings.load
        )
        self.chat.setParent(self)
        self.history = HistoryController(
            self.store, self.sidebar, self.chat, self.notice, dialogs.choose_export, dialogs.confirm_delete
        )
        self.history.setParent(self)
        self.settings_controller = SettingsController(
            self.settings, self.model, self.notice, dialogs.edit_settings, self
        )
        self.attachments = AttachmentController(self.composer, dialogs.choose_images, self)
        self.voice = VoiceController(
            self.composer,
            self.chat,
            self.notice,
            self.settings.load,
            self.devices.microphone,
            self.bridge.feed_audio,
            self,
        )
        self.camera = CameraController(
            self.camera_panel,
            self.attachments,
            self.settings,
            self.devices.camera,
            self.devices.cameras,
            self,
        )

    def _layout(self) -> None:
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.model_manager)
        self.pages.addWidget(self.conversation_view)
        right = QWidget(self)
        column = QVBoxLayout(right)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.notice)
        column.addWidget(self.pages, 1)
        column.addWidget(self.composer)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([240, 760])
        self.setCentralWidget(self.splitter)
        self.statusBar().addPermanentWidget(self.status_panel, 1)
        self.statusBar().addPermanentWidget(self.models.indicator)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.camera_panel)
        self.camera_panel.setVisible(False)
        self.setAcceptDrops(True)
        self.installEventFilter(self.attachments)
        self.setTabOrder(self.sidebar.list, self.conversation_view)
        self.setTabOrder(self.conversation_view, self.composer.editor)

    def _wire(self) -> None:
        self.model.readyChanged.connect(self.composer.set_ready)
        self.model.readyChanged.connect(self.chat.set_model_ready)
        self.model.readyChanged.connect(lambda _ready: self._update_actions())
        self.model.readyChanged.connect(lambda _ready: self._update_page())
        self.model.loadingChanged.connect(lambda _loading: self._update_page())
        self.model.openingChanged.connect(lambda _opening: self._update_page())
        self.chat.busyChanged.connect(lambda _busy: self._update_actions())
        self.chat.conversationChanged.connect(self._update_page)
        self.chat.conversationChanged.connect(self._update_actions)
        self.chat.conversationSaved.connect(lambda _id: self._update_actions())
        self.bridge.statsReady.connect(self._show_stats)
        self.model.mediaChanged.connect(self._show_media)
        self.settings_controller.settingsChanged.connect(self._settings_changed)
        self.voice.watch_keys(self)
        self._wire_model_manager()
        self.composer.editingChanged.connect(lambda _editing: self._update_actions())
        actions = self.commands
        actions.open_model.triggered.connect(self.model.choose)
        actions.choose_projector.triggered.connect(self.model.choose_projector)
        actions.manage_models.triggered.connect(self.show_model_manager)
        actions.attach_image.triggered.connect(self.attachments.choose)
        actions.show_camera.toggled.connect(self.camera_panel.setVisible)
        self.camera_panel.visibilityChanged.connect(actions.show_camera.setChecked)
        actions.new_chat.triggered.connect(self.history.new_chat)
        actions.export_markdown.triggered.connect(lambda: self._export_current("md"))
        actions.export_json.triggered.connect(lambda: self._export_current("json"))
        actions.settings.triggered.connect(self.settings_controller.edit)
        actions.quit.triggered.connect(self.close)
        actions.send.triggered.connect(self.composer.submit)
        actions.stop.triggered.connect(self._stop_or_cancel_edit)
        actions.regenerate.triggered.connect(self.chat.regenerate)
        actions.edit_last.triggered.connect(self.chat.edit_last)
        actions.focus_composer.triggered.connect(self.composer.focus_prompt)
        actions.about.triggered.connect(self._about)
        actions.attach_image.setEnabled(False)
        self._update_actions()

    def _wire_model_manager(self) -> None:
        """Arrivals go to the model controller; the manager learns which model is in use."""
        manager = self.models
        manager.controller.modelArrived.connect(lambda arrival: self.model.offer_model(arrival.path))
        manager.controller.projectorArrived.connect(lambda arrival: self.model.attach_projector(arrival.path))
        manager.useRequested.connect(self._use_model)
        manager.openRequested.connect(self.show_model_manager)
        manager.page.backRequested.connect(self._leave_model_manager)
        manager.controller.allStopped.connect(self._maybe_finish_close)
        self.model.readyChanged.connect(lambda _ready: self._tell_manager_the_model())
        self.model.loadingChanged.connect(lambda _loading: self._tell_manager_the_model())
        self.model.mediaChanged.connect(lambda _media: self._tell_manager_the_model())

    # -- behaviour that belongs to the window ---------------------------------------------------------

    def show_model_manager(self) -> None:
        self._manager_requested = True
        self._update_page()
        self.models.page.catalog.tree.setFocus()

    def _leave_model_manager(self) -> None:
        self._manager_requested = False
        self._update_page()
        if self.composer.isVisible():
            self.composer.focus_prompt()

    def _use_model(self, model: Path, projector: Path | None) -> None:
        self.model.use(model, projector)
        self._leave_model_manager()

    def _tell_manager_the_model(self) -> None:
        in_use = self.model.ready or self.model.loading
        self.models.set_current_model(self.model.info if in_use else None, self.model.media.projector)

    def _show_stats(self, event: Stats) -> None:
        self.status_panel.show_stats(event.stats)

    def _show_media(self, media: MediaSupport) -> None:
        projector = media.projector is not None
        self.composer.set_media(vision=media.has_vision, audio=media.has_audio, projector=projector)
        self.commands.attach_image.setEnabled(media.has_vision)

    def _settings_changed(self, new: GuiSettings) -> None:
        self.voice.set_shortcut(new.talk_shortcut)

    def _update_page(self) -> None:
        """The model manager when asked for, or while there is neither a model (or one loading) nor a
        conversation; otherwise the conversation."""
        no_model = not (self.model.ready or self.model.loading or self.model.opening)
        empty = no_model and not self.chat.conversation.messages
        manager = empty or self._manager_requested
        self.pages.setCurrentWidget(self.model_manager if manager else self.conversation_view)
        self.composer.setVisible(not manager)
        self.models.page.set_can_go_back(manager and not empty)
        if manager and self.isVisible():  # not while the window is being built: start() decides
            self.models.page_shown()

    def _update_actions(self) -> None:
        """Esc is only claimed while there is something to stop, so it still cancels menus and renames."""
        self.commands.stop.setEnabled(self.chat.busy or self.composer.editing)
        can_generate = self.chat.can_generate and self.chat.conversation.can_regenerate()
        self.commands.regenerate.setEnabled(can_generate)
        self.commands.edit_last.setEnabled(can_generate)
        has_conversation = self.chat.conversation.conversation_id is not None
        self.commands.export_markdown.setEnabled(has_conversation)
        self.commands.export_json.setEnabled(has_conversation)

    def _stop_or_cancel_edit(self) -> None:
        if self.chat.busy:
            self.chat.stop()
        else:
            self.composer.cancel_edit()

    def _export_current(self, fmt: str) -> None:
        conversation_id = self.chat.conversation.conversation_id
        if conversation_id is not None:
            self.history.export(conversation_id, fmt)

    def _about(self) -> None:
        self.notice.show_message(
            self.tr("Gemma Desk runs Google's Gemma 3n on this computer with llama.cpp. Nothing leaves it."),
            "info",
        )

    # -- window state and closing ---------------------------------------------------------------------

    def _restore_state(self) -> None:
        geometry = self.settings.bytes_value(Key.WINDOW_GEOMETRY)
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1100, 720)
        splitter = self.settings.bytes_value(Key.SPLITTER_STATE)
        if splitter is not None:
            self.splitter.restoreState(splitter)

    def closeEvent(self, event: QCloseEvent) -> None:
        if (self.bridge.is_closed and not self.models.controller.busy) or self._force_close:
            self._finish_close()
            event.accept()
            return
        event.ignore()
        if self._closing:
            return
        self._closing = True
        self.chat.stop()  # keeps the partial answer in history
        self.voice.close()
        self.camera.stop()
        self.setEnabled(False)
        self.statusBar().showMessage(self.tr("Closing…"))
        self.bridge.closed.connect(self._maybe_finish_close)
        QTimer.singleShot(self.close_fallback_ms, self._force)
        self.models.controller.shutdown()  # cancels downloads; their partial files stay for a resume
        self.bridge.shutdown()

    def _maybe_finish_close(self) -> None:
        if self._closing and self.bridge.is_closed and not self.models.controller.busy:
            self.close()

    def _force(self) -> None:
        if not self.isHidden():  # the engine or a job did not stop in time
            self._force_close = True
            self.close()

    def _finish_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.voice.stop_watching()
        self.settings.set_bytes_value(Key.WINDOW_GEOMETRY, self.saveGeometry())
        self.settings.set_bytes_value(Key.SPLITTER_STATE, self.splitter.saveState())
        self.store.close()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self._retranslate()
        super().changeEvent(event)

    def _retranslate(self) -> None:
        self.setWindowTitle(self.tr("Gemma Desk"))
        if hasattr(self, "commands"):
            self.commands.retranslate()
