"""The webcam panel's behaviour: run the camera while the panel is shown, preview, snapshot to the composer.

Frames arrive on the camera's reader thread (at most 15 per second): each is turned into an owned
``QImage`` there (explicit stride, ``copy()``) and handed to the GUI thread by a queued signal, so the
GUI thread only scales and paints.
"""

from __future__ import annotations

import contextlib

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage

from app.gui.controllers.attachments import AttachmentController
from app.gui.devices import CameraFactory, CameraLister, camera_source
from app.gui.settings import AppSettings
from app.gui.widgets.attachments import rgb_to_qimage
from app.gui.widgets.camera_panel import CameraPanel
from model_io.camera import Camera, Frame
from model_io.errors import InputError


class CameraController(QObject):
    """Starts the camera when the panel becomes visible and closes it when hidden."""

    _frame = Signal(QImage)  # emitted on the reader thread, delivered queued
    _error = Signal(str)

    def __init__(
        self,
        panel: CameraPanel,
        attachments: AttachmentController,
        settings: AppSettings,
        factory: CameraFactory,
        lister: CameraLister,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._panel, self._attachments, self._settings = panel, attachments, settings
        self._factory, self._lister = factory, lister
        self._camera: Camera | None = None
        self._frame.connect(panel.show_frame, Qt.ConnectionType.QueuedConnection)
        self._error.connect(self._on_error, Qt.ConnectionType.QueuedConnection)
        panel.visibilityChanged.connect(self._on_visibility)
        panel.snapshotRequested.connect(self.snapshot)
        panel.cameraChosen.connect(self._on_chosen)
        self._cameras: list[tuple[str, object]] = []

    @property
    def running(self) -> bool:
        return self._camera is not None

    def refresh_cameras(self) -> None:
        try:
            cameras = self._lister()
        except InputError:
            cameras = []
        wanted = self._settings.load().camera
        if wanted and all(str(source) != wanted for _, source in cameras):
            cameras = [(wanted, camera_source(wanted)), *cameras]
        self._cameras = list(cameras)
        current = next((i for i, (_, s) in enumerate(cameras) if str(s) == wanted), 0)
        self._panel.set_cameras(cameras, current)

    def start(self) -> None:
        self.stop()
        self.refresh_cameras()
        source = self._panel.picker.currentData()
        if source is None:
            self._panel.show_status(self.tr("No camera found. Connect one and open this panel again."))
            return
        self._panel.show_status(self.tr("Starting the camera…"))
        try:
            camera = self._factory(source, self._on_frame, self._on_camera_error)
            camera.start()
        except InputError as exc:
            self._panel.show_status(str(exc))
            return
        self._camera = camera

    def stop(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            camera.close(timeout=0.5)  # a driver stuck in read is left to finish on its own

    def snapshot(self) -> None:
        """The newest frame, decoded off the GUI thread, into the composer's attachments."""
        camera = self._camera
        if camera is not None:
            self._attachments.add_media(lambda: camera.snapshot(self.tr("camera snapshot")))

    # -- reader thread --------------------------------------------------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        image = rgb_to_qimage(frame.rgb())
        with contextlib.suppress(RuntimeError):  # the controller was deleted: nobody is watching
            self._frame.emit(image)

    def _on_camera_error(self, error: InputError) -> None:
        with contextlib.suppress(RuntimeError):
            self._error.emit(str(error))

    # -- GUI thread -----------------------------------------------------------------------------------

    def _on_error(self, message: str) -> None:
        self.stop()
        self._panel.show_status(message)

    def _on_visibility(self, visible: bool) -> None:
        if visible and self._camera is None:
            self.start()
        elif not visible:
            self.stop()

    def _on_chosen(self, index: int) -> None:
        if 0 <= index < len(self._cameras):
            self._settings.update(camera=str(self._cameras[index][1]))
            if self._panel.isVisible():
                self.start()
