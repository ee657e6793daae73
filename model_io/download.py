"""Download GGUF files from the Hugging Face Hub into the models folder: resumable, verified, cancellable.

Why not ``hf_hub_download``: in huggingface_hub 2.4.0 it writes to a process-unique temporary
file that it deletes on any failure (``file_download._download_to_tmp_and_move``), so a broken
3 GB transfer restarts from zero after an app restart; it has no cancel hook, reports progress
only through tqdm, trusts the ETag without hashing the bytes it wrote, and stores files in the
cache's blob/symlink layout instead of our models folder.  So the transfer loop is ours, built
on huggingface_hub's own pieces: ``hf_hub_url`` + ``get_hf_file_metadata`` (HEAD: X-Repo-Commit,
X-Linked-Etag = the LFS sha256, X-Linked-Size, CDN location), ``HfApi.model_info(files_metadata=
True)`` when the HEAD carries no sha256, ``build_hf_headers`` (token from the argument, HF_TOKEN
or ``hf auth login``), ``get_session`` (the shared client, honouring HF_HUB_OFFLINE and custom
client factories) and ``hf_raise_for_status`` (typed 401/403/404 errors).

On disk: ``NAME.gguf.partial`` grows during the transfer (never a name discovery or ``*.gguf``
globs pick up), ``.NAME.gguf.download.json`` records what the partial belongs to (so a resume
after a restart only continues the same remote file), and the partial is renamed to ``NAME.gguf``
only after its size and digest match the hub's.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx2
from filelock import Timeout as LockTimeout  # huggingface_hub's own dependency
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import (
    HfHubHTTPError,
    OfflineModeIsEnabled,
)
from huggingface_hub.utils import WeakFileLock, get_session

from model_io.catalog import FileSource
from model_io.errors import InputError
from model_io.hub_http import (  # the errors and progress type are this module's API too
    TIMEOUT,
    ChecksumMismatchError,
    DigestAlgo,
    DiskSpaceError,
    DownloadCancelled,
    DownloadError,
    ProgressCallback,
    ProgressMeter,
    RetryableStatus,
    abort_on_cancel,
    auth_headers,
    hub_endpoint,
    hub_error,
    new_hasher,
    raise_for_status,
)
from model_io.hub_http import (
    AccessDeniedError as AccessDeniedError,
)
from model_io.hub_http import (
    DownloadProgress as DownloadProgress,
)
from model_io.paths import models_dir

PARTIAL_SUFFIX = ".partial"
DISK_RESERVE = 64 << 20  # never fill a disk to the last byte
RETRY_DELAY = 1.0  # seconds before the first resumed retry; doubles up to 8 s
_BLOCK = 8 << 20
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class RemoteFile:
    """What the hub says about the file right now."""

    url: str  # where the bytes come from (often a CDN location)
    size: int
    digest_algo: DigestAlgo
    digest: str
    commit: str | None


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    size: int
    digest_algo: DigestAlgo
    digest: str
    commit: str | None
    resumed_from: int  # bytes reused from the partial file
    transferred: int  # bytes received over the network by this call
    already_present: bool
    catalog_match: bool | None  # the catalog's sha256 equals the hub's (None: no catalog value)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


@dataclass(frozen=True)
class Receipt:
    """Sidecar written next to a download: which remote file the partial or final file is."""

    repo: str
    filename: str
    revision: str | None
    commit: str | None
    digest_algo: str
    digest: str
    size: int
    complete: bool


def partial_path(target: Path) -> Path:
    return target.with_name(target.name + PARTIAL_SUFFIX)


def receipt_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.download.json")


def read_receipt(target: Path) -> Receipt | None:
    """The sidecar of ``target``, or None when missing or unreadable."""
    try:
        return Receipt(**json.loads(receipt_path(target).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def free_disk_bytes(path: Path) -> int:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Refuse early, with both numbers, when ``needed`` bytes (plus a reserve) will not fit."""
    free = free_disk_bytes(folder)
    if needed + DISK_RESERVE > free:
        raise DiskSpaceError(
            f"not enough free disk space in {folder}: {what} needs {needed:,} more bytes "
            f"({_gb(needed)}) plus a {DISK_RESERVE >> 20} MiB reserve, but only {free:,} bytes "
            f"({_gb(free)}) are free"
        )


