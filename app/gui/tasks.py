"""Run a short blocking call (file validation, header parsing) off the GUI thread, result as a signal."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal


class BackgroundCall(QObject):
    """One call on a daemon thread; ``succeeded(result)`` or ``failed(exception)`` on the GUI thread.

    The exception itself is delivered (errors as values), so the receiver decides how to show it.
    """

    succeeded = Signal(object)
    failed = Signal(object)
    _done = Signal(object, object)  # emitted on the worker thread, delivered queued

    def __init__(self, function: Callable[[], Any], parent: QObject | None = None):
        super().__init__(parent)
        self._function = function
        self._done.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self._thread = threading.Thread(target=self._run, name="gemma-desk-background", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        result: object = None
        error: Exception | None = None
        try:
            result = self._function()
        except Exception as exc:
            error = exc
        # RuntimeError: the receiver was deleted while we worked, so nobody wants the result.
        with contextlib.suppress(RuntimeError):
            self._done.emit(result, error)

    def _deliver(self, result: object, error: object) -> None:
        self._thread.join(1.0)  # it has emitted its result and is only returning
        if isinstance(error, Exception):
            self.failed.emit(error)
        else:
            self.succeeded.emit(result)
        self.deleteLater()
