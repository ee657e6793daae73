"""A local stand-in for the Hugging Face Hub, for download tests without internet.

It answers the requests huggingface_hub and model_io.download make:

* ``HEAD|GET /{repo}/resolve/{rev}/{file}`` — LFS files answer 302 to a second, "CDN" server on
  another port (another origin, as on the real hub) with X-Repo-Commit, X-Linked-Etag (sha256) and
  X-Linked-Size; plain git files answer 200 with their git blob id as ETag.  Gated repos answer 401
  (no token), 401 "Invalid credentials" (unknown token) or 403 (token without an accepted licence),
  with the hub's X-Error-Code / X-Error-Message headers.
* ``GET /api/models/{repo}[/revision/{rev}]`` — model info with ``siblings`` (size, blobId, lfs).
* ``GET|HEAD /cdn/{sha256}`` — the bytes, with Range support and optional faults: drop the
  connection after N bytes, flip a byte, throttle, stall, ignore Range.

Both servers bind 127.0.0.1 on free ports, run in daemon threads, and stop by themselves after
``lifetime`` seconds even if a test forgets to.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

DEFAULT_COMMIT = "0123456789abcdef0123456789abcdef01234567"
_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


def isolate_from_the_real_hub(monkeypatch: Any, home: Path) -> None:
    """No real token, offline switch or HF cache, and quick retries: the test talks to a FakeHub only."""
    from model_io import download

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(home / "hf-home"))
    monkeypatch.setattr(download, "RETRY_DELAY", 0.01)


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class FakeFile:
    data: bytes
    lfs: bool = True

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, FakeFile]
    commit: str = DEFAULT_COMMIT
    gated: bool = False


@dataclass
class Faults:
    """Misbehaviour of the CDN; counters let a fault hit only the first N responses."""

    drop_after: int | None = None  # close the connection after this many body bytes of a response
    drop_times: int = 1  # how many responses are dropped (then the fault is spent)
    corrupt_offset: int | None = None  # flip this byte of the file in every response that covers it
    throttle_bps: int | None = None  # bytes per second for every response
    stall_after: int | None = None  # stop sending (but keep the connection) after this many bytes
    ignore_range: bool = False  # answer 200 with the whole file to Range requests
    hide_linked_etag: bool = False  # the resolve answer carries no X-Linked-Etag (forces the API lookup)
    fail_status: int | None = None  # answer this status (no body) to CDN GETs, e.g. 403: URL expired
    fail_times: int = 1  # how many CDN GETs get ``fail_status`` (then the fault is spent)


@dataclass
class Request:
    server: str
    method: str
    path: str
    range: str | None
    authorization: str | None


@dataclass
class HubState:
    repos: dict[str, FakeRepo] = field(default_factory=dict)
    tokens: dict[str, bool] = field(default_factory=dict)  # token -> licence accepted
    faults: Faults = field(default_factory=Faults)
    requests: list[Request] = field(default_factory=list)
    body_bytes: int = 0  # file bytes the CDN actually sent
    lock: threading.Lock = field(default_factory=threading.Lock)
    cdn_url: str = ""
    closing: threading.Event = field(default_factory=threading.Event)

    def blob(self, sha256: str) -> FakeFile | None:
        for repo in self.repos.values():
            for file in repo.files.values():
                if file.sha256 == sha256:
                    return file
        return None


class FakeHub:
    """Context manager: ``with FakeHub() as hub: hub.add_repo(...); use hub.url as HF_ENDPOINT``."""

    def __init__(self, lifetime: float = 120.0) -> None:
        self.state = HubState()
        self._hub = _server(self.state, "hub")
        self._cdn = _server(self.state, "cdn")
        self.url = f"http://127.0.0.1:{self._hub.server_address[1]}"
        self.state.cdn_url = f"http://127.0.0.1:{self._cdn.server_address[1]}"
        self._threads = [
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            for server in (self._hub, self._cdn)
        ]
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    def __enter__(self) -> FakeHub:
        for thread in self._threads:
            thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._timer.cancel()
        self.state.closing.set()
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()

    def add_repo(
        self, repo_id: str, files: dict[str, bytes], *, gated: bool = False, commit: str = DEFAULT_COMMIT
    ) -> FakeRepo:
        repo = FakeRepo(repo_id, {name: FakeFile(data) for name, data in files.items()}, commit, gated)
        self.state.repos[repo_id] = repo
        return repo

    def add_token(self, token: str, *, accepted: bool = True) -> None:
        self.state.tokens[token] = accepted

    @property
    def faults(self) -> Faults:
        return self.state.faults

    @property
    def requests(self) -> list[Request]:
        return self.state.requests

    @property
    def body_bytes(self) -> int:
        return self.state.body_bytes

    def downloads(self) -> list[Request]:
        """The GETs of file bytes, in order."""
        return [r for r in self.state.requests if r.server == "cdn" and r.method == "GET"]


def _server(state: HubState, role: str) -> ThreadingHTTPServer:
    handler = type(f"{role.title()}Handler", (_Handler,), {"state": state, "role": role})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    return server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: HubState
    role: str

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_GET(self) -> None:
        self._route("GET")

    def _route(self, method: str) -> None:
        path = unquote(urlsplit(self.path).path)
        with self.state.lock:
            self.state.requests.append(
                Request(self.role, method, path, self.headers.get("Range"), self.headers.get("Authorization"))
            )
        if self.role == "cdn":
            self._cdn(method, path)
        elif path.startswith("/api/models/"):
            self._model_info(path.removeprefix("/api/models/"))
        else:
            self._resolve(method, path)

    # hub: resolve

    def _resolve(self, method: str, path: str) -> None:
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if not match:
            return self._error(404, "RepoNotFound", "not found")
        repo = self._repo_or_error(match[1])
        if repo is None:
            return None
        if match[2] not in ("main", repo.commit):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {match[2]}")
        file = repo.files.get(match[3])
        if file is None:
            return self._error(404, "EntryNotFound", f"{match[3]} does not exist")
        headers = {"X-Repo-Commit": repo.commit, "Content-Length": "0"}
        if not file.lfs:
            headers.update({"ETag": f'"{git_blob_id(file.data)}"', "Content-Length": str(len(file.data))})
            return self._send(200, headers, file.data if method == "GET" else b"")
        headers.update(
            {"ETag": f'"{git_blob_id(b"pointer " + file.data[:64])}"', "X-Linked-Size": str(len(file.data))}
        )
        if not self.state.faults.hide_linked_etag:
            headers["X-Linked-Etag"] = f'"{file.sha256}"'
        headers["Location"] = f"{self.state.cdn_url}/cdn/{file.sha256}?signature=fake"
        return self._send(302, headers, b"")

    def _repo_or_error(self, repo_id: str) -> FakeRepo | None:
        repo = self.state.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            return None
        if not repo.gated:
            return repo
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
        if token is None:
            msg = f"Access to model {repo_id} is restricted. You must be authenticated to access it."
            self._error(401, "GatedRepo", msg)
        elif token not in self.state.tokens:
            self._error(401, None, "Invalid credentials in Authorization header")
        elif not self.state.tokens[token]:
            self._error(
                403, "GatedRepo", f"Access to model {repo_id} is restricted and you are not in the list"
            )
        else:
            return repo
        return None

    # hub: model info API

    def _model_info(self, rest: str) -> None:
        repo_id, _, revision = rest.partition("/revision/")
        repo = self._repo_or_error(repo_id)
        if repo is None:
            return
        if revision and revision not in ("main", repo.commit):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        siblings = [_sibling(name, file) for name, file in repo.files.items()]
        body = {
            "id": repo_id,
            "sha": repo.commit,
            "gated": "manual" if repo.gated else False,
            "siblings": siblings,
        }
        data = json.dumps(body).encode()
        self._send(200, {"Content-Type": "application/json", "Content-Length": str(len(data))}, data)

    # cdn

    def _cdn(self, method: str, path: str) -> None:
        file = self.state.blob(path.removeprefix("/cdn/"))
        if file is None:
            return self._send(404, {"Content-Length": "0"}, b"")
        if method == "GET" and self._take_status_fault():
            return self._send(self.state.faults.fail_status or 500, {"Content-Length": "0"}, b"")
        start, end, status = self._range(len(file.data))
        if status == 416:
            return self._send(416, {"Content-Range": f"bytes */{len(file.data)}", "Content-Length": "0"}, b"")
        headers = {"Content-Length": str(end - start), "ETag": f'"{file.sha256}"', "Accept-Ranges": "bytes"}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(file.data)}"
        self._send_headers(status, headers)
        if method == "GET":
            self._stream(file.data, start, end)
        return None

    def _take_status_fault(self) -> bool:
        faults = self.state.faults
        with self.state.lock:
            if faults.fail_status is None or faults.fail_times == 0:
                return False
            faults.fail_times -= 1
            return True

    def _range(self, size: int) -> tuple[int, int, int]:
        match = _RANGE.match(self.headers.get("Range", "") or "")
        if match is None or self.state.faults.ignore_range:
            return 0, size, 200
        start = int(match[1])
        end = min(int(match[2]) + 1, size) if match[2] else size
        return (start, end, 206) if start < size else (0, 0, 416)

    def _stream(self, data: bytes, start: int, end: int) -> None:
        faults = self.state.faults
        with self.state.lock:
            drop = faults.drop_after if faults.drop_after is not None and faults.drop_times != 0 else None
            if drop is not None:
                faults.drop_times -= 1
        piece = 4096 if faults.throttle_bps else 65536
        sent, started = 0, time.monotonic()
        try:
            for offset in range(start, end, piece):
                stalled = faults.stall_after is not None and sent >= faults.stall_after
                if stalled or (drop is not None and sent >= drop):
                    break
                limit = drop if drop is not None else end - start
                chunk = bytearray(data[offset : min(end, offset + piece, start + limit)])
                if faults.corrupt_offset is not None and offset <= faults.corrupt_offset < offset + len(
                    chunk
                ):
                    chunk[faults.corrupt_offset - offset] ^= 0xFF
                self.wfile.write(chunk)
                sent += len(chunk)
                with self.state.lock:
                    self.state.body_bytes += len(chunk)
                if faults.throttle_bps:
                    time.sleep(max(0.0, started + sent / faults.throttle_bps - time.monotonic()))
            self.wfile.flush()
        except OSError:  # the client went away (cancel): nothing more to do
            self.close_connection = True
            return
        if sent < end - start:
            self._hang_up(stall=faults.stall_after is not None and drop is None)

    def _hang_up(self, *, stall: bool) -> None:
        """Drop the connection mid-body, or keep it silent until the client or the hub gives up."""
        self.close_connection = True
        if stall:
            self.connection.settimeout(0.05)
            while not self.state.closing.is_set():
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        break  # the client closed its end
                except TimeoutError:
                    continue
                except OSError:
                    break
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # helpers

    def _error(self, status: int, code: str | None, message: str) -> None:
        data = json.dumps({"error": message}).encode()
        headers = {"Content-Type": "application/json", "X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        headers["Content-Length"] = str(len(data))
        self._send(status, headers, data if self.command == "GET" else b"")

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        if self.command == "HEAD" and "Content-Length" not in headers:
            headers["Content-Length"] = "0"
        self._send_headers(status, headers)
        if body:
            self.wfile.write(body)

    def _send_headers(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()


def _sibling(name: str, file: FakeFile) -> dict[str, Any]:
    entry: dict[str, Any] = {"rfilename": name, "size": len(file.data)}
    if file.lfs:
        entry["blobId"] = git_blob_id(b"pointer " + file.data[:64])
        entry["lfs"] = {"sha256": file.sha256, "size": len(file.data), "pointerSize": 134}
    else:
        entry["blobId"] = git_blob_id(file.data)
    return entry
