"""The Gemma Desk desktop window (PySide6).

This module is Qt-free, so the command line can import it cheaply: Qt is imported only inside
:func:`run`.  Layout: ``main_window`` composes ``widgets`` (passive panels) with ``controllers`` (one
per panel) around the ``bridge`` (the engine's only GUI-side owner); ``history`` and ``settings``
persist data.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

# Qt platforms that draw on a screen without X11 or Wayland (offscreen and minimal show nothing).
_SCREEN_PLATFORMS = ("eglfs", "linuxfb", "vnc", "vkkhrdisplay")


def no_display_reason() -> str | None:
    """Why no window could be shown, or None.  On Linux Qt aborts the process without a display."""
    if not sys.platform.startswith("linux"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    if os.environ.get("QT_QPA_PLATFORM", "").split(":")[0].strip() in _SCREEN_PLATFORMS:
        return None
    return "no display found (DISPLAY and WAYLAND_DISPLAY are unset)"


def run(argv: Sequence[str] | None = None) -> int:
    """Start the GUI and return its exit code."""
    from app.gui.app import main

    return main(argv)
