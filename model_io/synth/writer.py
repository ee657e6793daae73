"""Stream a synthetic Gemma 3n GGUF to disk, tensor by tensor, chunk by chunk.

Nothing larger than one chunk (32 MiB) is ever held in memory, so the full-size
E4B preset (≈4.5 GB) writes in well under a minute with flat RAM.  The file is
written under a temporary name and renamed when complete, so an interrupted
build never leaves something that looks like a finished model.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from gguf import GGUFWriter

from model_io.chat_templates import GEMMA3N_CHAT_TEMPLATE
from model_io.errors import DiskFullError
from model_io.paths import cache_dir
from model_io.synth.gemma3n_text import (
    N_ALTUP,
    PER_LAYER_WIDTH,
    SPARSE_LAYERS,
    SPARSITY_STD_MULTIPLIER,
    TensorSpec,
    TextPreset,
    default_filename,
    resolve_preset,
    tensor_plan,
)
from model_io.synth.random_blocks import random_tensor_chunks, tensor_nbytes
from model_io.synth.vocab import Vocab, load_gemma3n_vocab, vocab_digest

ARCH = "gemma3n"
WRITER_VERSION = 1
Progress = Callable[[int, int], None]
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def write_text_model(
    preset: str | TextPreset,
    out_path: Path,
    *,
    progress: Progress | None = None,
    vocab_cache: Path | None = None,
) -> Path:
    """Write the preset's GGUF to ``out_path`` (atomically) and return the path."""
    spec = resolve_preset(preset) if isinstance(preset, str) else preset
    vocab = load_gemma3n_vocab(vocab_cache or cache_dir() / "tokenizer")
    return write_random_gguf(
        out_path,
        ARCH,
        lambda writer: _add_metadata(writer, spec, vocab),
        tensor_plan(spec),
        spec.seed,
        progress,
    )


def write_random_gguf(
    out_path: Path,
    arch: str,
    add_metadata: Callable[[GGUFWriter], None],
    plan: list[TensorSpec],
    seed: int,
    progress: Progress | None = None,
) -> Path:
    """Stream a GGUF whose tensors are random per ``plan``; written under a temporary name, then renamed.

    A disk that is too small, or fills up meanwhile, gives ``DiskFullError`` and leaves no file behind.
    """
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    writer = GGUFWriter(None, arch)
    add_metadata(writer)
    for tensor in plan:
        writer.add_tensor_info(
            tensor.name,
            tuple(reversed(tensor.shape)),
            np.dtype(np.float32),
            tensor_nbytes(tensor.qtype, math.prod(tensor.shape)),
            raw_dtype=tensor.qtype,
        )
    needed = sum(tensor_nbytes(t.qtype, math.prod(t.shape)) for t in plan)
    free = shutil.disk_usage(out_path.parent).free
    if needed > free:
        raise DiskFullError(
            f"not enough free disk space for {out_path}: it needs {needed:,} bytes, {free:,} are free"
        )
    try:
        writer.write_header_to_file(partial)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        _write_tensor_data(writer, plan, seed, progress)
        writer.close()
        os.replace(partial, out_path)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # closing flushes, which fails again on a full disk
            writer.close()
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            raise DiskFullError(
                f"the disk filled up while writing {out_path} ({needed:,} bytes of tensors); "
                "nothing was kept, free some space and try again"
            ) from exc
        raise
    return out_path


def cached_text_model(preset: str = "tiny", *, progress: Progress | None = None) -> Path:
    """Build the preset once into the cache directory and reuse it afterwards."""
    spec = resolve_preset(preset)
    target = cache_dir() / "synthetic" / f"v{WRITER_VERSION}" / default_filename(spec)
    if not target.exists():
        write_text_model(spec, target, progress=progress)
    return target


def _write_tensor_data(
    writer: GGUFWriter, plan: list[TensorSpec], seed: int, progress: Progress | None
) -> None:
    assert writer.fout is not None
    handle = writer.fout[0]
    total = sum(tensor_nbytes(t.qtype, math.prod(t.shape)) for t in plan)
    done = 0
    for tensor in plan:
        writer.write_padding(handle, handle.tell())
        chunks = random_tensor_chunks(
            tensor.qtype,
            tensor.n_rows,
            tensor.row_elements,
            tensor.std,
            _tensor_seed(seed, tensor.name),
            mean=tensor.mean,
            zero_rows_from=tensor.zero_rows_from,
        )
        for chunk in chunks:
            handle.write(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        writer.write_padding(handle, handle.tell())


def _tensor_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _add_metadata(writer: GGUFWriter, p: TextPreset, vocab: Vocab) -> None:
    """Write the keys llama.cpp's converter writes for a Gemma 3n checkpoint."""
    writer.add_type("model")
    writer.add_name(f"Gemma 3n synthetic {p.name} (random weights)")
    writer.add_description(
        "Gemma Desk synthetic checkpoint: real Gemma 3n architecture and tokenizer, random weights. "
        + p.description
    )
    if p.file_type is not None:
        writer.add_file_type(p.file_type)
    writer.add_quantization_version(2)
    writer.add_context_length(p.context_length)
    writer.add_embedding_length(p.n_embd)
    writer.add_block_count(p.n_layer)
    writer.add_feed_forward_length(p.n_ff)
    writer.add_head_count(p.n_head)
    writer.add_head_count_kv(p.n_head_kv)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_key_length(p.head_dim)
    writer.add_value_length(p.head_dim)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_rope_freq_base_swa(10_000.0)
    writer.add_sliding_window(p.sliding_window)
    writer.add_final_logit_softcapping(30.0)
    writer.add_altup_active_idx(0)
    writer.add_altup_num_inputs(N_ALTUP)
    writer.add_embedding_length_per_layer_input(PER_LAYER_WIDTH)
    writer.add_shared_kv_layers(p.shared_kv_layers)
    # The converter stores Φ⁻¹(sparsity): 0.95 → 1.6449 for the sparse layers, Φ⁻¹(0) = -inf after them.
    writer.add_activation_sparsity_scale(
        [SPARSITY_STD_MULTIPLIER if i < SPARSE_LAYERS else float("-inf") for i in range(p.n_layer)]
    )
    writer.add_sliding_window_pattern([p.is_sliding(i) for i in range(p.n_layer)])
    _add_tokenizer(writer, vocab)
    writer.add_string("gemma_desk.synthetic.preset", p.name)
    writer.add_uint32("gemma_desk.synthetic.seed", p.seed)
    writer.add_uint32("gemma_desk.synthetic.writer_version", WRITER_VERSION)
    writer.add_string("gemma_desk.synthetic.vocab_digest", vocab_digest(vocab))


def _add_tokenizer(writer: GGUFWriter, vocab: Vocab) -> None:
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(vocab.tokens)
    writer.add_token_scores(vocab.scores.tolist())
    writer.add_token_types(vocab.token_types.tolist())
    writer.add_bos_token_id(2)
    writer.add_eos_token_id(1)
    writer.add_unk_token_id(3)
    writer.add_pad_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)
    writer.add_chat_template(GEMMA3N_CHAT_TEMPLATE)
