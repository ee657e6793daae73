#!/usr/bin/env python3
"""Make the Hugging Face transformers reference for a synthetic Gemma 3n text GGUF.

The synthetic writer (``model_io.synth``) emits random-weight Gemma 3n GGUFs so
that tests can run real llama.cpp.  This tool proves the writer is faithful to
the architecture: it loads the *same* weights into transformers'
``Gemma3nForCausalLM`` (an implementation independent of llama.cpp), runs a
chat prompt longer than the sliding window, and stores the logits and greedy
tokens that ``tests/test_text_fidelity.py`` compares llama.cpp against in CI
(CI never installs torch).

Run it in the reference venv (see tools/requirements-reference.txt), from the
repository root::

    /work/refvenv/bin/python tools/make_text_reference.py --preset tiny

It calls the project venv's Python (``--project-python``, default
``.venv/bin/python``) to build the synthetic GGUF with
``model_io.synth.cached_text_model`` and to tokenize the prompt with llama.cpp,
and (unless ``--no-measure``) to run llama.cpp on the same tokens so that the
measured llama.cpp-vs-transformers differences, and how much of them the known
ggml numerics explain, are recorded beside the reference.

GGUF -> transformers mapping (the inverse of llama.cpp's converter,
``conversion/gemma.py`` ``Gemma3NModel``/``Gemma3Model`` and gguf-py's
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
"""

from __future__ import annotations

import argparse
import hashlib
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

# The fixed prompt: Gemma 3n chat template (gemma3n-facts.md section 3) for one user
# message, long enough (> sliding window of the tiny preset) that SWA masking matters.
USER_MESSAGE = (
    "Gemma Desk keeps a private notebook of every conversation on this laptop. "
    "Please summarise, in three short bullet points, why running a small language model "
    "entirely offline can help with privacy, with working on a slow train, and with quick "
    "drafts of emails and meeting notes."
)
PROMPT_TEXT = f"<bos><start_of_turn>user\n{USER_MESSAGE}<end_of_turn>\n<start_of_turn>model\n"
N_GENERATE = 16
N_PROBE = 1024  # vocabulary ids whose logits are stored at every position
TOP_K = 64  # top logits (values + ids) stored at every position
PROBE_SEED = 20251122

# Tolerances the CI test applies (tests/test_text_fidelity.py reads them from the sidecar).
# Rationale: see TOLERANCE_RATIONALE and the "measured" / "sensitivity" blocks of the sidecar.
TOLERANCE = {
    "max_abs_last": 0.05,  # max |llama - hf| over all 262400 logits at the last prompt position
    "rel_l2_last": 2e-3,  # ||llama - hf||_2 / ||hf||_2 at the last prompt position
    "max_abs_any": 0.05,  # max |llama - hf| over stored logits (probe ids + top-64) at every position
    "min_top1_margin": 0.1,  # HF top-1 minus top-2 logit must exceed this wherever greedy is compared
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
    ids = llm.tokenize(sys.argv[3].encode("utf-8"), add_bos=False, special=True)
    print(json.dumps({{"ids": ids, "llama_cpp": llama_cpp.__version__}}))
elif mode == "measure":
    sys.path.insert(0, str(Path({repo!r}) / "tests"))
    import numpy as np
    from test_text_fidelity import run_llama_cpp
    ids = json.loads(sys.argv[3])
    n_prompt = int(sys.argv[4])
    flags = json.loads(sys.argv[6])
    logits, greedy = run_llama_cpp(Path(sys.argv[2]), ids[:n_prompt], len(ids) - n_prompt + 1, forced=ids[n_prompt:], **flags)
    np.save(sys.argv[5], logits)
    print(json.dumps({{"greedy": greedy}}))
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
        "activation_sparsity_scale": _field_value(reader, key(K.LLM.ACTIVATION_SPARSITY_SCALE), required=False),
        "attn_logit_softcapping": _field_value(reader, key(K.LLM.ATTN_LOGIT_SOFTCAPPING), required=False),
        "bos_token_id": _field_value(reader, K.Tokenizer.BOS_ID, required=False),
        "eos_token_id": _field_value(reader, K.Tokenizer.EOS_ID, required=False),
        "pad_token_id": _field_value(reader, K.Tokenizer.PAD_ID, required=False),
    }
    return meta


