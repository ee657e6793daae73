"""``gemma-desk bench`` without the command line: resolve models and tools, run every part, report.

The parts run in a fixed order so their load averages are comparable between runs:
memory bandwidth, then per model the interleaved text rounds (app, llama-bench),
then optionally the media part on the first model, then the bandwidth again (the
best of both is the machine's figure).  Everything measured lands in one JSON-ready
dict (:mod:`model_io.benchmark.report` defines its layout).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from model_io.benchmark.app_engine import EngineDriver
from model_io.benchmark.llama_bench import RunSettings, find_tool
from model_io.benchmark.machine import load_average, machine_info
from model_io.benchmark.media_bench import MediaPlan, measure_media
from model_io.benchmark.report import media_report, model_report
from model_io.benchmark.roofline import Bandwidth, measure_copy_bandwidth
from model_io.benchmark.text_bench import TextPlan, measure_model
from model_io.errors import InputError
from model_io.gguf_check import validate_gguf
from model_io.settings import LoadSettings, default_threads

PRESETS = ("tiny", "e2b", "e4b")
SCHEMA = "gemma-desk-bench/1"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchOptions:
    """What ``gemma-desk bench`` was asked to do."""

    models: tuple[str, ...] = ("e2b", "e4b")
    threads: int = 0
    rounds: int = 3
    n_ctx: int | None = None  # None: the app's default (its memory plan may choose)
    prefill_tokens: int = 512
    decode_tokens: int = 128
    baseline: bool = True
    media: bool = False
    mmproj: Path | None = None
    llama_bench: Path | None = None
    mtmd_cli: Path | None = None
    quick: bool = False
    bandwidth_mib: int = 256
    bandwidth_repeats: int = 7
    media_plan: MediaPlan = field(default_factory=MediaPlan)

    @property
    def n_threads(self) -> int:
        return self.threads or default_threads()

    @classmethod
    def quick_defaults(cls) -> dict[str, Any]:
        """A smoke run: one round, shorter prompt and decode, a small bandwidth buffer, short media."""
        return {
            "rounds": 1,
            "prefill_tokens": 128,
            "decode_tokens": 32,
            "bandwidth_mib": 64,
            "bandwidth_repeats": 3,
            "media_plan": MediaPlan(
                rounds=1, audio_seconds=(5.0,), audio_runs=1, ptt_seconds=2.0, ptt_runs=1
            ),
        }


def resolve_model(name: str, progress: Progress) -> tuple[str, Path]:
    """A preset (built once, cached) or a GGUF path; returns a label and the file."""
    if name.lower() in PRESETS:
        from model_io.synth import cached_text_model

        progress(f"{name}: using the cached synthetic model (built on first use, ~30 s)")
        return name.lower(), cached_text_model(name.lower())
    path = Path(name).expanduser()
    validate_gguf(path, expect="text")
    return path.stem, path


def resolve_mmproj(label: str, explicit: Path | None) -> Path:
    if explicit is not None:
        validate_gguf(explicit, expect="mmproj")
        return explicit
    if label in PRESETS:
        from model_io.synth.mmproj import cached_mmproj

        return cached_mmproj(label)
    raise InputError(f"--media on {label} needs its projector: pass --mmproj PATH")


def settings_from(driver: EngineDriver, threads: int, load: LoadSettings) -> RunSettings:
    """The baseline's flags, read from what llama.cpp logged for the app's own context."""
    facts = driver.facts
    flash = {"enabled": "on", "disabled": "off"}.get(facts.flash_attn or "auto", facts.flash_attn or "auto")
    return RunSettings(
        threads=threads,
        n_batch=facts.n_batch or load.n_batch,
        n_ubatch=facts.n_ubatch or load.n_batch,
        flash_attn=flash,
        type_k=facts.type_k or "f16",
        type_v=facts.type_v or "f16",
        load_mode=facts.load_mode or "mmap",
        repack=facts.repack_offered,
        flash_attn_resolved=facts.flash_attn_resolved,
    )


def run_bench(options: BenchOptions, progress: Progress, command: str = "gemma-desk bench") -> dict[str, Any]:
    """Run everything ``options`` asks for; the report as a JSON-ready dict."""
    threads = options.n_threads
    llama_bench = find_tool("llama-bench", options.llama_bench) if options.baseline else None
    mtmd_cli = find_tool("llama-mtmd-cli", options.mtmd_cli) if options.baseline and options.media else None
    models = [resolve_model(name, progress) for name in options.models]
    mmproj = resolve_mmproj(models[0][0], options.mmproj) if options.media else None
    load = LoadSettings(n_threads=threads) if options.n_ctx is None else LoadSettings(options.n_ctx, threads)
    report: dict[str, Any] = {"schema": SCHEMA, "command": command, "machine": machine_info(threads)}
    progress(f"memory bandwidth ({options.bandwidth_mib} MiB copies, best of {options.bandwidth_repeats})")
    first = _bandwidth(options, threads)
    plan = TextPlan(options.prefill_tokens, options.decode_tokens, options.rounds, options.baseline)
    results = []
    for label, path in models:
        result = measure_model(
            path, load, plan, llama_bench, progress, lambda driver: settings_from(driver, threads, load)
        )
        results.append((label, result))
    media = None
    if mmproj is not None:
        label, path = models[0]
        progress(f"media on {label}: image encode, audio tower, push-to-talk")
        media = measure_media(path, mmproj, load, options.media_plan, mtmd_cli, progress)
    second = _bandwidth(options, threads)
    bandwidth = first if first.bytes_per_s >= second.bytes_per_s else second
    report["bandwidth"] = bandwidth.to_dict() | {"runs_gb_per_s": [_gbs(first), _gbs(second)]}
    lead = results[0][1] if results else None
    report["settings"] = _settings_report(
        options, lead.settings if lead else None, lead.app_n_ctx if lead else None
    )
    report["models"] = [model_report(label, result, bandwidth) for label, result in results]
    report["media"] = media_report(media, models[0][0]) if media is not None else None
    report["load_average_end"] = load_average()
    report["warnings"] = busy_machine_warnings(report)
    return report


def busy_machine_warnings(report: dict[str, Any]) -> list[str]:
    """Say so when other work shared the CPUs: every figure then measures the machine's load too.

    The bench's own threads count in the load average (a 2-thread run alone shows about 2.0), so
    only the load beyond them, when above half a CPU, means another job was running.
    """
    cpus = report["machine"].get("logical_cpus") or 1
    own = int(report.get("settings", {}).get("threads") or 0)
    samples = [report["machine"].get("load_average_start"), report.get("load_average_end")]
    for model in report.get("models", []):
        for side in (model.get("app"), model.get("baseline")):
            samples += (side or {}).get("load_average", [])
    busiest = max((s[0] for s in samples if s), default=0.0)
    others = busiest - min(own, cpus)
    if others <= 0.5:
        return []
    return [
        f"the machine was busy (1-minute load average up to {busiest:.1f} on {cpus} logical CPUs, about "
        f"{others:.1f} beyond the bench's own {own} threads): other jobs took CPU time from both sides, so "
        "these figures are not comparable with a quiet run"
    ]


def _bandwidth(options: BenchOptions, threads: int) -> Bandwidth:
    return measure_copy_bandwidth(options.bandwidth_mib * 2**20, options.bandwidth_repeats, threads)


def _gbs(bandwidth: Bandwidth) -> float:
    return round(bandwidth.bytes_per_s / 1e9, 2)


def _settings_report(
    options: BenchOptions, settings: RunSettings | None, n_ctx: int | None
) -> dict[str, Any]:
    return {
        **(settings.to_dict() if settings else {"threads": options.n_threads}),
        "n_ctx_app": n_ctx,
        "rounds": options.rounds,
        "prefill_tokens_target": options.prefill_tokens,
        "decode_tokens": options.decode_tokens,
        "app_sampling": "app defaults (temperature 1, top-k 64, top-p 0.95), seed 0, end-of-turn banned",
        "baseline": "llama-bench" if options.baseline else None,
        "quick": options.quick,
    }


def with_quick(options: BenchOptions, explicit: dict[str, Any]) -> BenchOptions:
    """``--quick`` defaults, except for what the user set explicitly."""
    quick = {k: v for k, v in BenchOptions.quick_defaults().items() if k not in explicit}
    return replace(options, quick=True, **quick)
