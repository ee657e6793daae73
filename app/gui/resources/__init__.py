"""Files the GUI loads at run time (the icon; its master copy is assets/gemma-desk.svg)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def icon_path() -> Path:
    return Path(str(resources.files(__name__).joinpath("gemma-desk.svg")))
