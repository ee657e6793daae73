"""Work around PySide6-Essentials 6.12.0 on Python 3.11: its bindings drop references they never took.

Measured in this project's venv: every call of a void method (``QLabel.setText``,
``QWidget.setVisible``, ``processEvents``, ``postEvent`` …) releases one reference to ``None``, and every
``Signal.emit()`` one to ``True``, without having added it.  On Python 3.12+ those objects are
immortal, so this is harmless there; on 3.11 the interpreter aborts ("Fatal Python error:
none_dealloc") after a few thousand calls, which one streamed answer reaches.  PySide6 6.11.3 does
not do this (only ``QTest.qWait`` still drops ``None``).

The fix copies what Python 3.12 does: give ``None``, ``True`` and ``False`` a reference count so large
that no number of dropped references can reach zero.  They are never freed anyway, so nothing else
changes.  It is applied only on CPython < 3.12 and only when the miscount is measured.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

_BOOST = 1 << 40  # ~10^12 dropped references before trouble; 3.12's immortal count is of this order
_applied = False


class _Probe(QObject):
    fired = Signal()


def _drift(singleton: object, call: Callable[[], object]) -> int:
    before = sys.getrefcount(singleton)
    for _ in range(16):
        call()
    return sys.getrefcount(singleton) - before


def binding_miscounts() -> bool:
    """Whether this PySide6 build drops references to None or True (measured, not assumed)."""
    probe = _Probe()
    try:
        dropped_none = _drift(None, lambda: probe.setObjectName("gemma-desk-probe")) < 0
        dropped_true = _drift(True, probe.fired.emit) < 0
    finally:
        probe.deleteLater()
    return dropped_none or dropped_true


def apply() -> bool:
    """Make None/True/False effectively immortal if needed; returns whether it was (ever) applied."""
    global _applied
    if _applied:
        return True
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False
    if not binding_miscounts():
        return False
    for singleton in (None, True, False):
        # ob_refcnt is the first field of every CPython object; id() is the object's address.
        ctypes.c_ssize_t.from_address(id(singleton)).value += _BOOST
    _applied = True
    return True