def build_config(meta: dict) -> Gemma3nTextConfig:
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
            raise SystemExit(f"per-layer feed_forward_length {n_ff} is not supported by llama.cpp's gemma3n graph")
        n_ff = n_ff[0]
    n_ff = int(n_ff)

    pattern = meta["sliding_window_pattern"]
    if not isinstance(pattern, list) or len(pattern) != n_layer:
        raise SystemExit(
            f"{ARCH}.attention.sliding_window_pattern must be a bool array with one entry per layer, got {pattern!r}"
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
            (w == 0.0 and (math.isinf(s) or s == 0.0)) or abs(s - w) < 1e-6 for s, w in zip(scales, want)
        )
        if not ok:
            raise SystemExit(f"activation_sparsity_scale {scales} disagrees with llama.cpp's hard-coded pattern")
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
        tie_word_embeddings=True,
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


def load_gguf_state_dict(reader: GGUFReader, config: Gemma3nTextConfig, hf_keys: list[str]) -> tuple[dict, dict]:
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
            stacked = "altup_proj.weight" if key.startswith("model.altup_projections.") else "altup_unembd_proj.weight"
            arr = cached(stacked)
            if arr.shape != (LLAMA_CPP_N_ALTUP - 1, n_embd, n_embd):
                raise SystemExit(f"{stacked}: numpy shape {arr.shape}, want {(LLAMA_CPP_N_ALTUP - 1, n_embd, n_embd)}")
            idx = int(key.split(".")[2])
            state[key] = torch.from_numpy(np.ascontiguousarray(arr[idx]))
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
                raise SystemExit("per_layer_token_embd rows >= 262144 must be zero (converter pads with zeros)")
            notes[gname]["padded_rows_zero"] = True
            arr = arr[:VOCAB_SIZE_PER_LAYER_INPUT]
        state[key] = torch.from_numpy(np.array(arr, dtype=np.float32, order="C", copy=True))

    if tied:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    else:
        state["lm_head.weight"] = torch.from_numpy(np.ascontiguousarray(cached("output.weight")))
    unused = sorted(set(tensors) - used)
    if unused:
        raise SystemExit(f"GGUF tensors not consumed by the HF model: {unused}")
    return state, {"tied_embeddings": tied, "tensors": notes}


def build_model(gguf_path: Path) -> tuple[Gemma3nForCausalLM, Gemma3nTextConfig, dict, dict]:
    t0 = time.time()
    reader = GGUFReader(gguf_path)
    meta = read_metadata(reader)
    config = build_config(meta)
    _check_kv_sharing(config)
    print(f"read GGUF metadata in {time.time() - t0:.1f}s", file=sys.stderr)
    torch.manual_seed(0)
    model = Gemma3nForCausalLM(config).to(torch.float32).eval()
    model.config._attn_implementation = "eager"
    hf_keys = list(model.state_dict().keys())
    state, notes = load_gguf_state_dict(reader, config, hf_keys)
    if not notes["tied_embeddings"]:
        model.config.tie_word_embeddings = False
    result = model.load_state_dict(state, strict=True)
    if result.missing_keys or result.unexpected_keys:
        raise SystemExit(f"strict load failed: {result}")
    if notes["tied_embeddings"]:
        if model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
            raise SystemExit("lm_head is not tied to embed_tokens after loading")
    # torch.equal over every tensor: the model holds exactly the dequantized GGUF weights
    for key, value in model.state_dict().items():
        if not torch.equal(value, state[key]):
            raise SystemExit(f"{key}: loaded value differs from the GGUF")
    print(f"built HF model in {time.time() - t0:.1f}s", file=sys.stderr)
    return model, config, meta, notes


# --------------------------------------------------------------------------- reference


@torch.no_grad()
def greedy_reference(model: Gemma3nForCausalLM, prompt_ids: list[int], n_gen: int) -> tuple[np.ndarray, list[int]]:
    """Logits for every position of prompt + greedy continuation (no KV cache: full recompute)."""
    ids = list(prompt_ids)
    out = model(input_ids=torch.tensor([ids]), use_cache=False)
    rows = [out.logits[0].float().numpy()]
    generated: list[int] = []
    for step in range(n_gen):
        last = rows[-1][-1]
        token = int(np.argmax(last))
        generated.append(token)
        if step == n_gen - 1:
            break
        ids.append(token)
        out = model(input_ids=torch.tensor([ids]), use_cache=False, logits_to_keep=1)
        rows.append(out.logits[0].float().numpy())
    logits = np.concatenate(rows, axis=0)  # [n_prompt + n_gen - 1, vocab]
    return logits, generated


