"""Find GGUF files already on this computer, pair text models with their projectors, import them.

Places searched, in this order (a file reached twice, e.g. through a symlink, is listed once):
the Gemma Desk models folder, folders the user added, the Hugging Face cache (``HF_HUB_CACHE``,
else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``: ``snapshots/*`` links to blobs), LM
Studio (``~/.lmstudio/models``, ``~/.cache/lm-studio/models``) and Ollama (``OLLAMA_MODELS`` or
``~/.ollama/models``: manifests name digest-named blobs without an extension, whose model and
projector layers are GGUF).  Every file goes through :func:`validate_gguf`, so one bad file becomes
a listed problem rather than a crashed scan.  Unfinished downloads (``.partial``, the hub cache's
``blobs/*.incomplete``, Ollama's ``*-partial`` blobs) are never reached: only ``*.gguf`` names,
snapshot links and manifest-referenced blobs are considered.

A projector (mmproj) is paired with a text model only inside the same folder, hub repo or Ollama
model, and only when nothing contradicts it: its projector type must belong to the model's
architecture (``gemma3nv`` → ``gemma3n``) and its ``clip.*.projection_dim`` must equal the
model's embedding width, which is what mtmd checks when it loads the pair.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gguf.constants import MODEL_ARCH_NAMES

from model_io.download import DiskSpaceError, check_free_space, partial_path, read_receipt
from model_io.errors import GemmaDeskError, InputError
from model_io.gguf_check import GgufSummary, validate_gguf
from model_io.model_info import ModelInfo, inspect_model, model_info_from_summary
from model_io.paths import data_dir, models_dir

Source = Literal["models", "folder", "hf-cache", "lmstudio", "ollama"]

FOLDERS_FILE = "model-folders.json"
_MAX_DEPTH = 6
_OLLAMA_LAYERS = {"application/vnd.ollama.image.model", "application/vnd.ollama.image.projector"}
_TEXT_ARCHS = sorted(MODEL_ARCH_NAMES.values(), key=len, reverse=True)
_NAME_TOKENS = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class SearchRoots:
    """Where to look; :func:`default_roots` fills it from the environment."""

    models: Path | None = None
    folders: tuple[Path, ...] = ()
    hf_cache: Path | None = None
    lmstudio: tuple[Path, ...] = ()
    ollama: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Candidate:
    """A file a scanner found, before it is opened. Files of one ``group`` may be paired."""

    path: Path
    source: Source
    group: str
    label: str
    repo: str | None = None


@dataclass(frozen=True)
class FoundFile:
    """A candidate after inspection: ``info`` when it is a usable GGUF, ``error`` otherwise."""

    candidate: Candidate
    info: ModelInfo | None = None
    error: str | None = None
    projection_dim: int | None = None  # mmproj only: the text width it feeds

    @property
    def path(self) -> Path:
        return self.candidate.path

    def to_dict(self) -> dict[str, Any]:
        c = self.candidate
        data: dict[str, Any] = {"path": str(c.path), "source": c.source, "label": c.label, "repo": c.repo}
        if self.info is not None:
            info = self.info.to_dict()
            info.pop("path")
            data.update(info)
        if self.error is not None:
            data["error"] = self.error
        return data


@dataclass(frozen=True)
class FoundModel:
    model: FoundFile
    mmproj: FoundFile | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.model.to_dict(), "mmproj": str(self.mmproj.path) if self.mmproj else None}


@dataclass(frozen=True)
class DiscoveryReport:
    models: tuple[FoundModel, ...] = ()
    projectors: tuple[FoundFile, ...] = ()
    problems: tuple[FoundFile, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": [m.to_dict() for m in self.models],
            "projectors": [p.to_dict() for p in self.projectors],
            "problems": [p.to_dict() for p in self.problems],
        }


@dataclass(frozen=True)
class ImportResult:
    path: Path
    method: Literal["copied", "hardlink", "symlink", "already present"]
    info: ModelInfo = field(compare=False)


def default_roots(extra_folders: Iterable[Path] = ()) -> SearchRoots:
    """The usual places on this computer, read from the environment now (tests change HOME)."""
    home = Path.home()
    ollama = [Path(os.environ["OLLAMA_MODELS"])] if os.environ.get("OLLAMA_MODELS") else []
    ollama += [home / ".ollama" / "models", Path("/usr/share/ollama/.ollama/models")]
    return SearchRoots(
        models=models_dir(),
        folders=tuple(dict.fromkeys([*user_folders(), *extra_folders])),
        hf_cache=hf_cache_dir(),
        lmstudio=(home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"),
        ollama=tuple(ollama),
    )


def hf_cache_dir() -> Path:
    """huggingface_hub's cache folder, resolved the way it does but at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "huggingface" / "hub"


