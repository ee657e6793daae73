"""Shared fixtures: the tiny synthetic Gemma 3n (built once, cached) and an isolated data directory."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from engine_helpers import LoadedEngine

# Synthetic models and the extracted tokenizer are rebuildable, so tests share one cache across runs.
TEST_CACHE = Path(os.environ.get("GEMMA_DESK_TEST_CACHE", Path.home() / ".cache" / "gemma-desk-tests"))


def build_in_test_cache(build: Callable[[], Path]) -> Path:
    """Run a cached-model builder with the shared test cache as its home (outside the per-test home)."""
    previous = os.environ.get("GEMMA_DESK_HOME")
    os.environ["GEMMA_DESK_HOME"] = str(TEST_CACHE)
    try:
        return build()
    finally:
        if previous is None:
            os.environ.pop("GEMMA_DESK_HOME", None)
        else:
            os.environ["GEMMA_DESK_HOME"] = previous


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The tiny synthetic Gemma 3n GGUF (≈80 MB, built in a few seconds on first use)."""
    from model_io.synth import cached_text_model

    return build_in_test_cache(lambda: cached_text_model("tiny"))


@pytest.fixture(scope="session")
def gemma3_270m() -> Path:
    """The real Gemma 3 270M GGUF from PyPI, for real-language checks."""
    from gguf_fixtures import gemma3_270m_path

    return gemma3_270m_path()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data directory, so nothing touches the user's files."""
    home = tmp_path / "gemma-desk-home"
    monkeypatch.setenv("GEMMA_DESK_HOME", str(home))
    monkeypatch.delenv("GEMMA_DESK_MODEL", raising=False)
    return home


@pytest.fixture(scope="module")
def tiny_engine(tiny_model: Path) -> Iterator[LoadedEngine]:
    loaded = LoadedEngine(tiny_model)
    yield loaded
    loaded.engine.close()
