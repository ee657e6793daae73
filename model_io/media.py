"""Images and audio in a conversation: decoded inputs, their prompt layout and their encoders.

A tower (the NumPy audio conformer, llama.cpp's mtmd vision encoder) plugs into the
engine as a :class:`MediaEncoder`.  ``layout`` says, cheaply and without encoding,
which token ids and how many embedding rows the input occupies in the prompt, so
the session can match the KV cache and skip inputs already evaluated; ``encode``
produces the rows only when they must really be fed to llama.cpp.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

MediaKind = Literal["image", "audio"]


@dataclass(frozen=True, eq=False)
class MediaInput:
    """A decoded image (uint8 RGB, H x W x 3) or audio clip (float32 mono 16 kHz), identified by content."""

    kind: MediaKind
    payload: np.ndarray
    label: str = ""
    digest: str = field(default="")

    def __post_init__(self) -> None:
        if not self.digest:
            digest = hashlib.sha256(self.kind.encode())
            digest.update(str(self.payload.shape).encode())
            digest.update(np.ascontiguousarray(self.payload).tobytes())
            object.__setattr__(self, "digest", digest.hexdigest())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MediaInput) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)


@dataclass(frozen=True)
class EmbeddingRun:
    """``n_rows`` consecutive embedding rows fed instead of token ids; ``key`` names their content."""

    key: str
    n_rows: int


Segment = str | tuple[int, ...] | EmbeddingRun
"""One piece of a media layout, in prompt order.

* ``str``: plain text (e.g. the ``"\n\n"`` wrappers).  The prompt builder merges it with the
  neighbouring text before tokenizing, exactly as the HF processor expands placeholders into the
  prompt *string* (``"user\n" + "\n\n"`` tokenizes as one fragment, not two).
* ``tuple[int, ...]``: special token ids (``<start_of_audio>``, ``<start_of_image>``, ...).
* ``EmbeddingRun``: rows produced by ``encode``.
"""


AbortCheck = Callable[[], bool]


class EncodeCancelled(Exception):
    """``encode`` stopped early because its ``abort_check`` returned true."""


class MediaEncoder(Protocol):
    """Turns one kind of media into prompt segments and, on demand, embedding rows."""

    kind: MediaKind

    def layout(self, media: MediaInput) -> tuple[Segment, ...]:
        """Token ids and embedding runs for ``media``, in prompt order (no encoding)."""
        ...

    def encode(self, media: MediaInput, abort_check: AbortCheck | None = None) -> np.ndarray:
        """All rows of the layout's embedding runs, concatenated: float32 (Σ n_rows, n_embd).

        Long encodes poll ``abort_check`` and raise :class:`EncodeCancelled` when it returns true.
        """
        ...


@runtime_checkable
class StreamingMediaEncoder(Protocol):
    """An encoder that can take a clip in pieces while it is recorded (audio)."""

    def feed_stream(self, stream_id: int, samples: np.ndarray, *, final: bool, discard: bool = False) -> None:
        """Encode ``samples`` of stream ``stream_id`` now; ``final`` completes the clip so that
        ``encode`` of the whole clip returns at once; ``discard`` forgets the stream."""
        ...
