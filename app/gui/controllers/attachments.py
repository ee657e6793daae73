"""Image attachments: file dialog, drag-and-drop, clipboard paste and camera snapshots into the composer.

Decoding (and the thumbnail) runs on a background thread with :class:`BackgroundCall`, so a large
photo never freezes the window; a file that cannot be used is reported inline in the composer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QEvent, QIODevice, QObject, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage

from app.gui.tasks import BackgroundCall
from app.gui.widgets.attachments import thumbnail
from app.gui.widgets.composer import Composer
from app.gui.widgets.prompt_edit import local_files
from model_io.errors import GemmaDeskError
from model_io.images import image_from_bytes, load_image
from model_io.media import MediaInput

ImageChooser = Callable[[], list[Path]]


def png_bytes(image: QImage) -> bytes:
    """Encode a ``QImage`` as PNG (QImage is reentrant, so this may run on a worker thread)."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")  # type: ignore[call-overload]  # the stubs say bytes; only str works
    buffer.close()
    return bytes(data.data())


class AttachmentController(QObject):
    """Turns files, pasted bitmaps and frames into composer attachments, off the GUI thread."""

    settled = Signal()  # every pending decode has finished (tests wait on ``pending == 0``)

    def __init__(self, composer: Composer, choose_images: ImageChooser, parent: QObject | None = None):
        super().__init__(parent)
        self._composer = composer
        self._choose_images = choose_images
        self.pending = 0
        composer.attachRequested.connect(self.choose)
        composer.imagePasted.connect(self.add_image)
        composer.filesDropped.connect(self.add_files)

    def choose(self) -> None:
        self.add_files(self._choose_images())

    def add_files(self, paths: list[Path]) -> None:
        for path in paths:
            self._decode(functools.partial(load_image, path))

    def add_image(self, image: QImage) -> None:
        """A pasted bitmap: QImage, then PNG bytes, then the same decoder as files."""
        copy = image.copy()
        self._decode(lambda: image_from_bytes(png_bytes(copy), "pasted image"))

    def add_media(self, make: Callable[[], MediaInput]) -> None:
        """Any image source (a camera snapshot), decoded off the GUI thread like a file."""
        self._decode(make)

    def _decode(self, make: Callable[[], MediaInput]) -> None:
        if not self._composer.vision_available:
            self._composer.show_attachment_error(self._no_vision())
            return
        if self.pending == 0:
            self._composer.clear_attachment_error()  # a new batch: the last batch's error is old news
        self.pending += 1
        call = BackgroundCall(lambda: (media := make(), thumbnail(media)), self)
        call.succeeded.connect(self._on_decoded)
        call.failed.connect(self._on_failed)
        call.start()

    def _on_decoded(self, result: tuple[MediaInput, QImage | None]) -> None:
        media, preview = result
        if self._composer.vision_available:
            self._composer.add_attachment(media, preview)
        self._settle()

    def _on_failed(self, error: BaseException) -> None:
        message = str(error) if isinstance(error, GemmaDeskError) else repr(error)
        self._composer.show_attachment_error(self.tr("Could not attach the image: %1").replace("%1", message))
        self._settle()

    def _settle(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.settled.emit()

    def _no_vision(self) -> str:
        return self.tr(
            "Images need a projector (mmproj) with a vision tower: choose one with File, Choose projector"
        )

    # -- drops anywhere on the window (the prompt editor handles its own) ----------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if isinstance(event, QDragEnterEvent):
            mime = event.mimeData()
            if mime.hasImage() or local_files(mime):
                event.acceptProposedAction()
                return True
        elif isinstance(event, QDropEvent):
            mime = event.mimeData()
            files = local_files(mime)
            if files:
                self.add_files(files)
            elif mime.hasImage() and isinstance(mime.imageData(), QImage):
                self.add_image(mime.imageData())
            else:
                return False
            event.acceptProposedAction()
            return True
        return super().eventFilter(watched, event)