@torch.no_grad()
def forced_logits(model: Gemma3nForCausalLM, ids: list[int]) -> np.ndarray:
    return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().numpy()


def compare(ref: np.ndarray, other: np.ndarray, n_prompt: int) -> dict:
    diff = np.abs(ref - other)
    last = n_prompt - 1
    return {
        "max_abs_last": float(diff[last].max()),
        "rel_l2_last": float(np.linalg.norm(ref[last] - other[last]) / np.linalg.norm(ref[last])),
        "max_abs_all": float(diff.max()),
        "mean_abs_all": float(diff.mean()),
        "argmax_agree": int(np.sum(np.argmax(ref, -1) == np.argmax(other, -1))),
        "positions": int(ref.shape[0]),
    }


# --------------------------------------------------------------------------- ggml numerics emulation


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
    amax = blocks.abs().amax(-1, keepdim=True)
    d = amax / 127.0
    inv = torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
    q = torch.round(blocks * inv)
    return (q * _f16(d)).reshape(shape)


class GgmlNumerics:
    """Monkeypatches that make transformers compute the way llama.cpp's CPU backend does.

    Each switch models one documented difference; they are used only to attribute
    the measured llama.cpp-vs-transformers residual, never for the stored reference.
    """

    def __init__(self, model: Gemma3nForCausalLM, *, unbiased_std=True, gelu_f16=True, kv_f16=True, q8_lm_head=True):
        self.model = model
        self.flags = dict(unbiased_std=unbiased_std, gelu_f16=gelu_f16, kv_f16=kv_f16, q8_lm_head=q8_lm_head)
        self._undo: list = []

    def __enter__(self):
        from transformers.models.gemma3n import modeling_gemma3n as mg

        model = self.model
        if self.flags["unbiased_std"]:
            original = mg.Gemma3nTextMLP._gaussian_topk

            def topk_unbiased(mlp, inputs):  # llama.cpp divides by n - 1 (gemma3n.cpp gaussian_topk)
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
            original_vnorm = [getattr(layer.self_attn, "v_norm", layer).forward for layer in model.model.layers]

            def rope_then_f16(x, cos, sin, unsqueeze_dim=1):  # K (and Q) enter attention as fp16
                return _f16(original_rope(x, cos, sin, unsqueeze_dim))

            mg.apply_rotary_pos_emb = rope_then_f16
            self._undo.append(lambda: setattr(mg, "apply_rotary_pos_emb", original_rope))
            for layer, fwd in zip(model.model.layers, original_vnorm):
                if not hasattr(layer.self_attn, "v_norm"):
                    continue  # KV-sharing layer: no V of its own
                layer.self_attn.v_norm.forward = lambda x, f=fwd: _f16(f(x))
                self._undo.append(lambda m=layer.self_attn.v_norm: m.__dict__.pop("forward", None))
        if self.flags["q8_lm_head"]:
            head = model.lm_head
            weight = head.weight

            def q8_forward(x):
                return torch.nn.functional.linear(q8_0_roundtrip(x), weight)

            head.forward = q8_forward
            self._undo.append(lambda: head.__dict__.pop("forward", None))
        return self

    def __exit__(self, *exc):
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        return False


# --------------------------------------------------------------------------- sensitivity


