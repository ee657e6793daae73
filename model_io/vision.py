"""Gemma 3n image encoder: llama.cpp's mtmd MobileNet-V5 tower behind the :class:`MediaEncoder` contract.

Only the tower runs in mtmd (``mtmd_encode_chunk``); the engine feeds the returned
rows to the text model itself, so the KV cache survives between turns (llama-cpp-
python's ``MTMDChatHandler`` clears it on every call, and ``mtmd_helper_eval_chunks``
would decode on its own).

What the encoder mirrors, and why:

* Layout ``"\\n\\n" <start_of_image> [256 rows] <end_of_image> "\\n\\n"`` is the HF
  processor's expansion.  mtmd emits ``<start_of_image>``/``<end_of_image>`` as *text*
  tokens around the image chunk (probed from mtmd at load, not hard-coded), so the 256
  rows are image embeddings only, and by default ``<end_of_image>`` stays a token.  HF
  instead embeds it (id 262144, in the vision vocabulary) through the embedder's hard-
  token table, with per-layer row 0; llama.cpp's token lookup gives the text table's row
  and a zero per-layer row.  ``end_of_image="embedding"`` reproduces HF: the run gets a
  257th row, computed here from the mmproj, and llama.cpp uses per-layer row 0 for
  embedding inputs (as the audio encoder does for ``<end_of_audio>``).
* Attention stays causal: ``mtmd_decode_use_non_causal`` is false for gemma3nv, and HF
  Gemma 3n builds a plain causal mask too.  The probed flag is exposed as
  :attr:`VisionEncoder.needs_non_causal`.
* Pixels are stretched to 768x768 with Pillow's bilinear filter before mtmd sees them,
  like HF's SigLIP image processor.  mtmd on its own would letterbox (keep the aspect
  ratio, pad with black); with an exact-size bitmap it copies the pixels unchanged.
"""

from __future__ import annotations

import ctypes
import os
import re
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, NamedTuple

import llama_cpp as ll
import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize
from llama_cpp import mtmd_cpp as mt
from PIL import Image

from model_io.errors import EngineFailure, InputError, ModelError, UnsupportedModelError
from model_io.gguf_check import GgufSummary, validate_gguf
from model_io.media import EmbeddingRun, EncodeCancelled, MediaInput, MediaKind, Segment
from model_io.native import AbortCheck, NativeModel, _log_callback, ensure_backend, recent_log_errors

PROJECTOR_TYPE = "gemma3nv"
PARAGRAPH = "\n\n"  # the processor's text around every image
END_OF_IMAGE_ID = 262144
VISION_VOCAB_OFFSET = 262144  # the embedder's hard-token table starts here (<end_of_image> is row 0)
EndOfImage = Literal["token", "embedding"]
# The full tower's graph has ~2600 nodes (~20 s on 2 cores): a checkpoint every 16 nodes answered a
# cancel within 0.5 s there at no measurable cost (18.0 s armed vs 19.7 s not); the tiny tower gets 24.
_NODES_PER_CHECK = 16
_FLOAT_TYPES = {GGMLQuantizationType.F32: np.float32, GGMLQuantizationType.F16: np.float16}

_logging_lock = threading.Lock()
_logging_routed = False
# clip logs the compute buffer it reserves on the first encode; that is the other half of its RAM.
_COMPUTE_BUFFER = re.compile(r"compute buffer size = +([0-9.]+) MiB")
_last_compute_bytes: int | None = None


@ll.llama_log_callback
def _mtmd_log_callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """llama.cpp's log route, plus a note of the compute buffer size clip reports."""
    global _last_compute_bytes
    _log_callback(level, text, user_data)
    match = _COMPUTE_BUFFER.search(text.decode("utf-8", errors="replace"))
    if match:
        _last_compute_bytes = int(float(match.group(1)) * 1024 * 1024)


