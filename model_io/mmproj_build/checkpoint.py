"""A safetensors checkpoint on the Hugging Face Hub, read piece by piece with HTTP range requests.

A safetensors file starts with an 8-byte little-endian header length and a JSON header giving
each tensor's dtype, shape and byte range, so any tensor can be fetched alone.  Sharded
checkpoints add ``model.safetensors.index.json`` (tensor name → shard file); only the shards
holding a wanted tensor are touched, and of those only the header and the wanted ranges.

Hub access reuses the downloader's ``resolve_remote`` (the file's CDN location, size, sha256 and
commit, with the same one-sentence errors for gated repos, bad tokens, unknown repos and
revisions) and :mod:`model_io.hub_http`'s auth-header, retry-status, cancel and hashing helpers.  Every file
is resolved at the commit the listing returned, so a push during a build cannot mix versions.
The CDN's signed URLs expire; a 401/403 from the CDN re-resolves the shard once and carries on.
Range answers are refused unless they are a 206 with exactly the requested Content-Range and
length; a transfer that breaks off resumes from the last byte received.
"""

from __future__ import annotations

import json
import math
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx2
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from model_io.catalog import FileSource
from model_io.download import RemoteFile, resolve_remote
from model_io.errors import ModelFileError, UnsupportedModelError
from model_io.hub_http import (
    TIMEOUT,
    DownloadCancelled,
    DownloadError,
    RetryableStatus,
    abort_on_cancel,
    auth_headers,
    hub_endpoint,
    hub_error,
    new_hasher,
    raise_for_status,
)

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
MAX_HEADER_BYTES = 100_000_000  # the safetensors format's own limit
RETRY_DELAY = 1.0  # seconds before the first retry; doubles up to 8 s

DTYPE_SIZES = {
    "BF16": 2, "F16": 2, "F32": 4, "F64": 8, "F8_E4M3": 1, "F8_E5M2": 1, "BOOL": 1,
    "I8": 1, "U8": 1, "I16": 2, "U16": 2, "I32": 4, "U32": 4, "I64": 8, "U64": 8,
}  # fmt: skip


@dataclass(frozen=True)
class SourceTensor:
    """Where one checkpoint tensor's bytes are: ``[begin, end)`` of ``shard``."""

    name: str
    shard: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def n_bytes(self) -> int:
        return self.end - self.begin


