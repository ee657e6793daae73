"""``gemma-desk`` command line: ask questions, inspect and synthesise models.

Exit codes: 0 ok, 2 bad arguments or input, 3 model problem, 1 internal error,
130 interrupted.  Failures print one line on stderr; set GEMMA_DESK_DEBUG=1 for
the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from app.cli_backends import add_backends_command
from app.cli_bench import add_bench_command
from app.cli_media import add_media_options, add_speech_commands, load_media, projector_for, stream_request
from app.cli_models import COMMANDS as MODEL_COMMANDS
from app.cli_models import add_build_command
from app.cli_output import (
    EXIT_BAD_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ProgressBar,
    fail,
)
from model_io.engine_wire import WORKER_ENV
from model_io.errors import GemmaDeskError, InputError
from model_io.events import ChatRequest, LoadRequest
from model_io.paths import models_dir
from model_io.prompt import ChatMessage
from model_io.settings import AUTO_CONTEXT, DEFAULT_CONTEXT, LoadSettings, SamplingSettings

if TYPE_CHECKING:
    from model_io.memory_plan import MemoryPlan

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
        "--ctx",
        type=int,
        default=AUTO_CONTEXT,
        help=f"context size (default: from the memory plan, at most {DEFAULT_CONTEXT})",
    )
    ask.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores, at most 8)")
    ask.add_argument("--json", action="store_true", help="one JSON object per line per event")
    ask.add_argument("--stats", action="store_true", help="print response statistics on stderr")
    add_media_options(ask)
    ask.set_defaults(handler=run_ask)
    add_speech_commands(commands)
    add_backends_command(commands)
    add_bench_command(commands)

    models = commands.add_parser("models", help="inspect or create model files")
    model_commands = models.add_subparsers(dest="models_command", parser_class=_Parser, required=True)
    inspect = model_commands.add_parser("inspect", help="show what a GGUF file contains")
    inspect.add_argument("path", type=Path)
    inspect.add_argument("--json", action="store_true", help="print a JSON object")
    inspect.add_argument("--plan", action="store_true", help="estimate RAM per part and whether it fits here")
    inspect.add_argument("--mmproj", type=Path, help="with --plan: also plan this projector's towers")
    inspect.add_argument("--ctx", type=int, default=AUTO_CONTEXT, help="with --plan: plan for this context")
    synth = model_commands.add_parser("synth", help="write a synthetic (random-weight) Gemma 3n GGUF")
    synth.add_argument("--preset", default="tiny", help="tiny, e2b or e4b (default tiny)")
    synth.add_argument("--out", type=Path, required=True, help="output directory or .gguf path")
    synth.add_argument(
        "--mmproj",
        choices=["none", "vision", "audio", "both"],
        default="none",
        help="also write a matching projector with these towers (default none)",
    )
    inspect.set_defaults(handler=run_inspect)
    synth.set_defaults(handler=run_synth)
    _add_catalog_commands(model_commands)
    add_build_command(model_commands)
    return parser


def _add_catalog_commands(model_commands: argparse._SubParsersAction[_Parser]) -> None:
    """``models list|download|discover|import``, implemented in app.cli_models."""
    listing = model_commands.add_parser("list", help="the catalog of Gemma GGUF files and what is installed")
    download = model_commands.add_parser("download", help="download NAME or OWNER/REPO/FILE.gguf, verified")
    download.add_argument("name", help="catalog name (see 'models list') or OWNER/REPO/FILE.gguf")
    download.add_argument("--token", help="token for gated repos (default: $HF_TOKEN or 'hf auth login')")
    download.add_argument("--revision", help="branch, tag or commit (default: the catalog's pin, else main)")
    download.add_argument("--dest", type=Path, help="download into this folder instead of the models folder")
    discover = model_commands.add_parser("discover", help="find GGUFs: HF cache, LM Studio, Ollama, folders")
    discover.add_argument(
        "--add-folder", type=Path, action="append", default=[], metavar="DIR", help="search DIR (remembered)"
    )
    imported = model_commands.add_parser("import", help="validate a GGUF and copy it into the models folder")
    imported.add_argument("path", type=Path)
    imported.add_argument("--link", action="store_true", help="hard-link (else symlink) instead of copying")
    subcommands = {"list": listing, "download": download, "discover": discover, "import": imported}
    for name, sub in subcommands.items():
        sub.add_argument("--json", action="store_true", help="print JSON (download: one event per line)")
        sub.set_defaults(handler=MODEL_COMMANDS[name])


def main(argv: Sequence[str] | None = None) -> int:
    if os.environ.get(WORKER_ENV) == "1":
        # Started by ProcessEngine as the engine's worker process (this is how it works inside a
        # Briefcase app, whose executable is the launcher stub): serve the engine, never the CLI or Qt.
        from model_io.engine_worker import serve

        serve()
    _configure_logging()
    _print_file_names_as_given()
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


def _print_file_names_as_given() -> None:
    """A file name that is not valid UTF-8 (possible on Linux) is printed back byte for byte, as the
    shell gave it, instead of ending in an internal UnicodeEncodeError under a strict UTF-8 locale."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        with contextlib.suppress(ValueError, OSError):
            reconfigure(errors="surrogateescape")


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
        from app.gui import no_display_reason, run  # Qt-free module: Qt loads only inside run()

        reason = no_display_reason()
        if reason:
            fail(f"cannot open the desktop window: {reason}; use 'gemma-desk ask PROMPT' without one")
            return EXIT_BAD_INPUT
        return run()
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


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
    if args.max_tokens < 1:
        raise InputError(f"--max-tokens must be at least 1, got {args.max_tokens}")
    sampling = SamplingSettings(temperature=args.temp, seed=args.seed)
    model = resolve_model(args.model)
    media = load_media(args.image or [], args.audio or [])
    parts = (*media, args.prompt)
    messages = ((ChatMessage("system", args.system),) if args.system else ()) + (ChatMessage("user", parts),)
    mmproj = projector_for(model, args.mmproj, required=bool(media))
    settings = LoadSettings(n_ctx=args.ctx, n_threads=args.threads)
    with stream_request(LoadRequest(model, settings, mmproj_path=mmproj), args.json) as session:
        if session.status != EXIT_OK:
            return session.status
        return session.run(ChatRequest(messages, sampling, max_tokens=args.max_tokens), args)