@torch.no_grad()
def sensitivity(model: Gemma3nForCausalLM, ids: list[int], ref: np.ndarray, n_prompt: int) -> dict:
    """How far plausible writer bugs move the logits (the tolerance must sit well below these)."""
    results: dict[str, dict] = {}
    cfg = model.config
    layers = model.model.layers
    sd = model.state_dict()

    def run(label: str) -> None:
        results[label] = compare(ref, forced_logits(model, ids), n_prompt)

    # sliding window off by one
    saved = [layer.self_attn.sliding_window for layer in layers]
    cfg.sliding_window += 1
    for layer in layers:
        if layer.self_attn.sliding_window is not None:
            layer.self_attn.sliding_window += 1
    run("sliding_window_plus_1")
    cfg.sliding_window -= 1
    for layer, s in zip(layers, saved):
        layer.self_attn.sliding_window = s

    # all layers full attention (SWA pattern ignored)
    saved_types = list(cfg.layer_types)
    cfg.layer_types = ["full_attention"] * len(saved_types)
    run("no_sliding_window")
    cfg.layer_types = saved_types

    # rope thetas swapped
    rot = model.model.rotary_emb
    full, slide = rot.full_attention_inv_freq.clone(), rot.sliding_attention_inv_freq.clone()
    rot.full_attention_inv_freq.copy_(slide)
    rot.sliding_attention_inv_freq.copy_(full)
    run("rope_theta_swapped")
    rot.full_attention_inv_freq.copy_(full)
    rot.sliding_attention_inv_freq.copy_(slide)

    def with_tensor(label: str, key: str, fn) -> None:
        original = sd[key].clone()
        sd[key].copy_(fn(original))
        run(label)
        sd[key].copy_(original)

    # Gemma 3 style "1 + w" norm shift wrongly applied to one norm
    with_tensor("norm_shift_plus_1_layer0_q_norm", "model.layers.0.self_attn.q_norm.weight", lambda w: w + 1.0)
    # stacked altup projections in the wrong order
    with_tensor(
        "altup_proj_0_1_swapped",
        "model.altup_projections.0.weight",
        lambda w: sd["model.altup_projections.1.weight"].clone(),
    )
    # per-layer embedding laid out [256, n_layer] instead of [n_layer, 256]
    n_layer, n_pl = cfg.num_hidden_layers, cfg.hidden_size_per_layer_input
    with_tensor(
        "per_layer_embd_transposed",
        "model.embed_tokens_per_layer.weight",
        lambda w: w.reshape(-1, n_layer, n_pl).transpose(1, 2).reshape(w.shape),
    )
    # a square matrix transposed (ggml ne order confused with torch order)
    with_tensor("altup_correct_coef_transposed", "model.layers.0.altup.correction_coefs.weight", lambda w: w.t())
    # activation sparsity disabled in layer 0
    mlp = layers[0].mlp
    sparsity = mlp.activation_sparsity
    mlp.activation_sparsity = 0.0
    run("layer0_sparsity_off")
    mlp.activation_sparsity = sparsity
    # llama.cpp's unbiased std in gaussian top-k alone (a real llama.cpp vs transformers difference)
    with GgmlNumerics(model, unbiased_std=True, gelu_f16=False, kv_f16=False, q8_lm_head=False):
        run("llama_cpp_unbiased_topk_std_only")
    return results


# --------------------------------------------------------------------------- project-venv helpers


