"""CLI pieces shared by ``ask``, ``transcribe`` and ``translate``: media options, the projector, streaming."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.cli_output import (
    ERROR_EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ProgressBar,
    describe_memory,
    describe_stats,
    event_json,
    fail,
)
from model_io.engine import Engine, EventQueue
from model_io.errors import InputError
from model_io.events import (
    ChatRequest,
    Done,
    EngineError,
    EngineEvent,
    LoadProgress,
    LoadRequest,
    MemoryUsage,
    Stats,
    TextDelta,
)
from model_io.media import MediaInput
from model_io.settings import DEFAULT_CONTEXT, LoadSettings, SamplingSettings
from model_io.speech import find_language, split_long_audio, transcription_request, translation_request

MMPROJ_ENV = "GEMMA_DESK_MMPROJ"


def add_media_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mmproj", type=Path, help=f"projector GGUF with the vision/audio towers (or ${MMPROJ_ENV})"
    )
    parser.add_argument("--image", type=Path, action="append", help="an image to ask about (repeatable)")
    parser.add_argument("--audio", type=Path, action="append", help="an audio file to ask about (repeatable)")


def add_speech_commands(commands: Any) -> None:
    transcribe = commands.add_parser("transcribe", help="transcribe speech verbatim, clip by clip")
    _add_speech_options(transcribe)
    transcribe.add_argument("--language", help="the spoken language, if known (default: detect)")
    transcribe.set_defaults(handler=run_transcribe)
    translate = commands.add_parser("translate", help="translate speech into another language")
    _add_speech_options(translate)
    translate.add_argument("--to", required=True, help="target language, by name or code (e.g. English, es)")
    translate.set_defaults(handler=run_translate)


def _add_speech_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="wav, flac, ogg or mp3; longer than 30 s is split at pauses")
    parser.add_argument(
        "--model", type=Path, help="text model GGUF (default: $GEMMA_DESK_MODEL or models folder)"
    )
    parser.add_argument("--mmproj", type=Path, help=f"projector GGUF with the audio tower (or ${MMPROJ_ENV})")
    parser.add_argument(
        "--ctx", type=int, default=DEFAULT_CONTEXT, help=f"context size (default {DEFAULT_CONTEXT})"
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores, at most 8)")
    parser.add_argument("--max-tokens", type=int, default=512, help="limit per 30 s clip (default 512)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line per event")
    parser.add_argument("--stats", action="store_true", help="print statistics per clip on stderr")


def load_media(images: Sequence[Path], audios: Sequence[Path]) -> list[MediaInput]:
    """Decode every image and audio file up front, so a bad file fails before the model loads."""
    media: list[MediaInput] = []
    if images:
        from model_io.images import load_image

        media += [load_image(path) for path in images]
    for path in audios:
        media += audio_clips(path)
    return media


def audio_clips(path: Path) -> list[MediaInput]:
    from model_io.audio import decode_audio

    waveform = decode_audio(path)
    clips = split_long_audio(waveform)
    return [MediaInput("audio", clip, label=f"{path.name}#{i + 1}") for i, clip in enumerate(clips)]


def projector_for(model: Path, explicit: Path | None, *, required: bool) -> Path | None:
    """--mmproj, then $GEMMA_DESK_MMPROJ, then the only ``*mmproj*.gguf`` beside the model."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get(MMPROJ_ENV, "").strip()
    if from_env:
        return Path(from_env)
    siblings = sorted(p for p in model.parent.glob("*.gguf") if "mmproj" in p.name.lower())
    if len(siblings) == 1:
        return siblings[0]
    if required:
        where = f"{len(siblings)} candidates beside the model" if siblings else "none beside the model"
        raise InputError(f"images and audio need a projector file: pass --mmproj PATH ({where})")
    return None


