"""Thin, deterministic-lifetime wrappers around llama.cpp's C API.

The high-level ``llama_cpp.Llama`` class resets multimodal KV state, copies the
full logit row into NumPy per token and cannot be interrupted during prefill.
The engine needs exact control over the KV cache (prefix reuse, embedding
injection for audio), so it talks to the C API directly through these wrappers.
Every native object is released by ``close()`` in reverse order of creation.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import llama_cpp as ll
import numpy as np

from model_io.errors import EngineFailure, ModelError
from model_io.ggml_registry import load_backend_modules
from model_io.memory_usage import parse_buffer_sizes
from model_io.settings import DEFAULT_CONTEXT, Backend, LoadSettings, SamplingSettings

log = logging.getLogger("gemma_desk.llama")
_recent_lines: deque[str] = deque(maxlen=40)
# ggml_log_level: 1 debug, 2 info, 3 warn, 4 error, 5 continuation of the previous line.
_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR, 5: logging.DEBUG}


@ll.llama_log_callback
def _log_callback(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    """Route llama.cpp's log to ``logging`` and keep recent lines for error messages."""
    line = text.decode("utf-8", errors="replace").rstrip()
    if line:
        _recent_lines.append(line)
        captured = getattr(_captured, "lines", None)
        if captured is not None and "buffer size" in line:
            captured.append(line)
        log.log(_LEVELS.get(level, logging.DEBUG), "%s", line)


_captured = threading.local()


@contextlib.contextmanager
def _capture_buffer_lines() -> Iterator[list[str]]:
    """llama.cpp's "... buffer size = N MiB" lines logged on this thread (memory reporting uses them)."""
    lines: list[str] = []
    _captured.lines = lines
    try:
        yield lines
    finally:
        _captured.lines = None


_backend_lock = threading.Lock()
_backend_ready = False


def ensure_backend() -> None:
    """Initialise llama.cpp once per process and silence its default stderr logging."""
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            ll.llama_log_set(_log_callback, ctypes.c_void_p(0))
            load_backend_modules()  # portable builds keep backends as modules in llama_cpp/lib
            ll.llama_backend_init()
            _backend_ready = True


def recent_log_errors() -> str:
    """The last llama.cpp lines mentioning an error, to make failure messages specific."""
    errors = [line for line in _recent_lines if "error" in line.lower() or "failed" in line.lower()]
    return errors[-1] if errors else ""


def supports_gpu_offload() -> bool:
    ensure_backend()
    return bool(ll.llama_supports_gpu_offload())


AbortCheck = Callable[[], bool]


