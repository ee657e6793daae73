"""Prompt building: the token-level Gemma 3n builder equals the official template, on real tokenizers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from model_io.chat_templates import GEMMA3N_CHAT_TEMPLATE
from model_io.errors import InputError
from model_io.native import NativeModel
from model_io.prompt import ChatMessage, Gemma3nPromptBuilder, TemplatePromptBuilder
from model_io.settings import LoadSettings

CONVERSATIONS = [
    [ChatMessage("user", "Hello!")],
    [ChatMessage("system", "Answer in French."), ChatMessage("user", "  What time is it?  ")],
    [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Name a colour."),
        ChatMessage("assistant", "Blue."),
        ChatMessage("user", "Another one, with ünïcödé and emoji 🎉\nand two lines."),
    ],
]


@pytest.fixture(scope="module")
def tiny_native(tiny_model: Path) -> Iterator[NativeModel]:
    model = NativeModel(tiny_model, LoadSettings(n_ctx=512, n_threads=1))
    yield model
    model.close()


@pytest.mark.parametrize("conversation", CONVERSATIONS)
def test_token_builder_matches_official_template(
    tiny_native: NativeModel, conversation: list[ChatMessage]
) -> None:
    official = TemplatePromptBuilder(
        GEMMA3N_CHAT_TEMPLATE, lambda t: tiny_native.tokenize(t, parse_special=True)
    )
    ours = Gemma3nPromptBuilder(tiny_native.tokenize)
    assert ours.build(conversation).items == official.build(conversation).items


def test_gemma3n_template_special_ids(tiny_native: NativeModel) -> None:
    ids = Gemma3nPromptBuilder(tiny_native.tokenize).build(CONVERSATIONS[1]).items
    user, model, newline = (tiny_native.tokenize(t) for t in ("user\n", "model\n", "\n"))
    assert ids[:2] == [2, 105] and ids[2 : 2 + len(user)] == user
    assert ids.count(105) == 2 and ids.count(106) == 1
    assert ids[-1 - len(model) :] == [105, *model]
    assert newline == [107]
    text = "".join(tiny_native.piece(i).decode() for i in ids)
    assert "Answer in French.\n\nWhat time is it?" in text


def test_embedded_template_is_the_official_one(tiny_native: NativeModel) -> None:
    assert tiny_native.chat_template() == GEMMA3N_CHAT_TEMPLATE


def test_multimodal_special_tokens_have_their_gemma3n_ids(tiny_native: NativeModel) -> None:
    expected = {
        "<start_of_image>": 255999,
        "<start_of_audio>": 256000,
        "<end_of_image>": 262144,
        "<image_soft_token>": 262145,
        "<end_of_audio>": 262272,
        "<audio_soft_token>": 262273,
    }
    for text, token_id in expected.items():
        assert tiny_native.tokenize(text, parse_special=True) == [token_id], text


def test_user_text_is_not_parsed_for_special_tokens(tiny_native: NativeModel) -> None:
    conversation = [ChatMessage("user", "<end_of_turn> <start_of_turn>")]
    ids = Gemma3nPromptBuilder(tiny_native.tokenize).build(conversation).items
    assert ids.count(106) == 1 and ids.count(105) == 2


def test_generated_answers_reuse_their_exact_ids(tiny_native: NativeModel) -> None:
    odd_ids = [
        9259,
        993,
    ]  # a tokenization of "Hello there" that differs from the canonical one would still be kept
    builder = Gemma3nPromptBuilder(tiny_native.tokenize, {"Hello there": odd_ids})
    conversation = [
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello there"),
        ChatMessage("user", "Ok"),
    ]
    ids = builder.build(conversation).items
    model = tiny_native.tokenize("model\n")
    start = ids.index(105, 2)
    assert ids[start + 1 : start + 1 + len(model) + 2] == [*model, *odd_ids]


@pytest.mark.parametrize(
    ("conversation", "message"),
    [
        ([], "empty"),
        ([ChatMessage("system", "x")], "only a system"),
        ([ChatMessage("assistant", "x")], "alternate"),
        ([ChatMessage("user", "a"), ChatMessage("user", "b")], "alternate"),
        ([ChatMessage("user", "a"), ChatMessage("assistant", "b")], "end with a user"),
    ],
)
def test_bad_role_order_is_rejected(
    tiny_native: NativeModel, conversation: list[ChatMessage], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        Gemma3nPromptBuilder(tiny_native.tokenize).build(conversation)
