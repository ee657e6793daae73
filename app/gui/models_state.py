"""The model library as plain data: what can be downloaded, what is on disk, what is being fetched.

Qt-free on purpose: the model manager's controller mutates one :class:`ModelLibrary` on the GUI
thread and its widgets render snapshots of it, so every rule here (RAM fit, size estimates, which
projector a model needs) is tested without a window.

``model_io.discovery`` (which brings in huggingface_hub) is imported on first use, so a window that
starts with a saved model does not pay for it before it appears.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from model_io.catalog import CatalogEntry
from model_io.mmproj_build import default_output_name
from model_io.model_info import ModelInfo

if TYPE_CHECKING:
    from model_io.discovery import DiscoveryReport, LocalStatus, SearchRoots

#: RAM a loaded model needs beyond its file: KV cache (Gemma 3n at 8k context: ≈ 96 MiB),
#: llama.cpp's compute buffers and the app itself.  Conservative: the per-layer embedding table is
#: memory-mapped and only partly resident, so real use is usually below file size + this.
RUNTIME_OVERHEAD = 1 << 30
FITS_SHARE = 0.6  # at most this share of RAM leaves room for the system and other programs
TIGHT_SHARE = 0.85  # beyond this the system will swap

_BITS = re.compile(r"Q(\d)", re.IGNORECASE)


class RamFit(StrEnum):
    """Whether a model of a given size fits this computer's memory."""

    FITS = "fits"
    TIGHT = "tight"
    TOO_LARGE = "too large"
    UNKNOWN = "unknown"


JobKind = Literal["download", "build", "import"]
JobRole = Literal["text", "mmproj", "file"]  # "file": an import, whose kind is known once it is read
JobState = Literal["running", "cancelling", "failed", "cancelled", "done"]


@dataclass(frozen=True)
class JobProgress:
    """One progress report of any job; ``stage`` is the job's own word (downloading, checking…)."""

    stage: str
    done: int
    total: int
    bytes_per_s: float = 0.0
    eta_s: float | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


@dataclass(frozen=True)
class Job:
    """A download, projector build or import, keyed by the file it writes."""

    key: str
    kind: JobKind
    target: Path
    role: JobRole
    state: JobState = "running"
    progress: JobProgress | None = None
    error: str = ""

    @property
    def active(self) -> bool:
        return self.state in ("running", "cancelling")


@dataclass(frozen=True)
class ProjectorSource:
    """An official Hugging Face checkpoint the projector can be built from, for text models this deep.

    E2B and E4B are both 2048 wide; only their layer count (30 / 35) tells them apart.
    """

    variant: str
    repo_id: str
    n_layers: int

    @property
    def file_name(self) -> str:
        return default_output_name(self.repo_id)


GEMMA_3N_CHECKPOINTS: tuple[ProjectorSource, ...] = (
    ProjectorSource("E2B", "google/gemma-3n-E2B-it", 30),
    ProjectorSource("E4B", "google/gemma-3n-E4B-it", 35),
)


@dataclass(frozen=True)
class CatalogRow:
    """One downloadable text model with its local state and what it would cost in memory."""

    entry: CatalogEntry
    local: LocalStatus
    size: int | None  # download size: the catalog's, else estimated from a sibling quant
    size_is_estimate: bool
    ram_needed: int | None
    fit: RamFit
    job: Job | None = None

    @property
    def installed(self) -> bool:
        return self.local.state in ("verified", "installed")


@dataclass(frozen=True)
class ProjectorPlan:
    """How the model in use (or about to be) gets images and speech."""

    how: Literal["present", "download", "build", "none"]
    model_name: str = ""
    present: Path | None = None
    entry: CatalogEntry | None = None  # for "download"
    source: ProjectorSource | None = None  # for "build"
    target: Path | None = None  # where the download or build writes


def display_name(entry: CatalogEntry) -> str:
    """ "Gemma 3n E2B Q4_K_M": what a person calls the file (family names are not translated)."""
    family = {"gemma-3n": "Gemma 3n", "gemma-4": "Gemma 4"}.get(entry.family, entry.family)
    return f"{family} {entry.variant} {entry.quant}"


def total_ram_bytes() -> int | None:
    """Physical memory of this computer, or None when the platform will not say."""
    if sys.platform == "win32":
        import ctypes

        class _MemoryStatus(ctypes.Structure):
            _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong)] + [
                (name, ctypes.c_ulonglong)
                for name in ("total", "avail", "page_total", "page_avail", "virt_total", "virt_avail", "ext")
            ]

        status = _MemoryStatus()
        status.length = ctypes.sizeof(_MemoryStatus)
        ok = ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status))
        return int(status.total) if ok else None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def ram_fit(needed: int | None, total: int | None) -> RamFit:
    if needed is None or not total:
        return RamFit.UNKNOWN
    if needed <= total * FITS_SHARE:
        return RamFit.FITS
    return RamFit.TIGHT if needed <= total * TIGHT_SHARE else RamFit.TOO_LARGE


def estimated_size(entry: CatalogEntry, entries: Sequence[CatalogEntry]) -> tuple[int | None, bool]:
    """The catalog's size, else a sibling's (same family, variant, role and bit width); flag = estimate."""
    if entry.size is not None:
        return entry.size, False
    bits = _BITS.search(entry.quant)
    for other in entries:
        same = (other.family, other.variant, other.role) == (entry.family, entry.variant, entry.role)
        other_bits = _BITS.search(other.quant)
        if same and other.size is not None and bits and other_bits and bits[1] == other_bits[1]:
            return other.size, True
    return None, False


