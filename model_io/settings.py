"""Typed settings for loading a model and sampling from it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum

from model_io.errors import InputError

MIN_CONTEXT = 512
MAX_CONTEXT = 32768
MAX_THREADS = 512  # GGML_MAX_N_THREADS
DEFAULT_CONTEXT = 8192
AUTO_CONTEXT = 0  # let the memory planner choose (at most DEFAULT_CONTEXT)


class Backend(StrEnum):
    """Where llama.cpp runs the layers; AUTO offloads only if the build can."""

    AUTO = "auto"
    CPU = "cpu"
    METAL = "metal"
    VULKAN = "vulkan"


def default_threads() -> int:
    """llama.cpp is memory-bound when decoding; all cores but never more than 8 helps most machines."""
    return max(1, min(8, os.cpu_count() or 1))


@dataclass(frozen=True)
class LoadSettings:
    """How to load a GGUF: threads, context size, GPU layers and backend.

    Left at their defaults, the context size and GPU layers are chosen at load time
    from the memory plan (:mod:`model_io.memory_plan`) for this model on this machine.
    """

    n_ctx: int = AUTO_CONTEXT
    n_threads: int = 0  # 0 means default_threads()
    n_gpu_layers: int | None = None  # None: from the memory plan (0 on a CPU-only build); -1: all
    backend: Backend = Backend.AUTO
    n_batch: int = 512
    use_mmap: bool = True

    def __post_init__(self) -> None:
        if self.n_ctx != AUTO_CONTEXT and not MIN_CONTEXT <= self.n_ctx <= MAX_CONTEXT:
            raise InputError(
                f"context size must be between {MIN_CONTEXT} and {MAX_CONTEXT} tokens, got {self.n_ctx}"
            )
        if not 0 <= self.n_threads <= MAX_THREADS:  # ggml's limit; 100,000 threads crashed llama.cpp
            raise InputError(
                f"thread count must be between 0 (automatic) and {MAX_THREADS}, got {self.n_threads}"
            )
        if self.n_gpu_layers is not None and self.n_gpu_layers < -1:
            raise InputError(f"GPU layers must be -1 (all) or more, got {self.n_gpu_layers}")
        if self.n_batch < 1:
            raise InputError(f"batch size must be positive, got {self.n_batch}")

    @property
    def threads(self) -> int:
        return self.n_threads or default_threads()


@dataclass(frozen=True)
class SamplingSettings:
    """Gemma's recommended defaults (temperature 1.0, top-k 64, top-p 0.95); temperature 0 is greedy."""

    temperature: float = 1.0
    top_k: int = 64
    top_p: float = 0.95
    seed: int | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, added logit); -inf bans a token

    def __post_init__(self) -> None:
        if not 0.0 <= self.temperature <= 5.0:
            raise InputError(f"temperature must be between 0 and 5, got {self.temperature}")
        if self.top_k < 0:
            raise InputError(f"top-k must be 0 (off) or more, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise InputError(f"top-p must be in (0, 1], got {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @classmethod
    def greedy_decoding(cls) -> SamplingSettings:
        return cls(temperature=0.0, top_k=1, top_p=1.0, seed=0)