def download_model(
    source: FileSource,
    *,
    dest_dir: Path | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    max_retries: int = 3,
) -> DownloadResult:
    """Fetch ``source`` into ``dest_dir`` (default: the models folder), resuming any kept partial file.

    Raises AccessDeniedError (gated/bad token), InputError (unknown repo/file/revision, name taken),
    DiskSpaceError, DownloadError (network, after ``max_retries`` resumed retries),
    ChecksumMismatchError (file deleted) and DownloadCancelled (partial kept).
    """
    folder = dest_dir or models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    remote = resolve_remote(source, token=token, endpoint=endpoint)
    catalog_match = None if source.expected_sha256 is None else source.expected_sha256 == remote.digest
    if catalog_match is False and source.sha256_trusted:
        raise ChecksumMismatchError(
            f"{source.label}: the hub now serves sha256 {remote.digest}, not the verified catalog value "
            f"{source.expected_sha256}; nothing was downloaded"
        )
    target = folder / source.local_name
    try:
        with WeakFileLock(folder / f".{source.local_name}.lock", timeout=1.0):
            job = _Job(source, remote, target, auth_headers(token, remote.url, endpoint), progress, cancel)
            return job.run(max_retries, catalog_match)
    except LockTimeout:
        raise InputError(f"{target.name} is already being downloaded by another Gemma Desk process") from None


def resolve_remote(
    source: FileSource, *, token: str | None = None, endpoint: str | None = None
) -> RemoteFile:
    """Ask the hub for the file's location, size, commit and checksum (HEAD, then the model API)."""
    base = hub_endpoint(endpoint)
    url = hf_hub_url(source.repo, source.filename, revision=source.revision, endpoint=base)
    try:
        meta = get_hf_file_metadata(url, token=token, endpoint=base)
        if meta.size is None:
            raise DownloadError(f"{source.label}: the hub did not report the file size")
        algo, digest = _expected_digest(meta.etag, meta.commit_hash, source, token, base)
    except (HfHubHTTPError, OfflineModeIsEnabled, httpx2.TransportError) as exc:
        raise hub_error(exc, source, base, token) from None
    return RemoteFile(meta.location, meta.size, algo, digest, meta.commit_hash)


def _expected_digest(
    etag: str | None, commit: str | None, source: FileSource, token: str | None, base: str
) -> tuple[DigestAlgo, str]:
    """X-Linked-Etag is the LFS sha256; otherwise the model API's LFS sha256 or git blob id."""
    if etag and _SHA256.fullmatch(etag.lower()):
        return "sha256", etag.lower()
    info = HfApi(endpoint=base).model_info(
        source.repo, revision=commit or source.revision, files_metadata=True, token=token
    )
    for sibling in info.siblings or []:
        if sibling.rfilename != source.filename:
            continue
        if sibling.lfs is not None:
            return "sha256", sibling.lfs.sha256.lower()
        if sibling.blob_id:
            return "git-sha1", sibling.blob_id.lower()
    raise DownloadError(
        f"{source.label}: the hub reported no checksum, so the download could not be verified"
    )


