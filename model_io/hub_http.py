"""HTTP plumbing shared by model downloads (:mod:`model_io.download`) and the projector builder.

Both fetch files from the Hugging Face Hub (or a mirror at ``HF_ENDPOINT``) and need the same
pieces: the errors a user sees, one clear sentence per way the hub can refuse, request headers
that never send the token to a CDN on another origin, which HTTP answers deserve a retry, the
digest the hub publishes (sha256 or git's blob id), progress with a rate and ETA, and a cancel
that returns even from a stalled read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

import httpx2
from huggingface_hub import constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

from model_io.catalog import FileSource
from model_io.errors import GemmaDeskError, InputError, ModelError, ModelFileError

DigestAlgo = Literal["sha256", "git-sha1"]
Phase = Literal["checking", "downloading"]
ProgressCallback = Callable[["DownloadProgress"], None]

TIMEOUT = httpx2.Timeout(30.0, connect=15.0)


class DownloadError(ModelError):
    """The file could not be fetched or stored (network, server, disk); exit code 3."""


class DiskSpaceError(DownloadError):
    """Not enough free space for the file, before starting or when the disk filled up."""


class ChecksumMismatchError(ModelFileError):
    """The downloaded bytes do not match the hub's checksum; the file was deleted."""


class AccessDeniedError(InputError):
    """The hub refused the file: gated repo without an accepted licence, or a bad token."""


class DownloadCancelled(GemmaDeskError):
    """The caller's cancel event was set; the partial file is kept for a later resume."""

    exit_code = 130


@dataclass(frozen=True)
class DownloadProgress:
    """One report. ``downloading``: bytes on disk, including any kept from an earlier try;
    ``checking``: bytes of a kept partial (or an existing file) hashed so far."""

    phase: Phase
    done: int
    total: int
    bytes_per_s: float
    eta_s: float | None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


def hub_endpoint(endpoint: str | None = None) -> str:
    """The endpoint to use, read at call time (huggingface_hub reads HF_ENDPOINT only at import)."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def hub_error(exc: Exception, source: FileSource, base: str, token: str | None) -> GemmaDeskError:
    """One clear sentence per way the hub can say no."""
    page = f"{base}/{source.repo}"
    if isinstance(exc, OfflineModeIsEnabled):
        return DownloadError("HF_HUB_OFFLINE is set, so nothing can be downloaded; unset it and try again")
    if isinstance(exc, httpx2.TransportError):
        return DownloadError(f"cannot reach {base} ({type(exc).__name__}: {exc}); check the connection")
    if isinstance(exc, RevisionNotFoundError):
        return InputError(f"{source.repo} has no revision {source.revision!r}; try --revision main")
    if isinstance(exc, EntryNotFoundError):
        return InputError(f"{source.repo} has no file {source.filename!r} (see {page}/tree/main)")
    response = exc.response if isinstance(exc, HfHubHTTPError) else None
    status = response.status_code if response is not None else None
    if isinstance(exc, GatedRepoError) or status in (401, 403):
        return AccessDeniedError(
            _access_message(source, page, base, token, gated=isinstance(exc, GatedRepoError))
        )
    if isinstance(exc, RepositoryNotFoundError):
        return InputError(f"no repository {source.repo} on {base} (check the name)")
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return DownloadError(f"{source.label}: the hub answered HTTP {status}: {detail}")


def _access_message(source: FileSource, page: str, base: str, token: str | None, *, gated: bool) -> str:
    what = "is gated" if gated else "needs an authorised account"
    steps = f"open {page} while logged in and accept the licence"
    if token:
        return f"{source.repo} {what} and the hub refused this token: {steps} with the token's account"
    return (
        f"{source.repo} {what}: {steps}, then create a read token at {base}/settings/tokens "
        "and pass --token TOKEN (or set HF_TOKEN)"
    )


def auth_headers(token: str | None, url: str, endpoint: str | None) -> dict[str, str]:
    """Hub headers; the token never goes to a CDN on another origin (the URL is signed)."""
    headers = build_hf_headers(token=token)
    headers["Accept-Encoding"] = "identity"
    if _origin(url) != _origin(hub_endpoint(endpoint)):
        headers.pop("authorization", None)
    return headers


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


class RetryableStatus(Exception):
    """A 429 or 5xx answer: worth another resumed try."""


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


def raise_for_status(response: httpx2.Response) -> None:
    if response.status_code == 429 or response.status_code >= 500:
        raise RetryableStatus(f"HTTP {response.status_code}")
    hf_raise_for_status(response)


def new_hasher(algo: DigestAlgo, size: int) -> Hasher:
    if algo == "sha256":
        return hashlib.sha256()
    hasher = hashlib.sha1(usedforsecurity=False)  # git's blob id: sha1 over "blob <size>\0" + content
    hasher.update(b"blob %d\0" % size)
    return hasher


class ProgressMeter:
    """Turns byte counts into DownloadProgress: rate over a sliding window, at most 10 reports a second."""

    def __init__(
        self, phase: Phase, done: int, total: int, callback: ProgressCallback | None, window: float = 3.0
    ) -> None:
        self.phase, self.done, self.total, self.callback, self.window = phase, done, total, callback, window
        self.restart(done)

    def restart(self, done: int = 0) -> None:
        self.done = done
        now = time.monotonic()
        self.samples: deque[tuple[float, int]] = deque([(now, done)])
        self.last_report = 0.0

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        self.samples.append((now, self.done))
        while len(self.samples) > 2 and now - self.samples[1][0] > self.window:
            self.samples.popleft()
        if now - self.last_report >= 0.1:
            self.last_report = now
            self._report()

    def finish(self) -> None:
        self._report()

    def rate(self) -> float:
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    def _report(self) -> None:
        if self.callback is None:
            return
        rate = self.rate()
        remaining = max(0, self.total - self.done)
        eta = 0.0 if remaining == 0 else (remaining / rate if rate > 0 else None)
        self.callback(DownloadProgress(self.phase, self.done, self.total, rate, eta))


@contextlib.contextmanager
def abort_on_cancel(response: httpx2.Response, cancel: threading.Event | None) -> Iterator[None]:
    """Shut the socket down as soon as ``cancel`` is set, so even a stalled read returns at once."""
    if cancel is None:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if cancel.wait(0.05):
                _shutdown(response)
                return

    watcher = threading.Thread(target=watch, name="download-cancel", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _shutdown(response: httpx2.Response) -> None:
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    else:  # another transport: closing from this thread is the best we can do
        with contextlib.suppress(Exception):
            response.close()
