"""The benchmark's report: a stable JSON layout for comparing runs, and the table printed for people.

Ratios are always app / baseline.  For rates (tokens per second) above 1 means the
app is faster; for times (first token, encode) above 1 means the app is slower.
Three ratios are given because a shared machine makes single figures unreliable:
``paired_median`` (the median of per-round ratios: rounds alternate the sides, so a
round's two figures saw similar load; the figure the targets are checked on),
``of_medians`` and ``of_best`` (each side's least disturbed round).
"""

from __future__ import annotations

import statistics
from typing import Any

from model_io.benchmark.media_bench import MediaResult
from model_io.benchmark.memory_stages import stage_text
from model_io.benchmark.roofline import Bandwidth, decode_traffic
from model_io.benchmark.text_bench import SideSamples, TextResult, summarize
from model_io.gguf_check import validate_gguf

TARGETS = {
    "decode_vs_llama_bench": 0.98,
    "prefill_vs_llama_bench": 0.95,
    "decode_vs_roofline": 0.75,
}
MIB = 2**20


def ratio(app: list[float], base: list[float], *, higher_is_better: bool = True) -> dict[str, float] | None:
    """app / baseline three ways (see the module docstring); None without both sides."""
    if not app or not base:
        return None
    pairs = [a / b for a, b in zip(app, base, strict=False) if b > 0]
    best_app, best_base = (max(app), max(base)) if higher_is_better else (min(app), min(base))
    return {
        "paired_median": round(statistics.median(pairs), 4) if pairs else float("nan"),
        "of_medians": round(statistics.median(app) / statistics.median(base), 4),
        "of_best": round(best_app / best_base, 4),
    }


def _side(side: SideSamples) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prefill_tok_s": summarize(side.prefill_tok_s),
        "decode_tok_s": summarize(side.decode_tok_s),
        "ttft_ms": summarize(side.ttft_ms),
        "load_average": [list(x) if x else None for x in side.load_average],
    }
    for key, values in side.extra.items():
        out[key] = summarize(values)
    return out


def model_report(label: str, result: TextResult, bandwidth: Bandwidth) -> dict[str, Any]:
    """One model's figures, ratios, roofline and target checks."""
    app, base = result.app, result.baseline
    summary = validate_gguf(result.model, expect="text")
    context = result.short_turn_tokens + result.decode_tokens / 2  # mean position while decoding
    kv_bytes = 1.0 if result.settings.type_k.startswith("q8") else 2.0
    traffic = decode_traffic(summary, context, kv_bytes)
    limit = traffic.limit_tokens_per_s(bandwidth)
    ratios = {
        "prefill": ratio(app.prefill_tok_s, base.prefill_tok_s) if base else None,
        "decode": ratio(app.decode_tok_s, base.decode_tok_s) if base else None,
        "ttft": ratio(app.ttft_ms, base.ttft_ms, higher_is_better=False) if base else None,
    }
    roofline = {
        "bytes_per_token": traffic.to_dict(),
        "limit_tok_s": round(limit, 3),
        "app_decode_fraction": _fraction(app.decode_tok_s, limit),
        "baseline_decode_fraction": _fraction(base.decode_tok_s, limit) if base else None,
    }
    return {
        "name": label,
        "path": str(result.model),
        "file_bytes": summary.file_size,
        "prefill_tokens": result.prefill_tokens,
        "short_turn_tokens": result.short_turn_tokens,
        "decode_tokens": result.decode_tokens,
        "app": _side(app)
        | {
            "load_s": round(result.app_load_s, 2),
            "rss_after_load_mib": _mib(result.app_rss_after_load),
            "peak_rss_mib": _mib(result.app_peak_rss),
        },
        "baseline": (
            _side(base)
            | {"build_commit": result.baseline_commit, "peak_rss_mib": _mib(result.baseline_peak_rss)}
            if base
            else None
        ),
        "ratios": ratios,
        "roofline": roofline,
        "targets": _targets(ratios, roofline),
        "notes": list(result.notes),
    }


