"""The memory planner: KV and compute arithmetic against llama.cpp itself, verdicts, chosen settings, CLI.

KV sizes are compared with the buffer sizes llama.cpp logs when it builds a real context for the tiny
synthetic Gemma 3n (and the real Gemma 3 270M); headers for full-size shapes are synthetic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import build_in_test_cache

from model_io.audio.weights import load_audio_weights
from model_io.engine import Engine, EventQueue
from model_io.events import LoadRequest, ModelLoaded
from model_io.gguf_check import GgufSummary, GgufTensor, validate_gguf
from model_io.memory_plan import (
    AUDIO_WORKING_BYTES,
    MIB,
    RUNTIME_BYTES,
    VISION_COMPUTE_BYTES_PER_PIXEL,
    VOCAB_BYTES_PER_TOKEN,
    Machine,
    compute_buffer_bytes,
    judge,
    kv_cache_bytes,
    layer_kv_bytes,
    plan_memory,
    read_layer_arrays,
    text_shape,
    tower_bytes,
)
from model_io.native import NativeModel
from model_io.settings import LoadSettings
from model_io.synth.mmproj import cached_mmproj
from model_io.vision import read_vision_header

GIB = 1 << 30
PLENTY = Machine(total_bytes=64 * GIB, available_bytes=60 * GIB)
LOG_ROUNDING = int(0.005 * MIB) + 1  # llama.cpp prints buffer sizes in MiB with two decimals


# -- synthetic headers ---------------------------------------------------------------------------


def tensor(name: str, shape: tuple[int, ...], bytes_per_element: float = 0.5625) -> GgufTensor:
    n = 1
    for dim in shape:
        n *= dim
    return GgufTensor(name, "Q4_K", shape, n, int(n * bytes_per_element), 0)


def gemma3n_header(n_layer: int = 30, n_ff: int = 8192, kv_width: int = 512) -> GgufSummary:
    """An E2B-shaped header: 2048 wide, 2 KV heads of 256, sliding window 512, every 5th layer global."""
    n_embd, n_vocab = 2048, 262_400
    tensors = [
        tensor("token_embd.weight", (n_embd, n_vocab)),
        tensor("per_layer_token_embd.weight", (256 * n_layer, n_vocab)),
    ]
    for il in range(n_layer):
        tensors += [
            tensor(f"blk.{il}.attn_k.weight", (n_embd, kv_width)),
            tensor(f"blk.{il}.attn_v.weight", (n_embd, kv_width)),
            tensor(f"blk.{il}.ffn_gate.weight", (n_embd, n_ff)),
        ]
    kv = {
        "gemma3n.block_count": n_layer,
        "gemma3n.embedding_length": n_embd,
        "gemma3n.context_length": 32768,
        "gemma3n.attention.sliding_window": 512,
    }
    return GgufSummary(
        Path("synthetic.gguf"), 3 * GIB, 3, "gemma3n", len(tensors), kv, {}, tuple(tensors), 32, 0
    )


def pattern(n_layer: int) -> dict[str, tuple[bool, ...]]:
    return {"gemma3n.attention.sliding_window_pattern": tuple((il + 1) % 5 != 0 for il in range(n_layer))}


def test_kv_cache_of_an_e2b_shape_counts_only_the_20_layers_that_own_a_cache() -> None:
    shape = text_shape(gemma3n_header(), pattern(30))
    # 4 global layers x 8192 cells + 16 sliding layers x (512 + 512) cells, K and V of 512 f16 values each
    assert kv_cache_bytes(shape, 8192, 512) == (4 * 8192 + 16 * 1024) * 1024 * 2 == 96 * MIB
    # the KV-sharing layers (20-29) have no cache of their own, whatever their K/V weights look like
    wider = text_shape(gemma3n_header(kv_width=1024), pattern(30))
    assert sum(wider.kv_widths[20:]) == 0
    # 35 layers (E4B): still 20 with a cache
    assert kv_cache_bytes(text_shape(gemma3n_header(35), pattern(35)), 8192, 512) == 96 * MIB


def test_kv_cells_are_padded_to_256_and_the_window_never_exceeds_the_context() -> None:
    shape = text_shape(gemma3n_header(), pattern(30))
    assert kv_cache_bytes(shape, 1000, 512) == (4 * 1024 + 16 * 1024) * 2048  # 1000 -> 1024 cells
    assert kv_cache_bytes(shape, 8192, 128) == (4 * 8192 + 16 * 768) * 2048  # 512 + 128 -> 768
    assert kv_cache_bytes(shape, 512, 512) == 20 * 512 * 2048  # window + batch capped at the context


def test_without_a_pattern_array_llama_cpps_default_pattern_applies() -> None:
    shape = text_shape(gemma3n_header(), {})
    assert shape.swa_layers == tuple((il + 1) % 5 != 0 for il in range(30))


def test_compute_buffer_model_matches_llama_cpps_full_size_figures() -> None:
    """Sizes llama.cpp reported for the synthetic E2B/E4B (no_alloc dry run, flash attention, 1 output)."""
    e2b = text_shape(gemma3n_header(), pattern(30))
    e4b = text_shape(gemma3n_header(35, 16384), pattern(35))
    logits = 262_400 * 4
    measured = [(e2b, 8192, 512, 116_412_908), (e2b, 8192, 128, 29_035_069), (e4b, 8192, 512, 167_793_132)]
    for shape, n_ctx, n_ubatch, reported in measured:
        assert compute_buffer_bytes(shape, n_ctx, n_ubatch) - logits == pytest.approx(reported, rel=0.03)


# -- against llama.cpp on real files ---------------------------------------------------------------


@pytest.mark.parametrize(("n_ctx", "n_batch"), [(1024, 512), (2048, 128), (4096, 256)])
def test_kv_and_compute_match_what_llama_cpp_allocates(tiny_model: Path, n_ctx: int, n_batch: int) -> None:
    summary = validate_gguf(tiny_model, expect="text")
    shape = text_shape(summary, read_layer_arrays(tiny_model, "gemma3n"))
    model = NativeModel(tiny_model, LoadSettings(n_ctx=n_ctx, n_threads=1, n_batch=n_batch))
    try:
        buffers = model.buffers
    finally:
        model.close()
    # llama.cpp logs each of its two KV buffers rounded to 0.01 MiB
    assert abs(kv_cache_bytes(shape, n_ctx, n_batch) - buffers.kv) <= 2 * LOG_ROUNDING
    assert compute_buffer_bytes(shape, n_ctx, n_batch) == pytest.approx(
        buffers.compute + buffers.output, rel=0.05
    )


def test_kv_matches_llama_cpp_for_gemma3(gemma3_270m: Path) -> None:
    summary = validate_gguf(gemma3_270m, expect="text")
    shape = text_shape(summary, read_layer_arrays(gemma3_270m, summary.architecture))
    model = NativeModel(gemma3_270m, LoadSettings(n_ctx=2048, n_threads=1))
    try:
        assert abs(kv_cache_bytes(shape, 2048, 512) - model.buffers.kv) <= 2 * LOG_ROUNDING
    finally:
        model.close()


def test_layer_arrays_are_read_from_the_header(tiny_model: Path) -> None:
    arrays = read_layer_arrays(tiny_model, "gemma3n")
    assert arrays == {"gemma3n.attention.sliding_window_pattern": (True, True, True, False)}


def test_tower_estimates_follow_what_the_towers_hold() -> None:
    path = build_in_test_cache(lambda: cached_mmproj("tiny"))
    summary = validate_gguf(path, expect="mmproj")
    vision, audio = tower_bytes(summary)
    weights = load_audio_weights(path, dtype="compact")
    assert audio - AUDIO_WORKING_BYTES == pytest.approx(weights.nbytes, rel=0.02)
    header = read_vision_header(summary)
    assert vision == header.weight_bytes + header.image_size**2 * VISION_COMPUTE_BYTES_PER_PIXEL


# -- verdicts and chosen settings ------------------------------------------------------------------------


def test_verdict_boundaries() -> None:
    machine = Machine(total_bytes=16 * GIB, available_bytes=8 * GIB)
    assert judge(7 * GIB, machine) == "fits"  # within available less 10 %
    assert judge(int(7.5 * GIB), machine) == "slow"  # only by pushing other programs out
    assert judge(14 * GIB, machine) == "slow"
    assert judge(15 * GIB, machine) == "wont_fit"  # beyond total less 10 %


def test_context_is_the_default_when_it_fits_and_smaller_only_when_that_makes_it_fit() -> None:
    header, arrays = gemma3n_header(), pattern(30)
    roomy = plan_memory(header, machine=PLENTY, layer_arrays=arrays)
    assert roomy.n_ctx == 8192 and roomy.verdict == "fits" and roomy.n_gpu_layers == 0
    needed_2k = plan_memory(header, n_ctx=2048, machine=PLENTY, layer_arrays=arrays).text_only
    tight = Machine(total_bytes=16 * GIB, available_bytes=int((needed_2k + MIB) / 0.9))
    chosen = plan_memory(header, machine=tight, layer_arrays=arrays)
    assert chosen.n_ctx == 2048 and chosen.verdict == "fits"
    hopeless = Machine(total_bytes=16 * GIB, available_bytes=256 * MIB)
    assert (
        plan_memory(header, machine=hopeless, layer_arrays=arrays).n_ctx == 8192
    )  # shrinking would not help
    assert (
        plan_memory(header, n_ctx=4096, machine=tight, layer_arrays=arrays).n_ctx == 4096
    )  # the user's choice


def test_gpu_layers_all_only_where_the_build_offloads_and_the_model_fits() -> None:
    header, arrays = gemma3n_header(), pattern(30)
    gpu = Machine(64 * GIB, 60 * GIB, gpu_offload=True)
    assert plan_memory(header, machine=gpu, layer_arrays=arrays).n_gpu_layers == -1
    small_gpu = Machine(64 * GIB, 256 * MIB, gpu_offload=True)
    assert plan_memory(header, machine=small_gpu, layer_arrays=arrays).n_gpu_layers == 0


def test_gpu_layers_fill_a_dedicated_gpu_from_the_last_layer() -> None:
    header, arrays = gemma3n_header(), pattern(30)
    shape = text_shape(header, arrays)
    assert len(shape.layer_bytes) == 30 and sum(shape.layer_bytes) < shape.weight_bytes

    def layers_with(vram: int) -> int:
        machine = Machine(64 * GIB, 60 * GIB, gpu_offload=True, gpu_memory_bytes=vram)
        return plan_memory(header, n_ctx=4096, machine=machine, layer_arrays=arrays).n_gpu_layers

    costs = [w + kv for w, kv in zip(shape.layer_bytes, layer_kv_bytes(shape, 4096, 512), strict=True)]
    compute = compute_buffer_bytes(shape, 4096, 512)
    # the last 12 layers (KV-owning and KV-sharing ones alike) and half of the 13th
    twelve = compute + sum(costs[-12:]) + costs[-13] // 2
    assert layers_with(int(twelve / 0.9)) == 12
    assert layers_with(int((compute + sum(costs)) / 0.9) + 2) == 30  # every layer, not the output weights
    assert layers_with(64 * GIB) == -1
    assert layers_with(compute // 2) == 0  # not even the compute buffer fits


def test_plan_parts_add_up_and_the_ple_table_is_only_mapped() -> None:
    plan = plan_memory(gemma3n_header(), machine=PLENTY, layer_arrays=pattern(30))
    assert (
        plan.text_only == plan.runtime + plan.text_weights + plan.ple_resident + plan.kv_cache + plan.compute
    )
    assert plan.runtime == RUNTIME_BYTES + 262_400 * VOCAB_BYTES_PER_TOKEN
    assert plan.ple_resident < plan.ple_mapped / 10
    assert plan.load_peak > plan.text_only  # llama.cpp maps the whole file in while loading


def test_engine_chooses_context_and_gpu_layers_when_left_to_the_plan(tiny_model: Path) -> None:
    events = EventQueue()
    engine = Engine(events)
    try:
        request = LoadRequest(tiny_model, LoadSettings(n_threads=1))
        engine.load(request)
        loaded = list(events.events_for(request.request_id, timeout=120))[-1]
        assert isinstance(loaded, ModelLoaded)
        expected = plan_memory(validate_gguf(tiny_model))  # this machine: the tiny model fits
        assert loaded.info.n_ctx == expected.n_ctx == 8192
        assert loaded.info.n_gpu_layers == expected.n_gpu_layers == 0  # a CPU-only build
    finally:
        engine.close()


# -- CLI ------------------------------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app", *args]
    return subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), timeout=300)


def test_inspect_plan_in_text_and_json(tiny_model: Path) -> None:
    text = cli("models", "inspect", "--plan", str(tiny_model))
    assert text.returncode == 0, text.stderr
    assert (
        "memory plan:" in text.stdout
        and "KV cache (8,192 tokens)" in text.stdout
        and "-> fits" in text.stdout
    )
    data = json.loads(cli("models", "inspect", "--plan", "--json", "--ctx", "2048", str(tiny_model)).stdout)
    plan = data["plan"]
    assert plan["n_ctx"] == 2048 and plan["verdict"] == "fits" and plan["ple_mapped"] > plan["ple_resident"]
    assert data["architecture"] == "gemma3n"  # the usual inspect fields are still there


def test_ask_stats_prints_memory_after_the_statistics(tiny_model: Path) -> None:
    result = cli("ask", "--model", str(tiny_model), "--temp", "0", "--max-tokens", "3", "--stats", "Hi")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-2].startswith("[") and "tok/s" in lines[-2]
    assert lines[-1].startswith("[memory: text ") and "process RSS" in lines[-1] and "mapped" in lines[-1]
    as_json = cli("ask", "--model", str(tiny_model), "--max-tokens", "2", "--stats", "--json", "Hi")
    kinds = [json.loads(line)["event"] for line in as_json.stdout.splitlines()]
    assert kinds[-3:] == ["stats", "memory", "done"]
