"""``gemma-desk bench``: the real engine on the tiny model against stand-in llama.cpp tools; the arithmetic.

The stand-ins are small scripts that answer in the recorded formats of the real tools
(tests/data/bench: ``llama-bench -o json`` and ``llama-mtmd-cli``'s log on the tiny model)
and write down the arguments they were given, so the tests can check that the baseline is
run with exactly the app's settings.  The tools themselves are not built in CI.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from model_io.benchmark.app_engine import parse_context_facts
from model_io.benchmark.llama_bench import (
    RunSettings,
    ToolFailedError,
    ToolMissingError,
    find_tool,
    llama_bench_command,
    parse_llama_bench_json,
    row_for,
)
from model_io.benchmark.media_bench import MTMD_ENCODED
from model_io.benchmark.report import ratio
from model_io.benchmark.roofline import Bandwidth, decode_traffic, measure_copy_bandwidth
from model_io.gguf_check import GgufSummary, GgufTensor

DATA = Path(__file__).parent / "data" / "bench"
PP_TOK_S, TG_TOK_S = 1000.0, 50.0  # what the stand-in llama-bench reports

FAKE_LLAMA_BENCH = """#!{python}
import json, sys
from pathlib import Path
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(json.dumps(args) + "\\n")
opt = lambda flag: args[args.index(flag) + 1]
template = json.loads(Path({sample!r}).read_text())[0]
common = dict(template, n_threads=int(opt("-t")), n_batch=int(opt("-b")), n_ubatch=int(opt("-ub")),
              type_k=opt("-ctk"), type_v=opt("-ctv"))
rows = [dict(common, n_prompt=int(p), n_gen=0, samples_ns=[int(int(p) / {pp} * 1e9)], samples_ts=[{pp}])
        for p in opt("-p").split(",")]
