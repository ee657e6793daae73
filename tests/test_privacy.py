"""Privacy: chat, image questions, transcription and translation use no network; only downloads do.

Each run is watched in up to three independent ways, all of which are used when the machine allows:

* **audit hook** (always): a ``sitecustomize`` put first on PYTHONPATH installs ``sys.addaudithook``
  and records, then refuses, every name lookup and every connect/bind/sendto on an IPv4/IPv6
  socket made from Python, in the process and in any child it starts;
* **empty network namespace** (root or user namespaces: ``unshare --net``): no interface but a
  downed loopback, so any attempt, from Python or native code, fails;
* **strace** (if installed): every socket system call of every thread and child, so native code
  (llama.cpp, Qt, libsndfile) is watched too; any IPv4/IPv6 socket or any ``listen`` fails the test.

A positive control proves the watchers see real traffic: an explicit ``models download`` from the
local fake hub is caught by the hook and by strace.  Gemma Desk has no local API: nothing binds or
listens, which the same watchers check (and the window's sockets are read from /proc).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fake_hub import FakeHub
from gguf_fixtures import write_tiny_llama
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
LOG_ENV = "GEMMA_DESK_NETWORK_LOG"
GUI_SCENARIO = REPO / "tests" / "privacy_gui_scenario.py"

AUDIT_HOOK = '''
"""Installed by tests/test_privacy.py: record, then refuse, any network use from Python."""
import json, os, socket, sys, traceback

_LOG = os.environ.get("GEMMA_DESK_NETWORK_LOG")
_LOOKUPS = {"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
            "socket.gethostbyaddr", "socket.getnameinfo"}
_ADDRESSED = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"}
_INET = {socket.AF_INET, socket.AF_INET6}


def _hook(event, args):
    if not event.startswith("socket."):
        return
    if event in _LOOKUPS:
        what = f"{event} {args[:2]!r}"
    elif event in _ADDRESSED and getattr(args[0], "family", None) in _INET:
        what = f"{event} {args[1]!r}"
    else:
        return
    record = {"pid": os.getpid(), "event": what, "stack": traceback.format_stack(limit=12)}
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, (json.dumps(record) + "\\n").encode())
    os.close(fd)
    raise PermissionError(f"privacy test: {what} refused")


if _LOG:
    sys.addaudithook(_hook)
'''

CLI_DRIVER = """
import json, sys
from app.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    results.append([argv[:2], code])
print("RESULTS " + json.dumps(results))
"""


def _works(command: list[str]) -> bool:
    if shutil.which(command[0]) is None:
        return False
    return subprocess.run(command, capture_output=True, timeout=30).returncode == 0


STRACE = ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=%network", "-e", "signal=none"]
HAS_NETNS = _works(["unshare", "--net", "true"])
HAS_STRACE = _works([*STRACE, "-o", os.devnull, "true"])


@dataclass
class Watch:
    """How a child process is confined and observed, and what was seen."""

    folder: Path
    netns: bool
    strace: bool
    hook: bool = True

    @property
    def log(self) -> Path:
        return self.folder / "audit.jsonl"

    @property
    def trace(self) -> Path:
        return self.folder / "strace.log"

    def command(self, argv: list[str]) -> list[str]:
        prefix = ["unshare", "--net"] if self.netns else []
        if self.strace:
            prefix += [*STRACE, "-o", str(self.trace)]
        return prefix + argv

    def env(self, **extra: str) -> dict[str, str]:
        path = os.pathsep.join([str(self.folder / "hook")] * self.hook + [str(REPO), str(REPO / "tests")])
        return {**os.environ, "PYTHONPATH": path, LOG_ENV: str(self.log), **extra}

    def audit_events(self) -> list[str]:
        if not self.log.exists():
            return []
        return [json.loads(line)["event"] for line in self.log.read_text().splitlines()]

    def native_network_calls(self) -> list[str]:
        """strace lines that create an IPv4/IPv6/packet socket or listen on any socket."""
        if not self.strace:
            return []
        lines = self.trace.read_text(errors="replace").splitlines()
        return [
            line
            for line in lines
            if ("socket(AF_INET" in line or "socket(AF_PACKET" in line or " listen(" in line)
        ]

    def describe(self) -> str:
        layers = (
            ["audit hook"] * self.hook + ["empty network namespace"] * self.netns + ["strace"] * self.strace
        )
        return " + ".join(layers)


def watch(tmp_path: Path, *, netns: bool = HAS_NETNS, strace: bool = HAS_STRACE, hook: bool = True) -> Watch:
    folder = tmp_path / "watch"
    (folder / "hook").mkdir(parents=True)
    (folder / "hook" / "sitecustomize.py").write_text(AUDIT_HOOK)
    return Watch(folder, netns, strace, hook)


@pytest.fixture(scope="module")
def media_models(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny model with its two-tower projector, a picture and a spoken-length clip."""
    from model_io.synth.mmproj import write_mmproj_for

    folder = tmp_path_factory.mktemp("privacy")
    projector = write_mmproj_for("tiny", folder / "gemma-3n-tiny-mmproj.gguf")
    picture = folder / "picture.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(picture)
    clip = folder / "clip.wav"
    t = np.arange(16_000 * 2) / 16_000
    sf.write(clip, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 16_000)
    return {"model": tiny_model, "mmproj": projector, "picture": picture, "clip": clip}


