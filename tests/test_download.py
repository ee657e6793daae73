"""Hub downloads against the local fake hub: verified, resumable, cancellable, gated, disk-aware."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_hub import FakeHub, isolate_from_the_real_hub
from gguf_fixtures import write_tiny_llama

from model_io import download
from model_io.catalog import FileSource, parse_source
from model_io.download import (
    AccessDeniedError,
    ChecksumMismatchError,
    DiskSpaceError,
    DownloadCancelled,
    DownloadError,
    DownloadProgress,
    download_model,
    partial_path,
    read_receipt,
    receipt_path,
)
from model_io.errors import InputError
from model_io.paths import models_dir

REPO = "org/gguf"
NAME = "model-Q4_K_M.gguf"
SOURCE = FileSource(REPO, NAME)


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture(autouse=True)
def hermetic_hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_from_the_real_hub(monkeypatch, tmp_path)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub(lifetime=120) as fake:
        yield fake


def fetch(hub: FakeHub, source: FileSource = SOURCE, **kwargs: object) -> download.DownloadResult:
    return download_model(source, endpoint=hub.url, **kwargs)  # type: ignore[arg-type]


def target() -> Path:
    return models_dir() / NAME


def test_download_lands_verified_in_the_models_folder(hub: FakeHub) -> None:
    data = payload(2_000_000)
    hub.add_repo(REPO, {NAME: data})
    result = fetch(hub)
    assert result.path == target() and target().read_bytes() == data
    assert (result.digest_algo, result.digest) == ("sha256", hashlib.sha256(data).hexdigest())
    assert result.transferred == hub.body_bytes == len(data) and result.resumed_from == 0
    assert not partial_path(target()).exists()
    receipt = read_receipt(target())
    assert receipt is not None and receipt.complete and receipt.repo == REPO and receipt.size == len(data)
    assert [(r.server, r.method) for r in hub.requests] == [("hub", "HEAD"), ("cdn", "GET")]

    again = fetch(hub)  # a second request only asks the hub, it never re-downloads
    assert again.already_present and again.transferred == 0 and len(hub.downloads()) == 1


def test_interrupted_transfer_resumes_from_the_partial_file_after_a_restart(hub: FakeHub) -> None:
    data = payload(3_000_000)
    hub.add_repo(REPO, {NAME: data})
    hub.faults.drop_after = 1_100_000
    with pytest.raises(DownloadError, match=r"kept in model-Q4_K_M\.gguf\.partial"):
        fetch(hub, max_retries=0)
    partial = partial_path(target())
    assert partial.stat().st_size == 1_100_000 and not target().exists()

    result = fetch(hub)  # a new call, like the app starting again: only the missing bytes travel
    assert result.resumed_from == 1_100_000
    assert result.transferred == len(data) - 1_100_000 == 1_900_000
    assert hub.downloads()[-1].range == "bytes=1100000-"
    assert hub.body_bytes == len(data)  # 3,000,000 bytes sent in total: nothing was sent twice
    assert target().read_bytes() == data


def test_dropped_connections_are_resumed_within_one_call(hub: FakeHub) -> None:
    data = payload(1_600_000)
    hub.add_repo(REPO, {NAME: data})
    hub.faults.drop_after, hub.faults.drop_times = 500_000, 2
    result = fetch(hub, max_retries=3)
    assert [r.range for r in hub.downloads()] == [None, "bytes=500000-", "bytes=1000000-"]
    assert result.transferred == hub.body_bytes == len(data)
    assert target().read_bytes() == data


def test_corrupted_transfer_is_refused_and_deleted(hub: FakeHub) -> None:
    data = payload(1_000_000)
    hub.add_repo(REPO, {NAME: data})
    hub.faults.corrupt_offset = 654_321
    with pytest.raises(ChecksumMismatchError, match=r"corrupt.*deleted"):
        fetch(hub)
    assert not target().exists() and not partial_path(target()).exists()
    assert not receipt_path(target()).exists()


def test_a_damaged_kept_partial_is_caught_by_the_final_check(hub: FakeHub) -> None:
    data = payload(1_000_000)
    hub.add_repo(REPO, {NAME: data})
    hub.faults.drop_after = 400_000
    with pytest.raises(DownloadError):
        fetch(hub, max_retries=0)
    partial = partial_path(target())
    partial.write_bytes(b"\0" * 400_000)  # e.g. damaged on disk while the app was closed
    with pytest.raises(ChecksumMismatchError):
        fetch(hub)
    assert not partial.exists() and not target().exists()


@pytest.mark.parametrize("fault", ["throttled", "stalled"])
def test_cancel_takes_effect_within_100_ms_and_keeps_the_partial(hub: FakeHub, fault: str) -> None:
    data = payload(4_000_000)
    hub.add_repo(REPO, {NAME: data})
    if fault == "throttled":
        hub.faults.throttle_bps = 500_000
    else:
        hub.faults.stall_after = 300_000  # the server goes silent: only closing the socket helps
    cancel = threading.Event()
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            fetch(hub, cancel=cancel)
        except BaseException as exc:
            outcome["error"], outcome["at"] = exc, time.monotonic()

    worker = threading.Thread(target=run)
    worker.start()
    partial, deadline = partial_path(target()), time.monotonic() + 20
    while not (partial.exists() and partial.stat().st_size >= 250_000) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    cancelled_at = time.monotonic()
    cancel.set()
    worker.join(5)
    assert isinstance(outcome["error"], DownloadCancelled)
    delay = float(outcome["at"]) - cancelled_at  # type: ignore[arg-type]
    assert delay < 0.1, f"cancel took {delay * 1000:.0f} ms"
    kept = partial_path(target()).stat().st_size
    assert 250_000 <= kept < len(data)

    hub.faults.throttle_bps = hub.faults.stall_after = None
    assert fetch(hub).resumed_from == kept


def test_gated_repo_without_then_with_a_token(hub: FakeHub) -> None:
    data = payload(300_000)
    hub.add_repo(REPO, {NAME: data}, gated=True)
    hub.add_token("hf_accepted")
    hub.add_token("hf_not_accepted", accepted=False)
    with pytest.raises(AccessDeniedError, match=r"is gated: open .* accept the licence.*--token TOKEN"):
        fetch(hub)
    with pytest.raises(AccessDeniedError, match="refused this token"):
        fetch(hub, token="hf_not_accepted")
    with pytest.raises(AccessDeniedError, match="refused this token"):
        fetch(hub, token="hf_unknown")
    assert not hub.downloads() and not partial_path(target()).exists()

    result = fetch(hub, token="hf_accepted")
    assert target().read_bytes() == data and result.transferred == len(data)
    head = [r for r in hub.requests if r.method == "HEAD"][-1]
    assert head.authorization == "Bearer hf_accepted"
    assert hub.downloads()[0].authorization is None  # the token never goes to the CDN


def test_not_enough_disk_is_refused_before_any_transfer(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = payload(500_000)
    hub.add_repo(REPO, {NAME: data})
    monkeypatch.setattr(download, "free_disk_bytes", lambda path: 10_000_000)
    with pytest.raises(DiskSpaceError) as caught:
        fetch(hub)
    message = str(caught.value)
    assert "needs 500,000 more bytes" in message and "only 10,000,000 bytes" in message
    assert "\n" not in message
    assert not hub.downloads() and not partial_path(target()).exists()


def test_disk_full_while_writing_leaves_only_a_partial(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    data = payload(1_500_000)
    hub.add_repo(REPO, {NAME: data})
    real_write = download._write_all
    written = [0]

    def filling_disk(handle: object, chunk: bytes) -> None:
        if written[0] + len(chunk) > 600_000:
            raise OSError(errno.ENOSPC, "No space left on device")
        written[0] += len(chunk)
        real_write(handle, chunk)  # type: ignore[arg-type]

    monkeypatch.setattr(download, "_write_all", filling_disk)
    with pytest.raises(DiskSpaceError, match=r"disk filled up .* saved in this \.partial file"):
        fetch(hub)
    assert not target().exists()
    assert [p.name for p in models_dir().glob("*.gguf")] == []  # nothing that looks complete
    assert partial_path(target()).stat().st_size == written[0]

    monkeypatch.setattr(download, "_write_all", real_write)  # space freed: the same call resumes
    assert fetch(hub).resumed_from == written[0] and target().read_bytes() == data


def test_progress_is_monotonic_with_a_sane_rate_and_eta(hub: FakeHub) -> None:
    data = payload(1_500_000)
    hub.add_repo(REPO, {NAME: data})
    hub.faults.throttle_bps = 1_000_000
    events: list[tuple[float, DownloadProgress]] = []
    started = time.monotonic()
    fetch(hub, progress=lambda p: events.append((time.monotonic() - started, p)))
    reports = [p for _, p in events]
    done = [p.done for p in reports]
    assert done == sorted(done) and done[-1] == len(data) and reports[-1].eta_s == 0.0
    assert all(p.total == len(data) and p.phase == "downloading" for p in reports)
    assert len(reports) <= 10 * events[-1][0] + 3  # at most ~10 reports a second
    middle = [p for t, p in events if t > 0.5 and p.done < len(data)]
    assert len(middle) >= 4
    for p in middle:
        assert 500_000 < p.bytes_per_s < 2_000_000  # the server sends 1,000,000 B/s
        assert p.eta_s is not None and abs(p.eta_s - (p.total - p.done) / p.bytes_per_s) < 1e-6
        assert 0 < p.eta_s < 2.0
    assert middle[-1].eta_s < middle[0].eta_s  # type: ignore[operator]


def test_checksum_from_the_model_api_when_the_head_has_none(hub: FakeHub) -> None:
    data = payload(200_000)
    repo = hub.add_repo(REPO, {NAME: data})
    hub.faults.hide_linked_etag = True
    result = fetch(hub)
    assert result.digest == hashlib.sha256(data).hexdigest()
    assert any(r.path == f"/api/models/{REPO}/revision/{repo.commit}" for r in hub.requests)


def test_a_partial_of_an_older_upload_is_discarded(hub: FakeHub) -> None:
    hub.add_repo(REPO, {NAME: payload(800_000, seed=1)})
    hub.faults.drop_after = 300_000
    with pytest.raises(DownloadError):
        fetch(hub, max_retries=0)
    new = payload(800_000, seed=2)
    hub.add_repo(REPO, {NAME: new}, commit="f" * 40)  # the repo was updated meanwhile
    hub.faults.drop_after = None
    result = fetch(hub)
    assert result.resumed_from == 0 and target().read_bytes() == new


def test_catalog_checksums_are_checked_when_trusted_and_reported_otherwise(hub: FakeHub) -> None:
    data = payload(100_000)
    hub.add_repo(REPO, {NAME: data})
    trusted = FileSource(REPO, NAME, expected_sha256="0" * 64, sha256_trusted=True)
    with pytest.raises(ChecksumMismatchError, match="verified catalog value"):
        fetch(hub, trusted)
    assert not hub.downloads()
    hint = FileSource(REPO, NAME, expected_sha256="0" * 64)
    assert fetch(hub, hint).catalog_match is False
    matching = FileSource(REPO, NAME, expected_sha256=hashlib.sha256(data).hexdigest())
    assert fetch(hub, matching).catalog_match is True


def test_hub_refusals_become_one_line_input_errors(hub: FakeHub) -> None:
    hub.add_repo(REPO, {NAME: b"GGUF"})
    cases = [
        (FileSource("org/missing", NAME), "no repository org/missing"),
        (FileSource(REPO, "other.gguf"), "has no file 'other.gguf'"),
        (FileSource(REPO, NAME, revision="a" * 40), "has no revision"),
    ]
    for source, message in cases:
        with pytest.raises(InputError, match=message):
            fetch(hub, source)


def test_an_unrelated_file_of_the_same_name_is_never_overwritten(hub: FakeHub) -> None:
    hub.add_repo(REPO, {NAME: payload(1000)})
    target().parent.mkdir(parents=True)
    target().write_bytes(b"my own file")
    with pytest.raises(InputError, match="already exists"):
        fetch(hub)
    assert target().read_bytes() == b"my own file"


def test_parse_source_accepts_names_paths_and_urls() -> None:
    entry = parse_source("gemma-3n-e2b-q8_0-ggml-org")
    assert entry.revision == "989cffaba23976934324f5e3abfabe31b30eb73b" and entry.expected_sha256
    assert parse_source("gemma-3n-e2b-q8_0-ggml-org", revision="main").expected_sha256 is None
    plain = parse_source("owner/repo/sub/file.gguf")
    assert (plain.repo, plain.filename, plain.local_name, plain.revision) == (
        "owner/repo", "sub/file.gguf", "file.gguf", None
    )  # fmt: skip
    url = parse_source("https://huggingface.co/owner/repo/resolve/abc123/file.gguf?download=true")
    assert (url.repo, url.filename, url.revision) == ("owner/repo", "file.gguf", "abc123")
    for bad in ("owner/repo", "owner/repo/readme.md"):
        with pytest.raises(InputError):
            parse_source(bad)


# The command line, run as a user would run it, against the fake hub.


def cli(hub: FakeHub, *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home")}
    return subprocess.run(
        [sys.executable, "-m", "app", "models", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_download_json_lines(hub: FakeHub, tmp_path: Path) -> None:
    data = write_tiny_llama(tmp_path / "tiny.gguf").read_bytes()
    hub.add_repo(REPO, {"tiny.gguf": data})
    result = cli(hub, "download", f"{REPO}/tiny.gguf", "--json", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert {e["event"] for e in events[:-1]} == {"progress"} and events[-1]["event"] == "done"
    assert events[-2]["done"] == events[-2]["total"] == len(data)
    assert events[-1]["digest"] == hashlib.sha256(data).hexdigest()
    assert Path(events[-1]["path"]) == models_dir() / "tiny.gguf"
    assert events[-1]["model"]["architecture"] == "llama"


def test_cli_download_catalog_name(hub: FakeHub, tmp_path: Path) -> None:
    entry = parse_source("gemma-3n-e2b-q4_k_m-unsloth")
    assert entry.revision is not None
    data = write_tiny_llama(tmp_path / "tiny.gguf").read_bytes()
    hub.add_repo(entry.repo, {entry.filename: data}, commit=entry.revision)
    result = cli(hub, "download", "gemma-3n-e2b-q4_k_m-unsloth", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(models_dir() / entry.local_name))
    assert "differs from the catalog" in result.stderr  # the fake file is not the real one


@pytest.mark.parametrize(
    ("setup", "args", "code", "fragment"),
    [
        ("gated", (), 2, "--token TOKEN"),
        ("gated", ("--token", "hf_bad"), 2, "refused this token"),
        ("corrupt", (), 3, "download is corrupt"),
        ("none", (), 2, "no repository"),
    ],
)
def test_cli_download_errors_are_one_line(
    hub: FakeHub, tmp_path: Path, setup: str, args: tuple[str, ...], code: int, fragment: str
) -> None:
    if setup != "none":
        hub.add_repo(REPO, {NAME: payload(50_000)}, gated=setup == "gated")
    hub.faults.corrupt_offset = 10 if setup == "corrupt" else None
    result = cli(hub, "download", f"{REPO}/{NAME}", *args, "--json", tmp_path=tmp_path)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gemma-desk: error:") and fragment in lines[0]
    last = json.loads(result.stdout.splitlines()[-1])
    assert last["event"] == "error" and fragment in last["message"]


def test_cli_download_with_token(hub: FakeHub, tmp_path: Path) -> None:
    hub.add_repo(REPO, {NAME: write_tiny_llama(tmp_path / "tiny.gguf").read_bytes()}, gated=True)
    hub.add_token("hf_accepted")
    result = cli(hub, "download", f"{REPO}/{NAME}", "--token", "hf_accepted", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sha256 verified" in result.stdout and "text model (llama)" in result.stdout


def test_cli_download_of_a_file_that_is_no_gguf_fails_after_verification(
    hub: FakeHub, tmp_path: Path
) -> None:
    hub.add_repo(REPO, {NAME: b"<html>" + payload(5_000)})
    result = cli(hub, "download", f"{REPO}/{NAME}", tmp_path=tmp_path)
    assert result.returncode == 3 and "web page (HTML)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_server_ignoring_range_restarts_cleanly(hub: FakeHub) -> None:
    data = payload(900_000)
    hub.add_repo(REPO, {NAME: data})
    hub.faults.drop_after = 400_000
    with pytest.raises(DownloadError):
        fetch(hub, max_retries=0)
    hub.faults.drop_after, hub.faults.ignore_range = None, True
    result = fetch(hub)  # 200 instead of 206: the kept bytes are dropped, never mixed with new ones
    assert target().read_bytes() == data and result.transferred == len(data)


def test_the_same_file_is_not_downloaded_twice_at_once(hub: FakeHub) -> None:
    hub.add_repo(REPO, {NAME: payload(2_000_000)})
    hub.faults.throttle_bps = 1_000_000
    cancel = threading.Event()
    errors: list[BaseException] = []

    def first_download() -> None:
        try:
            fetch(hub, cancel=cancel)
        except BaseException as exc:
            errors.append(exc)

    first = threading.Thread(target=first_download)
    first.start()
    while not partial_path(target()).exists():
        time.sleep(0.01)
    try:
        with pytest.raises(InputError, match="already being downloaded"):
            fetch(hub)
    finally:
        cancel.set()
        first.join(5)
    assert [type(e) for e in errors] == [DownloadCancelled]