class NativeModel:
    """One loaded model, its context, a reusable batch and the abort hook."""

    def __init__(self, path: Path, settings: LoadSettings, progress: Callable[[float], bool] | None = None):
        ensure_backend()
        self._stack = contextlib.ExitStack()
        self._abort_check: AbortCheck = lambda: False
        self._keepalive: list[object] = []
        try:
            with _capture_buffer_lines() as buffer_lines:
                self.model = self._load_model(path, settings, progress)
                self._stack.callback(ll.llama_model_free, self.model)
                self.vocab = ll.llama_model_get_vocab(self.model)
                self.ctx = self._new_context(settings)
                self._stack.callback(ll.llama_free, self.ctx)
            self.buffers = parse_buffer_sizes(buffer_lines)  # weights, KV cache, compute, as allocated
            self.n_batch = settings.n_batch
            self._batch = ll.llama_batch_init(self.n_batch, 0, 1)
            self._stack.callback(ll.llama_batch_free, self._batch)
            self._install_abort_callback()
        except BaseException:
            self._stack.close()
            raise
        self.memory = ll.llama_get_memory(self.ctx)
        self.n_embd = int(ll.llama_model_n_embd(self.model))
        self._embd_batch: ll.llama_batch | None = None
        self.n_ctx = int(ll.llama_n_ctx(self.ctx))
        self.n_swa = int(ll.llama_model_n_swa(self.model))
        self.n_vocab = int(ll.llama_vocab_n_tokens(self.vocab))
        # set by the engine: starts reading the PLE rows of a batch's tokens before llama.cpp faults them in
        self.prefetch_rows: Callable[[Sequence[int]], None] | None = None
        self.closed = False

    # -- lifetime -----------------------------------------------------------------

    def close(self) -> None:
        """Free the batch, context and model now rather than at garbage collection."""
        if not getattr(self, "closed", True):
            self.closed = True
            self._stack.close()

    def _load_model(
        self, path: Path, settings: LoadSettings, progress: Callable[[float], bool] | None
    ) -> int:
        params = ll.llama_model_default_params()
        # "not chosen" (None layers, context 0) is resolved by the engine's memory plan; safe defaults here
        params.n_gpu_layers = 0 if settings.backend is Backend.CPU else (settings.n_gpu_layers or 0)
        params.load_mode = ll.LLAMA_LOAD_MODE_MMAP if settings.use_mmap else ll.LLAMA_LOAD_MODE_NONE
        if progress is not None:
            callback = ll.llama_progress_callback(lambda fraction, _data: bool(progress(float(fraction))))
            self._keepalive.append(callback)
            params.progress_callback = callback
        model = ll.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            detail = recent_log_errors()
            raise ModelError(f"llama.cpp could not load {path.name}" + (f": {detail}" if detail else ""))
        return model

    def _new_context(self, settings: LoadSettings) -> int:
        params = ll.llama_context_default_params()
        params.n_ctx = settings.n_ctx or DEFAULT_CONTEXT
        params.n_batch = settings.n_batch
        params.n_ubatch = settings.n_batch
        params.n_threads = settings.threads
        params.n_threads_batch = settings.threads
        params.no_perf = False
        params.swa_full = False  # a full-size SWA cache costs ~256 MiB at 8k on E2B; reuse is checked instead
        # Logits are only ever read for a batch's last token; the default (n_batch rows) makes llama.cpp
        # reserve n_batch x n_vocab floats in the compute buffer: 512 MiB with Gemma's 262k vocabulary.
        params.n_outputs_max = 1
        ctx = ll.llama_init_from_model(self.model, params)
        if not ctx:
            detail = recent_log_errors()
            raise ModelError(
                f"llama.cpp could not create a {settings.n_ctx}-token context"
                + (f": {detail}" if detail else " (not enough memory?)")
            )
        return ctx

    def _install_abort_callback(self) -> None:
        callback = ll.ggml_abort_callback(lambda _data: bool(self._abort_check()))
        self._keepalive.append(callback)
        self._abort_callback = callback
        ll.llama_set_abort_callback(self.ctx, callback, ctypes.c_void_p(0))
        self._abort_armed = True

    def _arm_abort(self, armed: bool) -> None:
        """Attach or detach llama.cpp's abort callback, calling into llama.cpp only on a change.

        ggml calls the callback after every graph node, and a Python callback costs microseconds
        per call (thousands of nodes per token at full size: several % of decode time), so single-
        token steps run without it; the sampling loop checks for cancellation between tokens.
        """
        if armed != self._abort_armed:
            callback = self._abort_callback if armed else ll.ggml_abort_callback()
            ll.llama_set_abort_callback(self.ctx, callback, ctypes.c_void_p(0))
            self._abort_armed = armed

    # -- vocabulary ---------------------------------------------------------------

    def tokenize(self, text: str, *, add_bos: bool = False, parse_special: bool = False) -> list[int]:
        """Tokenize; ``parse_special=False`` keeps user text from forging control tokens."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buffer = (ll.llama_token * capacity)()
        count = ll.llama_tokenize(self.vocab, data, len(data), buffer, capacity, add_bos, parse_special)
        if count < 0:
            capacity = -count
            buffer = (ll.llama_token * capacity)()
            count = ll.llama_tokenize(self.vocab, data, len(data), buffer, capacity, add_bos, parse_special)
        return list(buffer[:count])

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for (special tokens render as empty)."""
        buffer = ctypes.create_string_buffer(64)
        size = ll.llama_token_to_piece(self.vocab, token, buffer, 64, 0, False)
        if size < 0:
            buffer = ctypes.create_string_buffer(-size)
            size = ll.llama_token_to_piece(self.vocab, token, buffer, -size, 0, False)
        return buffer.raw[:size]

    def is_end_of_generation(self, token: int) -> bool:
        return bool(ll.llama_vocab_is_eog(self.vocab, token))

    def metadata(self, key: str) -> str | None:
        buffer = ctypes.create_string_buffer(256)
        size = ll.llama_model_meta_val_str(self.model, key.encode(), buffer, 256)
        if size < 0:
            return None
        if size >= 256:
            buffer = ctypes.create_string_buffer(size + 1)
            ll.llama_model_meta_val_str(self.model, key.encode(), buffer, size + 1)
        return buffer.value.decode("utf-8", errors="replace")

    def chat_template(self) -> str | None:
        raw = ll.llama_model_chat_template(self.model, None)
        return raw.decode("utf-8") if raw else None

    # -- KV cache -----------------------------------------------------------------

    def clear_memory(self) -> None:
        ll.llama_memory_clear(self.memory, True)

    def remove_from(self, position: int) -> bool:
        """Drop cached positions ``>= position``; False if the cache cannot do it partially."""
        return bool(ll.llama_memory_seq_rm(self.memory, 0, position, -1))

    def lowest_cached_position(self) -> int:
        return int(ll.llama_memory_seq_pos_min(self.memory, 0))

    # -- evaluation -----------------------------------------------------------------

    def decode(
        self, tokens: Sequence[int], start: int, abort_check: AbortCheck, *, want_last_logits: bool = True
    ) -> bool:
        """Evaluate ``tokens`` at positions ``start…``; logits only for the last. False if aborted.

        A single token is not interruptible inside llama.cpp (see :meth:`_arm_abort`); longer
        inputs are, between graph nodes.
        """
        self._abort_check = abort_check
        self._arm_abort(len(tokens) > 1)
        if self.prefetch_rows is not None and len(tokens) > 1:
            self.prefetch_rows(tokens)
        try:
            for offset in range(0, len(tokens), self.n_batch):
                chunk = tokens[offset : offset + self.n_batch]
                is_last_chunk = offset + len(chunk) == len(tokens)
                if not self._decode_chunk(
                    chunk, start + offset, want_last_logits=want_last_logits and is_last_chunk
                ):
                    return False
            return True
        finally:
            self._abort_check = lambda: False

    def decode_embeddings(
        self, rows: np.ndarray, start: int, abort_check: AbortCheck, *, want_last_logits: bool = False
    ) -> bool:
        """Evaluate embedding rows (n, n_embd) in place of tokens; False if aborted."""
        if rows.ndim != 2 or rows.shape[1] != self.n_embd:
            raise EngineFailure(
                f"embedding rows have shape {rows.shape}, the model expects (n, {self.n_embd})"
            )
        batch = self._embedding_batch()
        data = np.ascontiguousarray(rows, dtype=np.float32)
        self._abort_check = abort_check
        self._arm_abort(True)
        try:
            for offset in range(0, len(data), self.n_batch):
                chunk = data[offset : offset + self.n_batch]
                ctypes.memmove(batch.embd, chunk.ctypes.data, chunk.nbytes)
                is_last = offset + len(chunk) == len(data)
                self._fill_positions(batch, len(chunk), start + offset, want_last_logits and is_last)
                if not self._run(batch):
                    return False
            return True
        finally:
            self._abort_check = lambda: False

    def _embedding_batch(self) -> ll.llama_batch:
        if self._embd_batch is None:
            self._embd_batch = ll.llama_batch_init(self.n_batch, self.n_embd, 1)
            self._stack.callback(ll.llama_batch_free, self._embd_batch)
        return self._embd_batch

    @staticmethod
    def _fill_positions(batch: Any, n: int, start: int, want_last_logits: bool) -> None:
        # Any: ctypes' pointer-field stubs reject plain int item assignment.
        for i in range(n):
            batch.pos[i] = start + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 0
        batch.n_tokens = n
        if want_last_logits:
            batch.logits[n - 1] = 1

    def _run(self, batch: ll.llama_batch) -> bool:
        status = ll.llama_decode(self.ctx, batch)
        if status == 2:
            return False
        if status != 0:
            detail = recent_log_errors()
            raise EngineFailure(
                f"llama_decode failed with status {status}" + (f": {detail}" if detail else "")
            )
        return True

    def _decode_chunk(self, chunk: Sequence[int], start: int, *, want_last_logits: bool) -> bool:
        batch = self._batch
        for i, token in enumerate(chunk):
            batch.token[i] = token
        self._fill_positions(batch, len(chunk), start, want_last_logits)
        return self._run(batch)

    def perf(self) -> ll.llama_perf_context_data:
        return ll.llama_perf_context(self.ctx)


