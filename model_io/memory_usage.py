"""Where this process's RAM goes: per file mapping, per page range, per llama.cpp buffer.

Resident set size alone cannot tell a 1.6 GB per-layer-embedding (PLE) table that
is merely *mapped* from one that is *in RAM*, and it counts file pages the kernel
can drop at any time together with heap the model cannot live without.  So the
engine measures parts separately:

* file-backed weights: ``Rss`` of the GGUF's mappings in ``/proc/self/smaps``,
  split by tensor ranges with ``/proc/self/pagemap``'s present bit (which pages
  of a range are mapped into this process right now);
* llama.cpp's own heap buffers (repacked weights, KV cache, compute and output
  buffers): the sizes llama.cpp logs when it allocates them (the C API has no
  call for them), parsed by :func:`parse_buffer_sizes`;
* the towers: their own ``resident_bytes``.

Linux gives exact figures.  Elsewhere (macOS, Windows) there is no smaps or
pagemap: :func:`process_rss_bytes` falls back to the peak RSS from ``getrusage``
(an upper bound; 0 on Windows), file ranges count as fully resident and
:func:`release_file_range` does nothing, so figures there are estimates.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import mmap
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol

PAGE_SIZE = mmap.PAGESIZE
_PRESENT_BIT = 1 << 63
_MADV_RANDOM = 1  # Linux values, the same on every Linux architecture
_MADV_WILLNEED = 3
_MADV_DONTNEED = 4
_KIB = 1024
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Mapping:
    """One entry of /proc/self/smaps (sizes in bytes)."""

    start: int
    end: int
    offset: int
    path: str
    rss: int
    anonymous: int

    @property
    def size(self) -> int:
        return self.end - self.start

    def address_of(self, file_offset: int) -> int:
        return self.start + file_offset - self.offset

    def covers(self, file_start: int, file_end: int) -> tuple[int, int] | None:
        """The part of file range [file_start, file_end) this mapping holds, as file offsets."""
        lo = max(file_start, self.offset)
        hi = min(file_end, self.offset + self.size)
        return (lo, hi) if lo < hi else None


def is_linux() -> bool:
    return sys.platform.startswith("linux")


def read_smaps(pid: str = "self") -> list[Mapping] | None:
    """Every mapping of the process with its Rss and Anonymous bytes; None where smaps is missing."""
    try:
        text = Path(f"/proc/{pid}/smaps").read_text(errors="replace")
    except OSError:
        return None
    mappings: list[Mapping] = []
    head: list[str] | None = None
    values: dict[str, int] = {}
    for line in text.splitlines():
        first = line.split(maxsplit=1)[0] if line else ""
        if first.endswith(":") and head is not None:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                values[first[:-1]] = int(parts[1]) * _KIB
            continue
        if head is not None:
            mappings.append(_mapping(head, values))
        head, values = line.split(maxsplit=5), {}
    if head is not None:
        mappings.append(_mapping(head, values))
    return mappings


def _mapping(head: list[str], values: dict[str, int]) -> Mapping:
    start, end = (int(x, 16) for x in head[0].split("-"))
    path = head[5].strip() if len(head) > 5 else ""
    return Mapping(start, end, int(head[2], 16), path, values.get("Rss", 0), values.get("Anonymous", 0))


def file_mappings(path: str | os.PathLike[str], mappings: Iterable[Mapping] | None = None) -> list[Mapping]:
    """The mappings of ``path`` (resolved, so symlinks match) in this process."""
    target = os.path.realpath(path)
    entries = read_smaps() if mappings is None else mappings
    return [m for m in entries or () if m.path == target]


def process_rss_bytes() -> int:
    """Resident set size now (Linux: VmRSS); elsewhere the peak from getrusage, or 0 if unknown."""
    status = _status_field("VmRSS")
    return status if status is not None else peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Peak resident set size (Linux: VmHWM, which :func:`reset_peak_rss` can reset)."""
    status = _status_field("VmHWM")
    if status is not None:
        return status
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * _KIB)


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def return_free_heap() -> bool:
    """Give freed heap pages back to the OS (glibc ``malloc_trim``); False where there is none.

    Released towers free hundreds of megabytes, much of it in chunks glibc keeps for
    reuse rather than returning; without this, releasing a tower would barely lower RSS.
    """
    trim = getattr(_libc(), "malloc_trim", None) if is_linux() else None
    if trim is None:
        return False
    trim(0)
    return True


