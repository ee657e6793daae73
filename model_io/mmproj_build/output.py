"""The projector file being built: ``OUT.partial`` at full size, plus a journal of finished tensors.

The GGUF header (metadata and tensor table) is known before any weight arrives, and with it
every tensor's final offset, so each fetched tensor is converted and written straight into its
place: RAM holds one piece at a time, the disk never holds a second copy, and the partial file
itself is the work area a re-run resumes from.  The journal (``.OUT.build.json``, JSON lines)
starts with the build's identity and records, after each piece is flushed to disk, the tensors
it completed with a CRC-32 of their bytes.  A re-run with the same identity keeps those; any
other partial build is discarded.  Before the rename, every tensor is read back and checked
against its CRC, and the header is validated like any user file.  ``.partial`` names are never
picked up by discovery or ``*.gguf`` globs, so a half-built file never looks complete.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from gguf import GGUFWriter

from model_io.download import DISK_RESERVE, DiskSpaceError, check_free_space, partial_path
from model_io.errors import ModelFileError
from model_io.gguf_check import validate_gguf
from model_io.synth.gemma3n_text import TensorSpec
from model_io.synth.random_blocks import tensor_nbytes

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_READ_BLOCK = 16 << 20


@dataclass(frozen=True)
class Layout:
    """The rendered GGUF header and where each tensor's bytes go."""

    header: bytes
    offsets: dict[str, int]
    sizes: dict[str, int]
    total_size: int


def render_layout(
    add_metadata: Callable[[GGUFWriter], None], specs: Iterable[TensorSpec], work_dir: Path
) -> Layout:
    """Header bytes from gguf-py's own writer (as the synthetic writer makes them), and the data layout."""
    specs = list(specs)
    writer = GGUFWriter(None, "clip")
    add_metadata(writer)
    sizes = {s.name: tensor_nbytes(s.qtype, math.prod(s.shape)) for s in specs}
    for spec in specs:
        shape = tuple(reversed(spec.shape))
        writer.add_tensor_info(spec.name, shape, np.dtype(np.float32), sizes[spec.name], raw_dtype=spec.qtype)
    handle, name = tempfile.mkstemp(prefix=".mmproj-header-", dir=work_dir)
    os.close(handle)
    scratch = Path(name)
    try:
        writer.write_header_to_file(scratch)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        writer.close()
        header = scratch.read_bytes()
    finally:
        writer.close()
        scratch.unlink(missing_ok=True)
    align = writer.data_alignment
    offset = _pad(len(header), align)
    offsets = {}
    for spec in specs:
        offsets[spec.name] = offset
        offset += _pad(sizes[spec.name], align)
    return Layout(header, offsets, sizes, offset)


def journal_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.build.json")


