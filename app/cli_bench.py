"""``gemma-desk bench``: the app's speed against llama.cpp's own tools and the memory-bandwidth limit.

Run it alone on the machine (other jobs distort every figure; the load average is
recorded beside each one).  The measuring lives in :mod:`model_io.benchmark`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from app.cli_output import EXIT_OK
from model_io.errors import InputError

_QUICK_SENSITIVE = ("rounds", "prefill_tokens", "decode_tokens")


def add_bench_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``bench`` on the main parser's subcommands."""
    bench = commands.add_parser(
        "bench",
        help="measure speed against llama.cpp's llama-bench and the memory-bandwidth roofline",
        description=(
            "Prefill, decode and first-token speed of the app's engine against llama-bench (same "
            "llama.cpp, same settings, interleaved rounds), decode against the memory-bandwidth "
            "roofline, and with --media image encoding, audio tower speed and push-to-talk latency."
        ),
    )
    bench.add_argument(
        "--model", action="append", metavar="e2b|e4b|tiny|PATH",
        help="synthetic preset (built once, cached) or a GGUF; repeatable (default: e2b and e4b)",
    )  # fmt: skip
    bench.add_argument(
        "--threads", type=int, default=0, help="threads for both sides (default: all cores, ≤ 8)"
    )
    bench.add_argument("--rounds", type=int, help="interleaved rounds per model (default 3; --quick 1)")
    bench.add_argument("--ctx", type=int, help="the app's context size (default: the app's own choice)")
    bench.add_argument("--prefill-tokens", type=int, help="prompt length for prefill (default 512)")
    bench.add_argument("--decode-tokens", type=int, help="tokens to decode (default 128)")
    bench.add_argument("--json", type=Path, metavar="FILE", help="write every figure to FILE")
    bench.add_argument(
        "--skip-baseline", action="store_true", help="measure the app only (no llama.cpp tools)"
    )
    bench.add_argument("--quick", action="store_true", help="one short round: a smoke test, not a benchmark")
    bench.add_argument("--media", action="store_true", help="also image encode, audio tower, push-to-talk")
    bench.add_argument("--mmproj", type=Path, help="projector for --media when --model is a PATH")
    bench.add_argument("--llama-bench", type=Path, metavar="PATH", help="llama-bench binary to compare with")
    bench.add_argument("--mtmd-cli", type=Path, metavar="PATH", help="llama-mtmd-cli binary (for --media)")
    bench.set_defaults(handler=run_bench_command)


def options_from(args: argparse.Namespace) -> Any:
    from model_io.benchmark.runner import BenchOptions, with_quick

    explicit = {key: getattr(args, key) for key in _QUICK_SENSITIVE if getattr(args, key) is not None}
    for key, value in explicit.items():
        if value < 1:
            raise InputError(f"--{key.replace('_', '-')} must be at least 1, got {value}")
    if args.threads < 0:
        raise InputError(f"--threads must be 0 (automatic) or more, got {args.threads}")
    options = BenchOptions(
        models=tuple(args.model or ("e2b", "e4b")),
        threads=args.threads,
        n_ctx=args.ctx,
        baseline=not args.skip_baseline,
        media=args.media,
        mmproj=args.mmproj,
        llama_bench=args.llama_bench,
        mtmd_cli=args.mtmd_cli,
        **explicit,
    )
    return with_quick(options, explicit) if args.quick else options


def run_bench_command(args: argparse.Namespace) -> int:
    from model_io.benchmark.report import format_report
    from model_io.benchmark.runner import run_bench

    options = options_from(args)
    if options.n_ctx is not None and options.prefill_tokens >= options.n_ctx:
        raise InputError(f"--prefill-tokens ({options.prefill_tokens}) must be below --ctx ({options.n_ctx})")
    command = "gemma-desk " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else "gemma-desk bench"
    report = run_bench(options, _progress, command)
    print(format_report(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return EXIT_OK


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
