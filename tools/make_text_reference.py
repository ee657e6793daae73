#!/usr/bin/env python3
"""Make the Hugging Face transformers reference for a synthetic Gemma 3n text GGUF.

The synthetic writer (``model_io.synth``) emits random-weight Gemma 3n GGUFs so
that tests can run real llama.cpp.  This tool proves the writer is faithful to
the architecture: it loads the *same* weights into transformers'
``Gemma3nForCausalLM`` (an implementation independent of llama.cpp), runs a
chat prompt longer than the sliding window, and stores the final hidden
states, logits and greedy tokens that ``tests/test_text_fidelity.py`` compares
llama.cpp against in CI (CI never installs torch).

Run it in the reference venv (tools/requirements-reference.txt), from the
repository root::

    /work/refvenv/bin/python tools/make_text_reference.py --preset tiny

It calls the project venv's Python (``--project-python``, default
``.venv/bin/python``) to build the GGUF with ``model_io.synth.cached_text_model``,
to tokenize prompts with llama.cpp and (unless ``--no-measure``) to run
llama.cpp on the reference tokens, so the measured differences are recorded in
the JSON sidecar next to the tolerances they justify.

GGUF -> transformers mapping (the inverse of llama.cpp's converter,
``conversion/gemma.py`` ``Gemma3NModel``/``Gemma3Model``, and gguf-py's
``tensor_mapping.py``):

* names: gguf-py's ``TensorNameMap`` for ``MODEL_ARCH.GEMMA3N`` maps every HF
  state-dict key to its GGUF name; ``*.altup.correct_output_scale`` is an
  ``nn.Parameter`` that the converter names ``...correct_output_scale.weight``.
* shapes: gguf-py returns arrays in numpy (row-major) order, i.e. ggml's ``ne``
  reversed, which is already torch's ``[out, in]`` for ``nn.Linear``.
* ``altup_proj`` / ``altup_unembd_proj``: ``[3, n_embd, n_embd]`` stacks of
  ``altup_projections.{0,1,2}`` / ``altup_unembed_projections.{0,1,2}``.
* ``per_layer_token_embd``: 262400 rows in the GGUF (zero padding for the 256
  multimodal ids), 262144 (``vocab_size_per_layer_input``) in transformers: the
  padded rows are dropped after asserting they are zero.
* norms: Gemma 3n's RMSNorm has no ``1 + w`` shift (``norm_shift`` = 0), so
  norm weights are copied unchanged.
* ``output.weight`` absent -> tied embeddings (``lm_head`` = ``embed_tokens``).

One real llama.cpp-vs-transformers difference is built into the stored
reference (everything else is stock transformers): llama.cpp's activation
sparsity (``gemma3n.cpp`` ``gaussian_topk``) uses the Bessel-corrected standard
deviation (divides by n - 1) where transformers' ``Gemma3nTextMLP._gaussian_topk``
uses ``torch.std(..., unbiased=False)`` (divides by n).  At n_ff = 128 that moves
the cutoff by 0.39 % of a standard deviation and the logits by up to ~0.6, far
above float noise; at the real E2B/E4B widths (8192/16384) it is ~0.006 %/0.003 %.
The stock-transformers numbers are kept in the sidecar (``measured``) and
its final hidden states in the .npz (``hidden_transformers_stock``).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gguf
import numpy as np
import torch
import transformers
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize
from transformers import Gemma3nForCausalLM, Gemma3nTextConfig

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT_DIR = REPO / "tests" / "data" / "reference"
ARCH = "gemma3n"

# Values llama.cpp hard-codes for gemma3n (src/llama-hparams.h, src/models/gemma3n.cpp, models.h).
LLAMA_CPP_N_ALTUP = 4
LLAMA_CPP_LAUREL_RANK = 64
LLAMA_CPP_N_EMBD_ALTUP = 256
LLAMA_CPP_N_LAYER_KV_FROM_START = 20
LLAMA_CPP_N_LAYER_SPARSITY = 10
LLAMA_CPP_SPARSITY_STD_MUL = 1.6448533535003662
VOCAB_SIZE = 262_400
VOCAB_SIZE_PER_LAYER_INPUT = 262_144

# The prompt: Gemma 3n chat template (gemma3n-facts.md section 3) around one user message made of
# three of these sentences.  Candidates are tried in itertools.permutations order and the first whose
# token count is in PROMPT_TOKENS and whose greedy continuation keeps every top-1 margin above
# TOLERANCE["min_top1_margin"] is used, so greedy agreement is not at the mercy of float noise.
USER_SENTENCES = (
    "Gemma Desk keeps a private notebook of every conversation on this laptop.",
    "Please summarise, in three short bullet points, why a small language model that runs offline helps.",
    "I often work on a slow train with no signal, so the assistant has to run without any network.",
    "My manager wants quick drafts of emails, meeting notes and polite reminders before nine o'clock.",
    "Explain how you would keep my documents, photos and voice recordings safe from other people.",
    "Could you also suggest a few keyboard shortcuts that would make the assistant faster to use?",
    "Yesterday the battery ran out during a long meeting, so energy use matters to me as well.",
    "Answer in plain English and avoid jargon, because my parents will read this as well.",
    "List the settings I should check first after installing the application on a new computer.",
    "Finally, tell me what the assistant cannot do so that I do not expect too much from it.",
)
PROMPT_TOKENS = (60, 100)
N_GENERATE = 16
N_PROBE = 1024  # vocabulary ids whose logits are stored at every position
TOP_K = 64  # top logits (values + ids) stored at every position
PROBE_SEED = 20251122

# Tolerances the CI test applies (tests/test_text_fidelity.py reads them from the sidecar).
TOLERANCE = {
    "hidden_max_abs": 0.05,  # final normed hidden state (llama.cpp embeddings), any element, any position
    "hidden_rel_l2": 5e-3,  # ||llama - ref|| / ||ref|| over all positions' hidden states
    "logits_max_abs": 0.2,  # any checked logit (full vocab at two positions, probe + top-64 everywhere)
    "logits_rel_l2": 0.015,  # ||llama - ref|| / ||ref|| of the full logits at the last prompt and final rows
    "min_top1_margin": 0.1,  # reference top-1 minus top-2 logit at every greedy step
}
TOLERANCE_RATIONALE = {
    "reference": "stock transformers except llama.cpp's unbiased std in the gaussian top-k (module "
    "docstring); without that, llama.cpp differs by ~0.5 in hidden states and ~1.8 in logits "
    "(measured.*.vs_transformers_stock), which is a real llama.cpp-vs-transformers difference, not "
    "a writer bug.",
    "noise_sources": [
        "Q8_0 output projection: ggml quantizes the final hidden state to Q8_0 (blocks of 32, 8-bit, "
        "fp16 scale) before the dot product with the Q8_0 token_embd. llama.cpp's logits equal "
        "softcap(q8_0(h_llama) @ W) to ~5e-6 but differ from softcap(h_llama @ W) by ~0.07 "
        "(measured.*.logits_minus_softcap_*): this dominates the logit error.",
        "f16 KV cache (llama-cpp-python default) and f16 rounding of Q and of the attention weights "
        "in ggml's K*Q and V*softmax matmuls; kv_f32 cuts the hidden-state error ~4x.",
        "GELU through ggml-cpu's fp16 lookup table (GGML_GELU_FP16): input and output rounded to fp16.",
        "Emulating GELU-f16, f16 Q/K/V and the Q8_0 activations in transformers makes llama.cpp's "
        "position-0 hidden state agree to ~2.5e-6 (a single token has no attention mixing, so the "
        "whole per-token path - embeddings, PLE, AltUp, LAuReL, sparse FFN, norms - is exact).",
    ],
    "choice": "Tolerances are ~2-3x the largest error measured for llama.cpp's default, kv_f32 and "
    "flash-attention configurations (measured.*.vs_reference). The weakest writer bug tried "
    "(one 4x4 AltUp correction matrix transposed, sensitivity.altup_correct_coef_transposed_layer0) "
    "still exceeds them ~2-3x on hidden states and logits; layout/metadata bugs (sliding window off "
    "by one, SWA pattern, rope bases, PLE layout, AltUp stacking order, norm shift, sparsity) exceed "
    "them 10-100x. min_top1_margin keeps every greedy step several times the logit-difference noise "
    "clear of a tie.",
}

PROJECT_HELPER = r"""
import json, sys
sys.path.insert(0, {repo!r})
from pathlib import Path
mode = sys.argv[1]
if mode == "build":
    from model_io.synth import cached_text_model
    print(json.dumps({{"path": str(cached_text_model(sys.argv[2]))}}))