class HubCheckpoint:
    """One repo at one commit: its listing, JSON files, shard headers and tensor byte ranges."""

    def __init__(
        self,
        repo: str,
        revision: str,
        *,
        token: str | None,
        endpoint: str | None,
        cancel: threading.Event | None = None,
        max_retries: int = 3,
    ) -> None:
        self.repo, self.token, self.cancel, self.max_retries = repo, token, cancel, max_retries
        self.endpoint = hub_endpoint(endpoint)
        self.revision = revision
        self.received = 0  # bytes of every body read from the network by this object
        self._remotes: dict[str, RemoteFile] = {}
        self._headers: dict[str, dict[str, SourceTensor]] = {}
        self._lock = threading.Lock()

    # -- listing and small files -----------------------------------------------------------------

    def list_files(self) -> set[str]:
        """The repo's file names at ``revision``; pins ``self.revision`` to that commit."""
        try:
            info = HfApi(endpoint=self.endpoint).model_info(
                self.repo, revision=self.revision, token=self.token
            )
        except (HfHubHTTPError, OfflineModeIsEnabled, httpx2.TransportError) as exc:
            raise hub_error(exc, self._source(CONFIG_FILE), self.endpoint, self.token) from None
        if info.sha:
            self.revision = info.sha
        return {sibling.rfilename for sibling in info.siblings or []}

    def read_json(self, filename: str) -> Any:
        """A small file, checked against the hub's size and checksum, decoded as JSON."""
        remote = self._remote(filename)
        data = self._get(remote, None)
        hasher = new_hasher(remote.digest_algo, remote.size)
        hasher.update(data)
        if hasher.hexdigest() != remote.digest:
            raise ModelFileError(
                f"{self._label(filename)}: the bytes received do not match the hub's checksum"
            )
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ModelFileError(f"{self._label(filename)} is not valid JSON ({exc})") from None

    # -- safetensors -----------------------------------------------------------------------------

    def shard_digest(self, shard: str) -> str:
        """The shard's sha256 (or git blob id) as the hub reports it: identifies its exact bytes."""
        return self._remote(shard).digest

    def read_header(self, shard: str) -> dict[str, SourceTensor]:
        """Every tensor entry of ``shard``'s safetensors header, bounds-checked against the file size."""
        if shard not in self._headers:
            self._headers[shard] = self._fetch_header(shard)
        return self._headers[shard]

    def _fetch_header(self, shard: str) -> dict[str, SourceTensor]:
        remote = self._remote(shard)
        if remote.size < 8:
            raise ModelFileError(f"{self._label(shard)} is too short to be a safetensors file")
        (length,) = struct.unpack("<Q", self.read_range(shard, 0, 8))
        if length > MAX_HEADER_BYTES or 8 + length > remote.size:
            raise ModelFileError(
                f"{self._label(shard)}: header length {length:,} does not fit the {remote.size:,}-byte file"
            )
        raw = self.read_range(shard, 8, 8 + length)
        try:
            header = json.loads(bytes(raw))
        except ValueError as exc:
            raise ModelFileError(
                f"{self._label(shard)}: the safetensors header is not JSON ({exc})"
            ) from None
        if not isinstance(header, dict):
            raise ModelFileError(f"{self._label(shard)}: the safetensors header is not a JSON object")
        data_start = 8 + length
        return {
            name: _entry(self._label(shard), shard, name, entry, data_start, remote.size)
            for name, entry in header.items()
            if name != "__metadata__"
        }

    def read_range(
        self, shard: str, begin: int, end: int, on_bytes: Callable[[int], None] | None = None
    ) -> bytearray:
        """Bytes ``[begin, end)`` of ``shard``, retrying broken transfers from where they stopped."""
        transfer = _Transfer(bytearray(end - begin), begin, on_bytes)
        attempt, refreshed = 0, False
        while transfer.got < len(transfer.buffer):
            before = transfer.got
            try:
                self._fetch_into(shard, transfer)
            except _Expired:
                if refreshed:
                    raise DownloadError(
                        f"{self._label(shard)}: the download server refused access twice; try again later"
                    ) from None
                self._refresh(shard)
                refreshed = True
            except (httpx2.TransportError, RetryableStatus, _ShortBody) as exc:
                self._check_cancel()
                attempt = 1 if transfer.got > before else attempt + 1  # count only tries that got nothing
                if attempt > self.max_retries:
                    raise DownloadError(
                        f"{self._label(shard)}: the transfer broke off ({type(exc).__name__}: {exc}) after "
                        f"{attempt} tries without progress; run the build again to resume"
                    ) from None
                self._sleep(min(RETRY_DELAY * 2.0 ** (attempt - 1), 8.0))
        return transfer.buffer

    # -- internals -------------------------------------------------------------------------------

    def _source(self, filename: str) -> FileSource:
        return FileSource(self.repo, filename, self.revision)

    def _label(self, filename: str) -> str:
        return f"{self.repo}/{filename}"

    def _remote(self, filename: str) -> RemoteFile:
        with self._lock:
            remote = self._remotes.get(filename)
        if remote is None:
            remote = resolve_remote(self._source(filename), token=self.token, endpoint=self.endpoint)
            with self._lock:
                self._remotes[filename] = remote
        return remote

    def _refresh(self, filename: str) -> None:
        """A new signed location for a shard whose old one expired; the bytes must not have changed."""
        old = self._remote(filename)
        fresh = resolve_remote(self._source(filename), token=self.token, endpoint=self.endpoint)
        if (fresh.digest, fresh.size) != (old.digest, old.size):
            raise ModelFileError(f"{self._label(filename)} changed on the hub during the build; run it again")
        with self._lock:
            self._remotes[filename] = fresh

    def _get(self, remote: RemoteFile, headers_extra: dict[str, str] | None) -> bytes:
        headers = {**auth_headers(self.token, remote.url, self.endpoint), **(headers_extra or {})}
        try:
            with _session().stream("GET", remote.url, headers=headers, timeout=TIMEOUT) as response:
                raise_for_status(response)
                body = b"".join(response.iter_bytes())
        except (httpx2.TransportError, RetryableStatus) as exc:
            raise DownloadError(
                f"cannot fetch {remote.url.split('?')[0]} ({type(exc).__name__}: {exc})"
            ) from None
        except HfHubHTTPError as exc:
            raise DownloadError(f"the hub refused {remote.url.split('?')[0]} ({exc})") from None
        self._count(len(body))
        if len(body) != remote.size:
            raise ModelFileError(f"the hub announced {remote.size:,} bytes but sent {len(body):,}")
        return body

    def _fetch_into(self, shard: str, transfer: _Transfer) -> None:
        remote = self._remote(shard)
        start, stop = transfer.position, transfer.begin + len(transfer.buffer)
        headers = auth_headers(self.token, remote.url, self.endpoint)
        headers["Range"] = f"bytes={start}-{stop - 1}"
        label = self._label(shard)
        with _session().stream("GET", remote.url, headers=headers, timeout=TIMEOUT) as response:
            if response.status_code in (401, 403):
                raise _Expired()
            _raise_for_range_status(response, label)
            _check_content_range(response, label, start, stop, remote.size)
            with abort_on_cancel(response, self.cancel):
                for chunk in response.iter_bytes():
                    self._check_cancel()
                    transfer.add(chunk, label)
                    self._count(len(chunk))
        if transfer.position < stop:
            raise _ShortBody(f"{stop - transfer.position:,} of {stop - start:,} bytes missing")

    def _count(self, n: int) -> None:
        with self._lock:
            self.received += n

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise DownloadCancelled(f"building the projector from {self.repo} was cancelled")

    def _sleep(self, seconds: float) -> None:
        if self.cancel is not None:
            self.cancel.wait(seconds)
        else:
            time.sleep(seconds)
        self._check_cancel()


