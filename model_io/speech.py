"""Speech tasks on top of chat: transcription and translation recipes, languages, long-audio splitting.

Gemma 3n takes at most 30 s of audio per clip (188 soft tokens), so longer
recordings are cut at the quietest moment near each 30 s boundary and handled
clip by clip, each as its own short conversation, so results can stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_io.errors import InputError
from model_io.media import MediaInput
from model_io.prompt import ChatMessage

SAMPLE_RATE = 16_000
MAX_CLIP_SECONDS = 30.0
_SEARCH_SECONDS = 8.0  # look for a pause in the last 8 s before each cut
_WINDOW_SECONDS = 0.1


@dataclass(frozen=True)
class Language:
    code: str
    name: str


LANGUAGES: tuple[Language, ...] = tuple(
    Language(code, name)
    for code, name in (
        ("ar", "Arabic"),
        ("bn", "Bengali"),
        ("zh-Hans", "Chinese (Simplified)"),
        ("zh-Hant", "Chinese (Traditional)"),
        ("cs", "Czech"),
        ("da", "Danish"),
        ("nl", "Dutch"),
        ("en", "English"),
        ("fil", "Filipino"),
        ("fi", "Finnish"),
        ("fr", "French"),
        ("de", "German"),
        ("el", "Greek"),
        ("he", "Hebrew"),
        ("hi", "Hindi"),
        ("hu", "Hungarian"),
        ("id", "Indonesian"),
        ("it", "Italian"),
        ("ja", "Japanese"),
        ("ko", "Korean"),
        ("ms", "Malay"),
        ("mr", "Marathi"),
        ("nb", "Norwegian"),
        ("fa", "Persian"),
        ("pl", "Polish"),
        ("pt", "Portuguese"),
        ("ro", "Romanian"),
        ("ru", "Russian"),
        ("es", "Spanish"),
        ("sw", "Swahili"),
        ("sv", "Swedish"),
        ("ta", "Tamil"),
        ("te", "Telugu"),
        ("th", "Thai"),
        ("tr", "Turkish"),
        ("uk", "Ukrainian"),
        ("ur", "Urdu"),
        ("vi", "Vietnamese"),
    )
)


def find_language(name_or_code: str) -> Language:
    """Accept a code (``es``) or an English name (``spanish``), case-insensitively."""
    wanted = name_or_code.strip().lower()
    for language in LANGUAGES:
        if wanted in (language.code.lower(), language.name.lower()):
            return language
    for language in LANGUAGES:  # "Chinese" alone means Simplified
        if language.name.lower().startswith(wanted + " ") or language.name.lower() == wanted:
            return language
    names = ", ".join(lang.name for lang in LANGUAGES)
    raise InputError(f"unknown language {name_or_code!r}; choose one of: {names}")


def transcription_request(clip: MediaInput, language: Language | None = None) -> tuple[ChatMessage, ...]:
    """Verbatim transcription; the language is detected unless given."""
    if language is None:
        instruction = (
            "Transcribe the following speech segment verbatim in the language it is spoken in. "
            "Output only the transcription."
        )
    else:
        instruction = f"Transcribe the following speech segment in {language.name}:"
    return (ChatMessage("user", (instruction, clip)),)


def translation_request(clip: MediaInput, target: Language) -> tuple[ChatMessage, ...]:
    """Speech translation into ``target`` (source language detected by the model)."""
    instruction = f"Translate the following speech segment into {target.name}. Output only the translation."
    return (ChatMessage("user", (instruction, clip)),)


def split_long_audio(waveform: np.ndarray, max_seconds: float = MAX_CLIP_SECONDS) -> list[np.ndarray]:
    """Cut audio into clips of at most ``max_seconds``, each cut at the quietest 100 ms near its end."""
    if waveform.ndim != 1:
        raise InputError("audio must be mono")
    limit = int(max_seconds * SAMPLE_RATE)
    clips: list[np.ndarray] = []
    start = 0
    while len(waveform) - start > limit:
        cut = start + _quietest_cut(waveform[start : start + limit])
        clips.append(waveform[start:cut])
        start = cut
    if len(waveform) - start > 0:
        clips.append(waveform[start:])
    return clips


def _quietest_cut(segment: np.ndarray) -> int:
    """Offset of the centre of the lowest-energy window in the segment's last few seconds."""
    window = int(_WINDOW_SECONDS * SAMPLE_RATE)
    search_from = max(window, len(segment) - int(_SEARCH_SECONDS * SAMPLE_RATE))
    tail = segment[search_from:].astype(np.float64)
    n_windows = len(tail) // window
    if n_windows == 0:
        return len(segment)
    energy = (tail[: n_windows * window].reshape(n_windows, window) ** 2).mean(axis=1)
    quietest = int(np.argmin(energy[::-1]))  # prefer the latest of equally quiet windows
    index = n_windows - 1 - quietest
    return search_from + index * window + window // 2
