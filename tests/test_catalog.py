"""The model catalog: consistent data, honest about what is unverified, and how names resolve."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_io.catalog import CATALOG, CatalogEntry, catalog_entries, check_catalog, find_entry, mmproj_for
from model_io.errors import InputError


def test_catalog_is_consistent() -> None:
    assert check_catalog() == []


def test_catalog_covers_both_families_and_sizes() -> None:
    for family in ("gemma-3n", "gemma-4"):
        text = catalog_entries(family=family, role="text")  # type: ignore[arg-type]
        assert {entry.variant for entry in text} == {"E2B", "E4B"}
        assert {entry.repo.split("/")[0] for entry in text} >= {"unsloth", "ggml-org", "bartowski"}
    projectors = catalog_entries(role="mmproj")
    assert {entry.variant for entry in projectors} == {"E2B", "E4B"}
    assert all(entry.family == "gemma-4" for entry in projectors)  # none published for Gemma 3n (facts §4.2)


def test_nothing_is_claimed_verified_and_unknowns_stay_unknown() -> None:
    assert not any(entry.verified for entry in CATALOG)
    assert all(entry.source for entry in CATALOG)
    assert sum(entry.sha256 is None for entry in CATALOG) >= 5  # unknown checksums are not invented
    facts = find_entry("gemma-3n-e2b-q4_k_m-unsloth")
    assert facts.size == 3_026_881_888
    assert facts.sha256 == "189d42b4303cb1078ea8d00963f437cd6d884069b7ba2ba80b38cd09585dc415"


def test_text_entries_pair_with_projectors_of_the_same_model() -> None:
    paired = [entry for entry in CATALOG if entry.mmproj]
    assert paired
    for entry in paired:
        projector = mmproj_for(entry)
        assert projector is not None and projector.role == "mmproj"
        assert (projector.family, projector.variant) == (entry.family, entry.variant)
    assert mmproj_for(find_entry("gemma-3n-e2b-q8_0-ggml-org")) is None


def test_same_file_names_from_different_repos_get_distinct_local_names() -> None:
    unsloth_projectors = [e for e in CATALOG if e.filename == "mmproj-F16.gguf"]
    assert len(unsloth_projectors) == 2
    assert len({e.local_name for e in unsloth_projectors}) == 2


def test_check_catalog_reports_bad_data() -> None:
    bad = CatalogEntry(
        "x", "gemma-4", "E2B", "text", "no-slash", "x.bin", "Q4", -1, "ABC", "main", True, None, "l", "s",
        mmproj="missing",
    )  # fmt: skip
    unverifiable = dataclasses.replace(bad, name="y", local_name="y.gguf", sha256=None, mmproj=None)
    problems = check_catalog((bad, bad, unverifiable))
    for fragment in ("duplicate name x", "sha256", "revision", "size", ".gguf", "y: verified", "mmproj"):
        assert any(fragment in problem for problem in problems), fragment


def test_find_entry_by_name_and_unique_prefix() -> None:
    assert find_entry("GEMMA-3N-E4B-Q8_0-GGML-ORG").repo == "ggml-org/gemma-3n-E4B-it-GGUF"
    assert find_entry("gemma-4-e4b-q4_0-qat").repo == "google/gemma-4-E4B-it-qat-q4_0-gguf"
    with pytest.raises(InputError, match="several catalog entries"):
        find_entry("gemma-3n-e2b")
    with pytest.raises(InputError, match="not in the catalog"):
        find_entry("llama-7b")


def test_cli_models_list_shows_catalog_and_installed_files(isolated_home: Path) -> None:
    models = isolated_home / "data" / "models"
    models.mkdir(parents=True)
    (models / "gemma-3n-E2B-it-Q4_K_M.gguf").write_bytes(b"GGUF")
    (models / "gemma-4-E2B-it-Q4_0.gguf.partial").write_bytes(b"x" * 1000)
    env = {**os.environ, "GEMMA_DESK_HOME": str(isolated_home)}
    run = [sys.executable, "-m", "app", "models", "list"]
    text = subprocess.run(run, capture_output=True, text=True, env=env, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "gemma-3n-e2b-q4_k_m-unsloth" in text.stdout and "partial (1.00 kB)" in text.stdout
    listed = subprocess.run([*run, "--json"], capture_output=True, text=True, env=env, timeout=60)
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert len(rows) == len(CATALOG)
    assert rows["gemma-3n-e2b-q4_k_m-unsloth"]["status"] == "installed"  # present, not verified by us
    assert rows["gemma-4-e2b-q4_0-ggml-org"]["status"] == "partial"
    assert rows["gemma-4-e2b-q4_0-ggml-org"]["partial_bytes"] == 1000
    assert rows["gemma-3n-e4b-q8_0-ggml-org"]["status"] == "missing"
