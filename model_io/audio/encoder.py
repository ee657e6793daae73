"""Audio clips as prompt segments: the Gemma 3n processor's layout plus the rows that fill it.

``Gemma3nProcessor`` expands each audio placeholder into
``"\\n\\n<start_of_audio>" + 188 * "<audio_soft_token>" + "<end_of_audio>\\n\\n"`` and the
model then replaces all 188 soft tokens (real rows, then the padding id's hard
embedding) and ``<end_of_audio>`` (its hard embedding) with embedder rows.  So one
clip is: the text ``"\\n\\n"``, the ``<start_of_audio>`` token, ONE run of 189 rows,
and the text ``"\\n\\n"``.  ``<end_of_audio>`` must be fed as an embedding row:
as a token llama.cpp would look up the text table (and a zero per-layer row),
not the audio embedder (gemma3n-audio.md §5.2).

HF truncates clips at 30 s.  Longer clips are split here into 30 s pieces, each
laid out as its own clip (run keys ``audio:<digest>:<i>``), so nothing is dropped.

A clip being recorded can be fed in pieces (:meth:`AudioEncoder.feed_stream`): the
conformer only looks backwards, so most of the encoding is done before the key is
released, and ``encode`` of the finished clip returns the rows at once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from model_io.audio import spec
from model_io.audio.streaming import StreamingAudioEncoder
from model_io.audio.tower import AudioTower
from model_io.errors import InputError
from model_io.media import AbortCheck, EmbeddingRun, EncodeCancelled, MediaInput, MediaKind, Segment

Tokenize = Callable[[str], list[int]]
WRAPPER_TEXT = "\n\n"


class AudioEncoder:
    """``MediaEncoder`` for kind "audio", backed by a lazily loaded :class:`AudioTower`."""

    kind: MediaKind = "audio"

    def __init__(
        self, mmproj_path: str | Path, tokenize: Tokenize | None, *, tower: AudioTower | None = None
    ):
        """``tokenize`` turns the ``"\\n\\n"`` wrappers into ids; pass None to emit them as text segments,
        which the prompt builder merges with neighbouring text (byte-exact with HF's string expansion)."""
        self.tower = tower if tower is not None else AudioTower(mmproj_path)
        self._tokenize = tokenize
        self._wrapper_ids: tuple[int, ...] | None = None
        self._last: tuple[str, np.ndarray] | None = None
        self._stream: _Stream | None = None
        self._lock = threading.Lock()

    def layout(self, media: MediaInput) -> tuple[Segment, ...]:
        """Per ≤ 30 s piece: "\\n\\n", <start_of_audio>, a 189-row run, "\\n\\n" (no encoding)."""
        n_pieces = _n_pieces(len(_waveform(media)))
        segments: list[Segment] = []
        for index in range(n_pieces):
            key = f"audio:{media.digest}" if n_pieces == 1 else f"audio:{media.digest}:{index}"
            segments += [
                *self._wrapper((spec.START_OF_AUDIO_ID,)),
                EmbeddingRun(key=key, n_rows=spec.ROWS_PER_CLIP),
                *self._wrapper(()),
            ]
        return tuple(segments)

    def encode(self, media: MediaInput, abort_check: AbortCheck | None = None) -> np.ndarray:
        """All rows of the layout's runs, in order: float32 [189 * pieces, n_embd].

        ``abort_check`` is polled between 30 s pieces; a true answer raises EncodeCancelled.
        """
        wave = _waveform(media)
        with self._lock:
            if self._last is not None and self._last[0] == media.digest:
                return self._last[1]
            pieces = []
            for start in _piece_starts(len(wave)):
                if abort_check is not None and abort_check():
                    raise EncodeCancelled(f"encoding {media.label or 'audio'} was cancelled")
                pieces.append(self.tower.clip_rows(wave[start : start + spec.MAX_SAMPLES]))
            rows = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
            rows.setflags(write=False)
            self._last = (media.digest, rows)
            return rows

    def feed_stream(self, stream_id: int, samples: np.ndarray, *, final: bool, discard: bool = False) -> None:
        """Encode the next piece of clip ``stream_id`` while it is still being recorded.

        ``final`` finishes the clip and keeps its rows for ``encode`` of the whole clip (the
        concatenation of the pieces, bit for bit).  A new ``stream_id`` abandons an unfinished
        stream.  A clip over 30 s raises :class:`InputError` and is dropped (encoded when sent).
        """
        with self._lock:
            stream = self._stream
            if discard:
                if stream is not None and stream.stream_id == stream_id:
                    self._stream = None
                return
            if stream is None or stream.stream_id != stream_id:
                stream = self._stream = _Stream(stream_id, StreamingAudioEncoder(self.tower))
            try:
                if len(samples):
                    stream.encoder.feed(samples)
                    stream.pieces.append(np.asarray(samples))
                if not final:
                    return
                self._stream = None
                rows = stream.encoder.finish()
            except Exception:
                self._stream = None
                raise
            rows.setflags(write=False)
            self._last = (MediaInput("audio", np.concatenate(stream.pieces)).digest, rows)

    def release(self) -> None:
        """Free the tower's weights (reloaded on the next encode)."""
        with self._lock:
            self._last = None
            self._stream = None
            self.tower.release()

    @property
    def resident_bytes(self) -> int:
        last = self._last
        return self.tower.resident_bytes + (last[1].nbytes if last is not None else 0)

    def _wrapper(self, special: tuple[int, ...]) -> list[Segment]:
        """The ``"\\n\\n"`` wrapper (as ids, or as text for the builder) followed by ``special`` ids."""
        if self._tokenize is None:
            return [WRAPPER_TEXT, special] if special else [WRAPPER_TEXT]
        if self._wrapper_ids is None:
            self._wrapper_ids = tuple(self._tokenize(WRAPPER_TEXT))
        return [self._wrapper_ids + special]


class _Stream:
    """A clip being recorded: its incremental encoder and the pieces fed so far."""

    def __init__(self, stream_id: int, encoder: StreamingAudioEncoder) -> None:
        self.stream_id = stream_id
        self.encoder = encoder
        self.pieces: list[np.ndarray] = []


def _waveform(media: MediaInput) -> np.ndarray:
    if media.kind != "audio":
        raise InputError(f"the audio encoder cannot take {media.kind} input")
    wave = np.asarray(media.payload)
    if wave.ndim != 1 or wave.size == 0:
        raise InputError(f"{media.label or 'audio clip'}: expected non-empty 16 kHz mono samples")
    return wave


def _n_pieces(n_samples: int) -> int:
    return max(1, math.ceil(n_samples / spec.MAX_SAMPLES))


def _piece_starts(n_samples: int) -> range:
    return range(0, _n_pieces(n_samples) * spec.MAX_SAMPLES, spec.MAX_SAMPLES)
