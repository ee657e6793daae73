"""Resident memory as a session goes from text-only chat to both towers and back.

One fresh engine (the app's, in this process) on the text model and its projector, and at each
stage: the process's RSS, its peak since the previous stage (Linux VmHWM, reset between stages),
and the engine's own :class:`~model_io.events.MemoryUsage` report, which splits the RSS into
text weights, the per-layer-embedding (PLE) table's resident pages against its mapped size, the KV
cache, compute buffers and each tower.  Stages: loading; a short text answer; an image question
(vision tower loads); an audio question (audio tower loads); both towers released.

Run this before anything else in the process holds large buffers, as the RSS is the process's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from model_io.benchmark.app_engine import EngineDriver
from model_io.benchmark.machine import current_rss_bytes, peak_rss_bytes, reset_peak_rss
from model_io.events import MemoryUsage
from model_io.images import load_image
from model_io.media import MediaInput
from model_io.prompt import ChatMessage
from model_io.settings import LoadSettings, SamplingSettings

MIB = 1 << 20
Progress = Callable[[str], None]


def measure_memory_stages(
    text_model: Path,
    mmproj: Path,
    load: LoadSettings,
    image: Path,
    clip: np.ndarray,
    progress: Progress,
) -> list[dict[str, Any]]:
    """The stages in order, each ``{"stage", "rss_mib", "peak_mib", "parts_mib", "ple_mapped_mib"}``."""
    stages: list[dict[str, Any]] = []
    sampling = SamplingSettings(seed=0)
    reset_peak_rss()
    with EngineDriver(text_model, load, mmproj=mmproj) as driver:  # the engine's own towers, as in the app
        stages.append(_stage("loaded (text model only)", driver))
        progress(f"memory: {stage_text(stages[-1])}")
        questions = (
            ("text answer", ("Name three colours.",)),
            ("vision tower loaded (image question)", (load_image(image), "What is this?")),
            ("audio tower loaded (audio question)", (MediaInput("audio", clip), "Transcribe this.")),
        )
        for name, parts in questions:
            reset_peak_rss()
            driver.run((ChatMessage("user", parts),), sampling, max_tokens=8)
            stages.append(_stage(name, driver))
            progress(f"memory: {stage_text(stages[-1])}")
        driver.release_towers()
        reset_peak_rss()  # the peak of this stage starts after the release, not at the towers' high
        stages.append(_stage("towers released", driver))
        progress(f"memory: {stage_text(stages[-1])}")
    return stages


def _stage(name: str, driver: EngineDriver) -> dict[str, Any]:
    report: MemoryUsage | None = driver.memory[-1] if driver.memory else None
    return {
        "stage": name,
        "rss_mib": _mib(current_rss_bytes()),
        "peak_mib": _mib(peak_rss_bytes()),
        "engine_report_rss_mib": _mib(report.process_rss_bytes) if report else None,
        "parts_mib": {part: _mib(size) for part, size in report.parts} if report else {},
        "ple_mapped_mib": _mib(report.mapped_bytes) if report else None,
    }


def stage_text(stage: dict[str, Any]) -> str:
    """One line: the stage, RSS, peak and the engine's split."""
    parts = ", ".join(f"{name} {_num(size)}" for name, size in stage["parts_mib"].items() if size)
    return (
        f"{stage['stage']}: RSS {_num(stage['rss_mib'])} MiB, peak {_num(stage['peak_mib'])} MiB "
        f"({parts}; PLE mapped {_num(stage['ple_mapped_mib'])} MiB)"
    )


def _num(mib: float | None) -> str:
    return "?" if mib is None else f"{mib:,.0f}"


def _mib(value: int | None) -> float | None:
    return round(value / MIB, 1) if value is not None else None
