"""The isolated engine's costs: restart after a native crash (target: under 5 s for the tiny model) and
cancel latency through the process boundary, next to the in-process engine's.

Restart: a :class:`~model_io.engine_process.ProcessEngine` loads the model, then its worker is crashed
during decoding ``--runs`` times (a real segfault or abort, injected with ``GEMMA_DESK_TEST_CRASH``);
each restart is what the engine reports (crash noticed → new worker up → model loaded again), and
"error to ready" is the wall time from the failed request's error to the ``ready`` event.
Cancel: ``--cancels`` long answers are cancelled 0.2 s after their first token, on the in-process
engine and on the isolated one, timing ``cancel()`` → ``Done("cancelled")``.

    python tools/bench_engine_process.py [--model PATH] [--runs 5] [--cancels 8] [--threads 2]

Without ``--model`` the tiny synthetic Gemma 3n is used (built into the cache if needed).  Wrap
full-size models in ``flock /tmp/gemma-desk-bigjob.lock``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from model_io.engine import Engine  # noqa: E402
from model_io.engine_process import ProcessEngine  # noqa: E402
from model_io.events import (  # noqa: E402
    ChatRequest,
    Done,
    EngineEvent,
    EngineRestart,
    LoadRequest,
    ModelLoaded,
    TextDelta,
)
from model_io.prompt import ChatMessage  # noqa: E402
from model_io.settings import LoadSettings, SamplingSettings  # noqa: E402
from model_io.synth import cached_text_model  # noqa: E402

WAIT_S = 600.0


class Events:
    """A sink that timestamps events and lets the benchmark wait for one."""

    def __init__(self) -> None:
        self.items: list[tuple[float, EngineEvent]] = []
        self.cv = threading.Condition()

    def __call__(self, event: EngineEvent) -> None:
        with self.cv:
            self.items.append((time.perf_counter(), event))
            self.cv.notify_all()

    def wait(self, match: Callable[[EngineEvent], bool]) -> tuple[float, EngineEvent]:
        with self.cv:
            assert self.cv.wait_for(lambda: any(match(e) for _, e in self.items), WAIT_S), "timed out"
            return next((t, e) for t, e in self.items if match(e))

    def nth_ready(self, n: int) -> tuple[float, EngineRestart]:
        def readies() -> list[tuple[float, EngineRestart]]:
            return [(t, e) for t, e in self.items if isinstance(e, EngineRestart) and e.phase == "ready"]

        with self.cv:
            assert self.cv.wait_for(lambda: len(readies()) >= n, WAIT_S), "no restart"
            return readies()[n - 1]


def of_request(request_id: int, kind: Any = object) -> Callable[[EngineEvent], bool]:
    """Matches the request's events (of ``kind``)."""
    return lambda event: event.request_id == request_id and isinstance(event, kind)


def load(engine: Any, events: Events, model: Path, threads: int) -> float:
    started = time.perf_counter()
    request = LoadRequest(model, LoadSettings(n_ctx=2048, n_threads=threads))
    engine.load(request)
    at, loaded = events.wait(of_request(request.request_id, ModelLoaded))
    assert isinstance(loaded, ModelLoaded), loaded
    return (at - started) * 1000.0


def restarts(model: Path, args: argparse.Namespace) -> dict[str, Any]:
    events = Events()
    crash = {"GEMMA_DESK_TEST_CRASH": f"{args.mode}:decode"}
    engine = ProcessEngine(events, env=crash, max_crashes=args.runs + 1)
    try:
        cold = load(engine, events, model, args.threads)
        reported, waited = [], []
        for run in range(1, args.runs + 1):
            request = ChatRequest((ChatMessage("user", "Hello"),), SamplingSettings.greedy_decoding(), 8)
            engine.submit(request)
            failed_at, _ = events.wait(of_request(request.request_id))
            ready_at, ready = events.nth_ready(run)
            reported.append(ready.elapsed_ms)
            waited.append((ready_at - failed_at) * 1000.0)
            print(f"restart {run}: {ready.elapsed_ms:.0f} ms reported, {waited[-1]:.0f} ms error to ready")
    finally:
        engine.close()
    return {
        "cold_start_to_loaded_ms": round(cold),
        "restart_ms": [round(x) for x in reported],
        "restart_median_ms": round(statistics.median(reported)),
        "error_to_ready_median_ms": round(statistics.median(waited)),
    }


def cancel_latency(kind: str, model: Path, args: argparse.Namespace) -> list[float]:
    events = Events()
    engine: Any = Engine(events) if kind == "in-process" else ProcessEngine(events)
    try:
        load(engine, events, model, args.threads)
        latencies = []
        for _ in range(args.cancels):
            forever = (ChatMessage("user", "Write forever"),)
            request = ChatRequest(forever, SamplingSettings(seed=5), max_tokens=100_000)
            engine.submit(request)
            events.wait(of_request(request.request_id, TextDelta))
            time.sleep(0.2)
            started = time.perf_counter()
            engine.cancel(request.request_id)
            at, _ = events.wait(of_request(request.request_id, Done))
            latencies.append((at - started) * 1000.0)
    finally:
        engine.close()
    print(f"cancel, {kind}: {[round(x, 1) for x in latencies]} ms")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="text GGUF (default: the tiny synthetic Gemma 3n)")
    parser.add_argument("--runs", type=int, default=5, help="crashes to restart from")
    parser.add_argument("--cancels", type=int, default=8, help="cancels per engine (0: skip)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mode", choices=["segfault", "abort"], default="segfault")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    model = args.model or cached_text_model("tiny")
    result: dict[str, Any] = {"model": str(model), "mode": args.mode, "threads": args.threads}
    result["load_average_before"] = os.getloadavg()
    if args.runs:
        result.update(restarts(model, args))
    for kind in ("in-process", "process") if args.cancels else ():
        latencies = cancel_latency(kind, model, args)
        result[f"cancel_{kind}_median_ms"] = round(statistics.median(latencies), 1)
        result[f"cancel_{kind}_max_ms"] = round(max(latencies), 1)
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
