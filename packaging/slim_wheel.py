"""Rewrite a freshly built llama-cpp-python wheel into the lean one Gemma Desk ships.

The sdist's CMake install puts three things into the wheel the app never uses:

* a second copy of every library, plus headers and CMake package files, at the top of
  site-packages (``lib/``, ``include/``, ``bin/``), because llama.cpp installs its own targets
  with the wheel root as the prefix;
* every shared library three times on Linux (``libllama.so``, ``.so.0`` and ``.so.0.5.0``),
  since wheels cannot hold symlinks. ``llama_cpp`` opens ``libX.so`` and the libraries find
  each other by soname (``libX.so.0``); the fully versioned name is never opened.

The output also gets a local version label (``0.3.36+cpu``), so ``pip show`` and the app's
backend report say which build is installed, while ``llama-cpp-python==0.3.36`` still matches.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import sys
import zipfile
from pathlib import Path

_TOP_LEVEL_EXTRAS = ("lib/", "include/", "bin/")
_FULLY_VERSIONED_SO = re.compile(r"\.so\.\d+\.\d+(\.\d+)*$")


def keep(name: str) -> bool:
    """Whether a wheel member is needed at run time."""
    if name.startswith(_TOP_LEVEL_EXTRAS):
        return False
    return not (name.startswith("llama_cpp/lib/") and _FULLY_VERSIONED_SO.search(name))


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def slim(source: Path, out_dir: Path, local_version: str) -> Path:
    """Write the slimmed wheel into ``out_dir`` and return its path."""
    name, version, rest = source.name.split("-", 2)
    new_version = f"{version.split('+')[0]}+{local_version}" if local_version else version
    old_info, new_info = f"{name}-{version}.dist-info/", f"{name}-{new_version}.dist-info/"
    target = out_dir / f"{name}-{new_version}-{rest}"
    records: list[str] = []
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if not keep(info.filename) or info.filename == old_info + "RECORD":
                continue
            data = zin.read(info)
            member = info.filename.replace(old_info, new_info, 1)
            if member == new_info + "METADATA":
                data = re.sub(
                    rb"^Version: .*$", f"Version: {new_version}".encode(), data, count=1, flags=re.M
                )
            out_info = zipfile.ZipInfo(member, info.date_time)
            out_info.external_attr = info.external_attr
            out_info.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(out_info, data)
            records.append(_record_line(member, data))
        records.append(f"{new_info}RECORD,,")
        zout.writestr(new_info + "RECORD", "\n".join(records) + "\n")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--local-version", default="", help="local version label, e.g. cpu or vulkan")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for stale in args.out_dir.glob("llama_cpp_python-*.whl"):
        stale.unlink()
    target = slim(args.wheel, args.out_dir, args.local_version)
    before, after = args.wheel.stat().st_size, target.stat().st_size
    print(f"{target} ({after / 1e6:.1f} MB, was {before / 1e6:.1f} MB)", file=sys.stderr)
    print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
