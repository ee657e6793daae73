"""Where a loaded Gemma 3n's resident memory goes, stage by stage (Linux: smaps and pagemap).

Loads MODEL with NativeModel as the engine does and prints, after loading, after the engine's
page release (ModelFootprint.release_after_load), after a prefill and after a decode:
VmRSS, VmHWM, anonymous (heap) memory, the GGUF mapping's resident bytes and, per tensor group
(token_embd, the PLE table, the layer weights llama.cpp repacks into heap buffers on x86, the
other layer weights), resident/total MiB from pagemap, plus the
buffer sizes llama.cpp logged (weights copied into repacked buffers, KV cache, compute).

``--legacy`` switches this session's memory changes off in-process to show the state before them:
no page release and llama.cpp's default output rows (n_batch logits rows in the compute buffer).

    flock /tmp/gemma-desk-bigjob.lock python tools/memory_breakdown.py MODEL.gguf [--legacy] [--ctx 8192]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

MIB = 1 << 20


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import llama_cpp as ll

    from model_io import native
    from model_io.gguf_check import validate_gguf
    from model_io.memory_usage import PLE_TENSOR, ModelFootprint, repack_candidates, reset_peak_rss
    from model_io.settings import LoadSettings, SamplingSettings

    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--legacy", action="store_true", help="without this session's memory changes")
    parser.add_argument("--ctx", type=int, default=8192)
    parser.add_argument("--tokens", type=int, default=32, help="tokens to decode after the prefill")
    args = parser.parse_args()
    if args.legacy:
        create = ll.llama_init_from_model

        def legacy_context(model: object, params: ll.llama_context_params) -> object:
            params.n_outputs_max = 0  # llama.cpp's default: as many output rows as the batch
            return create(model, params)

        native.ll.llama_init_from_model = legacy_context

    summary = validate_gguf(args.model, expect="text")
    repacked = {t.name for t in repack_candidates(summary.tensors)}
    groups: dict[str, list[tuple[int, int]]] = {}
    for t in summary.tensors:
        group = "PLE" if t.name == PLE_TENSOR else "token_embd" if t.name == "token_embd.weight" else "layers"
        group = "repacked layers" if t.name in repacked else group
        groups.setdefault(group, []).append((t.offset, t.offset + t.n_bytes))
    started = time.perf_counter()
    model = native.NativeModel(args.model, LoadSettings(n_ctx=args.ctx, n_threads=2))
    label = f"{args.model.name}{' (legacy)' if args.legacy else ''}"
    print(f"{label}: loaded in {time.perf_counter() - started:.1f} s")
    b = model.buffers
    model_buffers = ", ".join(f"{name} {size / MIB:,.0f}" for name, size in b.model.items())
    print(f"llama.cpp buffers (MiB): model {model_buffers}; KV {b.kv / MIB:,.0f}", end="")
    print(f"; compute {b.compute / MIB:,.0f}")
    report("after load", args.model, groups)
    if not args.legacy:
        footprint = ModelFootprint.of(args.model, summary.tensors, summary.file_size, model.buffers)
        footprint.release_after_load()
        model.prefetch_rows = footprint.prefetch_rows
        report("after release", args.model, groups)
    reset_peak_rss()
    words = " ".join(f"item {i} is a small blue boat on the grey sea." for i in range(46))
    text = f"<start_of_turn>user\nSummarise: {words}<end_of_turn>\n<start_of_turn>model\n"
    prompt = model.tokenize(text, add_bos=True, parse_special=True)
    started = time.perf_counter()
    model.decode(prompt, 0, lambda: False)
    prefill = time.perf_counter() - started
    report(f"after a {len(prompt)}-token prefill", args.model, groups)
    with native.NativeSampler(SamplingSettings.greedy_decoding(), 0, model.n_vocab) as sampler:
        started = time.perf_counter()
        for position in range(len(prompt), len(prompt) + args.tokens):
            model.decode([sampler.sample(model)], position, lambda: False)
        decode = time.perf_counter() - started
    report(f"after decoding {args.tokens} tokens", args.model, groups)
    print(
        f"prefill {len(prompt) / prefill:.1f} tok/s, decode {args.tokens / decode:.2f} tok/s "
        f"(2 threads), load average {os.getloadavg()[0]:.2f}"
    )
    model.close()
    return 0


def report(stage: str, path: Path, groups: dict[str, list[tuple[int, int]]]) -> None:
    from model_io.memory_usage import (
        file_mappings,
        peak_rss_bytes,
        process_rss_bytes,
        read_smaps,
        resident_in_file_range,
    )

    smaps = read_smaps() or []
    mapped = file_mappings(path, smaps)
    cells = []
    for group, ranges in groups.items():
        resident = sum(resident_in_file_range(mapped, lo, hi) or 0 for lo, hi in ranges)
        cells.append(f"{group} {resident / MIB:,.0f}/{sum(hi - lo for lo, hi in ranges) / MIB:,.0f}")
    print(
        f"  {stage:<34} RSS {process_rss_bytes() / MIB:6,.0f}  peak {peak_rss_bytes() / MIB:6,.0f}  "
        f"heap {sum(m.anonymous for m in smaps) / MIB:6,.0f}  "
        f"GGUF mapped {sum(m.rss for m in mapped) / MIB:6,.0f}  "
        f"({', '.join(cells)} MiB resident/total)"
    )


if __name__ == "__main__":
    sys.exit(main())
