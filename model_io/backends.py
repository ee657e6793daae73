"""What the installed llama.cpp build can run on: its backends, devices and their memory.

:func:`detect_backends` asks llama.cpp in this process (through :mod:`model_io.ggml_registry`);
:func:`probe_backends` asks it in a child process, for the GUI, which keeps llama.cpp and GPU drivers
out of its own process (a driver that crashes while starting must not close the window). This module
itself imports neither llama_cpp nor Qt.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Any

from model_io.errors import EngineFailure
from model_io.settings import Backend

_GIB = 1024**3
PROBE_TIMEOUT_S = 60.0


class DeviceKind(StrEnum):
    CPU = "cpu"
    GPU = "gpu"  # dedicated memory
    IGPU = "igpu"  # integrated: shares system memory
    ACCEL = "accel"  # helps the CPU backend (BLAS, AMX); holds no layers
    META = "meta"


# Registry names of the GPU backends (ggml-metal registers as "MTL").
_GPU_BACKENDS = {"Vulkan": Backend.VULKAN, "MTL": Backend.METAL, "Metal": Backend.METAL}


@dataclass(frozen=True)
class ComputeDevice:
    """One device llama.cpp can place work on."""

    name: str  # "CPU", "Vulkan0", "MTL0"
    description: str  # the CPU model or GPU name
    kind: DeviceKind
    backend: str  # registry name: "CPU", "Vulkan", "MTL", "BLAS"
    memory_free: int  # bytes
    memory_total: int

    @property
    def holds_layers(self) -> bool:
        """Whether model layers can be offloaded to it (GPU or integrated GPU)."""
        return self.kind in (DeviceKind.GPU, DeviceKind.IGPU)

    def describe(self) -> str:
        memory = f"{self.memory_free / _GIB:.1f} of {self.memory_total / _GIB:.1f} GiB free"
        return f"{self.name} ({self.kind}): {self.description} — {memory}"


@dataclass(frozen=True)
class BackendReport:
    """The loaded llama.cpp build's capabilities, as the settings and ``gemma-desk backends`` show them."""

    llama_cpp_version: str  # the installed distribution, e.g. "0.3.36+vulkan" for our wheels
    backends: tuple[str, ...]  # registered backends, e.g. ("Vulkan", "CPU")
    devices: tuple[ComputeDevice, ...]
    gpu_offload: bool  # llama_supports_gpu_offload()
    cpu_module: str | None  # "libggml-cpu-haswell.so" when the CPU backend was picked at run time
    cpu_features: tuple[str, ...]  # instruction sets the loaded CPU backend was compiled for

    @property
    def gpu_devices(self) -> tuple[ComputeDevice, ...]:
        return tuple(d for d in self.devices if d.holds_layers)

    def offered_backends(self) -> tuple[Backend, ...]:
        """The backend choices that can work here: AUTO and CPU always, a GPU backend if it has a device."""
        gpus = [_GPU_BACKENDS[d.backend] for d in self.gpu_devices if d.backend in _GPU_BACKENDS]
        return (Backend.AUTO, Backend.CPU, *dict.fromkeys(gpus))

    def summary(self) -> str:
        """One line for the settings dialog: where layers can run."""
        cpu = "CPU" + (f" ({self.cpu_variant})" if self.cpu_variant else "")
        gpus = [f"{d.name}: {d.description}, {d.memory_free / _GIB:.1f} GiB free" for d in self.gpu_devices]
        return " · ".join([cpu, *gpus])

    @property
    def cpu_variant(self) -> str | None:
        """``haswell`` for ``libggml-cpu-haswell.so``."""
        if not self.cpu_module:
            return None
        stem = self.cpu_module.split(".")[0]
        return stem.removeprefix("lib").removeprefix("ggml-cpu-") or None

    def describe(self) -> str:
        lines = [
            f"llama-cpp-python {self.llama_cpp_version}; backends: {', '.join(self.backends)}",
            f"GPU offload: {'yes' if self.gpu_offload else 'no'}",
        ]
        if self.cpu_module:
            lines.append(f"CPU backend: {self.cpu_module} (chosen at run time for this CPU)")
        if self.cpu_features:
            lines.append(f"CPU features: {' '.join(self.cpu_features)}")
        lines.append("devices:")
        lines.extend(f"  {device.describe()}" for device in self.devices)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "llama_cpp_version": self.llama_cpp_version,
            "backends": list(self.backends),
            "gpu_offload": self.gpu_offload,
            "cpu_module": self.cpu_module,
            "cpu_variant": self.cpu_variant,
            "cpu_features": list(self.cpu_features),
            "offered_backends": [b.value for b in self.offered_backends()],
            "devices": [{**asdict(d), "kind": d.kind.value} for d in self.devices],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackendReport:
        """The inverse of :meth:`to_dict` (derived keys are ignored)."""
        devices = tuple(
            ComputeDevice(**{**device, "kind": DeviceKind(device["kind"])}) for device in data["devices"]
        )
        return cls(
            llama_cpp_version=data["llama_cpp_version"],
            backends=tuple(data["backends"]),
            devices=devices,
            gpu_offload=bool(data["gpu_offload"]),
            cpu_module=data["cpu_module"],
            cpu_features=tuple(data["cpu_features"]),
        )


