"""Finding GGUFs on disk (models folder, user folders, HF cache, LM Studio, Ollama), pairing, importing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter
from gguf_fixtures import write_gguf, write_raw, write_tiny_clip, write_tiny_gemma3n, write_tiny_llama

from model_io import download
from model_io.discovery import (
    DiscoveryReport,
    FoundModel,
    SearchRoots,
    add_user_folder,
    default_roots,
    discover,
    import_model,
    user_folders,
)
from model_io.download import DiskSpaceError
from model_io.errors import InputError, ModelError
from model_io.paths import models_dir

COMMIT = "c" * 40


def write_projector(path: Path, *, projection_dim: int | None, projector: str = "gemma3nv") -> Path:
    """A vision mmproj whose projection_dim names the text width it feeds, as llama.cpp's converter writes."""

    def configure(writer: GGUFWriter) -> None:
        writer.add_name("Tiny Projector")
        writer.add_file_type(1)
        writer.add_bool("clip.has_vision_encoder", True)
        writer.add_bool("clip.has_audio_encoder", False)
        writer.add_string("clip.vision.projector_type", projector)
        writer.add_uint32("clip.vision.embedding_length", 16)
        if projection_dim is not None:
            writer.add_uint32("clip.vision.projection_dim", projection_dim)

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_gguf(path, "clip", {"mm.input_projection.weight": np.zeros((8, 16), np.float16)}, configure)