def discover(roots: SearchRoots | None = None) -> DiscoveryReport:
    """Scan, inspect and pair; never raises for a bad file or an unreadable folder."""
    files = [inspect_candidate(c) for c in scan(roots or default_roots())]
    return pair_projectors(files)


def scan(roots: SearchRoots) -> list[Candidate]:
    """Every candidate file once (by real path), in search order."""
    found: dict[str, Candidate] = {}
    for candidate in _all_candidates(roots):
        found.setdefault(os.path.realpath(candidate.path), candidate)
    return list(found.values())


def _all_candidates(roots: SearchRoots) -> Iterator[Candidate]:
    if roots.models is not None:
        yield from _scan_folder(roots.models, "models")
    for folder in roots.folders:
        yield from _scan_folder(folder, "folder")
    if roots.hf_cache is not None:
        yield from _scan_hf_cache(roots.hf_cache)
    for folder in roots.lmstudio:
        yield from _scan_folder(folder, "lmstudio")
    for folder in roots.ollama:
        yield from _scan_ollama(folder)


def _scan_folder(root: Path, source: Source) -> Iterator[Candidate]:
    """``*.gguf`` files under ``root`` (hidden entries skipped, no folder symlinks followed)."""
    for path in _walk(root):
        if path.name.lower().endswith(".gguf"):
            relative = path.relative_to(root)
            repo = "/".join(relative.parts[:2]) if source == "lmstudio" and len(relative.parts) == 3 else None
            label = relative.as_posix() if source == "lmstudio" else str(path)
            yield Candidate(path, source, f"{source}:{path.parent}", label, repo)


def _walk(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    base_depth = len(root.parts)
    for folder, dirs, files in os.walk(root, onerror=lambda _error: None):
        depth = len(Path(folder).parts) - base_depth
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and depth < _MAX_DEPTH)
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder) / name


def _scan_hf_cache(root: Path) -> Iterator[Candidate]:
    """``models--OWNER--NAME/snapshots/<commit>/…gguf`` links; blobs and ``*.incomplete`` are not read."""
    if not root.is_dir():
        return
    for repo_dir in sorted(root.glob("models--*")):
        repo = repo_dir.name.removeprefix("models--").replace("--", "/", 1)
        for path in _walk(repo_dir / "snapshots"):
            if path.name.lower().endswith(".gguf"):
                label = f"{repo}/{path.relative_to(repo_dir / 'snapshots').as_posix().split('/', 1)[-1]}"
                yield Candidate(path, "hf-cache", f"hf:{repo}", label, repo)


def _scan_ollama(root: Path) -> Iterator[Candidate]:
    """Model and projector layers of every manifest, as ``blobs/sha256-<hex>`` files."""
    manifests = root / "manifests"
    for manifest in _walk(manifests):
        name = _ollama_name(manifest.relative_to(manifests))
        for digest in _ollama_layers(manifest):
            blob = _ollama_blob(root / "blobs", digest)
            yield Candidate(blob, "ollama", f"ollama:{name}", f"ollama {name} ({digest[:19]})")


