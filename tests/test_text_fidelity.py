"""llama.cpp runs the synthetic Gemma 3n GGUF exactly as transformers runs the same weights.

The synthetic writer (``model_io.synth``) invents random weights but must lay
them out as real Gemma 3n GGUFs do.  ``tools/make_text_reference.py`` loaded the
writer's ``tiny`` preset into transformers' ``Gemma3nForCausalLM`` (float32,
eager attention, CPU) and stored its final hidden states, logits and greedy
tokens for a chat prompt longer than the sliding window in
``tests/data/reference/``.  Here llama.cpp must reproduce them: identical greedy
tokens, hidden states and logits within the tolerances recorded (and justified
by measurements) in the reference's JSON sidecar.

The reference is stock transformers except for one documented llama.cpp
difference: the activation-sparsity cutoff uses the unbiased (n - 1) standard
deviation, as llama.cpp's ``gemma3n.cpp`` does (see the tool's docstring).

No torch is needed: only llama-cpp-python, numpy and the writer.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from gguf_fixtures import sha256_file

REFERENCE_DIR = Path(__file__).parent / "data" / "reference"
REFERENCE_STEM = "gemma3n_tiny_text"
REGENERATE = (
    "/work/refvenv/bin/python tools/make_text_reference.py --preset tiny"
    "  (reference venv: tools/requirements-reference.txt)"
)


class LlamaRun(NamedTuple):
    logits: np.ndarray  # [n_rows, n_vocab]; row r = after tokens[0..r]
    greedy: list[int]  # argmax at each decoding step
    hidden: np.ndarray | None  # [n_rows, n_embd] final normed hidden states, if requested


def run_llama_cpp(
    gguf_path: Path,
    prompt_ids: list[int],
    n_steps: int,
    *,
    forced: list[int] | None = None,
    kv_f32: bool = False,
    flash_attn: bool = False,
    hidden: bool = False,
    n_threads: int = 2,
) -> LlamaRun:
    """Evaluate ``prompt_ids`` in one batch, then decode ``n_steps`` tokens greedily (argmax).

    Rows: ``len(prompt_ids) + n_steps - 1``.  With ``forced`` those tokens are fed instead of
    the argmax (``greedy`` still reports the argmax at each step), so rows stay comparable
    with a reference even if a token differed.  ``hidden`` repeats the same evaluation in an
    embeddings context and returns llama.cpp's final normed hidden states (``t_embd``).
    """
    import llama_cpp

    def make(embedding: bool):
        extra: dict = {}
        if kv_f32:
            extra.update(type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
        if embedding:
            extra.update(embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_NONE)
        return llama_cpp.Llama(
            model_path=str(gguf_path),
            n_ctx=len(prompt_ids) + n_steps + 16,
            logits_all=True,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            flash_attn=flash_attn,
            verbose=False,
            **extra,
        )

    llm = make(embedding=False)
    try:
        llm.eval(list(prompt_ids))
        greedy: list[int] = []
        fed: list[int] = []
        for step in range(n_steps):
            greedy.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
            if step < n_steps - 1:
                fed.append(forced[step] if forced is not None else greedy[-1])
                llm.eval([fed[-1]])
        logits = np.array(llm.scores[: llm.n_tokens], dtype=np.float32, copy=True)
    finally:
        llm.close()
    states = None
    if hidden:
        llm = make(embedding=True)
        try:
            n_embd = llm.n_embd()
            rows = []
            for batch in [list(prompt_ids)] + [[t] for t in fed]:
                llm.eval(batch)
                ptr = llama_cpp.llama_get_embeddings(llm._ctx.ctx)
                rows.append(
                    np.ctypeslib.as_array(ptr, shape=(len(batch) * n_embd,))
                    .reshape(len(batch), n_embd)
                    .copy()
                )
            states = np.concatenate(rows).astype(np.float32)
        finally:
            llm.close()
    return LlamaRun(logits, greedy, states)


@cache
def _reference() -> tuple[dict, dict[str, np.ndarray]]:
    sidecar = json.loads((REFERENCE_DIR / f"{REFERENCE_STEM}.json").read_text())
    with np.load(REFERENCE_DIR / f"{REFERENCE_STEM}.npz") as data:
        arrays = {key: data[key] for key in data.files}
    return sidecar, arrays


@pytest.fixture(scope="module")
def reference() -> tuple[dict, dict[str, np.ndarray]]:
    return _reference()


@pytest.fixture(scope="module")
def gguf_path(reference, tiny_model: Path) -> Path:
    """The suite's shared tiny synthetic GGUF (conftest), checked to be the reference's exact bytes."""
    sidecar, _ = reference
    assert sidecar["gguf"]["preset"] == "tiny"
    digest = sha256_file(tiny_model)
    if digest != sidecar["gguf"]["sha256"]:
        pytest.fail(
            f"the synthetic 'tiny' GGUF changed (sha256 {digest}; the reference was made from "
            f"{sidecar['gguf']['sha256']}). If the writer change is intended, re-run the reference tool "
            f"and commit tests/data/reference/: {REGENERATE}"
        )
    return tiny_model


@pytest.fixture(scope="module")
def llama_greedy(reference, gguf_path) -> LlamaRun:
    """Free greedy decoding from the reference prompt (what the app does, minus sampling)."""
    _, arrays = reference
    return run_llama_cpp(gguf_path, arrays["prompt_ids"].tolist(), len(arrays["greedy_ids"]))


@pytest.fixture(scope="module")
def llama_forced(reference, gguf_path) -> LlamaRun:
    """The reference tokens fed position by position, with llama.cpp's final hidden states."""
    _, arrays = reference
    greedy = arrays["greedy_ids"].tolist()
    return run_llama_cpp(
        gguf_path, arrays["prompt_ids"].tolist(), len(greedy), forced=greedy[:-1], hidden=True
    )