def detect_backends() -> BackendReport:
    """Initialise llama.cpp in this process if needed and report its backends and devices."""
    from model_io import ggml_registry
    from model_io.native import ensure_backend  # loads backend modules, then llama_backend_init

    ensure_backend()
    import llama_cpp as ll

    return BackendReport(
        llama_cpp_version=_distribution_version(),
        backends=ggml_registry.registered_backends(),
        devices=ggml_registry.devices(),
        gpu_offload=bool(ll.llama_supports_gpu_offload()),
        cpu_module=ggml_registry.loaded_cpu_module(),
        cpu_features=tuple(ggml_registry.cpu_features()),
    )


def probe_command() -> list[str]:
    """How to run detection in a child: ``python -m model_io.backends`` from an interpreter, else the
    app's own executable (a Briefcase stub always runs the app's CLI) as ``gemma-desk backends --json``.
    """
    executable = sys.executable
    if Path(executable).name.lower().startswith("python") and not getattr(sys, "frozen", False):
        return [executable, "-m", "model_io.backends"]
    return [executable, "backends", "--json"]


def probe_backends(command: list[str] | None = None, timeout: float = PROBE_TIMEOUT_S) -> BackendReport:
    """:func:`detect_backends` in a child process, so a crashing GPU driver only ends the child."""
    env = {k: v for k, v in os.environ.items() if k != "GEMMA_DESK_ENGINE_WORKER"}
    try:
        result = subprocess.run(
            command or probe_command(), capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise EngineFailure(f"llama.cpp's backend detection did not finish within {timeout:.0f} s") from exc
    except OSError as exc:
        raise EngineFailure(f"could not start llama.cpp's backend detection: {exc}") from exc
    if result.returncode != 0 or "{" not in result.stdout:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        detail = lines[-1] if lines else f"exit code {result.returncode}"
        raise EngineFailure(f"llama.cpp's backend detection failed: {detail}")
    # A launcher may print before Python starts (Briefcase's debug stub): the JSON object comes last.
    return BackendReport.from_dict(json.loads(result.stdout[result.stdout.index("{") :]))


_probe_lock = threading.Lock()
_probe: Future[BackendReport] | None = None


def detect_in_background() -> Future[BackendReport]:
    """:func:`probe_backends` on a daemon thread, once per process (a failed probe is retried)."""
    global _probe
    with _probe_lock:
        if _probe is not None and not (_probe.done() and _probe.exception() is not None):
            return _probe
        future: Future[BackendReport] = Future()
        _probe = future

    def run() -> None:
        try:
            future.set_result(probe_backends())
        except Exception as exc:  # delivered to the caller through the future
            future.set_exception(exc)

    threading.Thread(target=run, name="gemma-desk-backends", daemon=True).start()
    return future


def _distribution_version() -> str:
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:  # a source checkout on sys.path
        import llama_cpp as ll

        return str(getattr(ll, "__version__", "unknown"))


if __name__ == "__main__":
    print(json.dumps(detect_backends().to_dict()))
