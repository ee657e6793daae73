"""Attachment payloads on disk, one ``<digest>.npy`` per image or clip, beside the history database.

Content-addressed: a picture sent in ten turns is written once.  ``.npy`` keeps the exact decoded
pixels/samples the model saw (no re-encoding loss) and loads without pickle.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from model_io.media import MediaInput, MediaKind


def write_media(folder: Path, media: MediaInput) -> Path:
    """Store ``media`` under its digest (atomically; an existing file is kept) and return the path.

    The bytes and the new name are synced before the caller commits the row that points at them, so
    a saved turn never refers to a file lost in a power cut; a failed write (disk full) leaves nothing.
    """
    target = folder / f"{media.digest}.npy"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        with partial.open("wb") as handle:
            np.save(handle, np.ascontiguousarray(media.payload), allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _sync_folder(folder)
    return target


def _sync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX; Windows has no folder fsync and NTFS journals renames)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_media(path: str, kind: MediaKind, label: str, digest: str) -> MediaInput | None:
    """The stored input, or None when its file is missing or unreadable (the turn keeps its marker)."""
    if not path:
        return None
    with contextlib.suppress(OSError, ValueError):
        payload = np.load(path, allow_pickle=False)
        return MediaInput(kind, payload, label=label, digest=digest)
    return None
