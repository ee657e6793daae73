"""Speech recipes, the language list and long-audio splitting."""

from __future__ import annotations

import numpy as np
import pytest

from model_io.errors import InputError
from model_io.media import MediaInput
from model_io.speech import (
    LANGUAGES,
    SAMPLE_RATE,
    find_language,
    split_long_audio,
    transcription_request,
    translation_request,
)


def test_at_least_thirty_languages_with_unique_names_and_codes() -> None:
    assert len(LANGUAGES) >= 30
    assert len({lang.code for lang in LANGUAGES}) == len({lang.name for lang in LANGUAGES}) == len(LANGUAGES)


@pytest.mark.parametrize(
    ("query", "code"), [("es", "es"), ("Spanish", "es"), ("  GERMAN ", "de"), ("chinese", "zh-Hans")]
)
def test_find_language(query: str, code: str) -> None:
    assert find_language(query).code == code


def test_unknown_language_lists_the_choices() -> None:
    with pytest.raises(InputError, match=r"Klingon.*English"):
        find_language("Klingon")


def test_recipes_put_the_instruction_before_the_audio() -> None:
    clip = MediaInput("audio", np.zeros(SAMPLE_RATE, dtype=np.float32))
    (message,) = transcription_request(clip)
    assert message.role == "user" and message.parts[1] is clip and "verbatim" in message.text
    (message,) = transcription_request(clip, find_language("fr"))
    assert message.text == "Transcribe the following speech segment in French:"
    (message,) = translation_request(clip, find_language("English"))
    assert "into English" in message.text and message.parts[-1] is clip


def test_long_audio_is_cut_at_the_pause_nearest_30_seconds() -> None:
    rng = np.random.default_rng(0)
    speech = (rng.standard_normal(SAMPLE_RATE * 70) * 0.3).astype(np.float32)
    pauses = [26.5, 55.0]
    for second in pauses:
        i = int(second * SAMPLE_RATE)
        speech[i : i + SAMPLE_RATE // 2] = 0.0
    clips = split_long_audio(speech)
    assert [len(c) for c in clips] and all(len(c) <= 30 * SAMPLE_RATE for c in clips)
    assert sum(len(c) for c in clips) == len(speech)
    cuts = np.cumsum([len(c) for c in clips])[:-1] / SAMPLE_RATE
    for cut, pause in zip(cuts, pauses, strict=True):
        assert pause <= cut <= pause + 0.5


def test_short_audio_is_one_clip_and_silence_never_loops() -> None:
    assert len(split_long_audio(np.zeros(SAMPLE_RATE * 5, dtype=np.float32))) == 1
    clips = split_long_audio(np.zeros(SAMPLE_RATE * 95, dtype=np.float32))
    assert len(clips) == 4 and sum(map(len, clips)) == SAMPLE_RATE * 95
