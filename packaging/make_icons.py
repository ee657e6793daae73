"""Render assets/gemma-desk.svg into the icon files Briefcase installs, and commit the results.

Briefcase looks for ``<icon>-<size>.png`` (Linux: 16-512), ``<icon>.icns`` (macOS) and
``<icon>.ico`` (Windows) next to the ``icon = "assets/gemma-desk"`` stem. Each size is rendered
from the SVG itself (Qt's SVG renderer, already a dependency) rather than scaled down from one big
bitmap, so small sizes stay sharp; Pillow (also a dependency) writes the PNG, ICNS and ICO files
without timestamps, so running this twice gives identical bytes.

Usage: python packaging/make_icons.py [--out DIR]   (default: assets/)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SVG = ROOT / "assets" / "gemma-desk.svg"
STEM = "gemma-desk"
LINUX_SIZES = (16, 32, 64, 128, 256, 512)  # the hicolor sizes the Linux system template installs
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)  # macOS: 16-512 plus @2x up to 1024
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # Windows shell sizes; 256 is stored as PNG


def render(svg: Path, size: int) -> Image.Image:
    """The SVG rendered at ``size`` x ``size`` as RGBA."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer
    from PySide6.QtWidgets import QApplication

    _app = QApplication.instance() or QApplication([])  # a widgets app, so a test session can reuse it
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_RGBA8888)
    image.fill(0)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    pixels = bytes(image.constBits())  # RGBA8888: R, G, B, A bytes, rows bytesPerLine() apart
    return Image.frombuffer("RGBA", (size, size), pixels, "raw", "RGBA", image.bytesPerLine(), 1)


def write_icons(svg: Path, out: Path) -> list[Path]:
    """Write every icon file into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    sizes = sorted(set(LINUX_SIZES) | set(ICNS_SIZES) | set(ICO_SIZES))
    images = {size: render(svg, size) for size in sizes}
    written = []
    for size in LINUX_SIZES:
        path = out / f"{STEM}-{size}.png"
        images[size].save(path, optimize=True)
        written.append(path)
    icns = out / f"{STEM}.icns"
    images[1024].save(icns, append_images=_others(images, ICNS_SIZES, 1024))
    ico = out / f"{STEM}.ico"
    images[256].save(ico, sizes=[(s, s) for s in ICO_SIZES], append_images=_others(images, ICO_SIZES, 256))
    return [*written, icns, ico]


def _others(images: dict[int, Image.Image], sizes: Iterable[int], largest: int) -> list[Image.Image]:
    return [images[s] for s in sizes if s != largest]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets")
    parser.add_argument("--svg", type=Path, default=SVG)
    args = parser.parse_args(argv)
    for path in write_icons(args.svg, args.out):
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
