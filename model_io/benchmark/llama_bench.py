"""The baseline: llama.cpp's own tools (``llama-bench``, ``llama-mtmd-cli``), run with the app's settings.

The tools must be built from the very llama.cpp source vendored in the pinned
llama-cpp-python (``tools/build_llama_cpp_tools.sh`` in a source checkout), so both
sides run the same kernels; only the driver code differs.  This module finds them,
builds the command lines from one :class:`RunSettings` (so the flags cannot drift
apart), and parses ``llama-bench -o json``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from model_io.benchmark.machine import ChildRun, run_measured
from model_io.errors import EngineFailure, InputError

TOOLS_DIR_ENV = "GEMMA_DESK_TOOLS_DIR"
BUILD_HINT = (
    "build it from the vendored llama.cpp source with 'bash tools/build_llama_cpp_tools.sh' in a "
    "Gemma Desk source checkout (≈10 minutes on 2 cores), point ${env} at its bin folder, pass "
    "--llama-bench PATH, or use --skip-baseline"
)


class ToolMissingError(InputError):
    """A llama.cpp tool the benchmark compares against is not built (exit code 2)."""


class ToolFailedError(EngineFailure):
    """A llama.cpp tool ran but failed or printed something we cannot read (exit code 3)."""


@dataclass(frozen=True)
class RunSettings:
    """The llama.cpp settings both sides run with, stated once and printed with the results."""

    threads: int
    n_batch: int
    n_ubatch: int
    flash_attn: str  # "auto", "on" or "off", as llama-bench spells it
    type_k: str
    type_v: str
    load_mode: str = "mmap"
    repack: bool = True
    flash_attn_resolved: str | None = None  # what "auto" became in the app's context (from its log)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BenchRow:
    """One llama-bench test (``pp512``, ``tg128``, ...): its tokens, time and throughput per repetition."""

    n_prompt: int
    n_gen: int
    n_depth: int
    samples_ns: tuple[int, ...]
    samples_ts: tuple[float, ...]
    build_commit: str
    n_threads: int
    n_batch: int
    n_ubatch: int
    type_k: str
    type_v: str
    flash_attn: int

    @property
    def name(self) -> str:
        if self.n_prompt and self.n_gen:
            return f"pp{self.n_prompt}+tg{self.n_gen}"
        return f"pp{self.n_prompt}" if self.n_prompt else f"tg{self.n_gen}"

    @property
    def best_ts(self) -> float:
        return max(self.samples_ts)


def find_tool(name: str, explicit: Path | None = None) -> Path:
    """``explicit``, else ``$GEMMA_DESK_TOOLS_DIR/name``, else the build script's folder, else PATH."""
    if explicit is not None:
        if not (explicit.is_file() and os.access(explicit, os.X_OK)):
            raise ToolMissingError(f"{explicit} is not an executable {name}")
        return explicit
    candidates = []
    if os.environ.get(TOOLS_DIR_ENV):
        candidates.append(Path(os.environ[TOOLS_DIR_ENV]) / name)
    candidates.append(default_tools_dir() / name)
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ToolMissingError(
        f"llama.cpp's {name} was not found (looked in {candidates[0].parent} and PATH); "
        + BUILD_HINT.format(env=TOOLS_DIR_ENV)
    )


def default_tools_dir() -> Path:
    """Where ``tools/build_llama_cpp_tools.sh`` puts the binaries for the installed llama-cpp-python."""
    import llama_cpp as ll

    return Path.home() / ".cache" / "gemma-desk-tools" / f"build-{ll.__version__}" / "bin"


def llama_bench_command(
    binary: Path, model: Path, settings: RunSettings, prompts: list[int], n_gen: int, reps: int
) -> list[str]:
    """``llama-bench`` with exactly the app's settings: one pp test per prompt length, one tg test."""
    return [
        str(binary),
        "-m", str(model),
        "-p", ",".join(str(p) for p in prompts),
        "-n", str(n_gen),
        "-r", str(reps),
        "-t", str(settings.threads),
        "-b", str(settings.n_batch),
        "-ub", str(settings.n_ubatch),
        "-fa", settings.flash_attn,
        "-ctk", settings.type_k,
        "-ctv", settings.type_v,
        "-lm", settings.load_mode,
        "--repack", "1" if settings.repack else "0",
        "-ngl", "0",
        "-o", "json",
    ]  # fmt: skip


def run_llama_bench(
    binary: Path,
    model: Path,
    settings: RunSettings,
    prompts: list[int],
    n_gen: int,
    reps: int = 1,
    timeout: float = 1800.0,
) -> tuple[list[BenchRow], ChildRun]:
    """Run one llama-bench invocation; its rows and the process record (wall time, peak RSS)."""
    command = llama_bench_command(binary, model, settings, prompts, n_gen, reps)
    run = run_measured(command, timeout)
    if run.returncode != 0:
        tail = " | ".join(run.stderr.strip().splitlines()[-3:])
        raise ToolFailedError(f"llama-bench exited with status {run.returncode}: {tail or 'no message'}")
    return parse_llama_bench_json(run.stdout), run


def parse_llama_bench_json(text: str) -> list[BenchRow]:
    """The test rows of ``llama-bench -o json`` output (a JSON array of objects)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolFailedError(f"llama-bench printed no valid JSON ({exc.msg} at {exc.pos})") from exc
    if not isinstance(data, list):
        raise ToolFailedError("llama-bench's JSON output is not a list of tests")
    try:
        return [_row(item) for item in data]
    except (KeyError, TypeError, ValueError) as exc:
        raise ToolFailedError(f"llama-bench's JSON output lacks an expected field: {exc}") from exc


def _row(item: dict[str, Any]) -> BenchRow:
    samples_ns = tuple(int(v) for v in item["samples_ns"])
    samples_ts = tuple(float(v) for v in item["samples_ts"])
    if not samples_ns or len(samples_ns) != len(samples_ts):
        raise ValueError("samples_ns/samples_ts are empty or of different lengths")
    return BenchRow(
        n_prompt=int(item["n_prompt"]),
        n_gen=int(item["n_gen"]),
        n_depth=int(item.get("n_depth", 0)),
        samples_ns=samples_ns,
        samples_ts=samples_ts,
        build_commit=str(item.get("build_commit", "")),
        n_threads=int(item["n_threads"]),
        n_batch=int(item["n_batch"]),
        n_ubatch=int(item["n_ubatch"]),
        type_k=str(item["type_k"]),
        type_v=str(item["type_v"]),
        flash_attn=int(item.get("flash_attn", -1)),
    )


def row_for(rows: list[BenchRow], *, n_prompt: int = 0, n_gen: int = 0) -> BenchRow:
    """The row of one test, e.g. ``row_for(rows, n_prompt=512)`` for pp512."""
    for row in rows:
        if row.n_prompt == n_prompt and row.n_gen == n_gen:
            return row
    raise ToolFailedError(f"llama-bench reported no pp{n_prompt}/tg{n_gen} test")