@dataclass(frozen=True)
class VisionHeader:
    """What the mmproj header says about its vision tower."""

    summary: GgufSummary
    image_size: int
    tower_width: int  # input width of mm.input_projection (what mtmd compares with the text model)
    output_width: int  # width of the rows it produces
    weight_bytes: int  # vision tensors only; mtmd skips a Gemma 3n file's audio tower


@dataclass(frozen=True)
class ImageLayout:
    """How mtmd wraps one image: text tokens before, embedding rows, text tokens after."""

    before: tuple[int, ...]
    n_rows: int
    after: tuple[int, ...]


def read_vision_header(summary: GgufSummary) -> VisionHeader:
    """Check an mmproj summary offers a Gemma 3n vision tower; ``ModelError`` otherwise."""
    name = summary.path.name
    if summary.kv.get("clip.has_vision_encoder") is not True:
        raise UnsupportedModelError(f"{name} has no vision encoder, so it cannot take images")
    projector = summary.kv.get("clip.vision.projector_type") or summary.kv.get("clip.projector_type")
    if projector != PROJECTOR_TYPE:
        raise UnsupportedModelError(
            f"{name} has a {projector!r} vision projector; "
            f"Gemma Desk needs a Gemma 3n ({PROJECTOR_TYPE}) mmproj"
        )
    projection = next((t for t in summary.tensors if t.name == "mm.input_projection.weight"), None)
    image_size = summary.kv.get("clip.vision.image_size")
    if projection is None or len(projection.shape) != 2 or not isinstance(image_size, int) or image_size <= 0:
        raise UnsupportedModelError(f"{name} lacks the Gemma 3n vision projection or image size")
    weight_bytes = sum(t.n_bytes for t in summary.tensors if _is_vision_tensor(t.name))
    return VisionHeader(summary, image_size, projection.shape[0], projection.shape[1], weight_bytes)