elif mode == "tokenize":
    import llama_cpp
    llm = llama_cpp.Llama(model_path=sys.argv[2], vocab_only=True, verbose=False)
    texts = json.loads(sys.stdin.read())
    ids = [llm.tokenize(t.encode("utf-8"), add_bos=False, special=True) for t in texts]
    print(json.dumps({{"ids": ids, "llama_cpp": llama_cpp.__version__}}))
elif mode == "measure":
    sys.path.insert(0, str(Path({repo!r}) / "tests"))
    import numpy as np
    from test_text_fidelity import run_llama_cpp
    req = json.loads(sys.stdin.read())
    ids, n_prompt = req["ids"], req["n_prompt"]
    out = run_llama_cpp(
        Path(sys.argv[2]), ids[:n_prompt], len(ids) - n_prompt + 1, forced=ids[n_prompt:], **req["flags"]
    )
    np.savez(req["out"], logits=out.logits, hidden=out.hidden if out.hidden is not None else np.zeros(0))
    print(json.dumps({{"greedy": out.greedy}}))
"""


# --------------------------------------------------------------------------- GGUF reading


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _field_value(reader: GGUFReader, key: str, *, required: bool = True):
    field = reader.get_field(key)
    if field is None:
        if required:
            raise SystemExit(f"GGUF metadata key {key!r} is missing (llama.cpp's converter writes it)")
        return None
    value = field.contents()
    return value


def read_metadata(reader: GGUFReader) -> dict:
    arch = _field_value(reader, "general.architecture")
    if arch != ARCH:
        raise SystemExit(f"expected general.architecture={ARCH!r}, got {arch!r}")

    def key(template: str) -> str:
        return template.format(arch=ARCH)

    K = gguf.Keys
    meta = {
        "context_length": _field_value(reader, key(K.LLM.CONTEXT_LENGTH)),
        "embedding_length": _field_value(reader, key(K.LLM.EMBEDDING_LENGTH)),
        "block_count": _field_value(reader, key(K.LLM.BLOCK_COUNT)),
        "feed_forward_length": _field_value(reader, key(K.LLM.FEED_FORWARD_LENGTH)),
        "head_count": _field_value(reader, key(K.Attention.HEAD_COUNT)),
        "head_count_kv": _field_value(reader, key(K.Attention.HEAD_COUNT_KV)),
        "key_length": _field_value(reader, key(K.Attention.KEY_LENGTH)),
        "value_length": _field_value(reader, key(K.Attention.VALUE_LENGTH)),
        "rms_eps": _field_value(reader, key(K.Attention.LAYERNORM_RMS_EPS)),
        "sliding_window": _field_value(reader, key(K.Attention.SLIDING_WINDOW)),
        "sliding_window_pattern": _field_value(reader, key(K.Attention.SLIDING_WINDOW_PATTERN)),
        "rope_freq_base": _field_value(reader, key(K.Rope.FREQ_BASE)),
        "rope_freq_base_swa": _field_value(reader, key(K.Rope.FREQ_BASE_SWA)),
        "final_logit_softcapping": _field_value(reader, key(K.LLM.FINAL_LOGIT_SOFTCAPPING)),
        "altup_active_idx": _field_value(reader, key(K.LLM.ALTUP_ACTIVE_IDX), required=False),
        "altup_num_inputs": _field_value(reader, key(K.LLM.ALTUP_NUM_INPUTS), required=False),
        "embedding_length_per_layer_input": _field_value(
            reader, key(K.LLM.EMBD_LENGTH_PER_LAYER_INP), required=False
        ),
        "shared_kv_layers": _field_value(reader, key(K.Attention.SHARED_KV_LAYERS), required=False),
        "activation_sparsity_scale": _field_value(
            reader, key(K.LLM.ACTIVATION_SPARSITY_SCALE), required=False
        ),
        "attn_logit_softcapping": _field_value(reader, key(K.LLM.ATTN_LOGIT_SOFTCAPPING), required=False),
        "bos_token_id": _field_value(reader, K.Tokenizer.BOS_ID, required=False),
        "eos_token_id": _field_value(reader, K.Tokenizer.EOS_ID, required=False),
        "pad_token_id": _field_value(reader, K.Tokenizer.PAD_ID, required=False),
    }
    return meta


def build_config(meta: dict, *, tied_embeddings: bool = True) -> Gemma3nTextConfig:
    """Gemma3nTextConfig as llama.cpp interprets the GGUF (including its hard-coded constants)."""
    n_layer = int(meta["block_count"])
    n_embd = int(meta["embedding_length"])
    n_head = int(meta["head_count"])
    n_head_kv = int(meta["head_count_kv"])
    head_dim = int(meta["key_length"])
    if int(meta["value_length"]) != head_dim:
        raise SystemExit("key_length != value_length: not a Gemma 3n layout")
    n_ff = meta["feed_forward_length"]
    if isinstance(n_ff, list):
        if len(set(n_ff)) != 1:
            # llama.cpp's gemma3n graph uses one n_ff for all layers (gemma3n-facts.md section 8)
            raise SystemExit(
                f"per-layer feed_forward_length {n_ff} is not supported by llama.cpp's gemma3n graph"
            )
        n_ff = n_ff[0]
    n_ff = int(n_ff)

    pattern = meta["sliding_window_pattern"]
    if not isinstance(pattern, list) or len(pattern) != n_layer:
        raise SystemExit(
            f"{ARCH}.attention.sliding_window_pattern must be a bool array with one entry per layer, "
            f"got {pattern!r}"
        )
    layer_types = ["sliding_attention" if bool(p) else "full_attention" for p in pattern]

    # Optional keys must agree with what llama.cpp hard-codes (it ignores them).
    expect = {
        "altup_num_inputs": LLAMA_CPP_N_ALTUP,
        "altup_active_idx": 0,
        "embedding_length_per_layer_input": LLAMA_CPP_N_EMBD_ALTUP,
        "shared_kv_layers": max(0, n_layer - LLAMA_CPP_N_LAYER_KV_FROM_START),
    }
    for name, want in expect.items():
        if meta[name] is not None and int(meta[name]) != want:
            raise SystemExit(f"GGUF {name}={meta[name]} but llama.cpp hard-codes {want}")
    sparsity = [0.95 if i < LLAMA_CPP_N_LAYER_SPARSITY else 0.0 for i in range(n_layer)]
    if meta["activation_sparsity_scale"] is not None:
        scales = [float(s) for s in meta["activation_sparsity_scale"]]
        want = [LLAMA_CPP_SPARSITY_STD_MUL if s > 0 else 0.0 for s in sparsity]
        # the converter writes icdf(0.0) = -inf for dense layers
        ok = len(scales) == n_layer and all(
            (w == 0.0 and (math.isinf(s) or s == 0.0)) or abs(s - w) < 1e-6
            for s, w in zip(scales, want, strict=True)
        )
        if not ok:
            raise SystemExit(
                f"activation_sparsity_scale {scales} disagrees with llama.cpp's hard-coded pattern"
            )
    if meta["attn_logit_softcapping"] not in (None, 0.0):
        raise SystemExit("Gemma 3n has no attention logit softcapping")

    config = Gemma3nTextConfig(
        vocab_size=VOCAB_SIZE,
        vocab_size_per_layer_input=VOCAB_SIZE_PER_LAYER_INPUT,
        hidden_size=n_embd,
        hidden_size_per_layer_input=LLAMA_CPP_N_EMBD_ALTUP,
        intermediate_size=n_ff,
        num_hidden_layers=n_layer,
        num_attention_heads=n_head,
        num_key_value_heads=n_head_kv,
        head_dim=head_dim,
        hidden_activation="gelu_pytorch_tanh",
        max_position_embeddings=int(meta["context_length"]),
        rms_norm_eps=float(meta["rms_eps"]),
        pad_token_id=int(meta["pad_token_id"]) if meta["pad_token_id"] is not None else 0,
        eos_token_id=int(meta["eos_token_id"]) if meta["eos_token_id"] is not None else 1,
        bos_token_id=int(meta["bos_token_id"]) if meta["bos_token_id"] is not None else 2,
        tie_word_embeddings=tied_embeddings,
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": float(meta["rope_freq_base"])},
            "sliding_attention": {"rope_type": "default", "rope_theta": float(meta["rope_freq_base_swa"])},
        },
        sliding_window=int(meta["sliding_window"]),
        layer_types=layer_types,
        final_logit_softcapping=float(meta["final_logit_softcapping"]),
        altup_active_idx=0,
        altup_num_inputs=LLAMA_CPP_N_ALTUP,
        altup_correct_scale=True,
        laurel_rank=LLAMA_CPP_LAUREL_RANK,
        num_kv_shared_layers=max(0, n_layer - LLAMA_CPP_N_LAYER_KV_FROM_START),
        activation_sparsity_pattern=sparsity,
    )
    config._attn_implementation = "eager"
    return config


def _check_kv_sharing(config: Gemma3nTextConfig) -> None:
    """transformers' KV-sharing sources must be llama.cpp's (layer 18 for sliding, 19 for full)."""
    modes = config.kv_sharing_modes
    if config.num_kv_shared_layers == 0:
        return
    for il, mode in enumerate(modes):
        if mode == "store":
            is_swa = config.layer_types[il] == "sliding_attention"
            want = LLAMA_CPP_N_LAYER_KV_FROM_START - (2 if is_swa else 1)
            if il != want:
                raise SystemExit(f"transformers shares KV of layer {il}, llama.cpp of layer {want}")


def load_gguf_state_dict(
    reader: GGUFReader, config: Gemma3nTextConfig, hf_keys: list[str]
) -> tuple[dict, dict]:
    """Dequantize every GGUF tensor and return (HF state dict, per-tensor notes)."""
    tensors = {t.name: t for t in reader.tensors}
    used: set[str] = set()
    notes: dict[str, dict] = {}

    def get(name: str) -> np.ndarray:
        if name not in tensors:
            raise SystemExit(f"GGUF has no tensor {name!r}")
        t = tensors[name]
        used.add(name)
        qtype = GGMLQuantizationType(t.tensor_type)
        data = dequantize(t.data, qtype).astype(np.float32, copy=False)
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))  # ggml ne -> numpy order
        data = data.reshape(shape)
        notes[name] = {"type": qtype.name, "ne": [int(x) for x in t.shape.tolist()]}
        return data

    n_embd = config.hidden_size
    n_layer = config.num_hidden_layers
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3N, n_layer)
    state: dict[str, torch.Tensor] = {}
    cache: dict[str, np.ndarray] = {}

    def cached(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = get(name)
        return cache[name]

    tied = "output.weight" not in tensors
    for key in hf_keys:
        if key == "lm_head.weight":
            continue  # filled below (tied or output.weight)
        if key.startswith("model.altup_projections.") or key.startswith("model.altup_unembed_projections."):
            stacked = (
                "altup_proj.weight"
                if key.startswith("model.altup_projections.")
                else "altup_unembd_proj.weight"
            )
            arr = cached(stacked)
            if arr.shape != (LLAMA_CPP_N_ALTUP - 1, n_embd, n_embd):
                raise SystemExit(
                    f"{stacked}: numpy shape {arr.shape}, want {(LLAMA_CPP_N_ALTUP - 1, n_embd, n_embd)}"
                )
            idx = int(key.split(".")[2])
            state[key] = torch.from_numpy(np.array(arr[idx], dtype=np.float32, order="C", copy=True))
            continue
        lookup = key + ".weight" if key.endswith("correct_output_scale") else key
        gname = tmap.get_name(lookup, try_suffixes=(".weight",))
        if gname is None:
            raise SystemExit(f"no GGUF name for HF tensor {key!r}")
        arr = cached(gname)
        if key == "model.embed_tokens_per_layer.weight":
            if arr.shape[0] != VOCAB_SIZE:
                raise SystemExit(f"per_layer_token_embd has {arr.shape[0]} rows, want {VOCAB_SIZE}")
            pad = arr[VOCAB_SIZE_PER_LAYER_INPUT:]
            if np.any(pad != 0):
                raise SystemExit(
                    "per_layer_token_embd rows >= 262144 must be zero (converter pads with zeros)"
                )
            notes[gname]["padded_rows_zero"] = True
            arr = arr[:VOCAB_SIZE_PER_LAYER_INPUT]
        state[key] = torch.from_numpy(np.array(arr, dtype=np.float32, order="C", copy=True))

    if tied:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    else:
        state["lm_head.weight"] = torch.from_numpy(np.ascontiguousarray(cached("output.weight")))
    # KV-sharing layers keep their (unused) K/V weights in the GGUF; transformers has none
    first_shared = config.num_hidden_layers - config.num_kv_shared_layers
    shared_kv = {
        f"blk.{i}.{part}.weight"
        for i in range(first_shared, config.num_hidden_layers)
        for part in ("attn_k", "attn_v", "attn_k_norm")
    }
    unused = sorted(set(tensors) - used - shared_kv)
    if unused:
        raise SystemExit(f"GGUF tensors not consumed by the HF model: {unused}")
    return state, {"tied_embeddings": tied, "tensors": notes}


def build_model(gguf_path: Path) -> tuple[Gemma3nForCausalLM, Gemma3nTextConfig, dict, dict]:
    t0 = time.time()
    reader = GGUFReader(gguf_path)
    meta = read_metadata(reader)
    # no output.weight: the converter ties the LM head to token_embd (llama.cpp TENSOR_DUPLICATED)
    config = build_config(meta, tied_embeddings=all(t.name != "output.weight" for t in reader.tensors))
    _check_kv_sharing(config)
    print(f"read GGUF metadata in {time.time() - t0:.1f}s", file=sys.stderr)
    torch.manual_seed(0)
    model = Gemma3nForCausalLM(config).to(torch.float32).eval()
    model.config._attn_implementation = "eager"
    hf_keys = list(model.state_dict().keys())
    state, notes = load_gguf_state_dict(reader, config, hf_keys)
    result = model.load_state_dict(state, strict=True)
    if result.missing_keys or result.unexpected_keys:
        raise SystemExit(f"strict load failed: {result}")
    tied_ok = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    if notes["tied_embeddings"] and not tied_ok:
        raise SystemExit("lm_head is not tied to embed_tokens after loading")
    # torch.equal over every tensor: the model holds exactly the dequantized GGUF weights
    for key, value in model.state_dict().items():
        if not torch.equal(value, state[key]):
            raise SystemExit(f"{key}: loaded value differs from the GGUF")
    print(f"built HF model in {time.time() - t0:.1f}s", file=sys.stderr)
    return model, config, meta, notes


# --------------------------------------------------------------------------- ggml numerics


def _f16(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float16).to(torch.float32)


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(0.7978845608028654 * x * (1.0 + 0.044715 * x * x)))


def ggml_gelu(x: torch.Tensor) -> torch.Tensor:
    """ggml-cpu's GELU: a table indexed by the fp16 input holding fp16 outputs (GGML_GELU_FP16)."""
    y = _f16(_gelu_tanh(_f16(x)))
    y = torch.where(x <= -10.0, torch.zeros_like(x), y)
    return torch.where(x >= 10.0, x, y)