def project_call(python: str, *args: str) -> dict:
    code = PROJECT_HELPER.format(repo=str(REPO))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([python, "-c", code, *args], capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"project venv call {args[0]!r} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pack_reference(logits: np.ndarray, prompt_ids: list[int], gen: list[int]) -> dict[str, np.ndarray]:
    n_prompt = len(prompt_ids)
    rng = np.random.default_rng(PROBE_SEED)
    probe = np.sort(rng.choice(VOCAB_SIZE_PER_LAYER_INPUT, size=N_PROBE, replace=False)).astype(np.int32)
    top = np.argsort(-logits, axis=-1, kind="stable")[:, :TOP_K].astype(np.int32)
    return {
        "prompt_ids": np.asarray(prompt_ids, dtype=np.int32),
        "greedy_ids": np.asarray(gen, dtype=np.int32),
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
    parser.add_argument("--no-measure", action="store_true", help="skip measuring llama.cpp against the reference")
    parser.add_argument("--no-sensitivity", action="store_true", help="skip the writer-bug sensitivity runs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    name = args.name or f"gemma3n_{args.preset}_text"

    gguf_path = args.gguf or Path(project_call(args.project_python, "build", args.preset)["path"])
    gguf_path = gguf_path.resolve()
    digest = sha256_file(gguf_path)
    print(f"GGUF {gguf_path} sha256 {digest}", file=sys.stderr)

    tok = project_call(args.project_python, "tokenize", str(gguf_path), PROMPT_TEXT)
    prompt_ids = tok["ids"]
    # <bos><start_of_turn>user\n ... <end_of_turn>\n<start_of_turn>model\n (gemma3n-facts.md sections 2-3)
    if prompt_ids[:4] != [2, 105, 2364, 107] or prompt_ids[-5:] != [106, 107, 105, 4368, 107]:
        raise SystemExit(f"unexpected chat-template token ids {prompt_ids[:4]} ... {prompt_ids[-5:]}")

    model, config, meta, notes = build_model(gguf_path)
    if len(prompt_ids) <= config.sliding_window:
        raise SystemExit(f"prompt has {len(prompt_ids)} tokens, not more than the sliding window {config.sliding_window}")

    t0 = time.time()
    logits, gen = greedy_reference(model, prompt_ids, N_GENERATE)
    print(f"reference forward passes in {time.time() - t0:.1f}s; greedy {gen}", file=sys.stderr)
    all_ids = prompt_ids + gen[:-1]
    n_prompt = len(prompt_ids)
    top2 = np.sort(logits, axis=-1)[:, -2:]
    margins = top2[:, 1] - top2[:, 0]

    arrays = pack_reference(logits, prompt_ids, gen)
    sidecar: dict = {
        "description": "transformers Gemma3nForCausalLM reference for a synthetic Gemma 3n GGUF "
        "(tests/test_text_fidelity.py). Regenerate: /work/refvenv/bin/python tools/make_text_reference.py "
        f"--preset {args.preset}",
        "gguf": {
            "preset": args.preset,
            "file": gguf_path.name,
            "sha256": digest,
            "bytes": gguf_path.stat().st_size,
            "metadata": _json_safe(meta),
            "tensors": notes["tensors"],
            "tied_embeddings": notes["tied_embeddings"],
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "gguf": gguf.__version__ if hasattr(gguf, "__version__") else _dist_version("gguf"),
            "numpy": np.__version__,
            "llama_cpp_tokenizer": tok["llama_cpp"],
        },
        "hf_config": config.to_dict(),
        "run": {
            "dtype": "float32",
            "device": "cpu",
            "attn_implementation": "eager",
            "kv_cache": "none (full recompute per greedy step)",
            "prompt_text": PROMPT_TEXT,
            "n_prompt": n_prompt,
            "n_generate": N_GENERATE,
            "rows": "row r = logits after tokens[0..r] of prompt_ids + greedy_ids[:-1]; "
            "row n_prompt-1+s predicts greedy_ids[s]",
            "probe": f"{N_PROBE} ids drawn with numpy default_rng({PROBE_SEED}) from the text vocabulary",
            "top_k": TOP_K,
            "min_top1_margin_prompt_last": float(margins[n_prompt - 1]),
            "min_top1_margin_greedy": float(margins[n_prompt - 1 :].min()),
            "logit_abs_max": float(np.abs(logits).max()),
            "logit_std_last": float(logits[n_prompt - 1].std()),
        },
        "tolerance": TOLERANCE,
        "tolerance_rationale": TOLERANCE_RATIONALE,
    }

    if not args.no_sensitivity:
        t0 = time.time()
        sidecar["sensitivity"] = sensitivity(model, all_ids, logits, n_prompt)
        print(f"sensitivity runs in {time.time() - t0:.1f}s", file=sys.stderr)

    if not args.no_measure:
        sidecar["measured"] = measure(args.project_python, gguf_path, model, all_ids, n_prompt, logits, gen)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    npz_path = args.out_dir / f"{name}.npz"
    json_path = args.out_dir / f"{name}.json"
    np.savez_compressed(npz_path, **arrays)
    json_path.write_text(json.dumps(_json_safe(sidecar), indent=2, default=_json_default, allow_nan=False) + "\n")
    print(f"wrote {npz_path} ({npz_path.stat().st_size} bytes) and {json_path}", file=sys.stderr)
    return 0


def measure(python: str, gguf_path: Path, model, all_ids: list[int], n_prompt: int, ref: np.ndarray, gen: list[int]) -> dict:
    """Run llama.cpp (project venv) on the reference tokens; compare with plain and ggml-emulating HF."""
    out: dict = {}
    with GgmlNumerics(model):
        emulated = forced_logits(model, all_ids)
    out["hf_ggml_emulation_vs_hf"] = compare(ref, emulated, n_prompt)
    configs = {
        "default": {},  # what the CI test uses (llama-cpp-python defaults): f16 KV cache, no flash attention
        "kv_f32": {"kv_f32": True},
        "flash_attn": {"flash_attn": True},
    }
    for label, flags in configs.items():
        with tempfile.TemporaryDirectory() as tmp:
            npy = Path(tmp) / "logits.npy"
            res = project_call(python, "measure", str(gguf_path), json.dumps(all_ids), str(n_prompt), str(npy), json.dumps(flags))
            llama = np.load(npy)
        entry = {"flags": flags, "vs_hf": compare(ref, llama, n_prompt), "vs_hf_ggml_emulation": compare(emulated, llama, n_prompt)}
        entry["greedy_identical"] = res["greedy"] == gen
        out[label] = entry
    return out


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
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and math.isinf(obj):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")


TOLERANCE_RATIONALE = "filled in after measurement"

if __name__ == "__main__":
    sys.exit(main())