def _ollama_name(relative: Path) -> str:
    """``registry.ollama.ai/library/gemma3n/e2b`` → ``gemma3n:e2b``; other registries keep their host."""
    parts = relative.parts
    if len(parts) < 2:
        return relative.as_posix()
    host, model, tag = parts[:-2], parts[-2], parts[-1]
    prefix = "/".join(host)
    short = prefix in ("registry.ollama.ai/library", "registry.ollama.ai")
    return f"{model}:{tag}" if short else f"{prefix}/{model}:{tag}"


def _ollama_layers(manifest: Path) -> list[str]:
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        layers = data.get("layers", []) if isinstance(data, dict) else []
        return [
            str(layer["digest"])
            for layer in layers
            if isinstance(layer, dict) and layer.get("mediaType") in _OLLAMA_LAYERS and "digest" in layer
        ]
    except (OSError, ValueError):
        return []  # not a manifest we understand: nothing to offer from it


def _ollama_blob(blobs: Path, digest: str) -> Path:
    """Blobs are named ``sha256-<hex>`` (older versions used ``sha256:<hex>``)."""
    dashed = blobs / digest.replace(":", "-", 1)
    return dashed if dashed.exists() or not (blobs / digest).exists() else blobs / digest


def inspect_candidate(candidate: Candidate) -> FoundFile:
    """Validate and describe one file; any failure becomes ``error`` text."""
    try:
        summary = validate_gguf(candidate.path)
    except GemmaDeskError as exc:
        return FoundFile(candidate, error=str(exc))
    except Exception as exc:  # a scan must survive anything one file does
        return FoundFile(candidate, error=f"{candidate.path}: {type(exc).__name__}: {exc}")
    return FoundFile(candidate, model_info_from_summary(summary), projection_dim=_projection_dim(summary))


def _projection_dim(summary: GgufSummary) -> int | None:
    for key in ("clip.vision.projection_dim", "clip.audio.projection_dim"):
        value = summary.kv.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def pair_projectors(files: Iterable[FoundFile]) -> DiscoveryReport:
    """Split inspected files into models (each with its best projector), projectors and problems."""
    files = list(files)
    ok = [f for f in files if f.info is not None]
    projectors = [f for f in ok if f.info is not None and f.info.kind == "mmproj"]
    models = tuple(
        FoundModel(f, _best_projector(f, projectors))
        for f in ok
        if f.info is not None and f.info.kind == "text"
    )
    problems = tuple(f for f in files if f.info is None)
    return DiscoveryReport(models, tuple(projectors), problems)


def _best_projector(model: FoundFile, projectors: list[FoundFile]) -> FoundFile | None:
    scored = [(score, p) for p in projectors if (score := projector_score(model, p)) is not None]
    return max(scored, key=lambda pair: pair[0])[1] if scored else None


def projector_score(model: FoundFile, projector: FoundFile) -> float | None:
    """How well ``projector`` fits ``model``: None when it cannot be theirs, higher is more certain."""
    text, proj = model.info, projector.info
    if text is None or proj is None or model.candidate.group != projector.candidate.group:
        return None
    family = projector_family(proj)
    if family is not None and family != text.architecture:
        return None
    if projector.projection_dim is not None and text.n_embd is not None:
        if projector.projection_dim != text.n_embd:
            return None
        score = 2.0
    else:
        score = 0.0
    score += 1.0 if family is not None else 0.0
    return score + _name_similarity(model.path.name, projector.path.name)


def projector_family(info: ModelInfo) -> str | None:
    """The text architecture a projector type belongs to: ``gemma3nv``/``gemma3na`` → ``gemma3n``."""
    for projector in (info.vision_projector, info.audio_projector):
        if not projector:
            continue
        for arch in _TEXT_ARCHS:
            if projector in (arch, f"{arch}v", f"{arch}a"):
                return arch
    return None


def _name_similarity(a: str, b: str) -> float:
    """Shared name words (``e2b``, ``it``…), a tie-breaker below 1 between equally compatible files."""
    ignore = {"gguf", "mmproj"}
    words_a = set(_NAME_TOKENS.findall(a.lower())) - ignore
    words_b = set(_NAME_TOKENS.findall(b.lower())) - ignore
    union = words_a | words_b
    return 0.99 * len(words_a & words_b) / len(union) if union else 0.0


