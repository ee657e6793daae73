"""Images, push-to-talk and the webcam in the window, on the real engine with the tiny model and projector.

The microphone is a ``FakeAudioBackend`` playing a tone, the camera a video file written with OpenCV.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gui_support
import numpy as np
import pytest
from engine_helpers import CountingAudio
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from app.gui.controllers import microphone_holder
from app.gui.devices import Devices
from app.gui.main_window import MainWindow
from app.gui.widgets.composer import Mode
from model_io.camera import Camera, SourceSpec
from model_io.capture import Microphone
from model_io.capture_fakes import FakeAudioBackend
from model_io.engine import Engine, EventSink
from model_io.events import AudioStreamFeed, Stats
from model_io.media import MediaInput
from model_io.towers import default_factories

TONE = (0.3 * np.sin(np.arange(16_000 * 4) * 2 * np.pi * 440 / 16_000)).astype(np.float32)


@pytest.fixture(scope="module")
def model_dirs(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny model alone in one folder, and beside its projector (both towers) in another."""
    from model_io.synth.mmproj import write_mmproj_for

    text_only = tmp_path_factory.mktemp("text-only")
    (text_only / tiny_model.name).symlink_to(tiny_model)
    media = tmp_path_factory.mktemp("with-projector")
    (media / tiny_model.name).symlink_to(tiny_model)
    write_mmproj_for("tiny", media / "gemma-3n-tiny-mmproj.gguf")
    return {"text": text_only / tiny_model.name, "media": media / tiny_model.name}


@pytest.fixture
def gui(qtbot: QtBot) -> Iterator[gui_support.GuiHarness]:
    harness = gui_support.GuiHarness(qtbot)
    yield harness
    harness.close_all()


def picture(path: Path, seed: int = 3) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(path)
    return path


def fake_microphone(device: str) -> Microphone:
    return Microphone(device or None, backend=FakeAudioBackend(source=TONE, loop=True), max_seconds=30)


def with_microphone() -> Devices:
    return Devices(microphone=fake_microphone, camera=gui_support.no_devices().camera, cameras=list)


def stats_of(window: MainWindow) -> list[Stats]:
    seen: list[Stats] = []
    window.bridge.statsReady.connect(seen.append)
    return seen


