"""Push-to-talk: hold the button or the shortcut to record, release to send, per the composer's mode.

* Chat: the clip, with any typed text and attached images, becomes one user turn.
* Transcribe / Translate: the speech recipe (``transcription_request`` / ``translation_request``),
  answered on its own and streamed into the conversation.

While the key is held, the new samples go to the engine every ~50 ms (``stream_sink``), which
encodes them as they come, so at release only the tail is left to encode.  The clip sent is
exactly the concatenation of the pieces streamed, so the engine recognises it as encoded.

The microphone is armed while the window is active and push-to-talk is available, so even the
first press gets the pre-roll (the words said just before the key went down).  It is opened off
the GUI thread (``MicrophoneHolder``); a press while it is still opening records from the moment it
is ready.  It is released 10 s after the window loses focus (a quick look elsewhere keeps the
pre-roll ready), when the device setting changes, or when the window closes.  The level meter and clock poll
the microphone at ~20 Hz on a QTimer; the audio thread never touches Qt.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QEvent, QKeyCombination, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtWidgets import QApplication, QWidget

from app.gui.controllers.chat import ChatController, SettingsSource
from app.gui.controllers.microphone_holder import MicrophoneHolder
from app.gui.devices import MicrophoneFactory
from app.gui.widgets.composer import Composer, Mode
from app.gui.widgets.notice_bar import NoticeBar
from model_io.capture import Microphone
from model_io.errors import InputError
from model_io.events import AudioStreamFeed, new_request_id
from model_io.media import MediaInput
from model_io.speech import SAMPLE_RATE, find_language, transcription_request, translation_request

METER_INTERVAL_MS = 50
# X11 auto-repeat arrives as release-press pairs that Qt flags as repeats only at first; a release
# counts once no press of the key follows within this time (measured: the pair comes within ~2 ms).
KEY_RELEASE_GRACE_MS = 60
MIN_CLIP_SECONDS = 0.3
SILENT_DBFS = -200.0
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
        self._settings = settings
        self._stream_sink = stream_sink
        self._stream_id: int | None = None
        self._preroll_seconds = 0.0
        self._pieces: list[np.ndarray] = []
        self._holder = MicrophoneHolder(microphone_factory, self)
        self._holder.ready.connect(self._on_microphone_ready)
        self._holder.failed.connect(self._on_microphone_failed)
        self._press_pending = False  # pressed while the microphone was still opening
        self._window: QWidget | None = None
        self._shortcut = QKeyCombination()
        self._meter = QTimer(self, interval=METER_INTERVAL_MS)
        self._meter.timeout.connect(self._poll)
        self._key_held = False  # the shortcut is down; while held, its presses are repeats
        self._key_release = QTimer(self, singleShot=True, interval=KEY_RELEASE_GRACE_MS)
        self._key_release.timeout.connect(self._on_key_released)
        composer.talk.pressed.connect(self.press)
        composer.talk.released.connect(self.release)
        self.set_shortcut(settings().talk_shortcut)

    @property
    def recording(self) -> bool:
        """The user is holding to talk (also while the microphone is still opening)."""
        microphone = self._holder.current
        return self._press_pending or (microphone is not None and microphone.is_recording)

    @property
    def armed_seconds(self) -> float:
        """Audio heard since the microphone was armed (0 when it is closed): the pre-roll available."""
        microphone = self._holder.current
        return microphone.captured_seconds if microphone is not None else 0.0

    @property
    def recorded_seconds(self) -> float:
        """Length of the utterance being recorded (0 when idle)."""
        microphone = self._holder.current
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
            self._key_held = False
            if self.recording:
                self.release()  # the key-up will go to another window: do not record forever
            self._holder.release_later()
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
        if kind == QEvent.Type.KeyPress:
            self._key_release.stop()  # X11 auto-repeat sends release-press pairs: still held
            if not self._key_held:
                self._key_held = True
                self.press()  # a refused press (answer streaming) stays refused until the key is up
        else:
            self._key_release.start()  # released, unless a repeat press follows at once
        return True

    def _on_key_released(self) -> None:
        self._key_held = False
        self.release()

    def _in_window(self, watched: QObject) -> bool:
        return self._window is not None and isinstance(watched, QWidget) and watched.window() is self._window

    def _matches(self, event: QKeyEvent, kind: QEvent.Type) -> bool:
        key = self._shortcut.key()
        if key == Qt.Key.Key_unknown or event.key() != key:
            return False
        if kind == QEvent.Type.KeyRelease or self._key_held:
            return self._key_held  # modifiers may be up already while the key repeats or is released
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
        self._holder.want(self._settings().microphone)
        microphone = self._holder.current
        if microphone is None:  # opening on its thread: recording starts when it is ready
            self._press_pending = True
            self._composer.talk.show_recording(0.0, SILENT_DBFS)
            return
        self._start_recording(microphone)

    def _start_recording(self, microphone: Microphone) -> None:
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
        if self._press_pending:
            self._press_pending = False
            self._composer.talk.show_idle()
            starting = self.tr("The microphone was still starting: hold a moment longer.")
            self._notice.show_message(starting, "info")
            return
        microphone = self._holder.current
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
        microphone = self._holder.current
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
        self._holder.want(self._settings().microphone)

    def _on_microphone_ready(self, microphone: Microphone) -> None:
        if self._press_pending:
            self._press_pending = False
            self._start_recording(microphone)

    def _on_microphone_failed(self, message: str) -> None:
        if self._press_pending:  # when only arming, say nothing: nobody asked to record yet
            self._press_pending = False
            self._fail(message)

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
        self._press_pending = False
        self._holder.close()
        self._composer.talk.show_idle()
