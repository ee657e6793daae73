"""Refresh the ``.ts`` sources from the GUI code (lupdate) and compile them to ``.qm`` (lrelease).

Run from the repository: ``python -m app.gui.i18n.build``.  Both tools ship with PySide6-Essentials.
Translators edit the ``.ts`` files (Qt Linguist: ``pyside6-linguist``); the ``.qm`` files are
committed so a source checkout runs without a build step.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from app.gui.i18n import SHIPPED

HERE = Path(__file__).resolve().parent
GUI = HERE.parent


def tool(name: str) -> str:
    """``pyside6-<name>`` beside this Python, else on PATH."""
    local = Path(sys.executable).parent / f"pyside6-{name}"
    found = str(local) if local.exists() else shutil.which(f"pyside6-{name}")
    if found is None:
        raise SystemExit(f"pyside6-{name} not found; install PySide6-Essentials")
    return found


def sources() -> list[str]:
    return sorted(str(p) for p in GUI.rglob("*.py") if "i18n" not in p.parts)


def ts_path(language: str) -> Path:
    return HERE / f"gemma_desk_{language}.ts"


def update(language: str, target: Path | None = None) -> Path:
    """Write the ``.ts`` for ``language`` (keeping existing translations); ``target`` for a dry run."""
    out = target or ts_path(language)
    if target is not None and ts_path(language).exists():
        shutil.copyfile(ts_path(language), out)
    command = [tool("lupdate"), "-silent", "-no-obsolete", "-locations", "none", "-target-language", language]
    subprocess.run([*command, *sources(), "-ts", str(out)], check=True)
    return out


def release(language: str) -> Path:
    qm = HERE / f"gemma_desk_{language}.qm"
    subprocess.run([tool("lrelease"), "-silent", str(ts_path(language)), "-qm", str(qm)], check=True)
    return qm


def main() -> None:
    for language in SHIPPED:
        if language == "en":
            continue  # the source language
        print(update(language))
        print(release(language))


if __name__ == "__main__":
    main()
