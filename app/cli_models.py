"""``gemma-desk models list|download|discover|import|build-mmproj``: catalog, downloads, files, projectors.

Heavy modules (huggingface_hub) are imported inside the commands, so ``gemma-desk ask`` starts fast.
Errors are raised as GemmaDeskError and printed as one line by ``app.cli.main``; with ``--json``
the commands also print a final ``{"event": "error", …}`` line first, so scripts see it on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from app.cli_output import EXIT_OK, ProgressBar
from model_io.errors import GemmaDeskError, InputError
from model_io.paths import models_dir

if TYPE_CHECKING:
    from model_io.discovery import DiscoveryReport, FoundFile
    from model_io.download import DownloadProgress, DownloadResult
    from model_io.mmproj_build import BuildProgress, BuildResult
    from model_io.model_info import ModelInfo

_ERROR_KINDS = {2: "input", 3: "model", 130: "cancelled"}


class _RatedProgress(Protocol):
    """A progress dataclass that knows its transfer rate."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def bytes_per_s(self) -> float: ...


_Progress = TypeVar("_Progress", bound=_RatedProgress)


def run_list(args: argparse.Namespace) -> int:
    from model_io.catalog import CATALOG
    from model_io.discovery import local_status

    folder = models_dir()
    rows = [(entry, local_status(entry.local_name, folder)) for entry in CATALOG]
    if args.json:
        payload = [
            {
                **entry.to_dict(),
                "status": status.state,
                "path": str(status.path),
                "partial_bytes": status.partial_bytes,
            }
            for entry, status in rows
        ]
        print(json.dumps(payload, ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"{'NAME':<36} {'ROLE':<6} {'SIZE':>9}  {'TOKEN':<7} STATUS")
    for entry, status in rows:
        size = _human(entry.size) if entry.size else "?"
        token = {True: "needed", False: "no", None: "?"}[entry.gated]
        state = status.state if status.state != "partial" else f"partial ({_human(status.partial_bytes)})"
        print(
            f"{entry.name:<36} {entry.role:<6} {size:>9}  {token:<7} {'-' if state == 'missing' else state}"
        )
    print(
        f"\nmodels folder: {folder}\nsizes and checksums in the catalog are third-party and unverified; "
        "every download is checked against the sha256 the hub reports"
    )
    return EXIT_OK


def run_download(args: argparse.Namespace) -> int:
    """Download, then describe the file; a verified file that is no usable GGUF still fails (exit 3)."""
    from model_io.catalog import parse_source
    from model_io.download import DownloadCancelled, download_model
    from model_io.model_info import inspect_model

    try:
        source = parse_source(args.name, revision=args.revision)
        report = _DownloadPrinter(source.local_name, args.json)
        try:
            result = download_model(source, dest_dir=args.dest, token=args.token, progress=report)
        except KeyboardInterrupt:
            raise DownloadCancelled(
                f"download of {source.local_name} interrupted; the partial file is kept, "
                "run the same command again to resume"
            ) from None
        finally:
            report.finish()
        info = inspect_model(result.path)
    except GemmaDeskError as exc:
        _json_error(exc, args.json)
        raise
    _print_result(result, info, args.json)
    return EXIT_OK


class _Printer(Generic[_Progress]):
    """Progress on stderr: a bar redrawn at most 5 times a second on a terminal, JSON lines with
    --json (stdout), else nothing.  Subclasses say when a report is the last and what the bar says."""

    width = 30

    def __init__(self, name: str, as_json: bool) -> None:
        self.name, self.as_json = name, as_json
        self.stream = sys.stderr
        self.draw = not as_json and self.stream.isatty()
        self.drawn = False
        self.last = 0.0

    def __call__(self, progress: _Progress) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and not self._final(progress):
            return
        self.last = now
        if self.as_json:
            payload = {"event": "progress", **asdict(progress), "bytes_per_s": round(progress.bytes_per_s)}
            print(json.dumps(payload), flush=True)
        elif self.draw:
            self.stream.write(f"\r{self._line(progress)}\x1b[K")
            self.stream.flush()
            self.drawn = True

    def _final(self, progress: _Progress) -> bool:
        raise NotImplementedError

    def _line(self, progress: _Progress) -> str:
        raise NotImplementedError

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


class _DownloadPrinter(_Printer["DownloadProgress"]):
    """Download progress: bar, bytes, rate and ETA."""

    def _final(self, progress: DownloadProgress) -> bool:
        return progress.done >= progress.total

    def _line(self, progress: DownloadProgress) -> str:
        percent = int(progress.fraction * 100)
        filled = self.width * percent // 100
        bar = "#" * filled + "-" * (self.width - filled)
        verb = "checking" if progress.phase == "checking" else "downloading"
        eta = "" if progress.eta_s is None else f" ETA {_duration(progress.eta_s)}"
        text = f"{verb} {self.name} [{bar}] {percent:3d}% {_human(progress.done)}/{_human(progress.total)}"
        return f"{text} {_human(int(progress.bytes_per_s))}/s{eta}"


def _print_result(result: DownloadResult, info: ModelInfo, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"event": "done", **result.to_dict(), "model": _info(info)}), flush=True)
        return
    what = "already present" if result.already_present else f"{result.digest_algo} verified"
    print(f"{result.path} ({_human(result.size)}, {what}: {result.digest})")
    print(info.describe())
    if result.resumed_from:
        print(f"resumed: {result.resumed_from:,} bytes were kept from an earlier attempt", file=sys.stderr)
    if result.catalog_match is False:
        print(
            "note: the hub's file differs from the catalog's third-party checksum (the repo was updated); "
            "the download matches the hub",
            file=sys.stderr,
        )