def stretch_to_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize to size x size with Pillow's bilinear filter, ignoring the aspect ratio, as HF's Gemma 3n
    image processor (SigLIP, resample=BILINEAR, no normalisation) does; mtmd would letterbox instead."""
    if rgb.shape[:2] == (size, size):
        return np.ascontiguousarray(rgb, dtype=np.uint8)
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    return np.ascontiguousarray(np.asarray(image.resize((size, size), Image.Resampling.BILINEAR)))


def hard_token_embedding(summary: GgufSummary, token_id: int) -> np.ndarray:
    """HF's embedding of a vision-vocabulary id (``<end_of_image>`` & co.): ``Gemma3nMultimodalEmbedder``'s
    hard path, RMS-norm(table row) x norm weight -> projection -> RMS norm without scale."""
    table = _read_tensor(summary, "mm.embedding.weight")
    index = token_id - VISION_VOCAB_OFFSET
    if not 0 <= index < table.shape[0]:
        raise ValueError(
            f"{token_id} is not in the vision vocabulary ({VISION_VOCAB_OFFSET}+{table.shape[0]})"
        )
    row = table[index]
    normed = _rms_norm(row) * _read_tensor(summary, "mm.hard_emb_norm.weight")
    return _rms_norm(_read_tensor(summary, "mm.input_projection.weight") @ normed).astype(np.float32)


def _rms_norm(x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    x = x.astype(np.float32)
    return x / np.sqrt(np.mean(x * x) + eps)


def _read_tensor(summary: GgufSummary, name: str) -> np.ndarray:
    """One tensor as float32 in numpy order (ggml's shape reversed), dequantized if needed."""
    info = next((t for t in summary.tensors if t.name == name), None)
    if info is None:
        raise UnsupportedModelError(f"{summary.path.name} lacks the tensor {name}")
    with summary.path.open("rb") as handle:
        handle.seek(info.offset)
        raw = np.frombuffer(handle.read(info.n_bytes), dtype=np.uint8)
    qtype = GGMLQuantizationType[info.type_name]
    values = dequantize(raw, qtype) if qtype not in _FLOAT_TYPES else raw.view(_FLOAT_TYPES[qtype])
    return values.astype(np.float32).reshape(tuple(reversed(info.shape)))


def _is_vision_tensor(name: str) -> bool:
    return name.startswith("v.") or (name.startswith("mm.") and not name.startswith("mm.a."))


class VisionEncoder:
    """Encodes images with a Gemma 3n mmproj for one loaded text model; ``close()`` frees it."""

    kind: MediaKind = "image"

    def __init__(
        self,
        mmproj_path: str | Path,
        model: NativeModel,
        n_threads: int | None = None,
        *,
        use_gpu: bool = True,
        end_of_image: EndOfImage = "token",
    ):
        """``end_of_image="token"`` feeds ``<end_of_image>`` as a text token, like mtmd and llama-server;
        ``"embedding"`` appends its HF embedding (the embedder's hard-token row) to the run instead."""
        self.path = Path(mmproj_path)
        header = read_vision_header(validate_gguf(self.path, expect="mmproj"))
        self.n_embd = int(ll.llama_model_n_embd_inp(model.model))
        _check_widths(header, self.n_embd, self.path.name)
        self.image_size = header.image_size
        self.end_of_image: EndOfImage = end_of_image
        self.weight_bytes = header.weight_bytes
        self.compute_bytes: int | None = None  # known after the first encode
        self.n_threads = n_threads if n_threads is not None else max(1, min(8, os.cpu_count() or 1))
        self._lock = threading.Lock()
        self._abort = _AbortHook()
        self._ctx: int | None = _init_context(self.path, model, self.n_threads, use_gpu, self._abort)
        self._finalizer = weakref.finalize(self, mt.mtmd_free, self._ctx)
        ctx = self._ctx
        try:
            self._layout = _probe_layout(ctx, self.image_size, self.path.name)
            self.needs_non_causal = bool(mt.mtmd_decode_use_non_causal(ctx, None))
            self._extra_rows = self._end_of_image_rows(header, end_of_image)
        except BaseException:
            self.close()
            raise

    @property
    def resident_bytes(self) -> int:
        """RAM held: the weights (mtmd reads them into memory) plus, once known, the compute buffer."""
        return self.weight_bytes + (self.compute_bytes or 0)

    @property
    def n_rows(self) -> int:
        """Rows in each image's embedding run: 256 (257 with ``end_of_image="embedding"``)."""
        return self._layout.n_rows + len(self._extra_rows)

    def _end_of_image_rows(self, header: VisionHeader, mode: EndOfImage) -> np.ndarray:
        if mode == "token":
            return np.zeros((0, self.n_embd), np.float32)
        if mode != "embedding" or self._layout.after != (END_OF_IMAGE_ID,):
            raise UnsupportedModelError(f"{self.path.name}: cannot embed <end_of_image> (mode {mode!r})")
        return hard_token_embedding(header.summary, END_OF_IMAGE_ID)[None, :]

    # -- MediaEncoder ---------------------------------------------------------------------------

    def layout(self, media: MediaInput) -> tuple[Segment, ...]:
        """The processor's wrapping of one image; cheap, no encoding."""
        _check_image(media)
        segments: list[Segment] = [PARAGRAPH, self._layout.before]
        segments.append(EmbeddingRun(f"image:{media.digest}", self.n_rows))
        if self.end_of_image == "token":
            segments.append(self._layout.after)
        return (*segments, PARAGRAPH)

    def encode(self, media: MediaInput, abort_check: AbortCheck | None = None) -> np.ndarray:
        """The image's embedding rows: float32 (n_rows, n_embd).

        ``abort_check`` is polled between graph nodes (a full-size encode takes tens of seconds on a
        CPU); when it returns True the encode stops and :class:`EncodeCancelled` is raised.
        """
        _check_image(media)
        pixels = self.preprocess(media.payload)
        with self._lock:
            if self._ctx is None:
                raise EngineFailure("the vision encoder was closed")
            self._abort.arm(abort_check)
            try:
                rows, reserved = _encode_pixels(self._ctx, pixels, self.n_embd)
            finally:
                fired = self._abort.disarm()
            self.compute_bytes = self.compute_bytes or reserved
        if fired:
            raise EncodeCancelled(f"encoding {media.label or 'the image'} was cancelled")
        if rows.shape[0] != self._layout.n_rows or not np.isfinite(rows).all():
            raise EngineFailure(f"the vision encoder returned unusable output (shape {rows.shape})")
        return np.concatenate([rows, self._extra_rows]) if len(self._extra_rows) else rows

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """The exact pixels the tower sees (see :func:`stretch_to_square`)."""
        return stretch_to_square(rgb, self.image_size)

    # -- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        """Free the mtmd context now (idempotent); call before closing the text model."""
        with self._lock:
            self._ctx = None
            self._finalizer()

    @property
    def closed(self) -> bool:
        return self._ctx is None

    def __enter__(self) -> VisionEncoder:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()


# -- mtmd calls ------------------------------------------------------------------------------------


def _route_mtmd_logging() -> None:
    """Send mtmd/clip log lines where llama.cpp's go, so load errors can be quoted."""
    global _logging_routed
    ensure_backend()
    with _logging_lock:
        if not _logging_routed:
            mt.mtmd_log_set(_mtmd_log_callback, ctypes.c_void_p(0))
            _logging_routed = True


def _check_widths(header: VisionHeader, n_embd: int, name: str) -> None:
    if header.output_width != n_embd:
        raise ModelError(
            f"{name} produces {header.output_width}-wide image embeddings but the text model has "
            f"n_embd {n_embd}; use the mmproj made from the same Gemma 3n checkpoint"
        )
    if header.tower_width != n_embd:
        raise UnsupportedModelError(
            f"{name}: llama.cpp needs the vision tower width ({header.tower_width}) to equal the text "
            f"model's n_embd ({n_embd}) for Gemma 3n projectors"
        )


class _AbortHook:
    """mtmd has no abort callback, but ggml's eval callback can stop a graph between two nodes."""

    def __init__(self) -> None:
        self._check: AbortCheck | None = None
        self._fired = False
        self._nodes = 0
        self.callback = ll.ggml_backend_sched_eval_callback(self._on_node)

    def arm(self, check: AbortCheck | None) -> None:
        self._check, self._fired, self._nodes = check, False, -1  # the first node is a checkpoint

    def disarm(self) -> bool:
        """Stop polling; True if the last encode was cut short."""
        fired, self._check = self._fired, None
        return fired

    def _on_node(self, _tensor: ctypes.c_void_p, ask: bool, _user_data: ctypes.c_void_p) -> bool:
        if ask:
            # "Observe this node?"  ggml asks ahead of computing, so a yes is what makes a checkpoint;
            # each splits the graph there, so only every _NODES_PER_CHECK-th node gets one.
            self._nodes += 1
            return self._check is not None and self._nodes % _NODES_PER_CHECK == 0
        if self._check is not None and self._check():
            self._fired = True
            return False  # ggml stops computing the rest of the graph
        return True


def _init_context(path: Path, model: NativeModel, n_threads: int, use_gpu: bool, abort: _AbortHook) -> int:
    _route_mtmd_logging()
    params = mt.mtmd_context_params_default()
    params.cb_eval = abort.callback
    params.use_gpu = use_gpu
    params.n_threads = n_threads
    params.print_timings = False
    params.warmup = False  # towers load lazily when an image arrives; a warm-up would double that wait
    ctx = mt.mtmd_init_from_file(str(path).encode(), model.model, params)
    if not ctx:
        detail = recent_log_errors()
        raise ModelError(
            f"llama.cpp could not load the vision tower in {path.name}" + (f": {detail}" if detail else "")
        )
    if not mt.mtmd_support_vision(ctx):
        mt.mtmd_free(ctx)
        raise UnsupportedModelError(f"{path.name} has no vision encoder llama.cpp can use")
    return int(ctx)


class _Chunk(NamedTuple):
    """One mtmd chunk: text tokens, or an image's row count."""

    handle: int
    tokens: tuple[int, ...] | None
    n_rows: int


def _probe_layout(ctx: int, image_size: int, name: str) -> ImageLayout:
    """Tokenize one placeholder image (no pixels, nothing encoded) to learn mtmd's wrapping."""
    bitmap = mt.mtmd_bitmap_init(image_size, image_size, None)
    chunks = mt.mtmd_input_chunks_init()
    try:
        parts = _tokenize(ctx, chunks, bitmap)
    finally:
        mt.mtmd_input_chunks_free(chunks)
        mt.mtmd_bitmap_free(bitmap)
    images = [i for i, part in enumerate(parts) if part.tokens is None]
    if len(images) != 1:
        raise UnsupportedModelError(f"{name}: mtmd turned one image into {len(images)} media chunks")
    index = images[0]
    return ImageLayout(_text(parts[:index]), parts[index].n_rows, _text(parts[index + 1 :]))


def _text(parts: list[_Chunk]) -> tuple[int, ...]:
    return tuple(token for part in parts for token in part.tokens or ())


def _tokenize(ctx: int, chunks: int, bitmap: int) -> list[_Chunk]:
    """Run mtmd_tokenize on just the media marker and describe the resulting chunks."""
    marker = mt.mtmd_default_marker()
    text = mt.mtmd_input_text(marker, len(marker), False, True)
    bitmaps = (mt.mtmd_bitmap_p_ctypes * 1)(bitmap)
    status = mt.mtmd_tokenize(ctx, chunks, ctypes.byref(text), bitmaps, 1)
    if status != 0:
        raise EngineFailure(f"mtmd_tokenize failed with status {status}: {recent_log_errors()}")
    parts = []
    for i in range(mt.mtmd_input_chunks_size(chunks)):
        chunk = mt.mtmd_input_chunks_get(chunks, i)
        if mt.mtmd_input_chunk_get_type(chunk) == mt.MTMD_INPUT_CHUNK_TYPE_TEXT:
            count = ctypes.c_size_t(0)
            tokens = mt.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
            parts.append(_Chunk(chunk, tuple(int(tokens[j]) for j in range(count.value)), 0))
        else:
            parts.append(_Chunk(chunk, None, int(mt.mtmd_input_chunk_get_n_tokens(chunk))))
    return parts


def _encode_pixels(ctx: int, pixels: np.ndarray, n_embd: int) -> tuple[np.ndarray, int | None]:
    """One bitmap → one image chunk → mtmd_encode_chunk → a copy of the rows (+ any buffer reserved)."""
    global _last_compute_bytes
    _last_compute_bytes = None
    height, width = pixels.shape[:2]
    bitmap = mt.mtmd_bitmap_init(width, height, pixels.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))
    chunks = mt.mtmd_input_chunks_init()
    try:
        images = [part for part in _tokenize(ctx, chunks, bitmap) if part.tokens is None]
        if len(images) != 1:
            raise EngineFailure(f"mtmd turned one image into {len(images)} media chunks")
        status = mt.mtmd_encode_chunk(ctx, images[0].handle)
        if status != 0:
            raise EngineFailure(f"mtmd_encode_chunk failed with status {status}: {recent_log_errors()}")
        n_values = images[0].n_rows * n_embd
        output = np.ctypeslib.as_array(mt.mtmd_get_output_embd(ctx), shape=(n_values,))
        return output.reshape(images[0].n_rows, n_embd).copy(), _last_compute_bytes
    finally:
        mt.mtmd_input_chunks_free(chunks)
        mt.mtmd_bitmap_free(bitmap)


def _check_image(media: MediaInput) -> None:
    payload = media.payload
    if media.kind != "image" or payload.dtype != np.uint8 or payload.ndim != 3 or payload.shape[2] != 3:
        raise InputError(f"{media.label or 'input'}: the vision encoder takes uint8 RGB images (HxWx3)")
