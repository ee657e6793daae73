"""The push-to-talk microphone, opened off the GUI thread and kept open a little while after use.

Opening a capture stream (PortAudio → ALSA → PulseAudio, or CoreAudio) can take a fifth of a
second and more on a busy machine, and its first audio may arrive a second or two later; the GUI
thread must not wait for either.  So :meth:`MicrophoneHolder.want` opens the chosen device on a
background thread and ``ready`` delivers it on the GUI thread; ``failed`` carries the error as a
value.  :meth:`release_later` closes it after a grace period, so switching windows for a moment
does not cost the next press its pre-roll, while a user who leaves the app is not listened to.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from app.gui.devices import MicrophoneFactory
from app.gui.tasks import BackgroundCall
from model_io.capture import Microphone

RELEASE_GRACE_MS = 10_000


class MicrophoneHolder(QObject):
    """Owns at most one open :class:`Microphone`, for the device last asked for."""

    ready = Signal(object)  # Microphone, open and capturing (pre-roll filling)
    failed = Signal(str)  # why the device could not be opened

    def __init__(self, factory: MicrophoneFactory, parent: QObject | None = None):
        super().__init__(parent)
        self._factory = factory
        self._microphone: Microphone | None = None
        self._device: str | None = None
        self._opening: str | None = None  # device being opened on the background thread
        self._wanted: str | None = None
        self._release = QTimer(self, singleShot=True, interval=RELEASE_GRACE_MS)
        self._release.timeout.connect(self.close)

    @property
    def current(self) -> Microphone | None:
        """The open microphone, if it is for the device last asked for."""
        return self._microphone if self._microphone is not None and self._device == self._wanted else None

    @property
    def opening(self) -> bool:
        return self._opening is not None

    def want(self, device: str) -> None:
        """Make sure ``device`` is open (or being opened); ``ready`` follows when it is new."""
        self._release.stop()
        self._wanted = device
        if self.current is not None or self._opening == device:
            return
        self._close_microphone()
        self._opening = device
        call = BackgroundCall(lambda: self._open(device), self)
        call.succeeded.connect(lambda microphone: self._on_opened(device, microphone))
        call.failed.connect(lambda error: self._on_failed(device, error))
        call.start()

    def release_later(self) -> None:
        """Close after the grace period, unless wanted again before."""
        if self._microphone is not None or self._opening is not None:
            self._release.start()

    def close(self) -> None:
        """Close now (device change, window closing); an open under way is closed when it lands."""
        self._release.stop()
        self._wanted = None
        self._close_microphone()

    def _open(self, device: str) -> Microphone:
        microphone = self._factory(device)
        microphone.start()
        return microphone

    def _on_opened(self, device: str, microphone: Microphone) -> None:
        if self._opening == device:
            self._opening = None
        if device != self._wanted or self._microphone is not None:
            microphone.close()  # nobody wants it any more
            return
        self._microphone, self._device = microphone, device
        self.ready.emit(microphone)

    def _on_failed(self, device: str, error: Exception) -> None:
        if self._opening == device:
            self._opening = None
        if device == self._wanted:
            self.failed.emit(str(error))

    def _close_microphone(self) -> None:
        microphone, self._microphone, self._device = self._microphone, None, None
        if microphone is not None:
            microphone.close()
