"""ggml's backend registry over ctypes: load backend modules, list devices and their memory.

llama-cpp-python binds ``llama.h`` but not ``ggml-backend.h``, so the few functions needed are
declared here, looked up through libllama's own handle: on Linux the wheel holds libggml twice
(``libggml.so`` and ``libggml.so.0`` are copies, as wheels have no symlinks), and opening the other
copy would give a second, empty registry that llama.cpp never sees.

Backends built as loadable modules (``GGML_BACKEND_DL``: the portable wheels from
packaging/build-llama-wheel.sh carry one CPU module per instruction-set level and optionally
``libggml-vulkan``) are searched by ggml only beside the executable and in the current folder, never
in ``llama_cpp/lib`` where the wheel puts them: :func:`load_backend_modules` loads them from there.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Iterator
from enum import IntEnum
from pathlib import Path
from typing import Any

import llama_cpp as ll
from llama_cpp import llama_cpp as _bindings

from model_io.backends import ComputeDevice, DeviceKind
from model_io.errors import EngineFailure


class _DevType(IntEnum):
    """``enum ggml_backend_dev_type``."""

    CPU = 0
    GPU = 1
    IGPU = 2
    ACCEL = 3
    META = 4


_KIND_OF = {t.value: DeviceKind[t.name] for t in _DevType}


class _Feature(ctypes.Structure):
    _fields_ = (("name", ctypes.c_char_p), ("value", ctypes.c_char_p))


def _declare(name: str, restype: Any, *argtypes: Any) -> Any:
    """A ggml function from the libggml libllama is linked to.

    dlsym on libllama's handle searches its dependencies too (Linux, macOS); Windows looks in the one
    DLL only, but has a single ggml.dll, which llama_cpp._ggml opens.
    """
    try:
        function = getattr(_bindings._lib, name)
    except AttributeError:
        from llama_cpp._ggml import libggml

        try:
            function = getattr(libggml, name)
        except AttributeError as exc:
            missing = f"this llama.cpp build lacks {name}; reinstall llama-cpp-python 0.3.36"
            raise EngineFailure(missing) from exc
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


def registered_backends() -> tuple[str, ...]:
    return tuple(_text(_reg_name(_reg_get(i))) for i in range(_reg_count()))


def devices() -> tuple[ComputeDevice, ...]:
    return tuple(_device(_dev_get(i)) for i in range(_dev_count()))


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


def cpu_features() -> Iterator[str]:
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


def loaded_cpu_module() -> str | None:
    """Which ``libggml-cpu-<variant>`` module the process mapped (Linux; elsewhere unknown)."""
    maps = Path("/proc/self/maps")
    if not sys.platform.startswith("linux") or not maps.exists():
        return None
    for line in maps.read_text().splitlines():
        name = line.rsplit("/", 1)[-1]
        if name.startswith("libggml-cpu-") and ".so" in name:
            return name
    return None


def _text(value: bytes | None) -> str:
    return value.decode("utf-8", errors="replace") if value else ""
