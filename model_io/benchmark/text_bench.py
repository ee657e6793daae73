"""Text speed of one model: the app's engine and llama-bench, alternating in interleaved rounds.

Per round, each side measures prefill of a long prompt (512 tokens by default),
decode of a fixed number of tokens (128) and the first token of a short chat turn.
The side that goes first alternates between rounds, so a slow drift in machine
load (other jobs, thermal state, page cache) hurts both alike; results keep every
round so the report can give medians, bests and per-round paired ratios.

The app's requests are real chat turns: the Gemma 3n prompt format, the app's
default sampling (seeded) and its event stream.  End-of-generation tokens are
banned through the sampler's logit bias so every turn decodes the full count, as
llama-bench's ``tg`` test does.  llama-bench is given the token counts the app's
prompts really had, so both sides prefill the same number of tokens.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_io.benchmark.app_engine import EngineDriver, RequestTiming
from model_io.benchmark.llama_bench import BenchRow, RunSettings, row_for, run_llama_bench
from model_io.benchmark.machine import current_rss_bytes, load_average, peak_rss_bytes, reset_peak_rss
from model_io.errors import EngineFailure
from model_io.prompt import GEMMA3N_STOP_IDS, ChatMessage
from model_io.settings import LoadSettings, SamplingSettings

SHORT_TURN = "Write a haiku about the sea."
# Common words that the Gemma tokenizer keeps whole, so the word count sets the token count.
_FILLER = (
    "the",
    "river",
    "carries",
    "light",
    "across",
    "the",
    "quiet",
    "valley",
    "while",
    "people",
    "walk",
    "home",
    "from",
    "the",
    "market",
    "and",
    "children",
    "count",
    "the",
    "boats",
    "that",
    "pass",
    "under",
    "the",
    "old",
    "stone",
    "bridge",
    "before",
    "the",
    "evening",
    "rain",
)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TextPlan:
    """What to measure: prompt and decode lengths, rounds and whether to run the baseline."""

    prefill_tokens: int = 512
    decode_tokens: int = 128
    rounds: int = 3
    baseline: bool = True


@dataclass
class SideSamples:
    """One side's per-round figures (lists are index-aligned by round)."""

    prefill_tok_s: list[float] = field(default_factory=list)
    decode_tok_s: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    load_average: list[tuple[float, float, float] | None] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)

    def add_extra(self, key: str, value: float) -> None:
        self.extra.setdefault(key, []).append(value)


@dataclass
class TextResult:
    """Everything measured for one model."""

    model: Path
    settings: RunSettings
    prefill_tokens: int
    short_turn_tokens: int
    decode_tokens: int
    app: SideSamples
    baseline: SideSamples | None
    app_load_s: float
    app_n_ctx: int
    app_rss_after_load: int | None
    app_peak_rss: int | None
    baseline_peak_rss: int | None
    baseline_commit: str | None
    notes: list[str] = field(default_factory=list)


def banned_end_tokens(extra: frozenset[int] = frozenset()) -> tuple[tuple[int, float], ...]:
    """Logit biases that keep the sampler off end-of-turn tokens (so a turn decodes its full length)."""
    return tuple((token, float("-inf")) for token in sorted(GEMMA3N_STOP_IDS | extra))


def filler_text(n_words: int) -> str:
    return " ".join(_FILLER[i % len(_FILLER)] for i in range(max(1, n_words)))


def measure_model(
    model: Path,
    load: LoadSettings,
    plan: TextPlan,
    llama_bench: Path | None,
    progress: Progress,
    settings_from: Callable[[EngineDriver], RunSettings],
) -> TextResult:
    """Load ``model`` in the app's engine, size the prompts, then run the interleaved rounds."""
    reset_peak_rss()
    with EngineDriver(model, load) as driver:
        settings = settings_from(driver)
        rss_after_load = current_rss_bytes()
        progress(f"{model.name}: loaded in {driver.load_s:.1f} s; sizing prompts (also the warm-up)")
        sampling = SamplingSettings(seed=0, logit_bias=banned_end_tokens())
        long_text, long_tokens = _size_prompt(driver, plan.prefill_tokens, sampling)
        short = driver.run(_turn(SHORT_TURN), sampling, max_tokens=2)
        short_tokens = short.stats.prompt_tokens
        result = TextResult(
            model, settings, long_tokens, short_tokens, plan.decode_tokens, SideSamples(),
            SideSamples() if plan.baseline else None, driver.load_s, driver.info.n_ctx, rss_after_load,
            None, None, None,
        )  # fmt: skip
        for index in range(plan.rounds):
            sides = ["app", "baseline"] if index % 2 == 0 else ["baseline", "app"]
            for side in sides:
                if side == "app":
                    _app_round(driver, result, long_text, sampling, plan)
                    progress(f"{model.name}: round {index + 1}/{plan.rounds} app      " + _last(result.app))
                elif plan.baseline and result.baseline is not None and llama_bench is not None:
                    _baseline_round(llama_bench, result, result.baseline)
                    progress(
                        f"{model.name}: round {index + 1}/{plan.rounds} llama.cpp " + _last(result.baseline)
                    )
        result.app_peak_rss = peak_rss_bytes()
    return result


