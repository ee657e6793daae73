"""What the installed llama.cpp build can run on: its backends, devices and their memory.

llama-cpp-python binds ``llama.h`` but not ggml's device registry, so the few ``ggml-backend.h``
functions needed here are declared over ctypes on the same ``libggml`` llama_cpp loaded.

This module also loads backends built as loadable modules (``GGML_BACKEND_DL``: the portable
wheels from packaging/build-llama-wheel.sh carry one CPU module per instruction-set level and
optionally ``libggml-vulkan``). ggml searches for modules only beside the executable and in the
current folder, never in ``llama_cpp/lib`` where the wheel puts them, so without this a portable
build would find no backend at all.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from importlib import metadata
from pathlib import Path
from typing import Any

import llama_cpp as ll
from llama_cpp._ggml import libggml

from model_io.errors import EngineFailure
from model_io.settings import Backend

_GIB = 1024**3


class _DevType(IntEnum):
    """``enum ggml_backend_dev_type``."""

    CPU = 0
    GPU = 1
    IGPU = 2
    ACCEL = 3
    META = 4


class DeviceKind(StrEnum):
    CPU = "cpu"
    GPU = "gpu"  # dedicated memory
    IGPU = "igpu"  # integrated: shares system memory
    ACCEL = "accel"  # helps the CPU backend (BLAS, AMX); holds no layers
    META = "meta"


_KIND_OF = {t.value: DeviceKind[t.name] for t in _DevType}
# Registry names of the GPU backends (ggml-metal registers as "MTL").
_GPU_BACKENDS = {"Vulkan": Backend.VULKAN, "MTL": Backend.METAL, "Metal": Backend.METAL}


class _Feature(ctypes.Structure):
    _fields_ = (("name", ctypes.c_char_p), ("value", ctypes.c_char_p))


def _declare(name: str, restype: Any, *argtypes: Any) -> Any:
    try:
        function = getattr(libggml, name)
    except AttributeError as exc:
        raise EngineFailure(f"this llama.cpp build lacks {name}; reinstall llama-cpp-python 0.3.36") from exc
    function.restype, function.argtypes = restype, list(argtypes)
    return function


_p = ctypes.c_void_p
_reg_count = _declare("ggml_backend_reg_count", ctypes.c_size_t)
_reg_get = _declare("ggml_backend_reg_get", _p, ctypes.c_size_t)
_reg_name = _declare("ggml_backend_reg_name", ctypes.c_char_p, _p)
_reg_proc = _declare("ggml_backend_reg_get_proc_address", _p, _p, ctypes.c_char_p)
_reg_by_name = _declare("ggml_backend_reg_by_name", _p, ctypes.c_char_p)
_dev_count = _declare("ggml_backend_dev_count", ctypes.c_size_t)
_dev_get = _declare("ggml_backend_dev_get", _p, ctypes.c_size_t)
_dev_name = _declare("ggml_backend_dev_name", ctypes.c_char_p, _p)
_dev_description = _declare("ggml_backend_dev_description", ctypes.c_char_p, _p)
_dev_memory = _declare(
    "ggml_backend_dev_memory", None, _p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)
)
_dev_type = _declare("ggml_backend_dev_type", ctypes.c_int, _p)
_dev_backend_reg = _declare("ggml_backend_dev_backend_reg", _p, _p)
_load_all_from_path = _declare("ggml_backend_load_all_from_path", None, ctypes.c_char_p)
_get_features_t = ctypes.CFUNCTYPE(ctypes.POINTER(_Feature), _p)


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
            "devices": [
                {
                    "name": d.name,
                    "description": d.description,
                    "kind": d.kind.value,
                    "backend": d.backend,
                    "memory_free": d.memory_free,
                    "memory_total": d.memory_total,
                }
                for d in self.devices
            ],
        }


def library_dir() -> Path:
    """``llama_cpp/lib``: where the wheel keeps libllama, libggml and any backend modules."""
    return Path(ll.__file__).resolve().parent / "lib"


_load_lock = threading.Lock()


def load_backend_modules() -> bool:
    """Register backend modules from ``llama_cpp/lib`` if none is registered yet; True if it loaded any.

    A build with backends linked in has them registered already, so this does nothing there. Must
    run before ``llama_backend_init``, which otherwise searches only the executable's folder.
    """
    with _load_lock:
        if _reg_count() > 0:
            return False
        _load_all_from_path(str(library_dir()).encode())
        return _reg_count() > 0


def detect_backends() -> BackendReport:
    """Initialise llama.cpp if needed and report its backends and devices (fast once initialised)."""
    from model_io.native import ensure_backend  # native loads modules through this module first

    ensure_backend()
    registries = [_reg_get(i) for i in range(_reg_count())]
    return BackendReport(
        llama_cpp_version=_distribution_version(),
        backends=tuple(_text(_reg_name(r)) for r in registries),
        devices=tuple(_device(_dev_get(i)) for i in range(_dev_count())),
        gpu_offload=bool(ll.llama_supports_gpu_offload()),
        cpu_module=_loaded_cpu_module(),
        cpu_features=tuple(_cpu_features()),
    )


def detect_in_background() -> Future[BackendReport]:
    """Run :func:`detect_backends` on a daemon thread, so a GUI never waits for driver start-up."""
    future: Future[BackendReport] = Future()

    def run() -> None:
        try:
            future.set_result(detect_backends())
        except Exception as exc:  # delivered to the caller through the future
            future.set_exception(exc)

    threading.Thread(target=run, name="gemma-desk-backends", daemon=True).start()
    return future


def _device(handle: int) -> ComputeDevice:
    free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
    _dev_memory(handle, ctypes.byref(free), ctypes.byref(total))
    return ComputeDevice(
        name=_text(_dev_name(handle)),
        description=_text(_dev_description(handle)),
        kind=_KIND_OF.get(_dev_type(handle), DeviceKind.ACCEL),
        backend=_text(_reg_name(_dev_backend_reg(handle))),
        memory_free=free.value,
        memory_total=total.value,
    )


def _cpu_features() -> Iterator[str]:
    """Names from the CPU backend's ``ggml_backend_get_features`` whose value is not "0"."""
    reg = _reg_by_name(b"CPU")
    address = _reg_proc(reg, b"ggml_backend_get_features") if reg else None
    if not address:
        return
    features = _get_features_t(address)(reg)
    index = 0
    while features[index].name:
        if features[index].value not in (b"0", b""):
            yield _text(features[index].name)
        index += 1


def _loaded_cpu_module() -> str | None:
    """Which ``libggml-cpu-<variant>`` module the process mapped (Linux; elsewhere unknown)."""
    maps = Path("/proc/self/maps")
    if not sys.platform.startswith("linux") or not maps.exists():
        return None
    for line in maps.read_text().splitlines():
        name = line.rsplit("/", 1)[-1]
        if name.startswith("libggml-cpu-") and ".so" in name:
            return name
    return None


def _distribution_version() -> str:
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:  # a source checkout on sys.path
        return str(getattr(ll, "__version__", "unknown"))


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", errors="replace") if value else ""
