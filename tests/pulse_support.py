"""A private PulseAudio daemon with a null sink and a virtual microphone, for real-capture tests.

``paplay`` plays into the null sink ``virt_sink``; ``virtmic`` (a remap of the sink's monitor)
is the default source, so PortAudio's ALSA ``default``/``pulse`` devices record what paplay
plays, paced by the sink's clock like a sound card (platform-notes §3).  The daemon runs in the
foreground as our child process, under a temporary directory with anonymous auth on its own
socket; clients are pointed at it with ``PULSE_SERVER``, so the user's audio setup is untouched.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SINK = "virt_sink"
SOURCE = "virtmic"
_BINARIES = ("pulseaudio", "pactl", "paplay")
_ALSA_PULSE_PLUGIN = "/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so"


def pulse_missing() -> str | None:
    """Why a PulseAudio capture test cannot run here (``None`` when it can)."""
    missing = [name for name in _BINARIES if shutil.which(name) is None]
    if missing:
        return f"needs {', '.join(missing)} (apt install pulseaudio pulseaudio-utils)"
    if not glob.glob(_ALSA_PULSE_PLUGIN):
        return "needs the ALSA pulse plugin (apt install libasound2-plugins)"
    return None


@dataclass
class PulseServer:
    """A running private daemon; ``env`` is what a client process needs to reach it."""

    root: Path
    process: subprocess.Popen[bytes]
    socket: Path
    env: dict[str, str]

    @property
    def client_vars(self) -> dict[str, str]:
        return client_vars(self.root, self.socket)

    def pactl(self, *args: str, timeout: float = 10.0) -> str:
        done = subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=True
        )
        return done.stdout

    def play(self, wav: Path) -> subprocess.Popen[bytes]:
        """Start ``paplay`` into the null sink (real time); the caller waits for it."""
        return subprocess.Popen(
            ["paplay", f"--device={SINK}", str(wav)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def log_tail(self, chars: int = 2000) -> str:
        log = self.root / "pulseaudio.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate our daemon (SIGTERM, then SIGKILL), bounded in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)


def start_pulse(root: Path, timeout: float = 10.0) -> PulseServer:
    """Start the daemon with the null sink and make ``virtmic`` the default source."""
    runtime = root / "runtime"
    for folder in (root, runtime, root / "home", root / "config", root / "state"):
        folder.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    socket = runtime / "native"
    env = _daemon_env(root)
    command = [
        "pulseaudio",
        "-n",  # no default.pa: only the modules below
        "--daemonize=no",
        "--exit-idle-time=20",  # an orphan (test process killed) goes away once its clients are gone
        "--use-pid-file=no",
        "--log-target=stderr",
        f"--load=module-native-protocol-unix socket={socket} auth-anonymous=1",
        f"--load=module-null-sink sink_name={SINK}",
    ]
    with (root / "pulseaudio.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
    server = PulseServer(root, process, socket, {**env, **client_vars(root, socket)})
    try:
        _wait_ready(server, timeout)
        server.pactl("load-module", "module-remap-source", f"master={SINK}.monitor", f"source_name={SOURCE}")
        server.pactl("set-default-source", SOURCE)
    except BaseException:
        server.stop()
        raise
    return server


def client_vars(root: Path, socket: Path) -> dict[str, str]:
    """Point libpulse at our socket, and keep its cookie, runtime link and autospawn out of the real HOME."""
    config = root / "client.conf"
    if not config.exists():
        config.write_text("autospawn = no\n")
    return {
        "PULSE_SERVER": f"unix:{socket}",
        "PULSE_COOKIE": str(root / "cookie"),
        "PULSE_RUNTIME_PATH": str(root / "runtime"),
        "PULSE_CLIENTCONFIG": str(config),
    }


def _daemon_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HOME=str(root / "home"),
        XDG_RUNTIME_DIR=str(root / "runtime"),
        XDG_CONFIG_HOME=str(root / "config"),
        PULSE_STATE_PATH=str(root / "state"),
        PULSE_RUNTIME_PATH=str(root / "runtime"),
    )
    env.pop("PULSE_SERVER", None)
    return env


def _wait_ready(server: PulseServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"pulseaudio exited with {server.process.returncode}:\n{server.log_tail()}")
        if server.socket.exists():
            with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                server.pactl("info", timeout=2.0)
                return
        time.sleep(0.05)
    raise RuntimeError(f"pulseaudio did not answer within {timeout} s:\n{server.log_tail()}")


def reinit_portaudio() -> None:
    """Make PortAudio enumerate devices again: it lists them once, when it is initialised."""
    import sounddevice

    sounddevice._terminate()
    sounddevice._initialize()


@contextlib.contextmanager
def pulse_session(root: Path, timeout: float = 10.0) -> Iterator[PulseServer]:
    """A private daemon that this process's PortAudio records from; everything restored afterwards."""
    server = start_pulse(root, timeout)
    saved = {name: os.environ.get(name) for name in server.client_vars}
    try:
        os.environ.update(server.client_vars)
        reinit_portaudio()
        yield server
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reinit_portaudio()