def _status_field(name: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{name}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) * _KIB if match else None


def resident_in_file_range(mappings: Sequence[Mapping], file_start: int, file_end: int) -> int | None:
    """Bytes of file range [file_start, file_end) mapped into this process right now (pagemap).

    None when pagemap cannot be read (not Linux, or locked down); whole pages are counted.
    """
    total = 0
    try:
        with open("/proc/self/pagemap", "rb") as pagemap:
            for mapping in mappings:
                span = mapping.covers(file_start, file_end)
                if span is None:
                    continue
                first = mapping.address_of(span[0]) // PAGE_SIZE
                last = (mapping.address_of(span[1]) + PAGE_SIZE - 1) // PAGE_SIZE
                total += _present_pages(pagemap, first, last) * PAGE_SIZE
    except OSError:
        return None
    return total


def _present_pages(pagemap: object, first: int, last: int, chunk: int = 1 << 16) -> int:
    import numpy as np

    handle = pagemap  # a binary file object
    present = 0
    for page in range(first, last, chunk):
        count = min(chunk, last - page)
        handle.seek(page * 8)  # type: ignore[attr-defined]
        entries = np.frombuffer(handle.read(count * 8), dtype=np.uint64)  # type: ignore[attr-defined]
        present += int(np.count_nonzero(entries & np.uint64(_PRESENT_BIT)))
    return present


def release_file_range(mappings: Sequence[Mapping], file_start: int, file_end: int) -> int:
    """Drop this process's pages of a read-only shared file range; returns the bytes asked.

    ``madvise(MADV_DONTNEED)`` on a ``MAP_SHARED`` file mapping only unmaps the
    pages from this process: the data stays in the page cache and the next read
    faults it back in (a minor fault), so nothing is lost.  Only whole pages
    inside the range are released.  Does nothing off Linux.
    """
    return _advise(mappings, file_start, file_end, _MADV_DONTNEED) if is_linux() else 0


def advise_random(mappings: Sequence[Mapping], file_start: int, file_end: int) -> None:
    """``madvise(MADV_RANDOM)``: no read-ahead when faulting rows of a randomly indexed table."""
    if is_linux():
        _advise(mappings, file_start, file_end, _MADV_RANDOM)