class _Job:
    """One download attempt sequence for one file, holding its lock."""

    def __init__(
        self,
        source: FileSource,
        remote: RemoteFile,
        target: Path,
        headers: dict[str, str],
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ) -> None:
        self.source, self.remote, self.target, self.headers = source, remote, target, headers
        self.progress, self.cancel = progress, cancel
        self.partial = partial_path(target)
        self.transferred = 0

    def receipt(self, complete: bool) -> Receipt:
        s, r = self.source, self.remote
        return Receipt(s.repo, s.filename, s.revision, r.commit, r.digest_algo, r.digest, r.size, complete)

    def run(self, max_retries: int, catalog_match: bool | None) -> DownloadResult:
        if self._already_present():
            return self._result(0, True, catalog_match)
        kept = self._usable_partial_size()
        check_free_space(self.target.parent, self.remote.size - kept, self.target.name)
        _write_receipt(self.target, self.receipt(complete=False))
        try:
            with _PartialFile(self.partial, self.remote) as partial:
                self._hash_existing(partial)
                self._transfer_with_retries(partial, max_retries)
                self._verify(partial)
                partial.sync()
        except _Corrupt as exc:  # handled after the file is closed: Windows cannot delete open files
            self._discard(str(exc))
        os.replace(self.partial, self.target)
        with contextlib.suppress(DownloadError):  # a disk full by now: the next run re-hashes instead
            _write_receipt(self.target, self.receipt(complete=True))
        return self._result(kept, False, catalog_match)

    def _result(self, kept: int, present: bool, catalog_match: bool | None) -> DownloadResult:
        r = self.remote
        return DownloadResult(
            self.target,
            r.size,
            r.digest_algo,
            r.digest,
            r.commit,
            kept,
            self.transferred,
            present,
            catalog_match,
        )

    def _already_present(self) -> bool:
        """A finished copy of this exact remote file needs no download; any other file is not overwritten."""
        if not self.target.exists():
            return False
        receipt = read_receipt(self.target)
        size = self.target.stat().st_size
        if size == self.remote.size and receipt is not None and receipt.complete:
            if receipt.digest == self.remote.digest:
                return True
        elif size == self.remote.size and self._digest_of(self.target) == self.remote.digest:
            with contextlib.suppress(DownloadError):  # only saves re-hashing next time (disk full?)
                _write_receipt(self.target, self.receipt(complete=True))
            return True
        raise InputError(
            f"{self.target} already exists and is not {self.source.label} as the hub serves it now; "
            "move it away or choose another --dest"
        )

    def _usable_partial_size(self) -> int:
        """Bytes of a kept partial that belong to this remote file; anything else is discarded."""
        if not self.partial.exists():
            return 0
        receipt = read_receipt(self.target)
        size = self.partial.stat().st_size
        same = receipt is not None and (receipt.digest, receipt.size) == (
            self.remote.digest,
            self.remote.size,
        )
        if same and size <= self.remote.size:
            return size
        self.partial.unlink()
        return 0

    def _digest_of(self, path: Path) -> str:
        hasher = new_hasher(self.remote.digest_algo, self.remote.size)
        meter = ProgressMeter("checking", 0, path.stat().st_size, self.progress)
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(_BLOCK), b""):
                self._check_cancel()
                hasher.update(block)
                meter.add(len(block))
        return hasher.hexdigest()

    def _hash_existing(self, partial: _PartialFile) -> None:
        """Feed the kept bytes to the hasher so the final check covers the whole file."""
        if not partial.size:
            return
        meter = ProgressMeter("checking", 0, partial.size, self.progress)
        for block in partial.read_existing():
            self._check_cancel()
            meter.add(len(block))
        meter.finish()

    def _transfer_with_retries(self, partial: _PartialFile, max_retries: int) -> None:
        meter = ProgressMeter("downloading", partial.size, self.remote.size, self.progress)
        attempt = 0
        while partial.size < self.remote.size:
            try:
                self._transfer(partial, meter)
            except HfHubHTTPError as exc:
                raise DownloadError(
                    f"{self.source.label}: the server refused the transfer ({exc.response.status_code}); "
                    f"{partial.size:,} bytes are kept in {self.partial.name}, download again to resume"
                ) from None
            except (httpx2.TransportError, RetryableStatus) as exc:
                self._check_cancel()
                attempt += 1
                if attempt > max_retries:
                    raise DownloadError(
                        f"{self.source.label}: the transfer broke off ({type(exc).__name__}: {exc}) after "
                        f"{attempt} tries; {partial.size:,} of {self.remote.size:,} bytes are kept in "
                        f"{self.partial.name} and the next download resumes from there"
                    ) from None
                self._sleep(min(RETRY_DELAY * 2.0 ** (attempt - 1), 8.0))
        meter.finish()

    def _transfer(self, partial: _PartialFile, meter: ProgressMeter) -> None:
        """One GET from the current end of the partial file; returns early if the server stops short."""
        headers = dict(self.headers)
        if partial.size:
            headers["Range"] = f"bytes={partial.size}-"
        with get_session().stream("GET", self.remote.url, headers=headers, timeout=TIMEOUT) as response:
            raise_for_status(response)
            if partial.size and response.status_code != 206:
                partial.restart()  # the server ignored Range: start over rather than corrupt the file
                meter.restart()
            with abort_on_cancel(response, self.cancel):
                for chunk in response.iter_bytes():
                    self._check_cancel()
                    partial.append(chunk)
                    self.transferred += len(chunk)
                    meter.add(len(chunk))
        if partial.size > self.remote.size:
            raise _Corrupt(
                f"the server sent {partial.size:,} bytes, more than the {self.remote.size:,} announced"
            )

    def _verify(self, partial: _PartialFile) -> None:
        digest = partial.hexdigest()
        if digest != self.remote.digest:
            raise _Corrupt(
                f"{self.remote.digest_algo} of the bytes is {digest}, the hub says {self.remote.digest}"
            )

    def _discard(self, why: str) -> None:
        self.partial.unlink(missing_ok=True)
        receipt_path(self.target).unlink(missing_ok=True)
        raise ChecksumMismatchError(
            f"{self.source.label}: download is corrupt ({why}); it was deleted, please download it again"
        )

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise DownloadCancelled(
                f"download of {self.target.name} cancelled; {self.partial.name} is kept to resume later"
            )

    def _sleep(self, seconds: float) -> None:
        if self.cancel is not None:
            self.cancel.wait(seconds)
        else:
            time.sleep(seconds)
        self._check_cancel()


