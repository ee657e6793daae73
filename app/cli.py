"""``gemma-desk`` command line: ask questions, inspect and synthesise models.

Exit codes: 0 ok, 2 bad arguments or input, 3 model problem, 1 internal error,
130 interrupted.  Failures print one line on stderr; set GEMMA_DESK_DEBUG=1 for
the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from app.cli_output import (
    ERROR_EXIT_CODES,
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ProgressBar,
    describe_stats,
    event_json,
    fail,
)
from model_io.errors import GemmaDeskError, InputError
from model_io.events import ChatRequest, Done, EngineError, LoadProgress, LoadRequest, Stats, TextDelta
from model_io.paths import models_dir
from model_io.prompt import ChatMessage
from model_io.settings import DEFAULT_CONTEXT, LoadSettings, SamplingSettings

MODEL_ENV = "GEMMA_DESK_MODEL"


class _Parser(argparse.ArgumentParser):
    """argparse, but bad arguments give one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see '{self.prog} --help')")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gemma-desk", description="Gemma 3n on your own computer, fully offline.")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    ask = commands.add_parser("ask", help="answer a prompt, streaming to stdout")
    ask.add_argument("prompt", help="the question or instruction")
    ask.add_argument(
        "--model", type=Path, help=f"text model GGUF (default: ${MODEL_ENV} or the models folder)"
    )
    ask.add_argument("--system", help="system instructions, folded into the first user turn")
    ask.add_argument("--max-tokens", type=int, default=512, help="stop after this many tokens (default 512)")
    ask.add_argument("--seed", type=int, help="sampling seed for reproducible answers")
    ask.add_argument("--temp", type=float, default=1.0, help="temperature; 0 means greedy (default 1.0)")
    ask.add_argument(
        "--ctx", type=int, default=DEFAULT_CONTEXT, help=f"context size (default {DEFAULT_CONTEXT})"
    )
    ask.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores, at most 8)")
    ask.add_argument("--json", action="store_true", help="one JSON object per line per event")
    ask.add_argument("--stats", action="store_true", help="print response statistics on stderr")

    models = commands.add_parser("models", help="inspect or create model files")
    model_commands = models.add_subparsers(dest="models_command", parser_class=_Parser, required=True)
    inspect = model_commands.add_parser("inspect", help="show what a GGUF file contains")
    inspect.add_argument("path", type=Path)
    inspect.add_argument("--json", action="store_true", help="print a JSON object")
    synth = model_commands.add_parser("synth", help="write a synthetic (random-weight) Gemma 3n GGUF")
    synth.add_argument("--preset", default="tiny", help="tiny, e2b or e4b (default tiny)")
    synth.add_argument("--out", type=Path, required=True, help="output directory or .gguf path")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _configure_logging()
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except GemmaDeskError as exc:
        fail(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        fail("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # last resort: still one line unless debugging
        if os.environ.get("GEMMA_DESK_DEBUG"):
            traceback.print_exc()
        fail(f"internal error: {type(exc).__name__}: {exc}")
        return EXIT_INTERNAL


def _configure_logging() -> None:
    """llama.cpp's chatter goes nowhere unless GEMMA_DESK_DEBUG is set; errors reach the user as one line."""
    logger = logging.getLogger("gemma_desk")
    if os.environ.get("GEMMA_DESK_DEBUG"):
        logging.basicConfig(level=logging.DEBUG)
    elif not logger.handlers:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False


def _dispatch(args: argparse.Namespace) -> int:
    if args.command is None:
        fail(
            "the desktop window is not part of this version yet; "
            "use 'gemma-desk ask PROMPT' (see 'gemma-desk --help')"
        )
        return EXIT_BAD_INPUT
    if args.command == "ask":
        return run_ask(args)
    if args.models_command == "inspect":
        return run_inspect(args)
    return run_synth(args)


def resolve_model(explicit: Path | None) -> Path:
    """--model, then $GEMMA_DESK_MODEL, then the only text model in the models folder."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get(MODEL_ENV, "").strip()
    if from_env:
        return Path(from_env)
    folder = models_dir()
    candidates = sorted(p for p in folder.glob("*.gguf") if "mmproj" not in p.name.lower())
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise InputError(f"no model given and none found in {folder}; pass --model PATH to a Gemma 3n GGUF")
    names = ", ".join(p.name for p in candidates)
    raise InputError(f"several models in {folder} ({names}); choose one with --model")


def run_ask(args: argparse.Namespace) -> int:
    from model_io.engine import Engine, EventQueue

    if args.max_tokens < 1:
        raise InputError(f"--max-tokens must be at least 1, got {args.max_tokens}")
    settings = LoadSettings(n_ctx=args.ctx, n_threads=args.threads)
    sampling = SamplingSettings(temperature=args.temp, seed=args.seed)
    messages = ((ChatMessage("system", args.system),) if args.system else ()) + (
        ChatMessage("user", args.prompt),
    )
    events = EventQueue()
    engine = Engine(events)
    try:
        load = LoadRequest(resolve_model(args.model), settings)
        status = _run_load(engine, events, load, args.json)
        if status != EXIT_OK:
            return status
        request = ChatRequest(messages, sampling, max_tokens=args.max_tokens)
        return _stream_answer(engine, events, request, args)
    finally:
        engine.close()


def _run_load(engine: object, events: object, load: LoadRequest, as_json: bool) -> int:
    from model_io.engine import Engine, EventQueue

    assert isinstance(engine, Engine) and isinstance(events, EventQueue)
    bar = ProgressBar(f"loading {load.model_path.name}")
    engine.load(load)
    for event in events.events_for(load.request_id):
        if isinstance(event, LoadProgress):
            bar.update(event.fraction)
        elif isinstance(event, EngineError):
            bar.finish()
            _report_error(event, as_json)
            return ERROR_EXIT_CODES[event.kind]
    bar.finish()
    return EXIT_OK


def _stream_answer(engine: object, events: object, request: ChatRequest, args: argparse.Namespace) -> int:
    from model_io.engine import Engine, EventQueue

    assert isinstance(engine, Engine) and isinstance(events, EventQueue)
    engine.submit(request)
    interrupted = False
    stream = events.events_for(request.request_id)
    while True:
        try:
            event = next(stream)
        except StopIteration:
            break
        except KeyboardInterrupt:
            interrupted = True
            engine.cancel(request.request_id)
            continue
        _print_event(event, args)
        if isinstance(event, EngineError):
            return ERROR_EXIT_CODES[event.kind]
    return EXIT_INTERRUPTED if interrupted else EXIT_OK


def _print_event(event: object, args: argparse.Namespace) -> None:
    if args.json:
        line = event_json(event)  # type: ignore[arg-type]
        if line is not None:
            print(line, flush=True)
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
    elif isinstance(event, EngineError):
        fail(event.message)


def _report_error(event: EngineError, as_json: bool) -> None:
    if as_json:
        print(event_json(event), flush=True)
    fail(event.message)


def run_inspect(args: argparse.Namespace) -> int:
    from model_io.model_info import inspect_model

    info = inspect_model(args.path)
    if args.json:
        print(json.dumps(info.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(info.describe())
    return EXIT_OK


def run_synth(args: argparse.Namespace) -> int:
    from model_io.synth import resolve_preset, write_text_model
    from model_io.synth.gemma3n_text import output_path

    preset = resolve_preset(args.preset)
    target = output_path(args.out, preset)
    bar = ProgressBar(f"writing {target.name}")
    write_text_model(preset, target, progress=lambda done, total: bar.update(done / total))
    bar.finish()
    print(target)
    return EXIT_OK
