"""A drag source for the Xvfb end-to-end test: a tiny window that drags one file, as a file manager does.

Run as ``python tests/xdnd_source.py FILE`` on an X display.  Pressing the mouse in the window starts
a Qt drag of ``FILE`` (``text/uri-list``), so a pointer moved by xdotool and released over another
window performs a real XDND drop on it.  Prints ``dropped: <action>`` when the drag ends.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QDrag, QMouseEvent
from PySide6.QtWidgets import QApplication, QLabel

TITLE = "xdnd-source"
GEOMETRY = (1120, 100, 150, 90)  # right of the app's window on the test's 1280 x 800 screen


class DragSource(QLabel):
    def __init__(self, path: str):
        super().__init__(f"drag {path.rsplit('/', 1)[-1]}")
        self.path = path
        self.setWindowTitle(TITLE)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # Clicking it must not take the focus from the app (without a window manager Qt would).
        self.setWindowFlag(Qt.WindowType.WindowDoesNotAcceptFocus)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(self.path)])
        drag = QDrag(self)
        drag.setMimeData(mime)
        action = drag.exec(Qt.DropAction.CopyAction)
        print(f"dropped: {action.name}", flush=True)


def main() -> int:
    app = QApplication(sys.argv[:1])
    source = DragSource(sys.argv[1])
    source.setGeometry(*GEOMETRY)
    source.show()
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