def user_folders() -> tuple[Path, ...]:
    """Folders the user asked Gemma Desk to search, as saved in the data folder."""
    try:
        data = json.loads((data_dir() / FOLDERS_FILE).read_text(encoding="utf-8"))
        return tuple(Path(p) for p in data.get("folders", []) if isinstance(p, str))
    except (OSError, ValueError, AttributeError):
        return ()


def add_user_folder(folder: Path) -> Path:
    """Remember ``folder`` for later scans; InputError when it is not a folder."""
    try:
        resolved = folder.expanduser().resolve()
        is_folder = resolved.is_dir()
    except (OSError, RuntimeError) as exc:  # a name too long; RuntimeError: a symlink loop (Python 3.11)
        raise InputError(f"{folder}: not a usable folder ({getattr(exc, 'strerror', None) or exc})") from exc
    if not is_folder:
        raise InputError(f"{folder}: not a folder")
    folders = list(dict.fromkeys([*user_folders(), resolved]))
    path = data_dir() / FOLDERS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps({"folders": [str(p) for p in folders]}, indent=1), encoding="utf-8")
    os.replace(temporary, path)
    return resolved


def import_model(
    source: Path,
    *,
    link: bool = False,
    dest_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Validate ``source`` and put it into the models folder: copied (via a ``.partial``) or linked.

    Files without a ``.gguf`` name (Ollama's ``sha256-…`` blobs) get one, so the app can list them.
    """
    info = inspect_model(source)
    folder = dest_dir or models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = source.name if source.name.lower().endswith(".gguf") else f"{source.name}.gguf"
    target = folder / name
    if target.exists() or target.is_symlink():
        if target.exists() and os.path.samefile(target, source):
            return ImportResult(target, "already present", info)
        raise InputError(f"{target} already exists; rename or remove it first")
    if link:
        return ImportResult(target, _link(source, target), info)
    _copy(source, target, progress)
    return ImportResult(target, "copied", info)


def _link(source: Path, target: Path) -> Literal["hardlink", "symlink"]:
    """A hard link survives the original being moved; across file systems a symlink is the fallback."""
    try:
        os.link(source, target)
        return "hardlink"
    except OSError:
        pass
    try:
        os.symlink(source.resolve(), target)
        return "symlink"
    except OSError as exc:
        raise InputError(
            f"cannot link {source} into {target.parent} ({exc.strerror}); import a copy"
        ) from exc


def _copy(source: Path, target: Path, progress: Callable[[int, int], None] | None) -> None:
    size = source.stat().st_size
    check_free_space(target.parent, size, source.name)
    partial = partial_path(target)
    done = 0
    try:
        with source.open("rb") as reader, partial.open("wb") as writer:
            for block in iter(lambda: reader.read(8 << 20), b""):
                writer.write(block)
                done += len(block)
                if progress is not None:
                    progress(done, size)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise DiskSpaceError(
                f"the disk filled up while copying {source.name}; nothing was imported"
            ) from None
        raise InputError(f"cannot copy {source} ({exc.strerror or exc})") from exc
    shutil.copystat(source, partial)
    os.replace(partial, target)


@dataclass(frozen=True)
class LocalStatus:
    """Whether a catalog file is in a folder; ``verified`` means downloaded and hash-checked by Gemma Desk."""

    state: Literal["verified", "installed", "partial", "missing"]
    path: Path
    partial_bytes: int = 0


def local_status(local_name: str, folder: Path | None = None) -> LocalStatus:
    target = (folder or models_dir()) / local_name
    if target.is_file():
        receipt = read_receipt(target)
        verified = receipt is not None and receipt.complete and receipt.size == target.stat().st_size
        return LocalStatus("verified" if verified else "installed", target)
    partial = partial_path(target)
    if partial.is_file():
        return LocalStatus("partial", target, partial.stat().st_size)
    return LocalStatus("missing", target)