class ModelLibrary:
    """What the model manager shows; mutated only by its controller, on the GUI thread."""

    def __init__(
        self,
        entries: Sequence[CatalogEntry],
        folder: Path,
        total_ram: int | None,
        projector_sources: Sequence[ProjectorSource] = GEMMA_3N_CHECKPOINTS,
    ):
        self.entries = tuple(entries)
        self.folder = folder
        self.total_ram = total_ram
        self.projector_sources = tuple(projector_sources)
        self.found: DiscoveryReport | None = None
        self.jobs: dict[str, Job] = {}
        self._by_name = {entry.name: entry for entry in self.entries}

    # -- catalog ----------------------------------------------------------------------------------

    def text_entries(self) -> tuple[CatalogEntry, ...]:
        """Text models, Gemma 3n first (the app's own family), in catalog order otherwise."""
        text = [entry for entry in self.entries if entry.role == "text"]
        return tuple(sorted(text, key=lambda entry: entry.family != "gemma-3n"))

    def entry(self, name: str) -> CatalogEntry:
        return self._by_name[name]

    def catalog(self) -> list[CatalogRow]:
        return [self.row(entry) for entry in self.text_entries()]

    def row(self, entry: CatalogEntry) -> CatalogRow:
        size, estimate = estimated_size(entry, self.entries)
        needed = size + RUNTIME_OVERHEAD if size is not None else None
        from model_io.discovery import local_status

        local = local_status(entry.local_name, self.folder)
        job = self.jobs.get(self.key_for(local.path))
        return CatalogRow(entry, local, size, estimate, needed, ram_fit(needed, self.total_ram), job)

    def target_for(self, entry: CatalogEntry) -> Path:
        return self.folder / entry.local_name

    @staticmethod
    def key_for(target: Path) -> str:
        return str(target)

    # -- jobs -------------------------------------------------------------------------------------

    def start_job(self, kind: JobKind, target: Path, role: JobRole) -> Job:
        """Register a job for ``target``; ValueError if one is already running for that file."""
        key = self.key_for(target)
        current = self.jobs.get(key)
        if current is not None and current.active:
            raise ValueError(f"{target.name} is already being written")
        job = Job(key, kind, target, role)
        self.jobs[key] = job
        return job

    def update_job(self, key: str, **changes: object) -> Job | None:
        job = self.jobs.get(key)
        if job is None:
            return None
        self.jobs[key] = updated = replace(job, **changes)  # type: ignore[arg-type]
        return updated

    def forget_job(self, key: str) -> None:
        job = self.jobs.get(key)
        if job is not None and not job.active:
            del self.jobs[key]

    def active_jobs(self) -> list[Job]:
        return [job for job in self.jobs.values() if job.active]

    # -- projectors -------------------------------------------------------------------------------

    def source_for_depth(self, n_layers: int | None) -> ProjectorSource | None:
        return next((s for s in self.projector_sources if s.n_layers == n_layers), None)

    def source_for_entry(self, entry: CatalogEntry) -> ProjectorSource | None:
        if entry.family != "gemma-3n":
            return None
        return next((s for s in self.projector_sources if s.variant == entry.variant), None)

    def projector_plan(
        self, info: ModelInfo | None, projector: Path | None, entry: CatalogEntry | None = None
    ) -> ProjectorPlan:
        """For the loaded model (``info``), else a catalog ``entry``: the projector it has or can get."""
        if info is None:
            return self._plan_for_entry("", entry) if entry is not None else ProjectorPlan("none")
        name = info.name or info.path.name
        if projector is not None:
            return ProjectorPlan("present", name, present=projector)
        known = self._entry_for_file(info.path)
        if known is not None:
            return self._plan_for_entry(name, known)
        if info.architecture == "gemma3n":
            return self._build_plan(name, self.source_for_depth(info.n_layers))
        return ProjectorPlan("none", name)

    def _plan_for_entry(self, name: str, entry: CatalogEntry) -> ProjectorPlan:
        name = name or display_name(entry)
        paired = self._by_name.get(entry.mmproj) if entry.mmproj else None
        if paired is not None:
            return ProjectorPlan("download", name, entry=paired, target=self.target_for(paired))
        return self._build_plan(name, self.source_for_entry(entry))

    def _build_plan(self, name: str, source: ProjectorSource | None) -> ProjectorPlan:
        if source is None:
            return ProjectorPlan("none", name)
        return ProjectorPlan("build", name, source=source, target=self.folder / source.file_name)

    def _entry_for_file(self, path: Path) -> CatalogEntry | None:
        return next((e for e in self.entries if e.role == "text" and e.local_name == path.name), None)


def _default_roots() -> SearchRoots:
    from model_io.discovery import default_roots

    return default_roots()


@dataclass(frozen=True)
class LibraryConfig:
    """What the window's model manager works with; tests swap in a fake hub's catalog and checkpoints."""

    entries: Sequence[CatalogEntry] | None = None  # None: model_io.catalog.CATALOG
    folder: Path | None = None  # None: the models folder
    total_ram: int | None = field(default_factory=total_ram_bytes)
    projector_sources: Sequence[ProjectorSource] = GEMMA_3N_CHECKPOINTS
    endpoint: str | None = None  # None: HF_ENDPOINT or the public hub
    search_roots: Callable[[], SearchRoots] = _default_roots  # where "On this computer" looks