def run_discover(args: argparse.Namespace) -> int:
    from model_io.discovery import add_user_folder, discover

    try:
        for folder in args.add_folder:
            added = add_user_folder(folder)
            if not args.json:
                print(f"added folder {added}", file=sys.stderr)
        report = discover()
    except GemmaDeskError as exc:
        _json_error(exc, args.json)
        raise
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_report(report)
    return EXIT_OK


def _print_report(report: DiscoveryReport) -> None:
    print(f"models ({len(report.models)}):")
    for found in report.models:
        print(f"  {_describe(found.model)}")
        print(f"      mmproj: {found.mmproj.path if found.mmproj else 'none found'}")
    print(f"projectors ({len(report.projectors)}):")
    for projector in report.projectors:
        print(f"  {_describe(projector)}")
    if report.problems:
        print(f"unusable files ({len(report.problems)}):")
        for problem in report.problems:
            print(f"  [{problem.candidate.source}] {problem.error}")


def _describe(found: FoundFile) -> str:
    info, c = found.info, found.candidate
    assert info is not None
    detail = f"{info.architecture}, {info.quant}, {_human(info.file_size)}"
    where = c.label if c.label == str(c.path) else f"{c.label} -> {c.path}"
    return f"[{c.source}] {where} ({detail})"


def run_import(args: argparse.Namespace) -> int:
    from model_io.discovery import import_model

    bar = ProgressBar(f"copying {args.path.name}")
    try:
        result = import_model(
            args.path, link=args.link, progress=lambda done, total: bar.update(done / total)
        )
    except GemmaDeskError as exc:
        _json_error(exc, args.json)
        raise
    finally:
        bar.finish()
    if args.json:
        payload = {"event": "done", "path": str(result.path), "method": result.method, **_info(result.info)}
        print(json.dumps(payload, ensure_ascii=False))
    else:
        print(f"{result.path} ({result.method})")
        print(result.info.describe())
    return EXIT_OK


def _info(info: ModelInfo) -> dict[str, Any]:
    data: dict[str, Any] = info.to_dict()
    data.pop("path", None)
    return data


def _json_error(exc: GemmaDeskError, as_json: bool) -> None:
    if as_json:
        kind = _ERROR_KINDS.get(exc.exit_code, "internal")
        print(
            json.dumps({"event": "error", "kind": kind, "message": str(exc)}, ensure_ascii=False), flush=True
        )