n = int(opt("-n"))
rows.append(dict(common, n_prompt=0, n_gen=n, samples_ns=[int(n / {tg} * 1e9)], samples_ts=[{tg}]))
print(json.dumps(rows, indent=2))
"""

FAKE_MTMD_CLI = """#!{python}
import json, sys
with open({log!r}, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
sys.stderr.write(open({sample!r}).read())
"""


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def make_fake_tools(tmp_path: Path) -> dict[str, Path]:
    logs = {"llama-bench": tmp_path / "llama-bench.args", "llama-mtmd-cli": tmp_path / "mtmd.args"}
    bench = FAKE_LLAMA_BENCH.format(
        python=sys.executable, log=str(logs["llama-bench"]), sample=str(DATA / "llama_bench_tiny.json"),
        pp=PP_TOK_S, tg=TG_TOK_S,
    )  # fmt: skip
    mtmd = FAKE_MTMD_CLI.format(
        python=sys.executable, log=str(logs["llama-mtmd-cli"]), sample=str(DATA / "llama_mtmd_cli_tiny.log")
    )
    return {
        "llama-bench": _script(tmp_path / "llama-bench", bench),
        "llama-mtmd-cli": _script(tmp_path / "llama-mtmd-cli", mtmd),
        "llama-bench-log": logs["llama-bench"],
        "llama-mtmd-cli-log": logs["llama-mtmd-cli"],
    }


def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=timeout,
    )


# ------------------------------------------------------------------------------ llama-bench output


def test_parse_recorded_llama_bench_json() -> None:
    rows = parse_llama_bench_json((DATA / "llama_bench_tiny.json").read_text())
    assert [row.name for row in rows] == ["pp512", "pp20", "tg128"]
    pp512 = row_for(rows, n_prompt=512)
    assert pp512.samples_ts == (221.838, 798.634) and pp512.best_ts == 798.634
    assert pp512.samples_ns == (2307990594, 641094275)
    assert (pp512.n_threads, pp512.n_batch, pp512.n_ubatch, pp512.type_k, pp512.flash_attn) == (
        2,
        512,
        512,
        "f16",
        -1,
    )
    assert pp512.build_commit == "0c1e570"
    assert row_for(rows, n_gen=128).n_prompt == 0
    with pytest.raises(ToolFailedError, match="pp0/tg64"):
        row_for(rows, n_gen=64)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not json", "no valid JSON"),
        ('{"n_prompt": 1}', "not a list"),
        ('[{"n_prompt": 512, "n_gen": 0}]', "lacks an expected field"),
        ('[{"n_prompt": 1, "n_gen": 0, "samples_ns": [], "samples_ts": [], "n_threads": 1, '
         '"n_batch": 1, "n_ubatch": 1, "type_k": "f16", "type_v": "f16"}]', "lacks an expected field"),
    ],
)  # fmt: skip
def test_bad_llama_bench_output_is_a_clear_error(text: str, fragment: str) -> None:
    with pytest.raises(ToolFailedError, match=fragment):
        parse_llama_bench_json(text)


def test_llama_bench_gets_the_apps_settings() -> None:
    settings = RunSettings(
        threads=3, n_batch=256, n_ubatch=128, flash_attn="off", type_k="q8_0", type_v="f16", repack=False
    )
    command = llama_bench_command(Path("/x/llama-bench"), Path("m.gguf"), settings, [512, 17], 128, 1)
    pairs = dict(zip(command[1::2], command[2::2], strict=False))
    assert pairs == {
        "-m": "m.gguf", "-p": "512,17", "-n": "128", "-r": "1", "-t": "3", "-b": "256", "-ub": "128",
        "-fa": "off", "-ctk": "q8_0", "-ctv": "f16", "-lm": "mmap", "--repack": "0", "-ngl": "0",
        "-o": "json",
    }  # fmt: skip


def test_missing_tool_says_how_to_build_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMMA_DESK_TOOLS_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ToolMissingError, match=r"build_llama_cpp_tools\.sh"):
        find_tool("llama-bench")
    with pytest.raises(ToolMissingError, match="not an executable"):
        find_tool("llama-bench", tmp_path / "nothing-here")


def test_mtmd_cli_log_parsing() -> None:
    match = MTMD_ENCODED.search((DATA / "llama_mtmd_cli_tiny.log").read_text())
    assert match is not None and match.group(1) == "4781"
    assert MTMD_ENCODED.search("image slice encoded in 19062 ms").group(1) == "19062"  # type: ignore[union-attr]


def test_context_facts_from_llama_log() -> None:
    lines = [
        "load_tensors: loading model tensors, this can take a while... (load_mode = mmap)",
        "done_getting_tensors: tensor 'x' (q8_0) cannot be used with preferred buffer type CPU_REPACK",
        "llama_context: n_batch               = 512",
        "llama_context: n_ubatch              = 256",
        "llama_context: flash_attn            = auto",
        "llama_kv_cache: size = 0.25 MiB (2048 cells, 1 layers, 1/1 seqs), K (q8_0): 0.12 MiB, V (f16): 0.1",
        "resolve_fused_ops: Flash Attention enabled",
    ]
    facts = parse_context_facts(lines)
    assert (facts.n_batch, facts.n_ubatch, facts.flash_attn, facts.flash_attn_resolved) == (
        512,
        256,
        "auto",
        "on",
    )
    assert (facts.type_k, facts.type_v, facts.load_mode, facts.repack_offered) == (
        "q8_0",
        "f16",
        "mmap",
        True,
    )
    assert parse_context_facts([]).flash_attn is None


# ------------------------------------------------------------------------------ arithmetic


def _summary(tensors: list[tuple[str, tuple[int, ...], int]], **kv: Any) -> GgufSummary:
    entries = tuple(GgufTensor(name, "F16", shape, 0, n_bytes, 0) for name, shape, n_bytes in tensors)
    return GgufSummary(Path("hand.gguf"), 0, 3, "gemma3n", len(entries), kv, {}, entries, 32, 0)


def test_roofline_by_hand() -> None:
    """2 layers, the second sharing the first's KV cache; the PLE table is looked up, one row per token."""
    summary = _summary(
        [
            ("token_embd.weight", (8, 100), 1000),  # tied output: streamed
            ("per_layer_token_embd.weight", (16, 100), 3200),  # 100 rows of 32 bytes: one row read
            ("blk.0.attn_k.weight", (8, 4), 100),  # layer 0 has its own KV: read
            ("blk.1.attn_k.weight", (8, 4), 100),  # layer 1 reuses layer 0's cache: never computed
            ("blk.1.attn_v.weight", (8, 4), 50),
            ("blk.1.ffn_up.weight", (8, 25), 400),
        ],
        **{
            "gemma3n.block_count": 2, "gemma3n.attention.shared_kv_layers": 1, "gemma3n.embedding_length": 8,
            "gemma3n.attention.head_count": 2, "gemma3n.attention.head_count_kv": 1,
            "gemma3n.attention.key_length": 4, "gemma3n.attention.value_length": 4,
            "gemma3n.attention.sliding_window": 8,
        },
    )  # fmt: skip
    traffic = decode_traffic(summary, context_tokens=10)
    # layer 0 slides (every 5th is global): min(10, 8) positions x 1 head x (4 + 4) values x 2 bytes
    assert traffic.kv_cache == 8 * 1 * 8 * 2 == 128
    assert traffic.weights_streamed == 1000 + 100 + 400
    assert traffic.ple_row == 32 and traffic.ple_table_skipped == 3200
    assert traffic.unused_kv_weights_skipped == 150
    assert traffic.total == 1500 + 32 + 128
    assert traffic.limit_tokens_per_s(Bandwidth(16600.0, 0, 1, 1, {})) == pytest.approx(10.0)


def test_ratios_by_hand() -> None:
    assert ratio([10.0, 12.0, 9.0], [10.0, 10.0, 10.0]) == {
        "paired_median": 1.0,  # per round 1.0, 1.2, 0.9
        "of_medians": 1.0,
        "of_best": 1.2,
    }
    slower = ratio([200.0, 100.0], [100.0, 100.0], higher_is_better=False)
    assert slower == {"paired_median": 1.5, "of_medians": 1.5, "of_best": 1.0}
    assert ratio([], [1.0]) is None


def test_copy_bandwidth_is_measured() -> None:
    result = measure_copy_bandwidth(8 * 2**20, repeats=2, threads=2)
    assert result.bytes_per_s > 1e8  # any machine copies more than 100 MB/s
    assert set(result.per_thread_count) == {1, 2} and result.threads in (1, 2)


# ------------------------------------------------------------------------------ end to end

TOP_KEYS = {
    "schema", "command", "machine", "bandwidth", "settings", "models", "media", "load_average_end",
    "warnings",
}  # fmt: skip
MODEL_KEYS = {
    "name", "path", "file_bytes", "prefill_tokens", "short_turn_tokens", "decode_tokens", "app", "baseline",
    "ratios", "roofline", "targets", "notes",
}  # fmt: skip
MEDIA_KEYS = {"model", "image_encode", "audio_rtf", "push_to_talk", "memory_stages", "load_average", "notes"}
MACHINE_KEYS = {
    "cpu", "logical_cpus", "cpu_features", "ram_gib", "os", "python", "llama_cpp_python", "llama_cpp_backend",
    "gpu_offload", "numpy", "blas", "threads", "load_average_start", "started",
}  # fmt: skip


@pytest.fixture(scope="module")
def quick_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``gemma-desk bench --quick --media`` run on the tiny model with stand-in tools.

    One thread: two threads' spin barriers make the tiny model crawl when other jobs share the cores.
    """
    from conftest import build_in_test_cache

    from model_io.synth.mmproj import cached_mmproj

    tmp = tmp_path_factory.mktemp("bench")
    tools = make_fake_tools(tmp)
    mmproj = build_in_test_cache(lambda: cached_mmproj("tiny"))
    out = tmp / "bench.json"
    result = run_cli(
        "bench", "--model", str(tiny_model), "--quick", "--media", "--mmproj", str(mmproj), "--threads", "1",
        "--json", str(out), "--llama-bench", str(tools["llama-bench"]),
        "--mtmd-cli", str(tools["llama-mtmd-cli"]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {"report": json.loads(out.read_text()), "stdout": result.stdout, "tools": tools, "mmproj": mmproj}


@pytest.mark.slow
def test_bench_report_layout(quick_run: dict[str, Any], tiny_model: Path) -> None:
    report = quick_run["report"]
    assert set(report) == TOP_KEYS and report["schema"] == "gemma-desk-bench/1"
    assert set(report["machine"]) == MACHINE_KEYS
    (model,) = report["models"]
    assert set(model) == MODEL_KEYS and model["path"] == str(tiny_model)
    assert set(report["media"]) == MEDIA_KEYS
    assert [t["name"] for t in model["targets"]] == ["decode_vs_llama_bench", "prefill_vs_llama_bench",
                                                     "decode_vs_roofline"]  # fmt: skip
    assert "decode 32 tok" in quick_run["stdout"] and "app/llama" in quick_run["stdout"]


@pytest.mark.slow
def test_bench_text_figures_and_baseline_flags(quick_run: dict[str, Any], tiny_model: Path) -> None:
    report = quick_run["report"]
    (model,) = report["models"]
    assert model["prefill_tokens"] == 128 and model["decode_tokens"] == 32
    app, base = model["app"], model["baseline"]
    assert (
        app["prefill_tok_s"]["median"] > 0
        and app["decode_tok_s"]["median"] > 0
        and app["ttft_ms"]["median"] > 0
    )
    assert base["prefill_tok_s"]["median"] == PP_TOK_S and base["decode_tok_s"]["median"] == TG_TOK_S
    assert base["ttft_ms"]["median"] == pytest.approx(model["short_turn_tokens"] / PP_TOK_S * 1000, rel=1e-3)
    decode_ratio = model["ratios"]["decode"]["paired_median"]
    assert decode_ratio == pytest.approx(app["decode_tok_s"]["median"] / TG_TOK_S, rel=1e-3)
    assert model["roofline"]["limit_tok_s"] > 0 and app["peak_rss_mib"] >= app["rss_after_load_mib"] > 0
    # one llama-bench run per round, with the app's own settings and the app's real prompt lengths
    log = quick_run["tools"]["llama-bench-log"]
    (args,) = [json.loads(line) for line in log.read_text().splitlines()]
    flags = dict(zip(args[2::2], args[3::2], strict=False))
    settings = report["settings"]
    assert args[1] == str(tiny_model)
    assert flags["-p"] == f"{model['prefill_tokens']},{model['short_turn_tokens']}" and flags["-n"] == "32"
    assert (flags["-t"], flags["-b"], flags["-ub"]) == (
        "1",
        str(settings["n_batch"]),
        str(settings["n_ubatch"]),
    )
    assert (flags["-fa"], flags["-ctk"], flags["-ctv"]) == ("auto", "f16", "f16") == (
        settings["flash_attn"], settings["type_k"], settings["type_v"])  # fmt: skip


@pytest.mark.slow
def test_bench_media_figures(quick_run: dict[str, Any]) -> None:
    media = quick_run["report"]["media"]
    image = media["image_encode"]
    assert image["app_ms"]["median"] > 0 and image["llama_mtmd_cli_ms"]["samples"] == [4781.0]
    log = quick_run["tools"]["llama-mtmd-cli-log"]
    (args,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert args[args.index("--mmproj") + 1] == str(quick_run["mmproj"]) and args[args.index("-t") + 1] == "1"
    assert media["audio_rtf"]["5s"]["rtf_median"] > 0
    ptt = media["push_to_talk"]
    assert ptt["clip_s"] == 2.0
    assert 0 < ptt["request_start_to_first_token_s"]["median"] <= ptt["release_to_first_token_s"]["median"]
    assert not media["notes"], media["notes"]  # the engine found the streamed clip's rows ready


@pytest.mark.slow
def test_bench_memory_stages_follow_the_towers(quick_run: dict[str, Any]) -> None:
    stages = quick_run["report"]["media"]["memory_stages"]
    names = [stage["stage"] for stage in stages]
    assert names == [
        "loaded (text model only)", "text answer", "vision tower loaded (image question)",
        "audio tower loaded (audio question)", "towers released",
    ]  # fmt: skip
    held = [(stage["parts_mib"]["vision"] > 0, stage["parts_mib"]["audio"] > 0) for stage in stages]
    assert held == [(False, False), (False, False), (True, False), (True, True), (False, False)]
    for stage in stages:
        assert stage["rss_mib"] > 0 and stage["peak_mib"] >= stage["rss_mib"] * 0.9
        assert stage["parts_mib"]["per-layer embeddings"] <= stage["ple_mapped_mib"]  # mapped, not resident
    assert "memory, towers released: RSS" in quick_run["stdout"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--rounds", "0", "--skip-baseline"], "--rounds must be at least 1"),
        (["--llama-bench", "/nonexistent/llama-bench"], "not an executable llama-bench"),
        (["--media", "--skip-baseline"], "needs its projector: pass --mmproj"),
        (["--prefill-tokens", "9000", "--ctx", "2048", "--skip-baseline"], "must be below --ctx"),
    ],
)
def test_bench_rejects_bad_options(
    tiny_model: Path, args: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main

    assert main(["bench", "--model", str(tiny_model), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gemma-desk: error:") and fragment in err[0]


def test_busy_machine_is_flagged() -> None:
    from model_io.benchmark.runner import busy_machine_warnings

    quiet = {
        "machine": {"logical_cpus": 2, "load_average_start": (0.3, 0.2, 0.1)},
        "load_average_end": (0.9, 0, 0),
        "settings": {"threads": 2},
    }
    assert busy_machine_warnings(quiet) == []
    alone = {**quiet, "models": [{"app": {"load_average": [(2.3, 2, 1)]}}]}
    assert busy_machine_warnings(alone) == []  # the bench's own two threads, and a little more
    busy = {**alone, "models": [{"app": {"load_average": [(3.5, 2, 1)]}, "baseline": None}]}
    (warning,) = busy_machine_warnings(busy)
    assert "3.5 on 2 logical CPUs, about 1.5 beyond the bench's own 2 threads" in warning


def test_decode_time_is_what_follows_the_first_token() -> None:
    from model_io.benchmark.app_engine import RequestTiming
    from model_io.events import ResponseStats

    stats = ResponseStats(
        prompt_tokens=17, prompt_tokens_prefilled=17, prefill_ms=250.0, time_to_first_token_ms=300.0,
        generated_tokens=129, decode_ms=9_000.0, decode_tokens_per_s=14.2, peak_rss_bytes=None,
    )  # fmt: skip
    timing = RequestTiming(100.0, 100.31, 110.3, stats, "length", "")
    assert timing.decode_steps == 128  # the last sampled token is never decoded
    assert timing.decode_wall_s == pytest.approx(10.3 - 0.3)


def test_baseline_flags_follow_the_apps_context() -> None:
    from types import SimpleNamespace

    from model_io.benchmark.app_engine import ContextFacts
    from model_io.benchmark.runner import settings_from
    from model_io.settings import LoadSettings

    facts = ContextFacts(n_batch=256, n_ubatch=128, flash_attn="enabled", type_k="q8_0", type_v="q8_0",
                         load_mode="mmap", repack_offered=False, flash_attn_resolved="on")  # fmt: skip
    settings = settings_from(SimpleNamespace(facts=facts), 3, LoadSettings())  # type: ignore[arg-type]
    assert settings == RunSettings(3, 256, 128, "on", "q8_0", "q8_0", "mmap", False, "on")
    unknown = settings_from(SimpleNamespace(facts=ContextFacts()), 2, LoadSettings())  # type: ignore[arg-type]
    assert (unknown.n_batch, unknown.flash_attn, unknown.type_k) == (LoadSettings().n_batch, "auto", "f16")