class GgmlGelu(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ggml_gelu(x)


def q8_0_roundtrip(x: torch.Tensor) -> torch.Tensor:
    """ggml's quantize_row_q8_0 on activations (vec_dot_type of a Q8_0 weight), dequantized."""
    shape = x.shape
    blocks = x.reshape(-1, 32)
    d = blocks.abs().amax(-1, keepdim=True) / 127.0
    inv = torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
    return (torch.round(blocks * inv) * _f16(d)).reshape(shape)


class GgmlNumerics:
    """Monkeypatches that make transformers compute the way llama.cpp's CPU backend does.

    ``unbiased_std`` is the one semantic difference (used for the stored reference).  The
    others model ggml's float shortcuts and are used only to attribute the measured residual.
    """

    def __init__(
        self, model: Gemma3nForCausalLM, *, unbiased_std=True, gelu_f16=True, kv_f16=True, q8_lm_head=True
    ):
        self.model = model
        self.flags = dict(unbiased_std=unbiased_std, gelu_f16=gelu_f16, kv_f16=kv_f16, q8_lm_head=q8_lm_head)
        self._undo: list = []

    def __enter__(self):
        from transformers.models.gemma3n import modeling_gemma3n as mg

        model = self.model
        if self.flags["unbiased_std"]:
            original = mg.Gemma3nTextMLP._gaussian_topk

            def topk_unbiased(mlp, inputs):  # llama.cpp gemma3n.cpp gaussian_topk: sum / (n - 1)
                mean = inputs.mean(-1, keepdim=True)
                std = inputs.std(-1, keepdim=True, unbiased=True)
                return torch.relu(inputs - (mean + std * LLAMA_CPP_SPARSITY_STD_MUL))

            mg.Gemma3nTextMLP._gaussian_topk = topk_unbiased
            self._undo.append(lambda: setattr(mg.Gemma3nTextMLP, "_gaussian_topk", original))
        if self.flags["gelu_f16"]:
            for layer in model.model.layers:
                for owner in (layer, layer.mlp):
                    saved = owner.act_fn
                    owner.act_fn = GgmlGelu()
                    self._undo.append(lambda o=owner, s=saved: setattr(o, "act_fn", s))
        if self.flags["kv_f16"]:
            original_rope = mg.apply_rotary_pos_emb

            def rope_then_f16(x, cos, sin, unsqueeze_dim=1):  # Q and K enter the KQ matmul as fp16
                return _f16(original_rope(x, cos, sin, unsqueeze_dim))

            mg.apply_rotary_pos_emb = rope_then_f16
            self._undo.append(lambda: setattr(mg, "apply_rotary_pos_emb", original_rope))
            for layer in model.model.layers:
                if not hasattr(layer.self_attn, "v_norm"):
                    continue  # KV-sharing layer: no V of its own
                v_norm = layer.self_attn.v_norm
                v_norm.forward = lambda x, f=v_norm.forward: _f16(f(x))  # V stored as fp16
                self._undo.append(lambda m=v_norm: m.__dict__.pop("forward", None))
        if self.flags["q8_lm_head"]:
            head = model.lm_head
            weight = head.weight
            head.forward = lambda x: torch.nn.functional.linear(q8_0_roundtrip(x), weight)
            self._undo.append(lambda: head.__dict__.pop("forward", None))
        return self

    def __exit__(self, *exc):
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        return False


def reference_numerics(model: Gemma3nForCausalLM) -> GgmlNumerics:
    """Stock transformers plus llama.cpp's unbiased std in the gaussian top-k (see module docstring)."""
    return GgmlNumerics(model, unbiased_std=True, gelu_f16=False, kv_f16=False, q8_lm_head=False)


# --------------------------------------------------------------------------- reference runs


@torch.no_grad()
def forward(model: Gemma3nForCausalLM, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Final normed hidden states and soft-capped logits for every position (no KV cache)."""
    hidden = model.model(input_ids=torch.tensor([ids]), use_cache=False).last_hidden_state
    logits = model.lm_head(hidden)
    cap = model.config.final_logit_softcapping
    logits = torch.tanh(logits / cap) * cap
    return hidden[0].float().numpy(), logits[0].float().numpy()


def top1_margin(logits: np.ndarray) -> np.ndarray:
    top2 = np.partition(logits, -2, axis=-1)[..., -2:]
    return np.abs(top2[..., 1] - top2[..., 0])


def greedy_reference(
    model: Gemma3nForCausalLM, prompt_ids: list[int], n_gen: int, min_margin: float | None = None
) -> tuple[np.ndarray, np.ndarray, list[int]] | None:
    """Hidden states and logits of prompt + greedy continuation, recomputed from scratch each step.

    Rows: row r belongs to tokens[0..r] of prompt + greedy[:-1]; row n_prompt-1+s predicts greedy[s].
    Returns None as soon as a step's top-1 margin is below ``min_margin``.
    """
    ids = list(prompt_ids)
    hidden, logits = forward(model, ids)
    h_rows, l_rows = [hidden], [logits]
    generated: list[int] = []
    for step in range(n_gen):
        last = l_rows[-1][-1]
        if min_margin is not None and top1_margin(last) < min_margin:
            return None
        generated.append(int(np.argmax(last)))
        if step == n_gen - 1:
            break
        ids.append(generated[-1])
        hidden, logits = forward(model, ids)
        h_rows.append(hidden[-1:])
        l_rows.append(logits[-1:])
    return np.concatenate(h_rows), np.concatenate(l_rows), generated


def select_prompt(
    model: Gemma3nForCausalLM, python: str, gguf_path: Path, min_margin: float, window: int
) -> dict:
    candidates = [" ".join(p) for p in itertools.permutations(USER_SENTENCES, 3)]
    texts = [f"<bos><start_of_turn>user\n{c}<end_of_turn>\n<start_of_turn>model\n" for c in candidates]
    tok = project_call(python, "tokenize", str(gguf_path), stdin=json.dumps(texts))
    tried = 0
    for index, (text, ids) in enumerate(zip(texts, tok["ids"], strict=True)):
        if not PROMPT_TOKENS[0] <= len(ids) <= PROMPT_TOKENS[1] or len(ids) <= window:
            continue
        # <bos><start_of_turn>user\n ... <end_of_turn>\n<start_of_turn>model\n (gemma3n-facts.md sections 2-3)
        if ids[:4] != [2, 105, 2364, 107] or ids[-5:] != [106, 107, 105, 4368, 107]:
            raise SystemExit(f"unexpected chat-template token ids {ids[:4]} ... {ids[-5:]}")
        tried += 1
        with reference_numerics(model):
            result = greedy_reference(model, ids, N_GENERATE, min_margin)
        if result is not None:
            hidden, logits, gen = result
            print(f"prompt candidate {index} ({len(ids)} tokens) after {tried} tries", file=sys.stderr)
            return {
                "index": index,
                "tried": tried,
                "text": text,
                "ids": ids,
                "hidden": hidden,
                "logits": logits,
                "greedy": gen,
                "llama_cpp": tok["llama_cpp"],
            }
    raise SystemExit(f"no candidate prompt keeps every greedy margin above {min_margin} ({tried} tried)")


def compare(
    ref_logits: np.ndarray, logits: np.ndarray, ref_hidden: np.ndarray, hidden: np.ndarray, n_prompt: int
) -> dict:
    diff = np.abs(ref_logits - logits)
    last = n_prompt - 1
    out = {
        "logits_max_abs_last": float(diff[last].max()),
        "logits_rel_l2_last": float(
            np.linalg.norm(ref_logits[last] - logits[last]) / np.linalg.norm(ref_logits[last])
        ),
        "logits_max_abs_all": float(diff.max()),
        "logits_mean_abs_all": float(diff.mean()),
        "argmax_agree": f"{int(np.sum(np.argmax(ref_logits, -1) == np.argmax(logits, -1)))}/{len(logits)}",
    }
    if hidden is not None and hidden.size:
        hd = np.abs(ref_hidden - hidden)
        out["hidden_max_abs"] = float(hd.max())
        out["hidden_rel_l2"] = float(np.linalg.norm(ref_hidden - hidden) / np.linalg.norm(ref_hidden))
        out["hidden_max_abs_position0"] = float(hd[0].max())
    return out


# --------------------------------------------------------------------------- sensitivity


@torch.no_grad()
def sensitivity(model: Gemma3nForCausalLM, ids: list[int], ref_hidden, ref_logits, n_prompt: int) -> dict:
    """How far plausible writer bugs move hidden states and logits; tolerances must sit well below."""
    results: dict[str, dict] = {}
    cfg = model.config
    layers = model.model.layers
    sd = model.state_dict()

    def run(label: str) -> None:
        with reference_numerics(model):
            hidden, logits = forward(model, ids)
        results[label] = compare(ref_logits, logits, ref_hidden, hidden, n_prompt)

    def with_tensor(label: str, key: str, fn) -> None:
        original = sd[key].clone()
        sd[key].copy_(fn(original))
        run(label)
        sd[key].copy_(original)

    # sliding_window metadata off by one
    cfg.sliding_window += 1
    for layer in layers:
        if layer.self_attn.sliding_window is not None:
            layer.self_attn.sliding_window += 1
    run("sliding_window_plus_1")
    cfg.sliding_window -= 1
    for layer in layers:
        if layer.self_attn.sliding_window is not None:
            layer.self_attn.sliding_window -= 1

    # sliding_window_pattern wrong: every layer global
    saved_types = list(cfg.layer_types)
    cfg.layer_types = ["full_attention"] * len(saved_types)
    run("pattern_all_full_attention")
    cfg.layer_types = saved_types

    # rope.freq_base and rope.freq_base_swa swapped
    rot = model.model.rotary_emb
    full, slide = rot.full_attention_inv_freq.clone(), rot.sliding_attention_inv_freq.clone()
    rot.full_attention_inv_freq.copy_(slide)
    rot.sliding_attention_inv_freq.copy_(full)
    run("rope_bases_swapped")
    rot.full_attention_inv_freq.copy_(full)
    rot.sliding_attention_inv_freq.copy_(slide)

    with_tensor(
        "norm_shift_plus_1_on_layer0_q_norm", "model.layers.0.self_attn.q_norm.weight", lambda w: w + 1.0
    )
    with_tensor(
        "altup_proj_stack_0_1_swapped",
        "model.altup_projections.0.weight",
        lambda w: sd["model.altup_projections.1.weight"].clone(),
    )
    n_layer, n_pl = cfg.num_hidden_layers, cfg.hidden_size_per_layer_input
    with_tensor(
        "per_layer_embd_rows_as_256_x_n_layer",
        "model.embed_tokens_per_layer.weight",
        lambda w: w.reshape(-1, n_layer, n_pl).transpose(1, 2).reshape(w.shape),
    )
    with_tensor(
        "altup_correct_coef_transposed_layer0",
        "model.layers.0.altup.correction_coefs.weight",
        lambda w: w.t(),
    )
    with_tensor(
        "laurel_post_norm_zero_layer3", "model.layers.3.laurel.post_laurel_norm.weight", lambda w: w * 0
    )

    mlp = layers[0].mlp
    sparsity = mlp.activation_sparsity
    mlp.activation_sparsity = 0.0
    run("layer0_sparsity_off")
    mlp.activation_sparsity = sparsity

    # stock transformers (biased std in the gaussian top-k): the real llama.cpp-vs-transformers difference
    hidden, logits = forward(model, ids)
    results["transformers_stock_biased_topk_std"] = compare(ref_logits, logits, ref_hidden, hidden, n_prompt)
    return results


# --------------------------------------------------------------------------- project-venv helpers


def project_call(python: str, *args: str, stdin: str = "") -> dict:
    code = PROJECT_HELPER.format(repo=str(REPO))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [python, "-c", code, *args], input=stdin, capture_output=True, text=True, env=env, cwd=REPO
    )
    if proc.returncode != 0:
        raise SystemExit(f"project venv call {args[0]!r} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(
    python: str, gguf_path: Path, model, ids: list[int], n_prompt: int, ref: dict, stock: dict, gen: list[int]
) -> dict:
    """Run llama.cpp (project venv) on the reference tokens and compare with the references."""
    with GgmlNumerics(model):
        em_hidden, em_logits = forward(model, ids)
    out: dict = {
        "reference_vs_transformers_stock": compare(
            stock["logits"], ref["logits"], stock["hidden"], ref["hidden"], n_prompt
        ),
        "reference_vs_full_ggml_emulation": compare(
            ref["logits"], em_logits, ref["hidden"], em_hidden, n_prompt
        ),
    }
    configs = {
        # what the CI test uses (llama-cpp-python defaults): f16 KV cache, no flash attention
        "llama_cpp_default": {},
        "llama_cpp_kv_f32": {"kv_f32": True},
        "llama_cpp_flash_attn": {"flash_attn": True},
    }
    for label, flags in configs.items():
        with tempfile.TemporaryDirectory() as tmp:
            npz = Path(tmp) / "run.npz"
            req = {"ids": ids, "n_prompt": n_prompt, "flags": {**flags, "hidden": True}, "out": str(npz)}
            res = project_call(python, "measure", str(gguf_path), stdin=json.dumps(req))
            with np.load(npz) as data:
                logits, hidden = data["logits"], data["hidden"]
        # llama.cpp's logits are softcap(q8_0(h_llama) @ W): the Q8_0 output matmul explains the logit noise
        with torch.no_grad():
            h = torch.from_numpy(hidden)
            cap = model.config.final_logit_softcapping
            z_q8 = torch.tanh(torch.nn.functional.linear(q8_0_roundtrip(h), model.lm_head.weight) / cap) * cap
            z_f32 = torch.tanh(torch.nn.functional.linear(h, model.lm_head.weight) / cap) * cap
        out[label] = {
            "flags": flags,
            "greedy_identical": res["greedy"] == gen,
            "vs_reference": compare(ref["logits"], logits, ref["hidden"], hidden, n_prompt),
            "vs_transformers_stock": compare(stock["logits"], logits, stock["hidden"], hidden, n_prompt),
            "vs_full_ggml_emulation": compare(em_logits, logits, em_hidden, hidden, n_prompt),
            "logits_minus_softcap_q8_0_own_hidden_max_abs": float(np.abs(z_q8.numpy() - logits).max()),
            "logits_minus_softcap_f32_own_hidden_max_abs": float(np.abs(z_f32.numpy() - logits).max()),
        }
    return out


def pack_reference(ref: dict, stock: dict, prompt_ids: list[int], gen: list[int]) -> dict[str, np.ndarray]:
    logits = ref["logits"]
    n_prompt = len(prompt_ids)
    rng = np.random.default_rng(PROBE_SEED)
    probe = np.sort(rng.choice(VOCAB_SIZE_PER_LAYER_INPUT, size=N_PROBE, replace=False)).astype(np.int32)
    top = np.argsort(-logits, axis=-1, kind="stable")[:, :TOP_K].astype(np.int32)
    return {
        "prompt_ids": np.asarray(prompt_ids, dtype=np.int32),
        "greedy_ids": np.asarray(gen, dtype=np.int32),
        "hidden": ref["hidden"].astype(np.float32),
        "hidden_transformers_stock": stock["hidden"].astype(np.float32),
        "probe_ids": probe,
        "probe_logits": logits[:, probe].astype(np.float32),
        "topk_ids": top,
        "topk_logits": np.take_along_axis(logits, top, axis=-1).astype(np.float32),
        "last_prompt_logits": logits[n_prompt - 1].astype(np.float32),
        "final_logits": logits[-1].astype(np.float32),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny", help="model_io.synth preset (default: tiny)")
    parser.add_argument("--gguf", type=Path, help="use this GGUF instead of building the preset")
    parser.add_argument("--project-python", default=str(REPO / ".venv" / "bin" / "python"))
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--name", help="output stem (default: gemma3n_<preset>_text)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--no-measure", action="store_true", help="skip measuring llama.cpp against the reference"
    )
    parser.add_argument("--no-sensitivity", action="store_true", help="skip the writer-bug sensitivity runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    name = args.name or f"gemma3n_{args.preset}_text"

    gguf_path = args.gguf or Path(project_call(args.project_python, "build", args.preset)["path"])
    gguf_path = gguf_path.resolve()
    digest = sha256_file(gguf_path)
    print(f"GGUF {gguf_path} sha256 {digest}", file=sys.stderr)

    model, config, meta, notes = build_model(gguf_path)
    t0 = time.time()
    chosen = select_prompt(
        model, args.project_python, gguf_path, TOLERANCE["min_top1_margin"], config.sliding_window
    )
    print(
        f"prompt selection and reference in {time.time() - t0:.1f}s; greedy {chosen['greedy']}",
        file=sys.stderr,
    )
    prompt_ids, gen = chosen["ids"], chosen["greedy"]
    n_prompt = len(prompt_ids)
    all_ids = prompt_ids + gen[:-1]
    ref = {"hidden": chosen["hidden"], "logits": chosen["logits"]}

    # the hand-rolled forward() is transformers' own forward (logits path) ...
    with reference_numerics(model), torch.no_grad():
        hf_logits = model(input_ids=torch.tensor([all_ids]), use_cache=False).logits[0].numpy()
    if not np.allclose(hf_logits, ref["logits"], atol=1e-4, rtol=0):
        raise SystemExit("forward() disagrees with Gemma3nForCausalLM.forward")
    # ... and a full recompute equals the step-by-step greedy rows
    stock_hidden, stock_logits = forward(model, all_ids)
    stock = {"hidden": stock_hidden, "logits": stock_logits}
    margins = top1_margin(ref["logits"])

    sidecar: dict = {
        "description": "transformers Gemma3nForCausalLM reference for a synthetic Gemma 3n GGUF, compared "
        "with llama.cpp by tests/test_text_fidelity.py. Regenerate: "
        f"/work/refvenv/bin/python tools/make_text_reference.py --preset {args.preset}",
        "gguf": {
            "preset": args.preset,
            "file": gguf_path.name,
            "sha256": digest,
            "bytes": gguf_path.stat().st_size,
            "metadata": meta,
            "tensors": notes["tensors"],
            "tied_embeddings": notes["tied_embeddings"],
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "gguf": _dist_version("gguf"),
            "numpy": np.__version__,
            "llama_cpp_python_tokenizer_and_measurement": chosen["llama_cpp"],
        },
        "hf_config": config.to_dict(),
        "run": {
            "model_class": "transformers Gemma3nForCausalLM",
            "dtype": "float32",
            "device": "cpu",
            "attn_implementation": "eager",
            "kv_cache": "none (full recompute per greedy step)",
            "deviation_from_stock_transformers": "Gemma3nTextMLP._gaussian_topk uses the unbiased std "
            "(divide by n - 1) as llama.cpp's gemma3n.cpp gaussian_topk does; stock transformers "
            "divides by n",
            "prompt_text": chosen["text"],
            "prompt_candidate_index": chosen["index"],
            "prompt_candidates_tried": chosen["tried"],
            "prompt_selection": "first itertools.permutations(USER_SENTENCES, 3) candidate with "
            f"{PROMPT_TOKENS[0]}-{PROMPT_TOKENS[1]} tokens whose greedy top-1 margins all exceed "
            "min_top1_margin",
            "n_prompt": n_prompt,
            "n_generate": N_GENERATE,
            "rows": "row r = after tokens[0..r] of prompt_ids + greedy_ids[:-1]; "
            "row n_prompt-1+s predicts greedy_ids[s]",
            "probe": f"{N_PROBE} ids drawn with numpy default_rng({PROBE_SEED}) from the text vocabulary",
            "top_k": TOP_K,
            "greedy_top1_margins": [round(float(x), 4) for x in margins[n_prompt - 1 :]],
            "logit_abs_max": float(np.abs(ref["logits"]).max()),
            "logit_std_last": float(ref["logits"][n_prompt - 1].std()),
        },
        "tolerance": TOLERANCE,
        "tolerance_rationale": TOLERANCE_RATIONALE,
    }
    if not args.no_sensitivity:
        t0 = time.time()
        sidecar["sensitivity"] = sensitivity(model, all_ids, ref["hidden"], ref["logits"], n_prompt)
        print(f"sensitivity runs in {time.time() - t0:.1f}s", file=sys.stderr)
    if not args.no_measure:
        sidecar["measured"] = measure(
            args.project_python, gguf_path, model, all_ids, n_prompt, ref, stock, gen
        )

    args.out_dir.mkdir(parents=True, exist_ok=True)
    npz_path = args.out_dir / f"{name}.npz"
    json_path = args.out_dir / f"{name}.json"
    np.savez_compressed(npz_path, **pack_reference(ref, stock, prompt_ids, gen))
    json_path.write_text(
        json.dumps(_json_safe(sidecar), indent=2, default=_json_default, allow_nan=False) + "\n"
    )
    print(f"wrote {npz_path} ({npz_path.stat().st_size} bytes) and {json_path}", file=sys.stderr)
    return 0


def _dist_version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def _json_safe(obj):
    """Replace non-finite floats (the converter's -inf sparsity scales) with strings."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")


if __name__ == "__main__":
    sys.exit(main())
