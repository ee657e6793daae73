"""Push-to-talk: hold the button or the shortcut to record, release to send, per the composer's mode.

* Chat: the clip, with any typed text and attached images, becomes one user turn.
* Transcribe / Translate: the speech recipe (``transcription_request`` / ``translation_request``),
  answered on its own and streamed into the conversation.

While the key is held, the new samples go to the engine every ~50 ms (``stream_sink``), which
encodes them as they come, so at release only the tail is left to encode.  The clip sent is
exactly the concatenation of the pieces streamed, so the engine recognises it as encoded.

The microphone is armed while the window is active and push-to-talk is available, so even the
first press gets the pre-roll (the words said just before the key went down); it is released when
the window loses focus, the device setting changes or the window closes, so no other app's time
is spent listening.  The level meter and clock poll
the microphone at ~20 Hz on a QTimer; the audio thread never touches Qt.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QEvent, QKeyCombination, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtWidgets import QApplication, QWidget

from app.gui.controllers.chat import ChatController, SettingsSource
from app.gui.devices import MicrophoneFactory
from app.gui.widgets.composer import Composer, Mode
from app.gui.widgets.notice_bar import NoticeBar
from model_io.capture import Microphone
from model_io.errors import InputError
from model_io.events import AudioStreamFeed, new_request_id
from model_io.media import MediaInput
from model_io.speech import SAMPLE_RATE, find_language, transcription_request, translation_request

METER_INTERVAL_MS = 50
MIN_CLIP_SECONDS = 0.3
AudioFeedSink = Callable[[AudioStreamFeed], None]


class VoiceController(QObject):
    """Owns the microphone; ``clipRecorded(seconds)`` after each release that sent something."""

    clipRecorded = Signal(float)

    def __init__(
        self,
        composer: Composer,
        chat: ChatController,
        notice: NoticeBar,
        settings: SettingsSource,
        microphone_factory: MicrophoneFactory,
        stream_sink: AudioFeedSink | None = None,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._composer, self._chat, self._notice = composer, chat, notice
        self._settings, self._factory = settings, microphone_factory
        self._stream_sink = stream_sink
        self._stream_id: int | None = None
        self._preroll_seconds = 0.0
        self._pieces: list[np.ndarray] = []
        self._microphone: Microphone | None = None
        self._device: str | None = None
        self._window: QWidget | None = None
        self._shortcut = QKeyCombination()
        self._meter = QTimer(self, interval=METER_INTERVAL_MS)
        self._meter.timeout.connect(self._poll)
        composer.talk.pressed.connect(self.press)
        composer.talk.released.connect(self.release)
        self.set_shortcut(settings().talk_shortcut)

    @property
    def recording(self) -> bool:
        return self._microphone is not None and self._microphone.is_recording

    @property
    def armed_seconds(self) -> float:
        """Audio heard since the microphone was armed (0 when it is closed): the pre-roll available."""
        microphone = self._microphone
        return microphone.captured_seconds if microphone is not None else 0.0

    @property
    def recorded_seconds(self) -> float:
        """Length of the utterance being recorded (0 when idle)."""
        microphone = self._microphone
        return microphone.recorded_seconds if microphone is not None and microphone.is_recording else 0.0

    # -- shortcut ---------------------------------------------------------------------------------------

    def watch_keys(self, window: QWidget) -> None:
        """Hold-to-talk anywhere in ``window``: an application filter sees the key before any widget."""
        self._window = window
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    def stop_watching(self) -> None:
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
        self._window = None

    def set_shortcut(self, text: str) -> None:
        sequence = QKeySequence(text)
        self._shortcut = sequence[0] if not sequence.isEmpty() else QKeyCombination()  # type: ignore[index]
        self._composer.talk.set_shortcut(sequence.toString(QKeySequence.SequenceFormat.NativeText))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.WindowDeactivate and watched is self._window:
            if self.recording:
                self.release()  # the key-up will go to another window: do not record forever
            self.close()
            return False
        if (kind == QEvent.Type.WindowActivate and watched is self._window) or (
            kind == QEvent.Type.EnabledChange and watched is self._composer.talk.button
        ):
            self._arm()
            return False
        if kind not in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease, QEvent.Type.ShortcutOverride):
            return False
        if not isinstance(event, QKeyEvent) or not self._in_window(watched) or not self._matches(event, kind):
            return False
        if kind == QEvent.Type.ShortcutOverride:
            event.accept()  # ours: no QAction or widget binding may take it
            return True
        if not event.isAutoRepeat():
            if kind == QEvent.Type.KeyPress:
                self.press()
            else:
                self.release()
        return True

    def _in_window(self, watched: QObject) -> bool:
        return self._window is not None and isinstance(watched, QWidget) and watched.window() is self._window

    def _matches(self, event: QKeyEvent, kind: QEvent.Type) -> bool:
        key = self._shortcut.key()
        if key == Qt.Key.Key_unknown or event.key() != key:
            return False
        if kind == QEvent.Type.KeyRelease:
            return self.recording  # modifiers may already be up when the key is released
        modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        return modifiers == self._shortcut.keyboardModifiers()

    # -- recording --------------------------------------------------------------------------------------

    def press(self) -> None:
        if self.recording:
            return
        talk = self._composer.talk
        if not talk.button.isEnabled():
            self._notice.show_message(talk.button.toolTip(), "info")
            return
        if self._chat.busy:
            self._notice.show_message(
                self.tr("Wait for the answer to finish (or stop it) before talking."), "info"
            )
            return
        microphone = self._open()
        if microphone is None:
            return
        try:
            microphone.start_recording()
        except InputError as exc:
            self._fail(str(exc))
            return
        self._preroll_seconds = microphone.recorded_seconds  # what the clip holds from before the press
        if self._stream_sink is not None:
            self._stream_id, self._pieces = new_request_id(), []
        self._meter.start()
        self._poll()

    def release(self) -> None:
        microphone = self._microphone
        if microphone is None or not microphone.is_recording:
            return
        self._meter.stop()
        clip = microphone.stop_recording()
        self._composer.talk.show_idle()
        stream_id, self._stream_id = self._stream_id, None
        if stream_id is not None:
            self._pieces.append(microphone.read_new())  # the tail, resampler flushed
            clip = np.concatenate(self._pieces)
        seconds = len(clip) / SAMPLE_RATE
        if seconds - self._preroll_seconds < MIN_CLIP_SECONDS:  # a tap, not speech
            self._end_stream(stream_id, discard=True)
            self._notice.show_message(self.tr("Too short: hold the button while you speak."), "info")
            return
        self._end_stream(stream_id, discard=False)
        self._send(MediaInput("audio", clip, label=self.tr("recording")))
        self.clipRecorded.emit(seconds)

    def _stream_new_samples(self, microphone: Microphone) -> None:
        """Pass what was recorded since the last call to the engine, to encode while the user speaks."""
        if self._stream_id is None or self._stream_sink is None:
            return
        piece = microphone.read_new()
        if piece.size:
            self._pieces.append(piece)
            self._stream_sink(AudioStreamFeed(self._stream_id, piece))

    def _end_stream(self, stream_id: int | None, *, discard: bool) -> None:
        if stream_id is None or self._stream_sink is None:
            return
        tail = np.zeros(0, np.float32) if discard else self._pieces[-1]
        self._stream_sink(AudioStreamFeed(stream_id, tail, final=not discard, discard=discard))
        self._pieces = []

    def _send(self, clip: MediaInput) -> None:
        mode = self._composer.mode
        if mode is Mode.CHAT:
            self._chat.send(self._composer.take_turn((clip,)))
        elif mode is Mode.TRANSCRIBE:
            self._chat.send_speech(transcription_request(clip))
        else:
            code = str(self._composer.language_box.currentData())
            self._chat.send_speech(translation_request(clip, find_language(code)))

    def _poll(self) -> None:
        microphone = self._microphone
        if microphone is None or not microphone.is_recording:
            return
        self._stream_new_samples(microphone)
        self._composer.talk.show_recording(microphone.recorded_seconds, microphone.level_dbfs())
        if microphone.limit_reached:
            self._notice.show_message(
                self.tr("Recording stopped at 30 s, the longest clip Gemma hears."), "info"
            )
            self.release()

    def _arm(self) -> None:
        """Start listening ahead of a press (pre-roll) when the window is active and talk is possible."""
        window = self._window
        if window is None or not window.isActiveWindow() or not self._composer.talk.button.isEnabled():
            return
        with contextlib.suppress(InputError):  # said when the user presses: nobody asked to record yet
            self._microphone_for_settings()

    def _open(self) -> Microphone | None:
        try:
            return self._microphone_for_settings()
        except InputError as exc:
            self._fail(str(exc))
            return None

    def _microphone_for_settings(self) -> Microphone:
        """The running microphone of the chosen device, opened (or reopened) if needed."""
        device = self._settings().microphone
        if self._microphone is not None and device == self._device:
            return self._microphone
        self.close()
        microphone = self._factory(device)
        microphone.start()
        self._microphone, self._device = microphone, device
        return microphone

    def _fail(self, message: str) -> None:
        self._end_stream(self._stream_id, discard=True)
        self._stream_id = None
        self._meter.stop()
        self._composer.talk.show_idle()
        self._notice.show_message(self.tr("Cannot record: %1").replace("%1", message))

    def close(self) -> None:
        """Release the microphone (device change, window closing)."""
        self._end_stream(self._stream_id, discard=True)
        self._stream_id = None
        self._meter.stop()
        microphone, self._microphone = self._microphone, None
        if microphone is not None:
            microphone.close()
        self._composer.talk.show_idle()