def _hint(arrays: dict[str, np.ndarray], hidden: np.ndarray) -> str:
    """Say whether llama.cpp now matches stock transformers (its gaussian top-k std changed)."""
    to_ref = float(np.linalg.norm(hidden - arrays["hidden"]))
    to_stock = float(np.linalg.norm(hidden - arrays["hidden_transformers_stock"]))
    if to_stock < to_ref:
        return (
            " llama.cpp is now closer to stock transformers than to the reference: its gemma3n "
            "gaussian_topk std probably changed; update GgmlNumerics/reference_numerics in "
            f"tools/make_text_reference.py and regenerate: {REGENERATE}"
        )
    return " (a writer layout/metadata change, or a llama.cpp graph change: see the sidecar's 'sensitivity')"


def test_reference_files_are_consistent(reference):
    sidecar, arrays = reference
    run = sidecar["run"]
    n_prompt, n_gen = len(arrays["prompt_ids"]), len(arrays["greedy_ids"])
    assert n_prompt == run["n_prompt"] and n_gen == run["n_generate"]
    # the prompt must be longer than the sliding window, or SWA would go untested
    assert n_prompt > sidecar["hf_config"]["sliding_window"]
    rows = n_prompt + n_gen - 1
    assert arrays["hidden"].shape == (rows, sidecar["hf_config"]["hidden_size"])
    assert arrays["probe_logits"].shape == (rows, len(arrays["probe_ids"]))
    assert arrays["topk_logits"].shape == arrays["topk_ids"].shape == (rows, run["top_k"])
    assert np.array_equal(arrays["topk_ids"][n_prompt - 1 :, 0], arrays["greedy_ids"])
    # greedy comparisons are meaningful only where the reference's top-1 is clear of numeric noise
    margins = arrays["topk_logits"][n_prompt - 1 :, 0] - arrays["topk_logits"][n_prompt - 1 :, 1]
    assert margins.min() > sidecar["tolerance"]["min_top1_margin"], margins


def test_llama_cpp_tokenizes_prompt_like_reference(reference, gguf_path):
    import llama_cpp

    sidecar, arrays = reference
    llm = llama_cpp.Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)
    try:
        ids = llm.tokenize(sidecar["run"]["prompt_text"].encode("utf-8"), add_bos=False, special=True)
    finally:
        llm.close()
    assert ids == arrays["prompt_ids"].tolist()
    # Gemma 3n chat template: <bos><start_of_turn>user\n ... <end_of_turn>\n<start_of_turn>model\n
    assert ids[:4] == [2, 105, 2364, 107] and ids[-5:] == [106, 107, 105, 4368, 107]


def test_greedy_tokens_identical(reference, llama_greedy):
    _, arrays = reference
    assert llama_greedy.greedy == arrays["greedy_ids"].tolist()


def test_final_hidden_states(reference, llama_forced):
    """llama.cpp's final normed hidden state at every position (before the Q8_0 output matmul)."""
    sidecar, arrays = reference
    tol = sidecar["tolerance"]
    ref, got = arrays["hidden"], llama_forced.hidden
    assert got is not None and got.shape == ref.shape
    per_position = np.abs(got - ref).max(axis=1)
    rel_l2 = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
    hint = _hint(arrays, got)
    assert per_position.max() <= tol["hidden_max_abs"], (
        f"per-position max errors {np.round(per_position, 4).tolist()}{hint}"
    )
    assert rel_l2 <= tol["hidden_rel_l2"], f"relative L2 error {rel_l2}{hint}"


def test_forced_run_predicts_reference_tokens(reference, llama_forced):
    _, arrays = reference
    assert llama_forced.greedy == arrays["greedy_ids"].tolist()


@pytest.mark.parametrize("row", ["last_prompt", "final"])
def test_full_vocabulary_logits(reference, llama_forced, row):
    sidecar, arrays = reference
    tol = sidecar["tolerance"]
    index = len(arrays["prompt_ids"]) - 1 if row == "last_prompt" else -1
    ref = arrays[f"{row}_logits"]
    got = llama_forced.logits[index]
    assert got.shape == ref.shape == (sidecar["hf_config"]["vocab_size"],)
    max_abs = float(np.abs(got - ref).max())
    rel_l2 = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
    assert max_abs <= tol["logits_max_abs"], f"max |llama - reference| = {max_abs}"
    assert rel_l2 <= tol["logits_rel_l2"], f"relative L2 error = {rel_l2}"
    assert int(np.argmax(got)) == int(np.argmax(ref))


def test_logits_at_every_position(reference, llama_forced):
    """Probe ids and the reference's top-64 at every prompt and generated position."""
    sidecar, arrays = reference
    tol = sidecar["tolerance"]["logits_max_abs"]
    logits = llama_forced.logits
    assert logits.shape[0] == arrays["probe_logits"].shape[0] > sidecar["hf_config"]["sliding_window"]
    probe_err = np.abs(logits[:, arrays["probe_ids"]] - arrays["probe_logits"]).max(axis=1)
    top = np.take_along_axis(logits, arrays["topk_ids"].astype(np.int64), axis=1)
    top_err = np.abs(top - arrays["topk_logits"]).max(axis=1)
    worst = np.maximum(probe_err, top_err)
    assert worst.max() <= tol, f"per-position max errors {np.round(worst, 4).tolist()}"
