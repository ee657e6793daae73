"""The build, stage by stage: read the checkpoint's layout, fetch and convert the towers, verify, rename.

``header``: the repo listing (which pins the commit), ``config.json`` (must be Gemma 3n), the
shard index and the safetensors headers of the shards that hold tower tensors.
``fetch``: the missing tower tensors, in pieces of up to :data:`PIECE_BYTES` made of tensors
that lie back to back in one shard (one range request each, never including a text-model
byte), each converted and written into place, then journaled.
``write`` / ``verify``: the file is flushed, read back against the journal, validated and renamed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from filelock import Timeout as LockTimeout
from huggingface_hub.utils import WeakFileLock

from model_io.errors import GemmaDeskError, InputError, ModelFileError, UnsupportedModelError
from model_io.gguf_check import validate_gguf
from model_io.hub_http import DownloadCancelled, DownloadProgress, ProgressMeter
from model_io.mmproj_build import BuildProgress, BuildResult, names
from model_io.mmproj_build.checkpoint import (
    CONFIG_FILE,
    INDEX_FILE,
    SINGLE_FILE,
    HubCheckpoint,
    SourceTensor,
    shards_for,
)
from model_io.mmproj_build.convert import convert
from model_io.mmproj_build.output import PartialBuild, render_layout
from model_io.mmproj_build.plan import (
    KEY_COMMIT,
    KEY_REPO,
    BuildPlan,
    OutputTensor,
    check_gemma3n_config,
    plan_build,
)

PIECE_BYTES = 32 << 20  # one range request; also the most tensor data held in RAM at once
ProgressFn = Callable[[BuildProgress], None]


@dataclass(frozen=True)
class Piece:
    """Tensors lying back to back in one shard, fetched with one range request."""

    shard: str
    begin: int
    end: int
    tensors: tuple[OutputTensor, ...]


def run_build(
    repo_id: str,
    out_path: Path,
    *,
    token: str | None,
    endpoint: str | None,
    revision: str,
    progress: ProgressFn | None,
    cancel: threading.Event | None,
) -> BuildResult:
    repo = repo_id.strip().strip("/")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise InputError(f"{repo_id!r} is not a Hugging Face repository id like google/gemma-3n-E2B-it")
    if out_path.suffix.lower() != ".gguf":
        raise InputError(f"the projector must be written to a .gguf file, not {out_path}")
    report = progress or (lambda _p: None)
    hub = HubCheckpoint(repo, revision, token=token, endpoint=endpoint, cancel=cancel)
    report(BuildProgress("header", 0, 0, 0.0, None))
    files = hub.list_files()  # pins the commit
    existing = _already_built(out_path, hub)
    if existing is not None:
        return existing
    plan = read_plan(hub, files, report)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    lock = out_path.with_name(f".{out_path.name}.lock")
    try:
        with WeakFileLock(lock, timeout=1.0):
            return _build_locked(plan, hub, out_path, report)
    except LockTimeout:
        raise InputError(f"{out_path.name} is already being built by another Gemma Desk process") from None


def read_plan(hub: HubCheckpoint, files: set[str], report: ProgressFn) -> BuildPlan:
    """The ``header`` stage: everything needed to lay out the file, nothing of the weights."""

    def header_progress() -> None:
        report(BuildProgress("header", hub.received, 0, 0.0, None))

    if CONFIG_FILE not in files:
        raise UnsupportedModelError(f"{hub.repo} has no config.json, so it is not a transformers checkpoint")
    config = hub.read_json(CONFIG_FILE)
    check_gemma3n_config(hub.repo, config)
    header_progress()
    weight_map = _weight_map(hub, files)
    wanted = [name for name in weight_map if names.tower_of(name) is not None]
    sources: dict[str, SourceTensor] = {}
    for shard in shards_for(weight_map, wanted):
        if shard not in files:
            raise ModelFileError(f"{hub.repo}: the index names {shard}, which the repo does not have")
        header = hub.read_header(shard)
        header_progress()
        for name in wanted:
            if weight_map[name] == shard:
                if name not in header:
                    raise ModelFileError(
                        f"{hub.repo}: the index puts {name} in {shard}, whose header lacks it"
                    )
                sources[name] = header[name]
    digests = {shard: hub.shard_digest(shard) for shard in {s.shard for s in sources.values()}}
    return plan_build(hub.repo, hub.revision, config, sources, digests)


def _weight_map(hub: HubCheckpoint, files: set[str]) -> dict[str, str]:
    if INDEX_FILE in files:
        index = hub.read_json(INDEX_FILE)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
        ):
            raise ModelFileError(f"{hub.repo}/{INDEX_FILE} has no weight_map of tensor names to files")
        return weight_map
    if SINGLE_FILE in files:
        return dict.fromkeys(hub.read_header(SINGLE_FILE), SINGLE_FILE)
    raise UnsupportedModelError(
        f"{hub.repo} has no safetensors weights ({INDEX_FILE} or {SINGLE_FILE}); "
        "the projector is built from the original checkpoint, e.g. google/gemma-3n-E2B-it"
    )


def _already_built(out_path: Path, hub: HubCheckpoint) -> BuildResult | None:
    """An existing file built from this very commit is the answer; anything else is not overwritten."""
    if not out_path.exists():
        return None
    try:
        kv = validate_gguf(out_path, expect="mmproj").kv
    except GemmaDeskError:
        kv = {}
    if kv.get(KEY_REPO) == hub.repo and kv.get(KEY_COMMIT) == hub.revision:
        return BuildResult(
            out_path,
            out_path.stat().st_size,
            hub.received,
            kv.get("clip.has_vision_encoder") is True,
            kv.get("clip.has_audio_encoder") is True,
        )
    raise InputError(
        f"{out_path} already exists and was not built from {hub.repo}@{hub.revision[:12]}; "
        "move it away or choose another output path"
    )


def _build_locked(plan: BuildPlan, hub: HubCheckpoint, out_path: Path, report: ProgressFn) -> BuildResult:
    layout = render_layout(plan.add_metadata, [t.spec for t in plan.tensors], out_path.parent)
    build = PartialBuild(out_path, layout, plan.identity())
    build.open()
    try:
        _fetch(plan, hub, build, report)
        _meter("write", layout.total_size, layout.total_size, report).finish()
        verify = _meter("verify", 0, sum(layout.sizes.values()), report)
        build.verify(verify.add)
        verify.finish()
        build.finish()
    finally:
        build.close()
    return BuildResult(
        out_path, layout.total_size, hub.received, plan.vision is not None, plan.audio is not None
    )


def _fetch(plan: BuildPlan, hub: HubCheckpoint, build: PartialBuild, report: ProgressFn) -> None:
    missing = [t for t in plan.tensors if t.spec.name not in build.done]
    total = sum(t.source.n_bytes for t in plan.tensors)
    meter = _meter("fetch", total - sum(t.source.n_bytes for t in missing), total, report)
    for piece in coalesce(missing, PIECE_BYTES):
        try:
            data = hub.read_range(piece.shard, piece.begin, piece.end, meter.add)
        except DownloadCancelled:
            raise DownloadCancelled(
                f"building {build.target.name} was cancelled; {len(build.done)} of {len(plan.tensors)} "
                f"tensors are kept in {build.partial.name}, run the build again to resume"
            ) from None
        view = memoryview(data)
        finished = {}
        for tensor in piece.tensors:
            raw = view[tensor.source.begin - piece.begin : tensor.source.end - piece.begin]
            stored = convert(raw, tensor.source.dtype, tensor.spec.qtype, tensor.source.name)
            finished[tensor.spec.name] = build.write(tensor.spec.name, stored)
        build.commit(finished)
    meter.finish()


def coalesce(tensors: Iterable[OutputTensor], max_bytes: int) -> list[Piece]:
    """Group tensors that are contiguous in one shard into pieces of at most ``max_bytes`` (or one tensor)."""
    pieces: list[Piece] = []
    current: list[OutputTensor] = []
    for tensor in sorted(tensors, key=lambda t: (t.source.shard, t.source.begin)):
        if current:
            last, first = current[-1].source, current[0].source
            adjacent = tensor.source.shard == last.shard and tensor.source.begin == last.end
            if adjacent and tensor.source.end - first.begin <= max_bytes:
                current.append(tensor)
                continue
            pieces.append(_piece(current))
        current = [tensor]
    if current:
        pieces.append(_piece(current))
    return pieces


def _piece(tensors: list[OutputTensor]) -> Piece:
    return Piece(tensors[0].source.shard, tensors[0].source.begin, tensors[-1].source.end, tuple(tensors))


def _meter(stage: str, done: int, total: int, report: ProgressFn) -> ProgressMeter:
    """download.py's rate/ETA meter, reporting BuildProgress for ``stage``."""

    def relay(p: DownloadProgress) -> None:
        report(BuildProgress(stage, p.done, p.total, p.bytes_per_s, p.eta_s))

    return ProgressMeter("downloading", done, total, relay)


__all__ = ["PIECE_BYTES", "Piece", "coalesce", "read_plan", "run_build"]
