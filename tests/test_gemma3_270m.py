"""Real-language checks on the real Gemma 3 270M GGUF (a base model) shipped on PyPI."""

from __future__ import annotations

from pathlib import Path

import llama_cpp as ll
import numpy as np
import pytest
from engine_helpers import LoadedEngine

from model_io.chat_templates import GEMMA3N_CHAT_TEMPLATE
from model_io.events import ChatRequest, Done
from model_io.native import NativeModel
from model_io.prompt import ChatMessage, TemplatePromptBuilder
from model_io.settings import LoadSettings, SamplingSettings

QUESTION = "Translate to French: Good morning."
# Greedy continuation recorded with this engine (llama.cpp 0.3.36 CPU build); the smallest top-1 margin
# over these tokens is 0.18 logits, so it is stable on this machine, and the test below checks the
# engine against a plain argmax loop over llama.cpp's own logits.
EXPECTED_START = "Translate to English: Good morning."


def argmax_continuation(model: NativeModel, prompt: list[int], n: int) -> list[int]:
    model.clear_memory()
    model.decode(prompt, 0, lambda: False)
    out: list[int] = []
    for _ in range(n):
        logits = np.ctypeslib.as_array(ll.llama_get_logits_ith(model.ctx, -1), shape=(model.n_vocab,))
        token = int(np.argmax(logits))
        if token in (1, 106):
            break
        out.append(token)
        model.decode([token], len(prompt) + len(out) - 1, lambda: False)
    return out


@pytest.fixture(scope="module")
def engine_270m(gemma3_270m: Path):  # type: ignore[no-untyped-def]
    loaded = LoadedEngine(gemma3_270m, n_ctx=1024)
    yield loaded
    loaded.engine.close()


def test_greedy_answer_is_deterministic_and_matches_llama_cpp_logits(engine_270m, gemma3_270m: Path) -> None:  # type: ignore[no-untyped-def]
    request = ChatRequest((ChatMessage("user", QUESTION),), SamplingSettings.greedy_decoding(), max_tokens=12)
    engine_270m.engine.submit(request)
    done = list(engine_270m.events.events_for(request.request_id, timeout=120))[-1]
    again = ChatRequest(request.messages, request.sampling, max_tokens=12)
    engine_270m.engine.new_conversation()
    engine_270m.engine.submit(again)
    done_again = list(engine_270m.events.events_for(again.request_id, timeout=120))[-1]
    assert isinstance(done, Done) and isinstance(done_again, Done)
    assert done.text == done_again.text
    assert done.text.startswith(EXPECTED_START)

    model = NativeModel(gemma3_270m, LoadSettings(n_ctx=1024, n_threads=2))
    try:
        builder = TemplatePromptBuilder(
            GEMMA3N_CHAT_TEMPLATE, lambda t: model.tokenize(t, parse_special=True)
        )
        prompt = [int(i) for i in builder.build(request.messages).items]
        reference = argmax_continuation(model, prompt, 12)
        assert done.text == b"".join(model.piece(t) for t in reference).decode("utf-8", errors="replace")
    finally:
        model.close()


def test_gemma3n_template_tokenizes_to_gemma_special_ids(gemma3_270m: Path) -> None:
    model = NativeModel(gemma3_270m, LoadSettings(n_ctx=512, n_threads=1))
    try:
        builder = TemplatePromptBuilder(
            GEMMA3N_CHAT_TEMPLATE, lambda t: model.tokenize(t, parse_special=True)
        )
        ids = builder.build([ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")]).items
        assert ids[:4] == [2, 105, 2364, 107]  # <bos> <start_of_turn> "user" "\n"
        assert ids[-5:] == [106, 107, 105, 4368, 107]  # <end_of_turn> "\n" <start_of_turn> "model" "\n"
    finally:
        model.close()
