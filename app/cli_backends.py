"""``gemma-desk backends``: what this installation's llama.cpp can run on."""

from __future__ import annotations

import argparse
import json
from typing import Any

from app.cli_output import EXIT_OK


def add_backends_command(commands: Any) -> None:
    backends = commands.add_parser(
        "backends", help="show llama.cpp's backends and devices (CPU variant, GPUs, memory)"
    )
    backends.add_argument("--json", action="store_true", help="print a JSON object")
    backends.set_defaults(handler=run_backends)


def run_backends(args: argparse.Namespace) -> int:
    from model_io.backends import detect_backends

    report = detect_backends()
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(report.describe())
    return EXIT_OK
