"""What machine a benchmark ran on, how busy it was, and how much memory a process held.

Figures from a shared machine are only comparable with the load average beside them,
so every measurement here records it.  Peak RSS comes from ``/proc`` where it exists
(and can be reset between phases with ``clear_refs``), else from ``getrusage``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path


def load_average() -> tuple[float, float, float] | None:
    """The 1/5/15-minute load averages, or None where the platform has none (Windows)."""
    try:
        one, five, fifteen = os.getloadavg()
    except (OSError, AttributeError):
        return None
    return (round(one, 2), round(five, 2), round(fifteen, 2))


def cpu_model() -> str:
    """The CPU's marketing name: /proc/cpuinfo, sysctl on macOS, else what platform knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model", "Hardware")):
                return line.split(":", 1)[1].strip()
    if sys.platform == "darwin":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            )
            if out.stdout.strip():
                return out.stdout.strip()
    return platform.processor() or platform.machine()


def ram_bytes() -> int | None:
    """Physical memory, where sysconf reports it."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def cpu_features() -> list[str]:
    """The SIMD features that decide llama.cpp's and NumPy's kernels (x86 only; empty elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                wanted = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx_vnni")
                return [f for f in wanted if f in flags]
    return []


def llama_system_info() -> str:
    """llama.cpp's own one-line summary of its CPU backend (features it was built with)."""
    import llama_cpp as ll

    raw = ll.llama_print_system_info()
    return raw.decode("utf-8", "replace").strip() if isinstance(raw, bytes) else str(raw).strip()


def blas_info() -> str:
    """NumPy's BLAS: OpenBLAS's build string where it is OpenBLAS, else the name NumPy reports."""
    from model_io.audio.conformer import openblas

    lib = openblas()
    if lib is not None:
        return f"{lib.config.strip()} (core {lib.corename})"
    import numpy as np

    config = np.show_config(mode="dicts") or {}
    blas = config.get("Build Dependencies", {}).get("blas", {})
    return f"{blas.get('name', 'unknown')} {blas.get('version', '')}".strip()


def machine_info(threads: int) -> dict[str, object]:
    """Everything needed to compare two runs of the benchmark (JSON-ready)."""
    import llama_cpp as ll
    import numpy as np

    ram = ram_bytes()
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cpu_features": cpu_features(),
        "ram_gib": round(ram / 2**30, 1) if ram else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "llama_cpp_python": ll.__version__,
        "llama_cpp_backend": llama_system_info(),
        "gpu_offload": bool(ll.llama_supports_gpu_offload()),
        "numpy": np.__version__,
        "blas": blas_info(),
        "threads": threads,
        "load_average_start": load_average(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# ----------------------------------------------------------------------------- memory


def _status_kib(field: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def current_rss_bytes() -> int | None:
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else None


def peak_rss_bytes() -> int | None:
    """This process's peak RSS since start (or since :func:`reset_peak_rss` where that works)."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def reset_peak_rss() -> bool:
    """Restart the peak-RSS count (Linux ``clear_refs`` 5), so each model's phase gets its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class ChildRun:
    """A finished child process: its exit status, output and peak RSS."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss_bytes: int | None
    wall_s: float


def run_measured(command: list[str], timeout: float) -> ChildRun:
    """Run ``command`` to completion and report its own peak RSS.

    Output goes to temporary files, not pipes, so the child can never block on a full pipe
    while we wait.  Raises :class:`TimeoutError` (after killing it) past ``timeout``.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        watcher = _PeakWatcher(process.pid)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise TimeoutError(
                f"{Path(command[0]).name} took longer than {timeout:.0f} s and was stopped"
            ) from None
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            watcher.stop()
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return ChildRun(int(process.returncode), out.read(), err.read(), watcher.peak, wall)


class _PeakWatcher:
    """Samples a child's VmHWM from /proc every 20 ms until it exits.

    ``getrusage``/``wait4`` cannot be used on Linux: a child created by fork or vfork
    inherits the parent's high-water mark at exec, so a small tool started from a large
    benchmark process would report the benchmark's own peak.  VmHWM only grows, so the
    last sample before exit is the peak (give or take the final 20 ms).  None where
    /proc does not exist.
    """

    def __init__(self, pid: int) -> None:
        self._path = Path(f"/proc/{pid}/status")
        self.peak: int | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="bench-rss", daemon=True)
        if self._path.exists():
            self._thread.start()

    def _watch(self) -> None:
        while not self._done.wait(0.02):
            self._sample()

    def _sample(self) -> None:
        try:
            text = self._path.read_text()
        except OSError:
            return
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                value = int(line.split()[1]) * 1024
                self.peak = max(self.peak or 0, value)

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()