def _turn(text: str) -> tuple[ChatMessage, ...]:
    return (ChatMessage("user", text),)


def _size_prompt(driver: EngineDriver, target: int, sampling: SamplingSettings) -> tuple[str, int]:
    """A user message whose whole chat prompt is ``target`` tokens (or as near as whole words allow).

    Each try is a real request, so sizing doubles as the warm-up (weights paged in, buffers grown).
    """
    words = max(1, target - 12)
    text, tokens = "", 0
    for _ in range(4):
        text = filler_text(words)
        tokens = driver.run(_turn(text), sampling, max_tokens=1).stats.prompt_tokens
        if tokens == target:
            break
        words = max(1, words + target - tokens)
    return text, tokens


def _app_round(
    driver: EngineDriver, result: TextResult, long_text: str, sampling: SamplingSettings, plan: TextPlan
) -> None:
    app = result.app
    prefill = driver.run(_turn(long_text), sampling, max_tokens=1)
    stats = prefill.stats
    if stats.prompt_tokens_prefilled != result.prefill_tokens:
        raise EngineFailure(
            f"the engine prefilled {stats.prompt_tokens_prefilled} tokens, expected {result.prefill_tokens}"
        )
    app.prefill_tok_s.append(stats.prompt_tokens_prefilled / (stats.prefill_ms / 1000.0))
    turn = driver.run(_turn(SHORT_TURN), sampling, max_tokens=plan.decode_tokens)
    _check_full_length(turn, plan.decode_tokens, result)
    app.decode_tok_s.append(turn.decode_steps / turn.decode_wall_s if turn.decode_wall_s > 0 else 0.0)
    app.ttft_ms.append(turn.stats.time_to_first_token_ms)
    app.add_extra("decode_engine_tok_s", turn.stats.decode_tokens_per_s)
    if turn.first_text_at is not None:
        app.add_extra("submit_to_first_text_ms", (turn.first_text_at - turn.submitted_at) * 1000.0)
    app.load_average.append(load_average())


def _check_full_length(turn: RequestTiming, expected: int, result: TextResult) -> None:
    if turn.stats.generated_tokens != expected:
        note = (
            f"a turn stopped after {turn.stats.generated_tokens} of {expected} tokens "
            f"({turn.finish_reason}); its rate is over the tokens it made"
        )
        if note not in result.notes:
            result.notes.append(note)


def _baseline_round(binary: Path, result: TextResult, base: SideSamples) -> None:
    prompts = sorted({result.prefill_tokens, result.short_turn_tokens}, reverse=True)
    rows, run = run_llama_bench(binary, result.model, result.settings, prompts, result.decode_tokens)
    long_row = row_for(rows, n_prompt=result.prefill_tokens)
    short_row = row_for(rows, n_prompt=result.short_turn_tokens)
    gen_row = row_for(rows, n_gen=result.decode_tokens)
    base.prefill_tok_s.append(long_row.samples_ts[0])
    base.decode_tok_s.append(gen_row.samples_ts[0])
    base.ttft_ms.append(short_row.samples_ns[0] / 1e6)
    base.load_average.append(load_average())
    base.add_extra("wall_s", run.wall_s)
    if run.peak_rss_bytes is not None:
        result.baseline_peak_rss = max(result.baseline_peak_rss or 0, run.peak_rss_bytes)
    result.baseline_commit = _commit(rows)


def _commit(rows: list[BenchRow]) -> str | None:
    return rows[0].build_commit if rows else None


def _last(side: SideSamples) -> str:
    if not side.decode_tok_s:
        return ""
    return (
        f"prefill {side.prefill_tok_s[-1]:7.1f} tok/s  decode {side.decode_tok_s[-1]:6.2f} tok/s  "
        f"first token {side.ttft_ms[-1]:7.0f} ms  (load {side.load_average[-1]})"
    )


def summarize(values: list[float]) -> dict[str, Any]:
    """Median, best (max for rates), worst and every sample, rounded for the report."""
    if not values:
        return {}
    return {
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
        "min": round(min(values), 3),
        "samples": [round(v, 3) for v in values],
    }