def gemma3n(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_tiny_gemma3n(path)  # n_embd 32


def link_or_copy(source: Path, link: Path) -> bool:
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(os.path.relpath(source, link.parent), link)
        return True
    except OSError:  # e.g. Windows without the symlink privilege
        shutil.copyfile(source, link)
        return False


def make_hf_cache(root: Path) -> bool:
    """models--org--tiny-GGUF: two snapshots linking the same blobs, plus an unfinished blob."""
    repo = root / "models--org--tiny-GGUF"
    blobs = repo / "blobs"
    text = gemma3n(blobs / "aaa")
    projector = write_projector(blobs / "bbb", projection_dim=32)
    write_raw(blobs / "ccc.incomplete", b"GGUF half a download")
    linked = True
    for commit in (COMMIT, "d" * 40):
        linked &= link_or_copy(text, repo / "snapshots" / commit / "tiny-Q8_0.gguf")
    linked &= link_or_copy(projector, repo / "snapshots" / COMMIT / "mmproj-tiny-f16.gguf")
    return linked


def make_lmstudio(root: Path) -> Path:
    folder = root / "publisher" / "tiny-GGUF"
    gemma3n(folder / "tiny-E2B-Q4_K_M.gguf")
    write_projector(folder / "mmproj-wrong-width.gguf", projection_dim=64)
    write_projector(folder / "mmproj-tiny-E2B-f16.gguf", projection_dim=32)
    write_tiny_llama(folder / "llama-other.gguf")
    write_raw(folder / "bad.gguf", b"<html>rate limited</html>" * 40)
    write_raw(folder / "next.gguf.part", b"GGUF")
    return folder


def make_ollama(root: Path) -> None:
    blobs = root / "blobs"
    model = gemma3n(blobs / "tmp-model")
    projector = write_tiny_clip(blobs / "tmp-projector")  # no projection_dim: paired by family only
    layers = []
    for path, media in ((model, "model"), (projector, "projector")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        path.rename(blobs / f"sha256-{digest}")
        layers.append({"mediaType": f"application/vnd.ollama.image.{media}", "digest": f"sha256:{digest}"})
    layers.append({"mediaType": "application/vnd.ollama.image.license", "digest": "sha256:" + "e" * 64})
    write_raw(blobs / f"sha256-{'f' * 64}-partial", b"GGUF unfinished pull")
    manifests = root / "manifests" / "registry.ollama.ai" / "library" / "gemma3n"
    manifests.mkdir(parents=True)
    (manifests / "e2b").write_text(json.dumps({"schemaVersion": 2, "layers": layers}))
    missing = [{"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:" + "0" * 64}]
    (manifests / "broken").write_text(json.dumps({"layers": missing}))
    (manifests / "garbage").write_text("{not json")


@pytest.fixture
def tree(tmp_path: Path) -> tuple[SearchRoots, bool]:
    models = models_dir()
    gemma3n(models / "gemma-3n-tiny.gguf")
    write_raw(models / "gemma-3n-tiny.gguf.partial", b"GGUF")
    write_raw(models / ".hidden.gguf", b"GGUF")
    extra = tmp_path / "extra"
    (extra / "deep").mkdir(parents=True)
    write_tiny_llama(extra / "deep" / "llama.gguf")
    linked = make_hf_cache(tmp_path / "hf" / "hub")
    make_lmstudio(tmp_path / "lmstudio")
    make_ollama(tmp_path / "ollama")
    roots = SearchRoots(
        models=models,
        folders=(extra,),
        hf_cache=tmp_path / "hf" / "hub",
        lmstudio=(tmp_path / "lmstudio", tmp_path / "missing"),
        ollama=(tmp_path / "ollama",),
    )
    return roots, linked


def by_label(report: DiscoveryReport) -> dict[str, FoundModel]:
    return {found.model.candidate.label.replace(os.sep, "/"): found for found in report.models}


def test_discovery_finds_every_source_once(tree: tuple[SearchRoots, bool]) -> None:
    roots, linked = tree
    report = discover(roots)
    models = by_label(report)
    sources = sorted(found.model.candidate.source for found in report.models)
    expected = ["folder", "hf-cache", "lmstudio", "lmstudio", "models", "ollama"]
    assert sources == expected if linked else sorted([*expected, "hf-cache"])
    assert models["org/tiny-GGUF/tiny-Q8_0.gguf"].model.candidate.repo == "org/tiny-GGUF"
    assert [label for label in models if label.startswith("ollama gemma3n:e2b (sha256:")]
    for found in report.models:
        assert found.model.info is not None and found.model.info.kind == "text"


def test_unfinished_and_hidden_files_are_never_listed(tree: tuple[SearchRoots, bool]) -> None:
    report = discover(tree[0])
    every = [f.path.name for f in report.projectors + report.problems] + [
        m.model.path.name for m in report.models
    ]
    assert not [name for name in every if "partial" in name or "incomplete" in name or name.endswith(".part")]
    assert ".hidden.gguf" not in every


def test_bad_files_are_listed_with_their_error(tree: tuple[SearchRoots, bool]) -> None:
    problems = {p.path.name: p.error or "" for p in discover(tree[0]).problems}
    assert "bad.gguf" in problems and "web page (HTML)" in problems["bad.gguf"]
    assert "file not found" in problems["sha256-" + "0" * 64]  # manifest pointing at a missing blob
    assert len(problems) == 2


def test_projectors_pair_by_place_family_and_width(tree: tuple[SearchRoots, bool]) -> None:
    models = by_label(discover(tree[0]))
    lmstudio = models["publisher/tiny-GGUF/tiny-E2B-Q4_K_M.gguf"].mmproj
    assert lmstudio is not None and lmstudio.path.name == "mmproj-tiny-E2B-f16.gguf"  # not the 64-wide one
    assert models["publisher/tiny-GGUF/llama-other.gguf"].mmproj is None  # gemma3nv does not fit llama
    hub = models["org/tiny-GGUF/tiny-Q8_0.gguf"].mmproj
    assert hub is not None and hub.candidate.repo == "org/tiny-GGUF"
    ollama = next(found for label, found in models.items() if label.startswith("ollama"))
    assert ollama.mmproj is not None and ollama.mmproj.candidate.source == "ollama"
    assert models[str(models_dir() / "gemma-3n-tiny.gguf").replace(os.sep, "/")].mmproj is None


def test_user_folders_are_remembered(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    write_tiny_llama(folder / "a.gguf")
    assert add_user_folder(folder) == folder.resolve()
    assert add_user_folder(folder) == folder.resolve()
    assert user_folders() == (folder.resolve(),)
    with pytest.raises(InputError, match="not a folder"):
        add_user_folder(tmp_path / "nope")


def test_default_roots_follow_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama"))
    roots = default_roots()
    assert roots.hf_cache == tmp_path / "hf" / "hub"
    assert roots.lmstudio[0] == home / ".lmstudio" / "models"
    assert roots.ollama[0] == tmp_path / "ollama" and roots.ollama[1] == home / ".ollama" / "models"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    assert default_roots().hf_cache == tmp_path / "cache"


def test_import_copies_a_validated_model(tmp_path: Path) -> None:
    source = gemma3n(tmp_path / "outside" / "tiny.gguf")
    result = import_model(source)
    assert result.method == "copied" and result.path == models_dir() / "tiny.gguf"
    assert result.path.read_bytes() == source.read_bytes() and result.info.architecture == "gemma3n"
    assert list(models_dir().iterdir()) == [result.path]  # no .partial left behind
    assert import_model(result.path).method == "already present"
    with pytest.raises(InputError, match="already exists"):
        import_model(gemma3n(tmp_path / "other" / "tiny.gguf"))


def test_import_links_instead_of_copying(tmp_path: Path) -> None:
    source = write_tiny_llama(tmp_path / "llama.gguf")
    result = import_model(source, link=True)
    assert result.method in ("hardlink", "symlink") and os.path.samefile(result.path, source)
    blob = write_tiny_llama(tmp_path / ("sha256-" + "a" * 64))  # an Ollama blob has no extension
    assert import_model(blob, link=True).path.name == blob.name + ".gguf"


def test_import_refuses_bad_files_and_full_disks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelError, match="not a GGUF model file"):
        import_model(write_raw(tmp_path / "bad.gguf", b"PK\x03\x04" + b"\0" * 100))
    monkeypatch.setattr(download, "free_disk_bytes", lambda path: 1000)
    with pytest.raises(DiskSpaceError, match="only 1,000 bytes"):
        import_model(write_tiny_llama(tmp_path / "llama.gguf"))
    assert not models_dir().exists() or not list(models_dir().iterdir())


# The command line, as a user runs it.


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "USERPROFILE": str(home), "HF_HUB_CACHE": str(home / "hf")}
    env.pop("OLLAMA_MODELS", None)
    return subprocess.run(
        [sys.executable, "-m", "app", "models", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_discover_json_and_added_folders(tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_lmstudio(home / ".lmstudio" / "models")
    make_hf_cache(home / "hf")
    extra = tmp_path / "extra"
    gemma3n(extra / "mine.gguf")
    result = cli("discover", "--add-folder", str(extra), "--json", home=home)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    labels = {m["label"]: m for m in report["models"]}
    assert labels["publisher/tiny-GGUF/tiny-E2B-Q4_K_M.gguf"]["mmproj"].endswith("mmproj-tiny-E2B-f16.gguf")
    assert labels["publisher/tiny-GGUF/tiny-E2B-Q4_K_M.gguf"]["architecture"] == "gemma3n"
    assert any(m["path"].endswith("mine.gguf") for m in report["models"])
    assert [p["path"].endswith("bad.gguf") for p in report["problems"]] == [True]

    again = cli("discover", home=home)  # the added folder is remembered
    assert again.returncode == 0 and "mine.gguf" in again.stdout and "unusable files (1)" in again.stdout


def test_cli_import(tmp_path: Path) -> None:
    source = gemma3n(tmp_path / "tiny.gguf")
    result = cli("import", str(source), "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["method"] == "copied" and payload["architecture"] == "gemma3n"
    assert (models_dir() / "tiny.gguf").read_bytes() == source.read_bytes()
    bad = cli("import", str(write_raw(tmp_path / "x.gguf", b"<html></html>" * 10)), home=tmp_path)
    assert bad.returncode == 3 and len(bad.stderr.strip().splitlines()) == 1 and "x.gguf" in bad.stderr
