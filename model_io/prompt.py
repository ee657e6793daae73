"""Turn a conversation into the exact token ids a model was trained on.

Gemma 3n gets a token-level builder that reproduces the official chat template
(system text folded into the first user turn, ``<start_of_turn>``/``<end_of_turn>``,
trimmed content) while tokenizing user text *without* special-token parsing, so a
user typing ``<end_of_turn>`` cannot forge control tokens, and reusing the exact
ids the model generated for earlier answers, so the next turn's prompt extends
the KV cache instead of diverging from it.  Other models (Gemma 3, Gemma 4, …)
render the chat template embedded in their GGUF.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from model_io.errors import InputError, UnsupportedModelError

Role = Literal["system", "user", "assistant"]

BOS_ID = 2
START_OF_TURN_ID = 105
END_OF_TURN_ID = 106
GEMMA3N_STOP_IDS = frozenset({1, 106})


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a conversation."""

    role: Role
    text: str


class PromptBuilder(Protocol):
    """Builds prompt token ids for a conversation ending with a user turn."""

    def build(self, messages: Sequence[ChatMessage]) -> list[int]: ...


Tokenize = Callable[[str], list[int]]


def check_roles(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Validate role order and return the turns without the leading system message."""
    if not messages:
        raise InputError("the conversation is empty")
    turns = list(messages[1:] if messages[0].role == "system" else messages)
    if not turns:
        raise InputError("the conversation has only a system message; add a user message")
    for index, message in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        if message.role != expected:
            raise InputError(
                f"conversation roles must alternate user/assistant starting with user; "
                f"turn {index + 1} is {message.role!r}"
            )
    if turns[-1].role != "user":
        raise InputError("the conversation must end with a user message")
    return turns


class Gemma3nPromptBuilder:
    """Token-level form of Gemma 3n's chat template."""

    def __init__(self, tokenize: Tokenize, generated: Mapping[str, Sequence[int]] | None = None):
        self._tokenize = tokenize
        self._generated = generated if generated is not None else {}

    def build(self, messages: Sequence[ChatMessage]) -> list[int]:
        turns = check_roles(messages)
        prefix = messages[0].text + "\n\n" if messages[0].role == "system" else ""
        ids = [BOS_ID]
        for index, message in enumerate(turns):
            ids.append(START_OF_TURN_ID)
            if message.role == "assistant" and message.text in self._generated:
                ids += self._tokenize("model\n")
                ids += self._generated[message.text]
            else:
                role = "model" if message.role == "assistant" else "user"
                first = prefix if index == 0 else ""
                ids += self._tokenize(f"{role}\n{first}{message.text.strip()}")
            ids.append(END_OF_TURN_ID)
            ids += self._tokenize("\n")
        ids.append(START_OF_TURN_ID)
        ids += self._tokenize("model\n")
        return ids


class TemplatePromptBuilder:
    """Renders a GGUF's embedded Jinja chat template, as llama.cpp's server does."""

    def __init__(self, template: str, tokenize_special: Tokenize, bos: str = "<bos>", eos: str = "<eos>"):
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise_template_error
        try:
            self._template = env.from_string(template)
        except jinja2.TemplateError as exc:
            raise UnsupportedModelError(f"the model's chat template does not parse: {exc}") from exc
        self._tokenize = tokenize_special
        self._bos, self._eos = bos, eos

    def render(self, messages: Sequence[ChatMessage]) -> str:
        check_roles(messages)
        payload = [{"role": m.role, "content": m.text} for m in messages]
        try:
            return self._template.render(
                messages=payload, add_generation_prompt=True, bos_token=self._bos, eos_token=self._eos
            )
        except jinja2.TemplateError as exc:
            raise InputError(f"the model's chat template rejected the conversation: {exc}") from exc

    def build(self, messages: Sequence[ChatMessage]) -> list[int]:
        return self._tokenize(self.render(messages))


def _raise_template_error(message: str) -> None:
    raise jinja2.TemplateError(message)
