"""One conversation's worth of generation on a loaded model, with KV-cache reuse.

``ChatSession`` remembers exactly which token ids sit in the KV cache.  Each new
request keeps the longest common prefix and prefills only what follows it, so in
a multi-turn chat turn N+1 evaluates just its new tokens.  Sliding-window
(SWA) caches cannot always be cut back; the session checks and falls back to a
full prefill when the window needed is gone.
"""

from __future__ import annotations

import codecs
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field

import numpy as np

from model_io.errors import InputError
from model_io.events import ChatRequest, Done, EngineEvent, FinishReason, ResponseStats, Stats, TextDelta
from model_io.media import EncodeCancelled
from model_io.native import NativeModel, NativeSampler
from model_io.prompt import (
    GEMMA3N_STOP_IDS,
    BuiltPrompt,
    EncoderLookup,
    Gemma3nPromptBuilder,
    PromptBuilder,
    PromptItem,
    TemplatePromptBuilder,
)

Clock = Callable[[], float]
CancelCheck = Callable[[], bool]
_MAX_REMEMBERED_ANSWERS = 256


def peak_rss_bytes() -> int | None:
    """Peak resident memory of this process, where the platform reports it."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def common_prefix_length(a: list[PromptItem], b: list[PromptItem]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


@dataclass
class _Timing:
    start: float
    prefill_ms: float = 0.0
    first_token: float | None = None
    decode_s: float = 0.0
    decoded: int = 0
    encode_ms: dict[str, float] = field(default_factory=dict)


class ChatSession:
    """Prompt building, KV bookkeeping and the sampling loop for one model."""

    def __init__(
        self,
        model: NativeModel,
        architecture: str,
        clock: Clock = time.perf_counter,
        encoder_for: EncoderLookup | None = None,
    ):
        self.model = model
        self.clock = clock
        self.kv_tokens: list[PromptItem] = []
        self._answers: OrderedDict[str, list[int]] = OrderedDict()
        self._encoded: dict[str, np.ndarray] = {}
        self._encoder_for = encoder_for
        self.builder = self._builder_for(architecture)
        self.stop_ids = set(GEMMA3N_STOP_IDS) if architecture == "gemma3n" else set()

    def _builder_for(self, architecture: str) -> PromptBuilder:
        if architecture == "gemma3n":
            return Gemma3nPromptBuilder(
                lambda text: self.model.tokenize(text), self._answers, self._encoder_for
            )
        template = self.model.chat_template()
        if not template:
            from model_io.chat_templates import GEMMA3N_CHAT_TEMPLATE

            template = GEMMA3N_CHAT_TEMPLATE if architecture.startswith("gemma") else None
        if template is None:
            from model_io.errors import UnsupportedModelError

            raise UnsupportedModelError("the model has no chat template, so it cannot be used for chat")
        return TemplatePromptBuilder(template, lambda text: self.model.tokenize(text, parse_special=True))

    def reset(self) -> None:
        """Forget the cache and encoded media (a new conversation)."""
        self.model.clear_memory()
        self.kv_tokens = []
        self._encoded.clear()

    # -- generation -----------------------------------------------------------------

    def generate(self, request: ChatRequest, cancelled: CancelCheck) -> Iterator[EngineEvent]:
        """Stream deltas, then stats, then done; raises GemmaDeskError for bad input."""
        timing = _Timing(start=self.clock())
        built = self.builder.build(request.messages)
        prompt = built.items
        if len(prompt) >= self.model.n_ctx:
            raise InputError(
                f"the conversation is {len(prompt)} tokens but the context holds {self.model.n_ctx}; "
                "start a new chat or raise the context size"
            )
        reused = self._reuse_prefix(prompt)
        if not self._prefill(built, reused, cancelled, timing):
            yield Done(request.request_id, "cancelled", "")
            return
        answer: list[int] = []
        text_parts: list[str] = []
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        finish = yield from self._sample_loop(request, cancelled, timing, answer, text_parts, decoder)
        tail = decoder.decode(b"", final=True)
        if tail:
            text_parts.append(tail)
            yield TextDelta(request.request_id, tail)
        text = "".join(text_parts)
        self._remember_answer(text, answer)
        yield Stats(request.request_id, self._stats(len(prompt), len(prompt) - reused, len(answer), timing))
        yield Done(request.request_id, finish, text)

    def _sample_loop(
        self,
        request: ChatRequest,
        cancelled: CancelCheck,
        timing: _Timing,
        answer: list[int],
        text_parts: list[str],
        decoder: codecs.IncrementalDecoder,
    ) -> Generator[EngineEvent, None, FinishReason]:
        default_seed = int(time.time_ns() & 0xFFFFFFFF)
        with NativeSampler(request.sampling, default_seed, self.model.n_vocab) as sampler:
            while True:
                if cancelled():
                    return "cancelled"
                token = sampler.sample(self.model)
                if timing.first_token is None:
                    timing.first_token = self.clock()
                if token in self.stop_ids or self.model.is_end_of_generation(token):
                    return "stop"
                answer.append(token)
                piece = decoder.decode(self.model.piece(token))
                if piece:
                    text_parts.append(piece)
                    yield TextDelta(request.request_id, piece)
                if len(answer) >= request.max_tokens or len(self.kv_tokens) + 1 >= self.model.n_ctx:
                    return "length"
                if not self._decode_one(token, cancelled, timing):
                    return "cancelled"

    def _reuse_prefix(self, prompt: list[PromptItem]) -> int:
        """Keep the longest usable cached prefix; return how many prompt tokens it covers."""
        keep = min(common_prefix_length(self.kv_tokens, prompt), len(prompt) - 1)
        if keep < len(self.kv_tokens):
            if not self.model.remove_from(keep) or not self._window_intact(keep):
                self.reset()
                return 0
            del self.kv_tokens[keep:]
        return keep

    def _window_intact(self, keep: int) -> bool:
        """After cutting an SWA cache back, are the positions the next token attends to still cached?"""
        if self.model.n_swa <= 0 or keep == 0:
            return True
        return self.model.lowest_cached_position() <= max(0, keep - self.model.n_swa)

    def _prefill(self, built: BuiltPrompt, reused: int, cancelled: CancelCheck, timing: _Timing) -> bool:
        """Evaluate the prompt after the reused prefix: token spans and embedding spans in order."""
        started = self.clock()
        prompt = built.items
        position = reused
        for span in prompt_spans(prompt, reused):
            is_last = span.stop == len(prompt)
            if isinstance(prompt[span.start], int):
                ids = [int(item) for item in prompt[span]]  # type: ignore[arg-type]
                ok = self.model.decode(ids, position, cancelled, want_last_logits=is_last)
            else:
                try:
                    rows = self._rows_for(built, prompt[span], timing, cancelled)
                except EncodeCancelled:
                    ok = False
                else:
                    ok = self.model.decode_embeddings(rows, position, cancelled, want_last_logits=is_last)
            if not ok:
                self._drop_partial(len(self.kv_tokens))
                timing.prefill_ms = (self.clock() - started) * 1000.0
                return False
            self.kv_tokens += prompt[span]
            position = span.stop
        timing.prefill_ms = (self.clock() - started) * 1000.0 - sum(timing.encode_ms.values())
        return True

    def _rows_for(
        self, built: BuiltPrompt, items: list[PromptItem], timing: _Timing, abort_check: CancelCheck
    ) -> np.ndarray:
        """The embedding rows of one span, encoding its media at most once per conversation."""
        key, first = items[0]  # type: ignore[misc]
        if key not in self._encoded:
            media, encoder = built.runs[key]
            started = self.clock()
            self._encoded[key] = encoder.encode(media, abort_check)
            elapsed = (self.clock() - started) * 1000.0
            timing.encode_ms[media.kind] = timing.encode_ms.get(media.kind, 0.0) + elapsed
        return self._encoded[key][first : first + len(items)]

    def _decode_one(self, token: int, cancelled: CancelCheck, timing: _Timing) -> bool:
        started = self.clock()
        ok = self.model.decode([token], len(self.kv_tokens), cancelled)
        timing.decode_s += self.clock() - started
        if ok:
            self.kv_tokens.append(token)
            timing.decoded += 1
        else:
            self._drop_partial(len(self.kv_tokens))
        return ok

    def _drop_partial(self, valid: int) -> None:
        """An aborted decode may leave cells past what we track; remove them or start over."""
        if not self.model.remove_from(valid):
            self.reset()

    def _remember_answer(self, text: str, answer: list[int]) -> None:
        if text:
            self._answers[text] = list(answer)
            self._answers.move_to_end(text)
            while len(self._answers) > _MAX_REMEMBERED_ANSWERS:
                self._answers.popitem(last=False)

    def _stats(self, prompt_tokens: int, prefilled: int, generated: int, timing: _Timing) -> ResponseStats:
        first = timing.first_token if timing.first_token is not None else self.clock()
        rate = timing.decoded / timing.decode_s if timing.decode_s > 0 else 0.0
        return ResponseStats(
            prompt_tokens=prompt_tokens,
            prompt_tokens_prefilled=prefilled,
            prefill_ms=timing.prefill_ms,
            time_to_first_token_ms=(first - timing.start) * 1000.0,
            generated_tokens=generated,
            decode_ms=timing.decode_s * 1000.0,
            decode_tokens_per_s=rate,
            peak_rss_bytes=peak_rss_bytes(),
            audio_encode_ms=timing.encode_ms.get("audio", 0.0),
            image_encode_ms=timing.encode_ms.get("image", 0.0),
        )


def prompt_spans(items: list[PromptItem], start: int) -> Iterator[slice]:
    """Maximal runs from ``start`` that one decode call can take: all tokens, or rows of one embedding run."""
    begin = start
    for index in range(start + 1, len(items) + 1):
        if index == len(items) or _span_key(items[index]) != _span_key(items[begin]):
            yield slice(begin, index)
            begin = index


def _span_key(item: PromptItem) -> str | None:
    return None if isinstance(item, int) else item[0]