class _Transfer:
    """A range being filled: the bytes so far survive a broken connection."""

    def __init__(self, buffer: bytearray, begin: int, on_bytes: Callable[[int], None] | None) -> None:
        self.buffer, self.begin, self.on_bytes = buffer, begin, on_bytes
        self.got = 0

    @property
    def position(self) -> int:
        return self.begin + self.got

    def add(self, chunk: bytes, label: str) -> None:
        n = len(chunk)
        if self.got + n > len(self.buffer):
            raise ModelFileError(f"{label}: the server sent more bytes than the range asked for; refused")
        self.buffer[self.got : self.got + n] = chunk
        self.got += n
        if self.on_bytes is not None:
            self.on_bytes(n)


class _Expired(Exception):
    """401/403 from the download server: the signed location has most likely expired."""


class _ShortBody(Exception):
    """The connection ended before the whole range arrived."""


def _session() -> httpx2.Client:
    from huggingface_hub.utils import get_session

    return get_session()


def _raise_for_range_status(response: httpx2.Response, label: str) -> None:
    if response.status_code == 206:
        return
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableStatus(f"HTTP {response.status_code}")
    if response.status_code == 200:
        raise ModelFileError(
            f"{label}: the server ignored the range request and began sending the whole file; refused"
        )
    raise DownloadError(
        f"{label}: the download server answered HTTP {response.status_code} to a range request"
    )


def _check_content_range(response: httpx2.Response, label: str, start: int, stop: int, size: int) -> None:
    expected = f"bytes {start}-{stop - 1}/{size}"
    got = response.headers.get("Content-Range", "")
    if got.strip() != expected:
        raise ModelFileError(
            f"{label}: asked for {expected}, the server sent {got or 'no Content-Range'}; refused"
        )
    length = response.headers.get("Content-Length")
    if length is not None and length.strip() != str(stop - start):
        raise ModelFileError(f"{label}: Content-Length {length} does not match the range {expected}; refused")


def _entry(label: str, shard: str, name: str, entry: Any, data_start: int, size: int) -> SourceTensor:
    """One header entry, checked: known dtype, offsets inside the file, byte count matching the shape."""
    try:
        dtype, shape, (first, last) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
        ok = isinstance(first, int) and isinstance(last, int) and all(isinstance(d, int) for d in shape)
    except (TypeError, KeyError, ValueError):
        ok = False
    if not ok:
        raise ModelFileError(f"{label}: the header entry of {name!r} is malformed")
    if dtype not in DTYPE_SIZES:
        raise UnsupportedModelError(f"{label}: tensor {name!r} has the unknown dtype {dtype!r}")
    begin, end = data_start + first, data_start + last
    if not 0 <= first <= last or end > size or last - first != math.prod(shape) * DTYPE_SIZES[dtype]:
        raise ModelFileError(f"{label}: the byte range of {name!r} does not fit its shape or the file")
    return SourceTensor(name, shard, dtype, shape, begin, end)


def shards_for(weight_map: dict[str, str], names: Iterable[str]) -> list[str]:
    """The shard files holding ``names``, in first-seen order."""
    return list(dict.fromkeys(weight_map[name] for name in names))