class StreamSession:
    """One engine for one CLI command: load once, then stream one or more requests."""

    def __init__(self, engine: Engine, events: EventQueue, as_json: bool):
        self.engine, self.events, self.as_json = engine, events, as_json
        self.status = EXIT_OK
        self.memory: MemoryUsage | None = None  # the latest report: after the load, then tower loads

    def load(self, request: LoadRequest) -> None:
        bar = ProgressBar(f"loading {request.model_path.name}")
        self.engine.load(request)
        for event in self.events.events_for(request.request_id):
            if isinstance(event, LoadProgress):
                bar.update(event.fraction)
            elif isinstance(event, MemoryUsage):
                self.memory = event
            elif isinstance(event, EngineError):
                bar.finish()
                self._report_error(event)
                self.status = ERROR_EXIT_CODES[event.kind]
        bar.finish()

    def run(self, request: ChatRequest, args: argparse.Namespace, extra: dict[str, Any] | None = None) -> int:
        """Stream one request to stdout; Ctrl-C cancels it. Returns the exit code."""
        self.engine.submit(request)
        interrupted = False
        stream = self.events.events_for(request.request_id)
        while True:
            try:
                event = next(stream)
            except StopIteration:
                break
            except KeyboardInterrupt:
                interrupted = True
                self.engine.cancel(request.request_id)
                continue
            self._print(event, args, extra or {})
            if isinstance(event, EngineError):
                return ERROR_EXIT_CODES[event.kind]
        return EXIT_INTERRUPTED if interrupted else EXIT_OK

    def _print(self, event: EngineEvent, args: argparse.Namespace, extra: dict[str, Any]) -> None:
        if isinstance(event, MemoryUsage):  # shown once per answer, with --stats, after the statistics
            self.memory = event
            return
        if self.as_json:
            line = event_json(event, extra)
            if line is not None:
                print(line, flush=True)
            if isinstance(event, Stats) and args.stats and self.memory is not None:
                print(event_json(self.memory, extra), flush=True)
            return
        if isinstance(event, TextDelta):
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif isinstance(event, Done) and not args.stats:
            sys.stdout.write("\n")
            sys.stdout.flush()
        elif isinstance(event, Stats) and args.stats:
            sys.stdout.write("\n")  # finish the answer's line before the stats go to stderr
            sys.stdout.flush()
            print(describe_stats(event), file=sys.stderr)
            if self.memory is not None:
                print(describe_memory(self.memory), file=sys.stderr)
        elif isinstance(event, EngineError):
            fail(event.message)

    def _report_error(self, event: EngineError) -> None:
        if self.as_json:
            print(event_json(event), flush=True)
        fail(event.message)


@contextmanager
def stream_request(load: LoadRequest, as_json: bool) -> Iterator[StreamSession]:
    """An engine with ``load`` done (check ``.status``), closed afterwards whatever happens."""
    events = EventQueue()
    engine = Engine(events)
    session = StreamSession(engine, events, as_json)
    try:
        session.load(load)
        yield session
    finally:
        engine.close()


def run_transcribe(args: argparse.Namespace) -> int:
    language = find_language(args.language) if args.language else None
    return _run_speech(args, lambda clip: transcription_request(clip, language))


def run_translate(args: argparse.Namespace) -> int:
    target = find_language(args.to)
    return _run_speech(args, lambda clip: translation_request(clip, target))


def _run_speech(args: argparse.Namespace, recipe: Any) -> int:
    """Each ≤30 s clip is its own short conversation; results stream clip by clip."""
    from app.cli import resolve_model

    if args.max_tokens < 1:
        raise InputError(f"--max-tokens must be at least 1, got {args.max_tokens}")
    clips = audio_clips(args.file)
    model = resolve_model(args.model)
    mmproj = projector_for(model, args.mmproj, required=True)
    settings = LoadSettings(n_ctx=args.ctx, n_threads=args.threads)
    greedy = SamplingSettings.greedy_decoding()
    with stream_request(LoadRequest(model, settings, mmproj_path=mmproj), args.json) as session:
        if session.status != EXIT_OK:
            return session.status
        for index, clip in enumerate(clips):
            session.engine.new_conversation()
            request = ChatRequest(recipe(clip), greedy, max_tokens=args.max_tokens)
            status = session.run(request, args, {"clip": index + 1, "clips": len(clips)})
            if status != EXIT_OK:
                return status
    return EXIT_OK