def run_inspect(args: argparse.Namespace) -> int:
    from model_io.model_info import inspect_model

    info = inspect_model(args.path)
    plan = _memory_plan(args) if args.plan else None
    if args.json:
        data = info.to_dict() | ({"plan": plan.to_dict()} if plan else {})
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print(info.describe() + (f"\n{plan.describe()}" if plan else ""))
    return EXIT_OK


def _memory_plan(args: argparse.Namespace) -> MemoryPlan:
    from model_io.memory_plan import plan_for_files

    LoadSettings(n_ctx=args.ctx)  # the same range check as loading
    return plan_for_files(args.path, args.mmproj, n_ctx=args.ctx)


def run_synth(args: argparse.Namespace) -> int:
    from model_io.synth import resolve_preset, write_text_model
    from model_io.synth.gemma3n_text import output_path

    preset = resolve_preset(args.preset)
    target = output_path(args.out, preset)
    bar = ProgressBar(f"writing {target.name}")
    write_text_model(preset, target, progress=lambda done, total: bar.update(done / total))
    bar.finish()
    print(target)
    if args.mmproj != "none":
        from model_io.synth.mmproj import mmproj_filename, write_mmproj

        projector = target.with_name(mmproj_filename(preset.name))
        bar = ProgressBar(f"writing {projector.name}")
        write_mmproj(
            projector,
            vision=preset.name if args.mmproj in ("vision", "both") else None,
            audio=preset.name if args.mmproj in ("audio", "both") else None,
            text_n_embd=preset.n_embd,
            progress=lambda done, total: bar.update(done / total),
        )
        bar.finish()
        print(projector)
    return EXIT_OK
