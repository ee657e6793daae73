"""The synthetic writer: true Gemma 3n shapes and counts, determinism, atomic output."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from gguf_fixtures import sha256_file

from model_io.errors import InputError
from model_io.gguf_check import validate_gguf
from model_io.model_info import inspect_model
from model_io.synth import PRESETS, tensor_plan, write_text_model
from model_io.synth.vocab import GEMMA3N_VOCAB

# gemma3n-facts.md §1.3 (llama.cpp load_arch_tensors shapes; effective = Google's published figure for E2B).
EXPECTED = {
    "e2b": {"raw": 4_458_122_848, "ple": 2_015_232_000, "effective": 1_905_495_648, "tensors": 727},
    "e4b": {"raw": 6_868_990_448, "ple": 2_351_104_000, "effective": 3_980_491_248, "tensors": 847},
}


@pytest.mark.parametrize("preset", ["e2b", "e4b"])
def test_full_presets_have_the_published_parameter_counts(preset: str) -> None:
    plan = tensor_plan(PRESETS[preset])
    counts = {t.name: math.prod(t.shape) for t in plan}
    raw = sum(counts.values())
    ple = counts["per_layer_token_embd.weight"]
    assert len(plan) == EXPECTED[preset]["tensors"]
    assert raw == EXPECTED[preset]["raw"]
    assert ple == EXPECTED[preset]["ple"]
    assert raw - ple - counts["token_embd.weight"] == EXPECTED[preset]["effective"]


def test_full_presets_use_a_q4_k_m_like_mix() -> None:
    types = {t.name: t.qtype.name for t in tensor_plan(PRESETS["e2b"])}
    assert types["token_embd.weight"] == types["per_layer_token_embd.weight"] == "Q6_K"
    assert types["blk.0.attn_q.weight"] == types["blk.5.ffn_up.weight"] == "Q4_K"
    assert types["blk.0.ffn_down.weight"] == "Q6_K" and types["blk.4.ffn_down.weight"] == "Q4_K"
    assert types["blk.3.laurel_l.weight"] == types["per_layer_model_proj.weight"] == "F16"
    assert types["blk.3.attn_norm.weight"] == "F32"


def test_tiny_model_is_valid_small_and_deterministic(tiny_model: Path, tmp_path: Path) -> None:
    info = inspect_model(tiny_model)
    assert info.architecture == "gemma3n" and info.kind == "text" and info.n_vocab == GEMMA3N_VOCAB
    assert tiny_model.stat().st_size < 100 * 2**20
    again = write_text_model("tiny", tmp_path / "again.gguf")
    assert sha256_file(again) == sha256_file(tiny_model)
    assert not list(tmp_path.glob("*.partial"))


def test_interrupted_write_leaves_no_model(tmp_path: Path) -> None:
    target = tmp_path / "out" / "broken.gguf"

    def explode(done: int, total: int) -> None:
        if done > total // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_text_model("tiny", target, progress=explode)
    assert list(target.parent.iterdir()) == []


def test_per_layer_table_rows_beyond_text_vocab_are_zero(tiny_model: Path) -> None:
    from gguf.quants import dequantize

    summary = validate_gguf(tiny_model)
    ple = next(t for t in summary.tensors if t.name == "per_layer_token_embd.weight")
    row_bytes = ple.n_bytes // GEMMA3N_VOCAB
    with tiny_model.open("rb") as handle:
        handle.seek(ple.offset + row_bytes * (262_144 - 1))
        rows = handle.read(row_bytes * 2)
    import numpy as np

    values = dequantize(np.frombuffer(rows, dtype=np.uint8), _qtype(ple.type_name))
    last_text, first_padded = values.reshape(2, -1)
    assert np.any(last_text != 0) and np.all(first_padded == 0)


def test_unknown_preset_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="tiny, e2b, e4b"):
        write_text_model("huge", tmp_path / "x.gguf")


def _qtype(name: str):  # type: ignore[no-untyped-def]
    from gguf import GGMLQuantizationType

    return GGMLQuantizationType[name]