def _fraction(rates: list[float], limit: float) -> dict[str, float] | None:
    if not rates or limit <= 0:
        return None
    return {"median": round(statistics.median(rates) / limit, 4), "best": round(max(rates) / limit, 4)}


def _targets(ratios: dict[str, Any], roofline: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    for key, value in (
        ("decode_vs_llama_bench", (ratios["decode"] or {}).get("paired_median")),
        ("prefill_vs_llama_bench", (ratios["prefill"] or {}).get("paired_median")),
        ("decode_vs_roofline", (roofline["app_decode_fraction"] or {}).get("median")),
    ):
        target = TARGETS[key]
        checks.append(
            {"name": key, "value": value, "target": target, "met": None if value is None else value >= target}
        )
    return checks


def media_report(media: MediaResult, label: str) -> dict[str, Any]:
    image = {
        "app_ms": summarize(media.image_app_ms),
        "app_first_encode_ms": round(media.image_app_first_ms, 1) if media.image_app_first_ms else None,
        "llama_mtmd_cli_ms": summarize(media.image_mtmd_ms),
        "llama_mtmd_cli_peak_rss_mib": _mib(media.image_mtmd_peak_rss),
        "ratio": ratio(media.image_app_ms, media.image_mtmd_ms, higher_is_better=False),
    }
    return {
        "model": label,
        "image_encode": image,
        "audio_rtf": media.audio_rtf,
        "push_to_talk": media.push_to_talk,
        "memory_stages": media.memory_stages,
        "load_average": [list(x) if x else None for x in media.load_average],
        "notes": list(media.notes),
    }


def _mib(value: int | None) -> float | None:
    return round(value / MIB, 1) if value is not None else None


# ------------------------------------------------------------------------------------------ table


def format_report(report: dict[str, Any]) -> str:
    """The human-readable summary printed at the end of ``gemma-desk bench``."""
    lines = _machine_lines(report)
    for model in report["models"]:
        lines += ["", *_model_lines(model)]
    if report.get("media"):
        lines += ["", *_media_lines(report["media"])]
    lines.append(f"\nload average at the end: {report.get('load_average_end')}")
    lines += [f"WARNING: {warning}" for warning in report.get("warnings", [])]
    return "\n".join(lines)


def _machine_lines(report: dict[str, Any]) -> list[str]:
    m, s, bw = report["machine"], report["settings"], report["bandwidth"]
    commit = next((x["baseline"]["build_commit"] for x in report["models"] if x.get("baseline")), None)
    return [
        f"machine   {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['ram_gib']} GiB RAM, {m['os']}",
        f"software  llama-cpp-python {m['llama_cpp_python']}"
        + (f" (llama-bench build {commit})" if commit else "")
        + f", NumPy {m['numpy']} with {m['blas']}",
        f"backend   {m['llama_cpp_backend']}",
        f"settings  threads {s.get('threads')}, n_batch {s.get('n_batch')}, n_ubatch {s.get('n_ubatch')}, "
        f"flash attention {s.get('flash_attn')} ({s.get('flash_attn_resolved') or '?'}), "
        f"KV {s.get('type_k')}/{s.get('type_v')}, load {s.get('load_mode')}, repack {s.get('repack')}, "
        f"app n_ctx {s.get('n_ctx_app')}, {s.get('rounds')} rounds",
        f"memory    copy bandwidth {bw['gb_per_s']} GB/s (read + write, best of {bw['repeats']}, "
        f"{bw['threads']} thread(s); runs {bw['runs_gb_per_s']})",
        f"load      {m['load_average_start']} at the start",
    ]


def _model_lines(model: dict[str, Any]) -> list[str]:
    app, base, ratios = model["app"], model.get("baseline"), model["ratios"]

    def row(label: str, key: str, ratio_key: str, best: str = "max") -> str:
        return _row(label, app[key], base[key] if base else None, ratios[ratio_key], best)

    rows = [
        f"{model['name']}  ({model['file_bytes'] / 1e9:.2f} GB)",
        f"  {'':26}{'app (median/best)':>22}{'llama-bench':>22}{'app/llama':>12}",
        row(f"prefill {model['prefill_tokens']} tok, tok/s", "prefill_tok_s", "prefill"),
        row(f"decode {model['decode_tokens']} tok, tok/s", "decode_tok_s", "decode"),
        row(f"first token ({model['short_turn_tokens']} tok), ms", "ttft_ms", "ttft", best="min"),
        _roofline_line(model["roofline"], base is not None),
    ]
    peak_base = f", llama-bench {base['peak_rss_mib']} MiB" if base and base.get("peak_rss_mib") else ""
    after_load, peak = app["rss_after_load_mib"], app["peak_rss_mib"]
    rows.append(f"  memory: app RSS {after_load} MiB after load, peak {peak} MiB{peak_base}")
    for check in model["targets"]:
        verdict = "n/a" if check["met"] is None else ("met" if check["met"] else "MISSED")
        rows.append(f"  target {check['name']} >= {check['target']:.0%}: {_pct(check['value'])} {verdict}")
    rows += [f"  note: {note}" for note in model["notes"]]
    return rows


def _roofline_line(roof: dict[str, Any], with_baseline: bool) -> str:
    traffic = roof["bytes_per_token"]
    app = _pct((roof["app_decode_fraction"] or {}).get("median"))
    base = _pct((roof["baseline_decode_fraction"] or {}).get("median")) if with_baseline else None
    return (
        f"  roofline: {traffic['total'] / 1e9:.3f} GB read per token (the "
        f"{traffic['ple_table_skipped'] / 1e9:.2f} GB PLE table is looked up, not streamed) → limit "
        f"{roof['limit_tok_s']:.2f} tok/s; decode at {app} of it" + (f" (llama-bench {base})" if base else "")
    )


def _row(label: str, app: dict[str, Any], base: dict[str, Any] | None, r: dict[str, Any] | None,
         best: str = "max") -> str:  # fmt: skip
    def cell(x: dict[str, Any] | None) -> str:
        return f"{x['median']:.1f} / {x[best]:.1f}" if x else "-"

    ratio_text = f"{r['paired_median']:.3f}" if r else "-"
    return f"  {label:26}{cell(app):>22}{cell(base):>22}{ratio_text:>12}"


def _media_lines(media: dict[str, Any]) -> list[str]:
    image = media["image_encode"]
    lines = [f"media ({media['model']})"]
    ratio_text = f", app/llama-mtmd-cli {image['ratio']['paired_median']:.3f}" if image["ratio"] else ""
    lines.append(
        f"  image encode ms (median/best): app {_pair(image['app_ms'], 'min')}, "
        f"llama-mtmd-cli {_pair(image['llama_mtmd_cli_ms'], 'min')}{ratio_text}"
    )
    for key, entry in media["audio_rtf"].items():
        lines.append(
            f"  audio tower {key} clip: RTF {entry['rtf_median']:.3f} median, {entry['rtf_min']:.3f} best "
            f"({entry['threads']} threads; target <= 0.15)"
        )
    ptt = media["push_to_talk"]
    if ptt:
        lines.append(
            f"  push-to-talk {ptt['clip_s']:g} s clip: release → first token "
            f"{ptt['release_to_first_token_s']['median']:.3f} s median (stream tail "
            f"{ptt['release_to_request_start_s']['median']:.3f} s + prompt to first token "
            f"{ptt['request_start_to_first_token_s']['median']:.3f} s); not streamed "
            f"{ptt['not_streamed_release_to_first_token_s']['median']:.3f} s"
        )
    lines += [f"  memory, {stage_text(stage)}" for stage in media["memory_stages"]]
    lines += [f"  note: {note}" for note in media["notes"]]
    return lines


def _pair(entry: dict[str, Any], best: str) -> str:
    return f"{entry['median']:.0f} / {entry[best]:.0f}" if entry else "-"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
