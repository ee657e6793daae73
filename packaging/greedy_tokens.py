"""Greedy tokens from a model with some layers offloaded, plus the backends llama.cpp found: one JSON line.

packaging/check-vulkan.sh runs this under two llama.cpp builds (the project's CPU build and the
Vulkan wheel in its own virtual environment) and compares the token lists. It goes through the
app's own runtime (model_io.native, which loads backend modules the way the packaged app does), so a
match means the app itself gets the same answer on the GPU backend.

Usage: python packaging/greedy_tokens.py MODEL [--gpu-layers N] [--tokens N] [--prompt TEXT]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from model_io.backends import detect_backends
from model_io.native import NativeModel, NativeSampler, recent_log_errors
from model_io.settings import Backend, LoadSettings, SamplingSettings


def greedy_tokens(model: NativeModel, prompt: str, count: int) -> list[int]:
    """The first ``count`` greedy tokens after ``prompt`` (end-of-generation tokens included)."""
    tokens = model.tokenize(prompt, add_bos=True)
    if not model.decode(tokens, 0, lambda: False):
        raise RuntimeError("decode was aborted")
    produced: list[int] = []
    with NativeSampler(SamplingSettings.greedy_decoding(), 0, model.n_vocab) as sampler:
        for position in range(len(tokens), len(tokens) + count):
            token = sampler.sample(model)
            produced.append(token)
            if not model.decode([token], position, lambda: False):
                raise RuntimeError("decode was aborted")
    return produced


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--gpu-layers", type=int, default=0, help="-1 offloads every layer")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--prompt", default="The capital of France is")
    args = parser.parse_args(argv)
    backend = Backend.AUTO if args.gpu_layers else Backend.CPU
    settings = LoadSettings(n_ctx=512, n_threads=2, n_gpu_layers=args.gpu_layers, backend=backend)
    device_lines = _DeviceLog()
    started = time.perf_counter()
    model = NativeModel(args.model, settings)
    try:
        tokens = greedy_tokens(model, args.prompt, args.tokens)
    finally:
        model.close()
    report = detect_backends()
    print(
        json.dumps(
            {
                "tokens": tokens,
                "gpu_layers": args.gpu_layers,
                "seconds": round(time.perf_counter() - started, 2),
                "llama_cpp_version": report.llama_cpp_version,
                "cpu_module": report.cpu_module,
                "devices": [f"{d.name}: {d.description} ({d.kind})" for d in report.devices],
                "llama_log": device_lines.lines,
                "last_error": recent_log_errors(),
            }
        )
    )
    return 0


class _DeviceLog(logging.Handler):
    """Keeps llama.cpp's log lines about devices and offloading (model_io routes them to logging)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        logger = logging.getLogger("gemma_desk.llama")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        if any(word in line for word in ("offloaded", "using device", "ggml_vulkan", "CPU_REPACK")):
            self.lines.append(line)


if __name__ == "__main__":
    raise SystemExit(main())