class NativeSampler:
    """A llama.cpp sampler chain built from :class:`SamplingSettings`."""

    def __init__(self, settings: SamplingSettings, default_seed: int, n_vocab: int):
        params = ll.llama_sampler_chain_default_params()
        self.chain = ll.llama_sampler_chain_init(params)
        if settings.logit_bias:
            ll.llama_sampler_chain_add(self.chain, _logit_bias_sampler(settings.logit_bias, n_vocab))
        if settings.greedy:
            ll.llama_sampler_chain_add(self.chain, ll.llama_sampler_init_greedy())
        else:
            if settings.top_k > 0:
                ll.llama_sampler_chain_add(self.chain, ll.llama_sampler_init_top_k(settings.top_k))
            ll.llama_sampler_chain_add(self.chain, ll.llama_sampler_init_top_p(settings.top_p, 1))
            ll.llama_sampler_chain_add(self.chain, ll.llama_sampler_init_temp(settings.temperature))
            seed = settings.seed if settings.seed is not None else default_seed
            ll.llama_sampler_chain_add(self.chain, ll.llama_sampler_init_dist(seed & 0xFFFFFFFF))

    def sample(self, model: NativeModel) -> int:
        """Sample from the last evaluated position's logits (and accept the token)."""
        return int(ll.llama_sampler_sample(self.chain, model.ctx, -1))

    def close(self) -> None:
        if self.chain:
            ll.llama_sampler_free(self.chain)
            self.chain = None

    def __enter__(self) -> NativeSampler:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _logit_bias_sampler(bias: tuple[tuple[int, float], ...], n_vocab: int) -> object:
    entries = (ll.llama_logit_bias * len(bias))()
    for slot, (token, value) in zip(entries, bias, strict=True):
        slot.token, slot.bias = token, value
    return ll.llama_sampler_init_logit_bias(n_vocab, len(bias), entries)
