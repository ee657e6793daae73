"""Synthetic Gemma 3n checkpoints for tests and benchmarks (no downloadable weights needed)."""

from model_io.synth.gemma3n_text import PRESETS, TextPreset, resolve_preset, tensor_plan
from model_io.synth.writer import cached_text_model, write_text_model

__all__ = ["PRESETS", "TextPreset", "cached_text_model", "resolve_preset", "tensor_plan", "write_text_model"]
