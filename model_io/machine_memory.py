"""How much RAM this machine has, and how much of it is free, for the memory planner.

Linux: ``/proc/meminfo`` (``MemAvailable`` counts reclaimable page cache as free),
clipped to this process's cgroup limit when it runs in a container.  Elsewhere:
``sysconf`` where it exists; "available" is then the free pages on Linux-like
systems and half the total otherwise, a deliberately cautious guess.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

PAGE_BYTES = 4096


@dataclass(frozen=True)
class Machine:
    """The RAM the plan is judged against (bytes), and whether llama.cpp can offload to a GPU.

    ``gpu_memory_bytes`` is the free memory of the largest dedicated GPU llama.cpp sees;
    0 when there is none or the GPU shares this RAM (Apple silicon, integrated GPUs).
    """

    total_bytes: int
    available_bytes: int
    gpu_offload: bool = False
    gpu_memory_bytes: int = 0

    @classmethod
    def current(cls) -> Machine:
        """This machine, and what this llama.cpp build can offload to."""
        from model_io.native import supports_gpu_offload

        total, available = _system_memory()
        if not supports_gpu_offload():
            return cls(total, available)
        from model_io.ggml_registry import devices  # loaded by supports_gpu_offload's backend start-up

        dedicated = [d.memory_free for d in devices() if d.kind == "gpu"]
        return cls(total, available, True, max(dedicated, default=0))


def _system_memory() -> tuple[int, int]:
    meminfo = _meminfo()
    if "MemTotal" in meminfo:
        total, available = meminfo["MemTotal"], meminfo.get("MemAvailable", meminfo.get("MemFree", 0))
        limit, used = _cgroup_memory()
        if limit is not None and limit < total:  # a container: its limit is what we can have
            return limit, max(0, min(available, limit - used))
        return total, available
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else PAGE_BYTES
    total = os.sysconf("SC_PHYS_PAGES") * page if hasattr(os, "sysconf") else 0
    free = os.sysconf("SC_AVPHYS_PAGES") * page if sys.platform.startswith("linux") else total // 2
    return total, free


def _cgroup_memory() -> tuple[int | None, int]:
    """This process's cgroup memory limit and usage (v2, else v1); (None, 0) when unlimited."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None, 0
    for line in lines:
        _, controllers, group = line.split(":", 2)
        if controllers == "":
            base, names = Path("/sys/fs/cgroup") / group.lstrip("/"), ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / group.lstrip("/")
            names = ("memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        try:
            limit, used = ((base / name).read_text().strip() for name in names)
        except OSError:
            continue
        if limit.isdigit() and int(limit) < 1 << 60:
            return int(limit), int(used) if used.isdigit() else 0
    return None, 0


def _meminfo() -> dict[str, int]:
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return {}
    values = {}
    for line in lines:
        name, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            values[name] = int(fields[0]) * 1024
    return values
