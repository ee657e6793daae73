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
from dataclasses import dataclass, field
from typing import Literal, Protocol

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from model_io.errors import InputError, UnsupportedModelError
from model_io.media import EmbeddingRun, MediaEncoder, MediaInput, MediaKind, Segment

Role = Literal["system", "user", "assistant"]

BOS_ID = 2
START_OF_TURN_ID = 105
END_OF_TURN_ID = 106
GEMMA3N_STOP_IDS = frozenset({1, 106})


ContentPart = str | MediaInput


@dataclass(frozen=True)
class ChatMessage:
    """One turn: plain text, or text and media parts in the order the user gave them."""

    role: Role
    content: str | tuple[ContentPart, ...]

    @property
    def parts(self) -> tuple[ContentPart, ...]:
        return (self.content,) if isinstance(self.content, str) else self.content

    @property
    def text(self) -> str:
        return "".join(p for p in self.parts if isinstance(p, str))

    @property
    def media(self) -> tuple[MediaInput, ...]:
        return tuple(p for p in self.parts if isinstance(p, MediaInput))


PromptItem = int | tuple[str, int]
"""A prompt position: a token id, or row ``i`` of the embedding run named by the string key."""


@dataclass(frozen=True)
class BuiltPrompt:
    """Prompt positions plus, for each embedding run, the media and the encoder that fill it."""

    items: list[PromptItem]
    runs: dict[str, tuple[MediaInput, MediaEncoder]] = field(default_factory=dict)


class PromptBuilder(Protocol):
    """Builds the prompt for a conversation ending with a user turn."""

    def build(self, messages: Sequence[ChatMessage]) -> BuiltPrompt: ...


Tokenize = Callable[[str], list[int]]
EncoderLookup = Callable[[MediaKind], MediaEncoder]


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
    """Token-level form of Gemma 3n's chat template, with the processor's media expansion."""

    def __init__(
        self,
        tokenize: Tokenize,
        generated: Mapping[str, Sequence[int]] | None = None,
        encoder_for: EncoderLookup | None = None,
    ):
        self._tokenize = tokenize
        self._generated = generated if generated is not None else {}
        self._encoder_for = encoder_for

    def build(self, messages: Sequence[ChatMessage]) -> BuiltPrompt:
        turns = check_roles(messages)
        prefix = messages[0].text + "\n\n" if messages[0].role == "system" else ""
        pieces: list[Segment] = [(BOS_ID,)]
        runs: dict[str, tuple[MediaInput, MediaEncoder]] = {}
        for index, message in enumerate(turns):
            pieces.append((START_OF_TURN_ID,))
            if message.role == "assistant" and message.text in self._generated and not message.media:
                pieces += ["model\n", tuple(self._generated[message.text])]
            else:
                role = "model" if message.role == "assistant" else "user"
                pieces.append(f"{role}\n{prefix if index == 0 else ''}")
                pieces += self._content(message, runs)
            pieces += [(END_OF_TURN_ID,), "\n"]
        pieces += [(START_OF_TURN_ID,), "model\n"]
        return BuiltPrompt(self._flatten(pieces), runs)

    def _content(
        self, message: ChatMessage, runs: dict[str, tuple[MediaInput, MediaEncoder]]
    ) -> list[Segment]:
        """Text parts are trimmed (the template's ``| trim``); media expand to their encoder's layout."""
        out: list[Segment] = []
        for part in message.parts:
            if isinstance(part, str):
                out.append(part.strip())
                continue
            encoder = self._media_encoder(part.kind)
            for segment in encoder.layout(part):
                if isinstance(segment, EmbeddingRun):
                    runs[segment.key] = (part, encoder)
                out.append(segment)
        return out

    def _media_encoder(self, kind: MediaKind) -> MediaEncoder:
        if self._encoder_for is None:
            raise InputError(f"{kind} input needs a Gemma 3n projector (mmproj) file loaded with the model")
        return self._encoder_for(kind)

    def _flatten(self, pieces: list[Segment]) -> list[PromptItem]:
        """Merge adjacent text, tokenize it without special-token parsing, expand embedding runs."""
        items: list[PromptItem] = []
        text: list[str] = []
        for piece in [*pieces, ()]:
            if isinstance(piece, str):
                text.append(piece)
                continue
            if text:
                joined = "".join(text)
                items += self._tokenize(joined) if joined else []
                text = []
            if isinstance(piece, EmbeddingRun):
                items += [(piece.key, row) for row in range(piece.n_rows)]
            else:
                items += list(piece)
        return items


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
        if any(m.media for m in messages):
            raise InputError("images and audio are supported for Gemma 3n models only")
        payload = [{"role": m.role, "content": m.text} for m in messages]
        try:
            return self._template.render(
                messages=payload, add_generation_prompt=True, bos_token=self._bos, eos_token=self._eos
            )
        except jinja2.TemplateError as exc:
            raise InputError(f"the model's chat template rejected the conversation: {exc}") from exc

    def build(self, messages: Sequence[ChatMessage]) -> BuiltPrompt:
        return BuiltPrompt(list(self._tokenize(self.render(messages))))


def _raise_template_error(message: str) -> None:
    raise jinja2.TemplateError(message)