def evict_from_page_cache(path: str | os.PathLike[str], file_start: int, file_end: int) -> None:
    """Drop a file range's clean pages from the page cache (pages another process maps stay).

    After this, faults bring in only the pages read (small folios) instead of the
    large folios a sequential read-ahead left behind, so a table indexed by token id
    costs a few pages per distinct token rather than about a megabyte.
    """
    if not hasattr(os, "posix_fadvise"):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, file_start, file_end - file_start, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _advise(mappings: Sequence[Mapping], file_start: int, file_end: int, advice: int) -> int:
    libc = _libc()
    done = 0
    for mapping in mappings:
        span = mapping.covers(file_start, file_end)
        if span is None:
            continue
        lo = -(-mapping.address_of(span[0]) // PAGE_SIZE) * PAGE_SIZE
        hi = mapping.address_of(span[1]) // PAGE_SIZE * PAGE_SIZE
        if hi > lo and libc.madvise(ctypes.c_void_p(lo), ctypes.c_size_t(hi - lo), advice) == 0:
            done += hi - lo
    return done


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    libc.madvise.restype = ctypes.c_int
    return libc


# -- llama.cpp's buffers, from its log -----------------------------------------------------------

_BUFFER_LINE = re.compile(
    r"(?P<buft>[\w\-]+)\s+(?P<what>model|KV|compute|output) buffer size =\s+(?P<mib>[\d.]+) MiB"
)


@dataclass(frozen=True)
class LlamaBuffers:
    """Sizes of the buffers llama.cpp allocated for one model and context (bytes).

    ``model`` maps buffer type to size: ``CPU_Mapped`` is the file mapping (not
    heap), ``CPU_REPACK`` and ``CPU`` are heap copies of weights.
    """

    model: dict[str, int] = field(default_factory=dict)
    kv: int = 0
    compute: int = 0
    output: int = 0

    @property
    def heap_weights(self) -> int:
        """Weights copied into heap buffers (everything but the mapped file)."""
        return sum(size for buft, size in self.model.items() if not buft.endswith("_Mapped"))


def parse_buffer_sizes(lines: Iterable[str]) -> LlamaBuffers:
    """Read llama.cpp's "<type> <kind> buffer size = N MiB" log lines."""
    model: dict[str, int] = {}
    sums = {"KV": 0, "compute": 0, "output": 0}
    for line in lines:
        match = _BUFFER_LINE.search(line)
        if match is None:
            continue
        size = round(float(match["mib"]) * _MIB)
        if match["what"] == "model":
            model[match["buft"]] = model.get(match["buft"], 0) + size
        else:
            sums[match["what"]] += size
    return LlamaBuffers(model, sums["KV"], sums["compute"], sums["output"])


# -- one loaded text model -----------------------------------------------------------------------

PLE_TENSOR = "per_layer_token_embd.weight"
REPACK_BUFFER = "CPU_REPACK"
# llama.cpp's CPU repack on x86-64 with AVX2 (ggml-cpu/repack.cpp): 2-D weights of these types with a
# multiple of 8 rows are copied into interleaved heap buffers and never read from the file again.
REPACKED_TYPES = frozenset({"Q4_0", "Q4_K", "IQ4_NL", "MXFP4"})


class TensorLike(Protocol):
    """What :meth:`ModelFootprint.of` needs from a header's tensor entry (``GgufTensor`` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def offset(self) -> int: ...
    @property
    def n_bytes(self) -> int: ...
    @property
    def type_name(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...


class TensorRange(NamedTuple):
    """Where a tensor's bytes lie in its file."""

    name: str
    start: int
    end: int


def _range(tensor: TensorLike) -> TensorRange:
    return TensorRange(tensor.name, tensor.offset, tensor.offset + tensor.n_bytes)


def repack_candidates(tensors: Iterable[TensorLike]) -> list[TensorLike]:
    """The layer weights llama.cpp repacks on an x86-64 CPU with AVX2 (see :data:`REPACKED_TYPES`)."""
    return [
        t
        for t in tensors
        if t.name.startswith("blk.")
        and len(t.shape) == 2
        and t.type_name in REPACKED_TYPES
        and t.shape[1] % 8 == 0
    ]


def repacked_tensors(tensors: Iterable[TensorLike], repack_bytes: int) -> list[TensorRange]:
    """Which tensors llama.cpp repacked: the x86 rule, trusted only when it accounts for the buffer
    size llama.cpp logged (to its 0.01 MiB rounding plus alignment); otherwise none are assumed."""
    candidates = repack_candidates(tensors)
    total = sum(t.n_bytes for t in candidates)
    if not candidates or abs(total - repack_bytes) > _MIB // 100 + 64 * len(candidates):
        return []
    return [_range(t) for t in candidates]


@dataclass(frozen=True)
class FootprintReading:
    """One measurement of a loaded text model (bytes).

    ``text``: weights resident (mapped file pages outside the PLE table plus heap
    copies); ``ple_resident``: pages of the PLE table mapped in right now;
    ``ple_mapped``: the whole table, mapped but not necessarily resident.
    """

    text: int
    ple_resident: int
    ple_mapped: int
    kv_cache: int
    compute: int


class ModelFootprint:
    """Measures, and after loading trims, the RAM one loaded text model holds.

    llama.cpp maps the GGUF with ``MAP_POPULATE``, so right after loading every
    page of the file is resident: the 1.6 to 1.9 GB PLE table, of which a decode
    reads one row per token, and the source pages of weights llama.cpp has copied
    into repacked heap buffers, which it never reads again.  :meth:`release_after_load`
    gives all of them back; what decoding does read faults back in from the page cache.
    """

    def __init__(
        self,
        path: Path,
        ple: TensorRange | None,
        file_size: int,
        buffers: LlamaBuffers,
        repacked: Sequence[TensorRange] = (),
        ple_rows: int = 0,
    ):
        self.path = Path(path)
        self.ple = ple
        self.file_size = file_size
        self.buffers = buffers
        self.repacked = tuple(repacked)
        self.ple_rows = ple_rows
        self._ple_pages: tuple[int, int] | None = None  # (address of the table, rows) once released

    @classmethod
    def of(
        cls, path: Path, tensors: Iterable[TensorLike], file_size: int, buffers: LlamaBuffers
    ) -> ModelFootprint:
        """The footprint of a model loaded from ``path``, whose header lists ``tensors``."""
        entries = list(tensors)
        table = next((t for t in entries if t.name == PLE_TENSOR), None)
        ple = _range(table) if table is not None else None
        rows = table.shape[-1] if table is not None and len(table.shape) == 2 else 0
        repacked = repacked_tensors(entries, buffers.model.get(REPACK_BUFFER, 0))
        return cls(path, ple, file_size, buffers, repacked, rows)

    @property
    def mapped(self) -> bool:
        """True when llama.cpp serves weights from the file mapping (mmap load)."""
        return any(buft.endswith("_Mapped") for buft in self.buffers.model)

    @property
    def ple_bytes(self) -> int:
        return self.ple.end - self.ple.start if self.ple else 0

    def release_after_load(self) -> int:
        """Unmap the PLE table and the repacked weights' file pages; keep the PLE out of the page cache.

        The PLE table also gets ``MADV_RANDOM`` and is dropped from the page cache, so
        each token's row later costs a few small pages instead of a large read-ahead
        folio.  Returns the bytes released (0 off Linux, or when nothing was mapped).
        """
        if not self.mapped or not is_linux():
            return 0
        mappings = file_mappings(self.path)
        released = sum(release_file_range(mappings, r.start, r.end) for r in self.repacked)
        if self.ple is not None:
            released += release_file_range(mappings, self.ple.start, self.ple.end)
            advise_random(mappings, self.ple.start, self.ple.end)
            evict_from_page_cache(self.path, self.ple.start, self.ple.end)
            span = (self.ple.start, self.ple.end)
            holder = next((m for m in mappings if m.covers(*span) == span), None)
            if holder is not None and self.ple_rows:
                self._ple_pages = (holder.address_of(self.ple.start), self.ple_rows)
        return released

    def prefetch_rows(self, tokens: Sequence[int]) -> None:
        """Ask the kernel for the PLE rows of ``tokens`` all at once (``MADV_WILLNEED``).

        With the table out of the page cache, llama.cpp would otherwise fault each new
        token's row in one after the other while it runs the batch; reading them in
        parallel first is what keeps prefill as fast as with the table cached.
        """
        if self.ple is None or not self._ple_pages or len(tokens) < 2:
            return
        libc, (address, n_rows) = _libc(), self._ple_pages
        row = (self.ple.end - self.ple.start) // n_rows
        for token in sorted(set(tokens)):
            if 0 <= token < n_rows:
                start = address + token * row
                aligned = start // PAGE_SIZE * PAGE_SIZE
                libc.madvise(ctypes.c_void_p(aligned), ctypes.c_size_t(start + row - aligned), _MADV_WILLNEED)

    def measure(self) -> FootprintReading:
        """Resident bytes per part now; off Linux, mapped weights outside the PLE count as resident."""
        heap = self.buffers.heap_weights
        kv, compute = self.buffers.kv, self.buffers.compute + self.buffers.output
        if not self.mapped:  # everything, the PLE table too, was read into heap buffers
            return FootprintReading(heap - self.ple_bytes, self.ple_bytes, 0, kv, compute)
        mappings = file_mappings(self.path) if is_linux() else []
        ple_resident = None
        if mappings and self.ple is not None:
            ple_resident = resident_in_file_range(mappings, self.ple.start, self.ple.end)
        if not mappings or ple_resident is None:  # no smaps/pagemap: assume the usual working set
            return FootprintReading(heap + self.file_size - self.ple_bytes, 0, self.ple_bytes, kv, compute)
        file_rss = sum(m.rss for m in mappings)
        return FootprintReading(heap + file_rss - ple_resident, ple_resident, self.ple_bytes, kv, compute)