class _Corrupt(Exception):
    """The bytes cannot be the hub's file; the job deletes them once the file is closed."""


class _PartialFile:
    """The growing ``.partial`` file plus the running digest of everything in it."""

    def __init__(self, path: Path, remote: RemoteFile) -> None:
        self.path, self.remote = path, remote
        self.handle: BinaryIO = open(path, "ab", buffering=0)  # noqa: SIM115 - closed in __exit__
        self.size = self.handle.tell()
        self.hasher = new_hasher(remote.digest_algo, remote.size)

    def __enter__(self) -> _PartialFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.handle.close()

    def read_existing(self) -> Iterator[bytes]:
        with self.path.open("rb") as reader:
            remaining = self.size
            while remaining > 0:
                block = reader.read(min(_BLOCK, remaining))
                if not block:
                    break
                self.hasher.update(block)
                remaining -= len(block)
                yield block

    def append(self, chunk: bytes) -> None:
        try:
            _write_all(self.handle, chunk)
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                self.size = self.handle.seek(0, os.SEEK_END)
                raise DiskSpaceError(
                    f"the disk filled up while writing {self.path}: {self.size:,} of {self.remote.size:,} "
                    f"bytes are saved in this .partial file; free {_gb(self.remote.size - self.size)} "
                    "and download again to resume"
                ) from None
            raise DownloadError(f"cannot write {self.path} ({exc.strerror or exc})") from exc
        self.hasher.update(chunk)
        self.size += len(chunk)

    def restart(self) -> None:
        self.handle.truncate(0)
        self.handle.seek(0)
        self.size = 0
        self.hasher = new_hasher(self.remote.digest_algo, self.remote.size)

    def hexdigest(self) -> str:
        return self.hasher.hexdigest()

    def sync(self) -> None:
        os.fsync(self.handle.fileno())


def _write_all(handle: BinaryIO, data: bytes) -> None:
    """Unbuffered writes may be short; loop so no byte is silently dropped."""
    view = memoryview(data)
    while view:
        written = handle.write(view)
        view = view[written or 0 :]


def _write_receipt(target: Path, receipt: Receipt) -> None:
    path = receipt_path(target)
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_text(json.dumps(asdict(receipt), indent=1), encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        if exc.errno in _DISK_FULL:
            raise DiskSpaceError(f"the disk holding {target.parent} is full; free some space") from exc
        raise DownloadError(f"cannot write {path} ({exc.strerror or exc})") from exc


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"