class PartialBuild:
    """``OUT.partial`` and its journal for one build identity."""

    def __init__(self, target: Path, layout: Layout, identity: str) -> None:
        self.target, self.layout, self.identity = target, layout, identity
        self.partial = partial_path(target)
        self.journal = journal_path(target)
        self.done: dict[str, int] = {}  # tensor name -> CRC-32 of its stored bytes
        self._handle: BinaryIO | None = None

    def open(self) -> None:
        """Resume a matching partial build, else start a new one (after checking the disk has room)."""
        if self._resume():
            check_free_space(self.target.parent, self._unallocated(), self.target.name)
        else:
            self.discard()
            check_free_space(self.target.parent, self.layout.total_size, self.target.name)
            self._create()
        self._handle = open(self.partial, "r+b")  # noqa: SIM115 - closed in close()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def discard(self) -> None:
        self.close()
        self.partial.unlink(missing_ok=True)
        self.journal.unlink(missing_ok=True)
        self.done = {}

    def write(self, name: str, data: bytes) -> int:
        """Put a tensor's stored bytes in place; returns their CRC-32 (recorded by :meth:`commit`)."""
        assert self._handle is not None
        if len(data) != self.layout.sizes[name]:
            raise AssertionError(f"{name}: {len(data)} bytes, the layout has {self.layout.sizes[name]}")
        try:
            self._handle.seek(self.layout.offsets[name])
            self._handle.write(data)
        except OSError as exc:
            raise self._disk_error(exc) from None
        return zlib.crc32(data)

    def commit(self, finished: dict[str, int]) -> None:
        """Make the tensors durable, then journal them (so a journaled tensor is always on disk)."""
        assert self._handle is not None
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            with self.journal.open("a", encoding="utf-8") as journal:
                journal.write(json.dumps({"done": finished}) + "\n")
                journal.flush()
                os.fsync(journal.fileno())
        except OSError as exc:
            raise self._disk_error(exc) from None
        self.done.update(finished)

    def verify(self, on_bytes: Callable[[int], None]) -> None:
        """Read every tensor back and compare with its journaled CRC; forget and report any that differ."""
        assert self._handle is not None
        bad = []
        for name, offset in self.layout.offsets.items():
            crc, remaining = 0, self.layout.sizes[name]
            self._handle.seek(offset)
            while remaining:
                block = self._handle.read(min(_READ_BLOCK, remaining))
                if not block:
                    break
                crc = zlib.crc32(block, crc)
                remaining -= len(block)
                on_bytes(len(block))
            if remaining or self.done.get(name) != crc:
                bad.append(name)
        if bad:
            for name in bad:
                self.done.pop(name, None)
            self._rewrite_journal()
            raise ModelFileError(
                f"{self.partial.name}: {len(bad)} tensors read back differently than written "
                f"(e.g. {bad[0]}); run the build again to fetch them anew"
            )
        summary = validate_gguf(self.partial, expect="mmproj")
        placed = {t.name: t.offset for t in summary.tensors}
        if placed != self.layout.offsets or summary.file_size != self.layout.total_size:
            raise AssertionError("the written GGUF header disagrees with the planned tensor layout")

    def finish(self) -> None:
        """Rename into place (atomic) and drop the journal."""
        assert self._handle is not None
        os.fsync(self._handle.fileno())
        self.close()
        os.replace(self.partial, self.target)
        self.journal.unlink(missing_ok=True)

    # -- internals -------------------------------------------------------------------------------

    def _resume(self) -> bool:
        try:
            lines = self.journal.read_text(encoding="utf-8").splitlines()
            first = json.loads(lines[0])
        except (OSError, ValueError, IndexError):
            return False
        if first.get("identity") != self.identity:
            return False
        try:
            if self.partial.stat().st_size != self.layout.total_size:
                return False
        except OSError:
            return False
        for line in lines[1:]:
            with contextlib.suppress(ValueError, AttributeError, TypeError):  # a torn last line
                self.done.update({str(k): int(v) for k, v in json.loads(line)["done"].items()})
        self.done = {k: v for k, v in self.done.items() if k in self.layout.offsets}
        return True

    def _unallocated(self) -> int:
        """Bytes a resumed partial file may still need (it is sparse where the OS could not reserve)."""
        stat = self.partial.stat()
        blocks = getattr(stat, "st_blocks", None)
        allocated = stat.st_size if blocks is None else blocks * 512
        return max(0, self.layout.total_size - allocated)

    def _create(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.partial, "wb") as handle:
                _allocate(handle, self.layout.total_size)
                handle.write(self.layout.header)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            self.partial.unlink(missing_ok=True)
            raise self._disk_error(exc) from None
        self._rewrite_journal()

    def _rewrite_journal(self) -> None:
        temporary = self.journal.with_name(self.journal.name + ".tmp")
        lines = [json.dumps({"identity": self.identity, "target": self.target.name})]
        if self.done:
            lines.append(json.dumps({"done": self.done}))
        temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(temporary, self.journal)

    def _disk_error(self, exc: OSError) -> Exception:
        if exc.errno in _DISK_FULL:
            return DiskSpaceError(
                f"the disk filled up while building {self.partial}; free "
                f"{(self.layout.total_size + DISK_RESERVE) / 1e9:.2f} GB and run the build again "
                "(finished tensors are kept)"
            )
        return ModelFileError(f"cannot write {self.partial} ({exc.strerror or exc})")


def _allocate(handle: BinaryIO, size: int) -> None:
    """Reserve the whole file now where the OS can, so a full disk shows up before any transfer."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is not None:
        try:
            fallocate(handle.fileno(), 0, size)
            return
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise
    handle.truncate(size)


def _pad(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment
