"""Check the memory planner against measured peak RSS on the full-size synthetic Gemma 3n E2B and E4B.

Each case runs in a fresh subprocess (so earlier cases leave nothing behind), through the real
engine as the app uses it (context and GPU layers left to the plan, 2 threads):

* ``text``: load the model, answer a 512-token prompt with 32 tokens;
* ``towers``: the same with a 768x768 image and a 5 s clip in the prompt, so both towers load.

Measured per case (Linux: VmHWM from /proc/self/status): the peak while loading (llama.cpp maps the
whole file with MAP_POPULATE), then, after resetting the peak, the peak while answering; both are
printed next to the plan's estimates.  The script takes ``/tmp/gemma-desk-bigjob.lock`` around each
case, so it never runs beside another full-size job.

    python tools/check_memory_plan.py [--models e2b,e4b] [--cases text,towers] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ACCEPTED_ERROR = 0.15
LOCK = "/tmp/gemma-desk-bigjob.lock"
MIB = 1 << 20


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="e2b,e4b")
    parser.add_argument("--cases", default="text,towers")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "MMPROJ", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, mmproj, case = args.child
        print(json.dumps(measure(Path(model), Path(mmproj), case)))
        return 0
    results = [run_case(preset, case) for preset in args.models.split(",") for case in args.cases.split(",")]
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["ok"] for r in results) else 1


def run_case(preset: str, case: str) -> dict[str, Any]:
    from model_io.memory_plan import plan_for_files
    from model_io.synth.mmproj import cached_mmproj
    from model_io.synth.writer import cached_text_model

    model, mmproj = cached_text_model(preset), cached_mmproj(preset)
    plan = plan_for_files(model, mmproj if case == "towers" else None)
    command = [sys.executable, __file__, "--child", str(model), str(mmproj), case]
    with exclusive(LOCK):
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        child = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{preset}/{case} failed:\n{child.stderr[-3000:]}")
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    estimate = plan.with_towers if case == "towers" else plan.text_only
    serving_error = estimate / measured["serving_peak"] - 1
    load_error = plan.load_peak / measured["load_peak"] - 1
    return {
        "model": preset,
        "case": case,
        "n_ctx": plan.n_ctx,
        "estimate": estimate,
        "estimate_load": plan.load_peak,
        "plan": plan.to_dict(),
        **measured,
        "serving_error": serving_error,
        "load_error": load_error,
        "ok": abs(serving_error) <= ACCEPTED_ERROR and abs(load_error) <= ACCEPTED_ERROR,
        "seconds": round(seconds, 1),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


@contextlib.contextmanager
def exclusive(path: str) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def measure(model: Path, mmproj: Path, case: str) -> dict[str, Any]:
    """In the child: load, answer, and report VmHWM for the load and for the answer separately."""
    import numpy as np

    from model_io.engine import Engine, EventQueue
    from model_io.events import ChatRequest, Done, EngineError, LoadRequest, MemoryUsage, ModelLoaded, Stats
    from model_io.media import MediaInput
    from model_io.memory_usage import peak_rss_bytes, process_rss_bytes, reset_peak_rss
    from model_io.prompt import ChatMessage
    from model_io.settings import LoadSettings, SamplingSettings

    runtime = process_rss_bytes()
    events = EventQueue()
    engine_reports: list[MemoryUsage] = []  # request id 0: the engine's own (tower release, unload)

    def sink(event: Any) -> None:
        if isinstance(event, MemoryUsage) and event.request_id == 0:
            engine_reports.append(event)
        events(event)

    engine = Engine(sink, tower_idle_seconds=None)
    towers = case == "towers"
    load = LoadRequest(model, LoadSettings(n_threads=2), mmproj_path=mmproj if towers else None)
    engine.load(load)
    reports = []
    for event in events.events_for(load.request_id):
        if isinstance(event, MemoryUsage):
            reports.append(event)
        if isinstance(event, EngineError):
            raise SystemExit(event.message)
        if isinstance(event, ModelLoaded):
            n_ctx = event.info.n_ctx
    load_peak = peak_rss_bytes()
    after_load = process_rss_bytes()
    reset_peak_rss()

    words = " ".join(f"item {i} is a small blue boat on the grey sea." for i in range(46))
    parts: list[Any] = [f"Summarise this list in one line: {words}"]
    if towers:
        rng = np.random.default_rng(0)
        image = MediaInput("image", rng.integers(0, 256, (768, 768, 3), dtype=np.uint8))
        clip = MediaInput("audio", (rng.standard_normal(16_000 * 5) * 0.1).astype(np.float32))
        parts = [image, clip, *parts]
    chat = ChatRequest(
        (ChatMessage("user", tuple(parts)),), SamplingSettings.greedy_decoding(), max_tokens=32
    )
    engine.submit(chat)
    stats = None
    for event in events.events_for(chat.request_id):
        if isinstance(event, MemoryUsage):
            reports.append(event)
        elif isinstance(event, Stats):
            stats = event.stats
        elif isinstance(event, EngineError):
            raise SystemExit(event.message)
        elif isinstance(event, Done):
            break
    serving_peak = peak_rss_bytes()
    after_answer = process_rss_bytes()
    after_release = None
    if towers:  # give them back: the engine reports the memory once they are gone
        engine.release_towers()
        deadline = time.monotonic() + 60
        while not engine_reports and time.monotonic() < deadline:
            time.sleep(0.05)
        after_release = engine_reports[0].process_rss_bytes if engine_reports else None
    engine.close()
    last = reports[-1]
    return {
        "runtime": runtime,
        "load_peak": load_peak,
        "rss_after_load": after_load,
        "serving_peak": serving_peak,
        "rss_after_answer": after_answer,
        "rss_after_tower_release": after_release,
        "parts": dict(last.parts),
        "ple_mapped": last.mapped_bytes,
        "n_ctx": n_ctx,
        "prompt_tokens": stats.prompt_tokens if stats else None,
        "decode_tokens_per_s": round(stats.decode_tokens_per_s, 2) if stats else None,
    }


def print_table(results: list[dict[str, Any]]) -> None:
    answering = ("answering: plan", "measured", "error")
    columns: tuple[str, ...] = (
        "model",
        "case",
        "ctx",
        "prompt",
        *answering,
        "loading: plan",
        "measured",
        "error",
        "ok",
    )
    rows = [columns] + [_row(r) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for index, row in enumerate(rows):
        print(" | ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("-+-".join("-" * width for width in widths))
    for r in results:
        print(_details(r))


def _row(r: dict[str, Any]) -> tuple[str, ...]:
    return (
        r["model"],
        r["case"],
        str(r["n_ctx"]),
        str(r["prompt_tokens"]),
        _mib(r["estimate"]),
        _mib(r["serving_peak"]),
        f"{r['serving_error']:+.1%}",
        _mib(r["estimate_load"]),
        _mib(r["load_peak"]),
        f"{r['load_error']:+.1%}",
        "yes" if r["ok"] else "NO",
    )


def _details(r: dict[str, Any]) -> str:
    parts = ", ".join(f"{name} {_mib(size)}" for name, size in r["parts"].items() if size)
    released = r["rss_after_tower_release"]
    after_release = f", after releasing the towers {_mib(released)}" if released else ""
    return (
        f"{r['model']}/{r['case']}: last MemoryUsage: {parts}, PLE mapped {_mib(r['ple_mapped'])}; "
        f"RSS before loading {_mib(r['runtime'])}, after load {_mib(r['rss_after_load'])}, "
        f"after the answer {_mib(r['rss_after_answer'])}{after_release}; "
        f"decode {r['decode_tokens_per_s']} tok/s; "
        f"{r['seconds']} s, load average {r['load_average'][0]} -> {r['load_average'][1]}"
    )


def _mib(n: int) -> str:
    return f"{n / MIB:,.0f} MiB"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