def hold_to_talk(
    gui: gui_support.GuiHarness, window: MainWindow, seconds: float = 0.8, screenshot: str = ""
) -> None:
    """Press the shortcut (Ctrl+Space) in the prompt, wait while "speaking", release."""
    editor = window.composer.editor
    gui.qtbot.keyPress(editor, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    assert window.voice.recording
    gui.qtbot.waitUntil(lambda: window.composer.talk.meter.value() > -60, timeout=5_000)
    gui.qtbot.waitUntil(lambda: window.voice.recorded_seconds >= seconds, timeout=10_000)
    assert window.composer.talk.clock.isVisible() and window.composer.talk.clock.text().startswith("0:")
    if screenshot:
        gui_support.screenshot(window, screenshot)
    gui.qtbot.keyRelease(editor, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    gui.qtbot.waitUntil(lambda: not window.voice.recording, timeout=2_000)  # after the repeat grace


def test_projector_beside_the_model_enables_images_and_speech(
    gui: gui_support.GuiHarness, model_dirs: dict[str, Path]
) -> None:
    window = gui.open(model_dirs["media"])
    media = window.model.media
    assert media.projector == model_dirs["media"].parent / "gemma-3n-tiny-mmproj.gguf"
    assert media.has_vision and media.has_audio
    composer = window.composer
    assert composer.attach_button.isEnabled() and window.commands.attach_image.isEnabled()
    assert composer.talk.button.isEnabled()
    modes = composer.mode_box.model()
    assert all(modes.item(row).isEnabled() for row in range(len(Mode)))  # type: ignore[attr-defined]
    assert window.status_panel.media_label.text() == "images + speech"
    assert "gemma-3n-tiny-mmproj.gguf" in window.status_panel.media_label.toolTip()


def test_without_projector_media_is_disabled_and_says_why(
    gui: gui_support.GuiHarness, model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    dialogs = gui_support.FakeDialogs(image_files=[picture(tmp_path / "a.png")])
    window = gui.open(model_dirs["text"], dialogs=dialogs)
    composer = window.composer
    assert window.model.media.projector is None
    assert not composer.attach_button.isEnabled() and "mmproj" in composer.attach_button.toolTip()
    assert not window.commands.attach_image.isEnabled()
    assert not composer.talk.button.isEnabled() and "mmproj" in composer.talk.button.toolTip()
    window.attachments.choose()  # e.g. a drop: refused inline, with the reason
    assert composer.attach_error.isVisible() and "mmproj" in composer.attach_error.text()
    assert composer.attachments.items == []
    window.voice.press()
    assert window.notice.isVisible() and "audio tower" in window.notice.label.text()
    assert window.status_panel.media_label.text() == "text only"


def test_choosing_a_projector_reloads_with_it(
    gui: gui_support.GuiHarness, model_dirs: dict[str, Path]
) -> None:
    projector = model_dirs["media"].parent / "gemma-3n-tiny-mmproj.gguf"
    window = gui.open(model_dirs["text"], dialogs=gui_support.FakeDialogs(projector_file=projector))
    assert not window.model.media.has_vision
    window.commands.choose_projector.trigger()
    gui.qtbot.waitUntil(lambda: window.model.media.has_vision, timeout=gui_support.LOAD_TIMEOUT_MS)
    assert window.settings.load().mmproj_path == str(projector)
    assert window.composer.attach_button.isEnabled() and window.composer.talk.button.isEnabled()


def test_a_bad_projector_is_reported_and_forgotten(
    gui: gui_support.GuiHarness, model_dirs: dict[str, Path]
) -> None:
    text_model = model_dirs["text"]
    window = gui.open(text_model, dialogs=gui_support.FakeDialogs(projector_file=text_model))
    window.commands.choose_projector.trigger()  # a language model is no projector
    gui.qtbot.waitUntil(lambda: window.notice.isVisible(), timeout=gui_support.LOAD_TIMEOUT_MS)
    assert "Choose projector" in window.notice.label.text() and text_model.name in window.notice.label.text()
    assert window.settings.load().mmproj_path == "" and not window.model.media.has_vision
    window.model.reload()  # without it, the model loads again
    gui.wait_ready(window)


def test_attached_image_is_answered_and_the_follow_up_reuses_it(
    gui: gui_support.GuiHarness, model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    dialogs = gui_support.FakeDialogs(image_files=[picture(tmp_path / "cat.png")])
    window = gui.open(model_dirs["media"], dialogs=dialogs, max_tokens=6)
    stats = stats_of(window)
    window.commands.attach_image.trigger()
    gui.qtbot.waitUntil(lambda: len(window.composer.attachments.items) == 1, timeout=10_000)
    chip = window.composer.attachments.chips[0]
    assert chip.preview.pixmap() is not None and not chip.preview.pixmap().isNull()
    gui_support.screenshot(window, "media-image-attached")
    gui.send(window, "What is in this picture?")
    gui.wait_answer(window)
    first = window.chat.conversation.messages
    assert first[0].attachment_kinds == ("image",) and first[1].state == "done" and first[1].text
    assert stats[-1].stats.image_encode_ms > 0
    assert "image encode" in window.status_panel.stats_label.text()
    assert window.composer.attachments.items == []
    gui.send(window, "Say more.")
    gui.wait_answer(window)
    assert stats[-1].stats.image_encode_ms == 0  # the image's rows are still in the KV cache
    assert stats[-1].stats.prompt_tokens_prefilled < stats[-1].stats.prompt_tokens
    assert "image encode" not in window.status_panel.stats_label.text()
    gui_support.screenshot(window, "media-image-answered")
    # History records the attachment by digest; reopening shows the marker on the user turn.
    cid = window.chat.conversation.conversation_id
    assert cid is not None
    saved = window.store.load(cid)
    assert saved.messages[0].attachments == first[0].attachments and saved.messages[0].attachment_kinds == (
        "image",
    )
    window.history.new_chat()
    window.history.open(cid)
    marker = window.conversation_view.widgets[0].attachments_label
    gui.qtbot.waitUntil(marker.isVisible, timeout=5_000)  # layouts show new widgets on the next loop turn
    assert marker.text() == "[1 image]"
    # The pixels were kept too (content-addressed), so a follow-up after reopening still sees the image.
    reopened = window.chat.conversation.messages[0]
    assert [p.digest for p in reopened.parts if not isinstance(p, str)] == list(first[0].attachments)
    assert (window.store.media_dir / f"{first[0].attachments[0]}.npy").is_file()
    gui.send(window, "And the colours?")
    gui.wait_answer(window)
    assert stats[-1].stats.image_encode_ms > 0  # reopening reset the KV cache: the image is encoded again


def test_pasted_images_dropped_files_and_errors(
    gui: gui_support.GuiHarness, model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    window = gui.open(model_dirs["media"])
    composer = window.composer
    image = QImage(40, 30, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.darkGreen)
    mime = QMimeData()
    mime.setImageData(image)
    composer.editor.insertFromMimeData(mime)  # what Ctrl+V does
    gui.qtbot.waitUntil(lambda: len(composer.attachments.items) == 1, timeout=10_000)
    assert composer.attachments.items[0].label == "pasted image"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    dropped = QMimeData()
    dropped.setUrls([QUrl.fromLocalFile(str(broken)), QUrl.fromLocalFile(str(picture(tmp_path / "b.png")))])
    composer.editor.insertFromMimeData(dropped)  # what a drop onto the prompt does
    gui.qtbot.waitUntil(lambda: window.attachments.pending == 0, timeout=10_000)
    assert len(composer.attachments.items) == 2
    assert composer.attach_error.isVisible() and "broken.png" in composer.attach_error.text()
    composer.attachments.chips[0].remove_button.click()
    assert [m.label for m in composer.attachments.items] == ["b.png"]


def test_push_to_talk_in_each_mode(gui: gui_support.GuiHarness, model_dirs: dict[str, Path]) -> None:
    window = gui.open(model_dirs["media"], devices=with_microphone(), max_tokens=4)
    stats = stats_of(window)
    window.composer.editor.setPlainText("Listen:")
    hold_to_talk(gui, window, screenshot="media-push-to-talk-recording")
    gui.wait_answer(window)
    messages = window.chat.conversation.messages
    assert messages[0].text == "Listen:" and messages[0].attachment_kinds == ("audio",)
    assert messages[1].state == "done" and stats[-1].stats.audio_encode_ms > 0
    assert "audio encode" in window.status_panel.stats_label.text()
    gui_support.screenshot(window, "media-push-to-talk-chat")

    window.composer.mode_box.setCurrentIndex(list(Mode).index(Mode.TRANSCRIBE))
    gui.send(window, "typed text")  # Enter in a speech mode explains itself and keeps the text
    assert "hold to talk" in window.composer.attach_error.text() and not window.chat.busy
    assert window.composer.editor.toPlainText() == "typed text"
    window.composer.editor.clear()
    button = window.composer.talk.button
    gui.qtbot.mousePress(button, Qt.MouseButton.LeftButton)  # the big button works by press/release too
    assert window.voice.recording and button.text() == "Recording… release to send"
    gui.qtbot.waitUntil(lambda: window.voice.recorded_seconds > 0.6, timeout=10_000)
    gui.qtbot.mouseRelease(button, Qt.MouseButton.LeftButton)
    assert not window.voice.recording
    gui.wait_answer(window)
    transcribe = window.chat.conversation.messages[-2]
    assert transcribe.standalone and transcribe.text.startswith("Transcribe")
    assert window.chat.conversation.prompt()[0].text.startswith("Listen:")  # history keeps every turn

    window.composer.mode_box.setCurrentIndex(list(Mode).index(Mode.TRANSLATE))
    window.composer.language_box.setCurrentIndex(window.composer.language_box.findData("es"))
    hold_to_talk(gui, window)
    gui.wait_answer(window)
    translate = window.chat.conversation.messages[-2]
    assert translate.standalone and "Spanish" in translate.text
    assert window.chat.conversation.messages[-1].state == "done"
    assert len(window.chat.conversation.messages) == 6


def test_push_to_talk_encodes_while_the_key_is_held(
    gui: gui_support.GuiHarness, model_dirs: dict[str, Path]
) -> None:
    audio = CountingAudio()
    fed: list[AudioStreamFeed] = []

    class StreamingEngine(Engine):
        def feed_audio(self, feed: AudioStreamFeed) -> None:
            fed.append(feed)
            super().feed_audio(feed)

    def engine(sink: EventSink) -> Engine:
        return StreamingEngine(sink, tower_factories={**default_factories(), "audio": audio})

    window = gui.open(model_dirs["media"], devices=with_microphone(), engine_factory=engine, max_tokens=3)
    hold_to_talk(gui, window, seconds=1.5)
    gui.wait_answer(window)
    assert window.chat.conversation.messages[-1].state == "done"
    assert len(fed) >= 5 and fed[-1].final and len({f.request_id for f in fed}) == 1
    assert audio.one_shot == 0, "the clip streamed while the key was held was encoded again"
    (sent,) = window.chat.conversation.messages[0].attachments
    assert sent == MediaInput("audio", np.concatenate([f.samples for f in fed])).digest

    window.composer.talk.button.pressed.emit()  # too short: the stream is dropped, nothing is sent
    window.composer.talk.button.released.emit()
    assert fed[-1].discard and fed[-1].request_id != fed[0].request_id
    assert len(window.chat.conversation.messages) == 2


def test_the_microphone_listens_ahead_only_while_the_window_is_active(
    gui: gui_support.GuiHarness, model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(microphone_holder, "RELEASE_GRACE_MS", 300)
    window = gui.open(model_dirs["media"], devices=with_microphone())
    window.activateWindow()
    gui.qtbot.waitUntil(lambda: window.voice.armed_seconds >= 0.5, timeout=5_000)
    window.voice.press()  # the very first press already has the pre-roll
    assert window.voice.recorded_seconds >= 0.29
    window.voice.release()  # a tap: nothing is sent
    assert window.chat.conversation.messages == []

    other = QWidget()
    other.show()
    other.activateWindow()
    assert window.voice.armed_seconds > 0  # a moment away keeps the pre-roll ready...
    gui.qtbot.waitUntil(lambda: window.voice.armed_seconds == 0, timeout=5_000)  # ...then it is released
    other.close()
    window.activateWindow()
    gui.qtbot.waitUntil(lambda: window.voice.armed_seconds > 0, timeout=5_000)


def test_no_microphone_is_a_clear_message(gui: gui_support.GuiHarness, model_dirs: dict[str, Path]) -> None:
    window = gui.open(model_dirs["media"])  # the harness's devices have no microphone
    window.composer.talk.button.pressed.emit()  # the device is opened off the GUI thread...
    notice = window.notice
    gui.qtbot.waitUntil(  # ...and its failure reported when it comes back
        lambda: notice.isVisible() and "No microphone found" in notice.label.text(), timeout=5_000
    )
    assert not window.voice.recording
    window.composer.talk.button.released.emit()
    assert window.chat.conversation.messages == []


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import cv2

    path = tmp_path_factory.mktemp("camera") / "camera.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 15, (160, 120))
    assert writer.isOpened()
    for index in range(30):
        frame = np.zeros((120, 160, 3), dtype=np.uint8)
        frame[:, : 5 * index + 5] = (255, 128, 0)  # a growing blue (BGR) bar
        writer.write(frame)
    writer.release()
    return path


def test_webcam_snapshot_and_speech_make_one_turn(
    gui: gui_support.GuiHarness, model_dirs: dict[str, Path], video: Path
) -> None:
    cameras: list[Camera] = []

    def camera(source: SourceSpec, on_frame: Any, on_error: Any) -> Camera:
        cameras.append(Camera(source, fps_limit=15, on_frame=on_frame, on_error=on_error, loop=True))
        return cameras[-1]

    missing = str(video.with_name("unplugged.avi"))
    listed: list[tuple[str, SourceSpec]] = [("Test video", str(video)), ("Unplugged", missing)]
    devices = Devices(microphone=fake_microphone, camera=camera, cameras=lambda: listed)
    window = gui.open(model_dirs["media"], devices=devices, max_tokens=4)
    window.commands.show_camera.trigger()
    assert window.camera_panel.isVisible() and window.camera.running
    gui.qtbot.waitUntil(lambda: window.camera_panel.frames_shown >= 3, timeout=10_000)
    assert window.camera_panel.picker.currentText() == "Test video"
    window.camera_panel.snapshot_button.click()
    gui.qtbot.waitUntil(lambda: len(window.composer.attachments.items) == 1, timeout=10_000)
    assert window.composer.attachments.items[0].kind == "image"
    gui_support.screenshot(window, "media-webcam-snapshot")
    hold_to_talk(gui, window)
    gui.wait_answer(window)
    turn = window.chat.conversation.messages[0]
    assert (
        turn.attachment_kinds == ("image", "audio") and window.chat.conversation.messages[1].state == "done"
    )
    window.camera_panel.picker.setCurrentIndex(1)  # the picker switches cameras and remembers the choice
    assert window.settings.load().camera == missing
    gui.qtbot.waitUntil(lambda: "not found" in window.camera_panel.status.text(), timeout=5_000)
    assert not window.camera.running and not window.camera_panel.snapshot_button.isEnabled()
    window.camera_panel.picker.setCurrentIndex(0)
    gui.qtbot.waitUntil(lambda: window.camera_panel.snapshot_button.isEnabled(), timeout=10_000)
    window.commands.show_camera.trigger()
    assert not window.camera_panel.isVisible() and not window.camera.running
    gui.qtbot.waitUntil(lambda: not cameras[0].running, timeout=5_000)


def test_drop_on_the_window_and_edit_keeps_the_image(
    gui: gui_support.GuiHarness, model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    window = gui.open(model_dirs["media"], max_tokens=3)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(picture(tmp_path / "dropped.png")))])
    point = QPointF(window.sidebar.mapTo(window, window.sidebar.rect().center()))
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(point.toPoint(), Qt.DropAction.CopyAction, mime, buttons, modifiers)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(window, QDropEvent(point, Qt.DropAction.CopyAction, mime, buttons, modifiers))
    gui.qtbot.waitUntil(lambda: len(window.composer.attachments.items) == 1, timeout=10_000)
    gui.send(window, "Describe it")
    gui.wait_answer(window)
    window.commands.edit_last.trigger()
    assert window.composer.editing and [m.label for m in window.composer.attachments.items] == ["dropped.png"]
    window.composer.cancel_edit()
    assert window.composer.attachments.items == []


def test_the_hold_to_talk_key_is_configurable(
    gui: gui_support.GuiHarness, model_dirs: dict[str, Path]
) -> None:
    window = gui.open(model_dirs["media"], devices=with_microphone(), max_tokens=3)
    window.settings_controller.apply(dataclasses.replace(window.settings.load(), talk_shortcut="F9"))
    editor = window.composer.editor
    gui.qtbot.keyPress(editor, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    assert not window.voice.recording  # the old key is free again
    gui.qtbot.keyPress(editor, Qt.Key.Key_F9)
    assert window.voice.recording and "F9" in window.composer.talk.button.toolTip()
    gui.qtbot.waitUntil(lambda: window.voice.recorded_seconds > 0.5, timeout=10_000)
    gui.qtbot.keyRelease(editor, Qt.Key.Key_F9)
    gui.qtbot.waitUntil(lambda: not window.voice.recording, timeout=2_000)
    gui.wait_answer(window)
    assert window.chat.conversation.messages[0].attachment_kinds == ("audio",)