def _human(n: int) -> str:
    for divisor, suffix in ((10**9, "GB"), (10**6, "MB"), (10**3, "kB")):
        if n >= divisor:
            return f"{n / divisor:.2f} {suffix}"
    return f"{n} B"


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def add_build_command(model_commands: argparse._SubParsersAction[Any]) -> None:
    """``models build-mmproj``: the Gemma 3n projector (vision + audio) from Google's checkpoint."""
    build = model_commands.add_parser(
        "build-mmproj",
        help="build the Gemma 3n projector (vision + audio) from the official safetensors checkpoint",
    )
    build.add_argument("--repo", required=True, help="e.g. google/gemma-3n-E2B-it or google/gemma-3n-E4B-it")
    build.add_argument("--out", type=Path, help="output .gguf (default: models folder, REPO-mmproj-F16.gguf)")
    token = build.add_mutually_exclusive_group()
    token.add_argument("--token", help="Hugging Face token (default: $HF_TOKEN or 'hf auth login')")
    token.add_argument("--token-env", metavar="VAR", help="read the token from environment variable VAR")
    build.add_argument("--revision", default="main", help="branch, tag or commit (default main)")
    build.add_argument("--json", action="store_true", help="one JSON object per line per event")
    build.set_defaults(handler=run_build_mmproj)


def run_build_mmproj(args: argparse.Namespace) -> int:
    """Build, with a progress bar (or JSON lines); Ctrl+C keeps the partial build for a re-run."""
    from model_io.download import DownloadCancelled
    from model_io.mmproj_build import build_mmproj, default_output_name

    try:
        token = _token_from(args)
        out = args.out if args.out is not None else models_dir() / default_output_name(args.repo)
        report = _BuildPrinter(out.name, args.json)
        try:
            result = build_mmproj(args.repo, out, token=token, revision=args.revision, progress=report)
        except KeyboardInterrupt:
            raise DownloadCancelled(
                f"building {out.name} interrupted; the finished part is kept, run the same command to resume"
            ) from None
        finally:
            report.finish()
    except GemmaDeskError as exc:
        _json_error(exc, args.json)
        raise
    _print_build(result, args.json)
    return EXIT_OK


def _token_from(args: argparse.Namespace) -> str | None:
    if args.token_env is None:
        return args.token
    value = os.environ.get(args.token_env, "").strip()
    if not value:
        raise InputError(f"--token-env {args.token_env}: that environment variable is not set")
    return value


class _BuildPrinter(_Printer["BuildProgress"]):
    """Build progress: stage, bar, bytes, rate and ETA on a terminal; JSON lines with --json."""

    _VERBS: ClassVar[dict[str, str]] = {
        "header": "reading",
        "fetch": "fetching",
        "write": "writing",
        "verify": "verifying",
    }

    def _final(self, progress: BuildProgress) -> bool:
        return progress.total_bytes > 0 and progress.done_bytes >= progress.total_bytes

    def _line(self, progress: BuildProgress) -> str:
        verb = self._VERBS.get(progress.stage, progress.stage)
        if not progress.total_bytes:
            return f"{verb} {self.name}: checkpoint layout, {_human(progress.done_bytes)}"
        percent = int(progress.done_bytes * 100 / progress.total_bytes)
        bar = "#" * (self.width * percent // 100)
        eta = "" if progress.eta_s is None else f" ETA {_duration(progress.eta_s)}"
        return (
            f"{verb} {self.name} [{bar:-<{self.width}}] {percent:3d}% {_human(progress.done_bytes)}/"
            f"{_human(progress.total_bytes)} {_human(int(progress.bytes_per_s))}/s{eta}"
        )


def _print_build(result: BuildResult, as_json: bool) -> None:
    data = {**asdict(result), "path": str(result.path)}
    if as_json:
        print(json.dumps({"event": "done", **data}), flush=True)
        return
    towers = " + ".join(n for n, has in (("vision", result.has_vision), ("audio", result.has_audio)) if has)
    print(result.path)
    fetched = _human(result.fetched_bytes)
    print(f"projector with {towers}, {_human(result.size_bytes)}; {fetched} fetched this run")


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": run_list,
    "download": run_download,
    "discover": run_discover,
    "import": run_import,
    "build-mmproj": run_build_mmproj,
}
