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
    """Store ``media`` under its digest (atomically; an existing file is kept) and return the path."""
    target = folder / f"{media.digest}.npy"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    with partial.open("wb") as handle:
        np.save(handle, np.ascontiguousarray(media.payload), allow_pickle=False)
    os.replace(partial, target)
    return target


def read_media(path: str, kind: MediaKind, label: str, digest: str) -> MediaInput | None:
    """The stored input, or None when its file is missing or unreadable (the turn keeps its marker)."""
    if not path:
        return None
    with contextlib.suppress(OSError, ValueError):
        payload = np.load(path, allow_pickle=False)
        return MediaInput(kind, payload, label=label, digest=digest)
    return None