@pytest.mark.slow
def test_chat_image_transcription_and_translation_open_no_socket(
    media_models: dict[str, Path], tmp_path: Path
) -> None:
    m = {name: str(path) for name, path in media_models.items()}
    short = ["--max-tokens", "3", "--ctx", "1024"]  # a chat turn with media covers plain chat too
    media = ["--image", m["picture"], "--audio", m["clip"]]
    commands = [
        ["ask", "--model", m["model"], "--mmproj", m["mmproj"], *media, *short, "What is this?"],
        ["transcribe", "--model", m["model"], "--mmproj", m["mmproj"], *short, m["clip"]],
        ["translate", "--to", "English", "--model", m["model"], "--mmproj", m["mmproj"], *short, m["clip"]],
        ["models", "inspect", m["model"]],
        ["models", "list"],
        ["models", "discover"],
    ]
    seen = watch(tmp_path)
    done = subprocess.run(
        seen.command([sys.executable, "-c", CLI_DRIVER, json.dumps(commands)]),
        capture_output=True,
        text=True,
        env=seen.env(),
        timeout=600,
        cwd=REPO,
    )
    print(f"watched by: {seen.describe()}")
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.rsplit("RESULTS ", 1)[1])
    assert [code for _, code in results] == [0] * len(commands), (results, done.stderr[-3000:])
    assert seen.audit_events() == []
    assert seen.native_network_calls() == []


def test_explicit_download_is_the_only_network_use_and_is_seen(tmp_path: Path) -> None:
    """Positive control: the hook catches (and stops) a real download from the local fake hub, and
    strace sees the sockets of the same download when it is allowed to run."""
    data = write_tiny_llama(tmp_path / "tiny.gguf").read_bytes()
    blocked, free = (
        watch(tmp_path / "blocked", netns=False),
        watch(tmp_path / "free", netns=False, hook=False),
    )
    with FakeHub(lifetime=120) as hub:
        hub.add_repo("someone/tiny", {"tiny.gguf": data})
        argv = [sys.executable, "-m", "app", "models", "download", "someone/tiny/tiny.gguf", "--dest"]
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf")}
        runs = {
            name: subprocess.run(
                seen.command([*argv, str(seen.folder / "models")]),
                capture_output=True,
                text=True,
                env=seen.env(**env),
                timeout=120,
                cwd=REPO,
            )
            for name, seen in (("blocked", blocked), ("free", free))
        }
    assert runs["free"].returncode == 0, runs["free"].stderr
    assert (free.folder / "models" / "tiny.gguf").read_bytes() == data
    assert runs["blocked"].returncode == 3 and not (blocked.folder / "models" / "tiny.gguf").exists()
    assert any("127.0.0.1" in event for event in blocked.audit_events()), blocked.audit_events()
    if free.strace:
        assert any("socket(AF_INET" in line for line in free.native_network_calls())


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads the window's sockets from /proc")
def test_window_chat_turn_with_an_image_opens_no_socket(tmp_path: Path) -> None:
    """The offscreen window: start, model and projector load, an image question, its answer."""
    seen = watch(tmp_path)
    done = subprocess.run(
        seen.command([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(GUI_SCENARIO)]),
        capture_output=True,
        text=True,
        env=seen.env(QT_QPA_PLATFORM="offscreen"),
        timeout=600,
        cwd=REPO,
    )
    print(f"watched by: {seen.describe()}")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout
    assert seen.audit_events() == []
    assert seen.native_network_calls() == []


def test_telemetry_is_off_even_if_the_environment_asks_for_it() -> None:
    """huggingface_hub adds telemetry to its requests unless told not to; the app always tells it."""
    script = (
        "import app.cli, model_io.download\n"
        "from huggingface_hub import constants\n"
        "print(constants.HF_HUB_DISABLE_TELEMETRY)\n"
    )
    env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "0", "DO_NOT_TRACK": "", "DISABLE_TELEMETRY": ""}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


TRACKERS = (
    "sentry",
    "posthog",
    "mixpanel",
    "segment",
    "amplitude",
    "bugsnag",
    "datadog",
    "telemetry",
    "analytics",
)


def test_no_tracking_library_is_imported_anywhere() -> None:
    """No module of the app imports an analytics or crash-reporting SDK."""
    offenders = []
    for path in [*REPO.joinpath("app").rglob("*.py"), *REPO.joinpath("model_io").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(REPO)}: {n}" for n in names if any(t in n.lower() for t in TRACKERS)
            ]
    assert offenders == []
