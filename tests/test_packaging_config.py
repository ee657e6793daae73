"""The Briefcase configuration in pyproject.toml, checked without running Briefcase.

Building and starting the real package takes minutes (packaging/check-linux-package.sh); these
checks catch, in a second, the mistakes that would only show up there: a missing source package or
icon size, a requirement pinned differently from [project], a wheel folder no build script writes,
or a cleanup glob that deletes a Qt library the app still loads.
"""

from __future__ import annotations

import importlib.util
import os
import re
import struct
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import gui_support
import PySide6
import pytest
from PIL import Image, ImageChops, ImageStat

assert gui_support  # the icon check renders with Qt: offscreen platform and the app's Qt fixes first
ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BRIEFCASE: dict[str, Any] = PYPROJECT["tool"]["briefcase"]
APP: dict[str, Any] = BRIEFCASE["app"]["gemma-desk"]
PLATFORM_BACKENDS = {"linux": "cpu", "macOS": "metal", "windows": "vulkan"}
LINUX_ICON_SIZES = (16, 32, 64, 128, 256, 512)


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_briefcase_reads_pyproject_only() -> None:
    assert not (ROOT / "briefcase.toml").exists()
    for key in ("bundle", "url", "author_email"):
        assert BRIEFCASE[key], key
    assert "project_name" not in BRIEFCASE  # taken from [project].name
    for key in ("formal_name", "long_description", "sources", "icon", "license-files", "permission"):
        assert APP[key], key
    assert all((ROOT / path).is_file() for path in APP["license-files"])
    assert (ROOT / "CHANGELOG.md").is_file()  # Briefcase's Linux packages require a changelog
    assert set(APP["permission"]) == {"microphone", "camera"}


def test_the_window_names_the_desktop_entry_briefcase_installs() -> None:
    """Wayland matches a window to its .desktop file (icon, name in the dock) by this id alone."""
    from app.gui.app import APP_DISPLAY_NAME, APP_ID

    assert f"{BRIEFCASE['bundle']}.{PYPROJECT['project']['name']}" == APP_ID
    assert APP["formal_name"] == APP_DISPLAY_NAME


def test_sources_are_the_app_packages_and_the_launcher_module() -> None:
    sources = APP["sources"]
    names = [PurePosixPath(s).name for s in sources]
    # Briefcase runs `python -m <app name with _>`; the code itself lives in app/ and model_io/.
    assert names == ["gemma_desk", "app", "model_io"]
    for source in sources:
        assert (ROOT / source / "__init__.py").is_file(), source
    launcher = (ROOT / sources[0] / "__main__.py").read_text()
    assert "from app.cli import main" in launcher
    assert not any(part in ("tests", "tools", "packaging") for s in sources[1:] for part in Path(s).parts)


def test_run_time_resources_live_inside_packaged_sources() -> None:
    """The GUI finds its files with importlib.resources, so they must sit inside a source package."""
    icon = ROOT / "app" / "gui" / "resources" / "gemma-desk.svg"
    assert icon.read_bytes() == (ROOT / "assets" / "gemma-desk.svg").read_bytes()  # the master copy
    assert list((ROOT / "app" / "gui" / "i18n").glob("gemma_desk_*.qm"))
    for module in ("app/gui/resources/__init__.py", "app/gui/i18n/__init__.py"):
        assert "resources.files(__name__)" in (ROOT / module).read_text()


def test_requirements_are_project_pins_and_never_conflict() -> None:
    project = {_name(r): r.replace(" ", "") for r in PYPROJECT["project"]["dependencies"]}
    assert all("==" in pin for pin in project.values())
    assert "pyside6-essentials" in project and "pyside6" not in project
    assert "opencv-python-headless" in project and "opencv-python" not in project
    tables = [APP, *(APP.get(platform, {}) for platform in PLATFORM_BACKENDS)]
    for table in tables:
        for requirement in table.get("requires", []):
            pinned = project.get(_name(requirement))
            assert pinned is None or pinned == requirement.replace(" ", ""), requirement


@pytest.mark.parametrize(("platform", "backend"), PLATFORM_BACKENDS.items())
def test_each_platform_installs_the_prebuilt_llama_wheel(platform: str, backend: str) -> None:
    args = APP[platform]["requirement_installer_args"]
    assert args[args.index("--find-links") + 1] == f"./dist/wheels/{backend}"
    script = (ROOT / "packaging" / "build-llama-wheel.sh").read_text()
    assert f"    {backend})" in script and 'out="$(mkdir -p "${2:-dist/wheels/$backend}"' in script
    if platform == "linux":  # Linux alone may build sdists: make sure llama.cpp never is
        assert args[args.index("--only-binary") + 1] == "llama-cpp-python"
        assert 'wheel_dir="$root/dist/wheels/cpu"' in (ROOT / "packaging" / "build-linux.sh").read_text()


@pytest.mark.parametrize(
    ("backend", "flags"),
    [
        ("cpu", {"-DGGML_NATIVE=OFF", "-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON"}),
        (
            "vulkan",
            {"-DGGML_NATIVE=OFF", "-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON", "-DGGML_VULKAN=ON"},
        ),
        ("metal", {"-DGGML_NATIVE=OFF", "-DGGML_METAL=ON", "-DCMAKE_OSX_ARCHITECTURES=arm64"}),
    ],
)
def test_wheel_script_configures_each_backend(backend: str, flags: set[str], tmp_path: Path) -> None:
    """The script's CMake arguments (DRY_RUN), including Metal's, which only a Mac can build."""
    result = subprocess.run(
        ["bash", str(ROOT / "packaging" / "build-llama-wheel.sh"), backend, str(tmp_path)],
        env={**os.environ, "DRY_RUN": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    printed = set(result.stdout.removeprefix("CMAKE_ARGS=").split())
    assert flags <= printed
    # The CPU and Vulkan wheels load their backends as modules; the Metal wheel links them in.
    assert ("-DGGML_BACKEND_DL=ON" in printed) == (backend != "metal")
    if backend == "metal":
        assert f"MACOSX_DEPLOYMENT_TARGET={APP['macOS']['min_os_version']}" in printed


def test_macos_target_matches_the_metal_wheel() -> None:
    mac = APP["macOS"]
    assert mac["universal_build"] is False
    script = (ROOT / "packaging" / "build-llama-wheel.sh").read_text()
    assert f'MACOSX_DEPLOYMENT_TARGET="${{MACOSX_DEPLOYMENT_TARGET:-{mac["min_os_version"]}}}"' in script


def test_debian_runtime_packages_cover_audio_llama_and_qt() -> None:
    runtime = APP["linux"]["system"]["debian"]["system_runtime_requires"]
    assert len(runtime) == len(set(runtime))
    assert {"libportaudio2", "libgomp1", "libxcb-cursor0", "libxkbcommon-x11-0", "libegl1"} <= set(runtime)


def test_icons_exist_in_every_size_briefcase_installs() -> None:
    stem = ROOT / APP["icon"]
    for size in LINUX_ICON_SIZES:
        with Image.open(f"{stem}-{size}.png") as png:
            assert (png.format, png.size, png.mode) == ("PNG", (size, size), "RGBA")
    with Image.open(f"{stem}.icns") as icns:
        assert (512, 512, 2) in icns.info["sizes"] and (16, 16, 2) in icns.info["sizes"]
    with Image.open(f"{stem}.ico") as ico:
        assert {(16, 16), (32, 32), (48, 48), (256, 256)} <= set(ico.info["sizes"])


def test_committed_icons_are_renders_of_the_svg() -> None:
    """packaging/make_icons.py output, not stale: a fresh render differs by rounding at most."""
    spec = importlib.util.spec_from_file_location("make_icons", ROOT / "packaging" / "make_icons.py")
    assert spec is not None and spec.loader is not None
    make_icons = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_icons)
    fresh = make_icons.render(ROOT / "assets" / "gemma-desk.svg", 64)
    with Image.open(ROOT / "assets" / "gemma-desk-64.png") as committed:
        difference = ImageChops.difference(fresh, committed.convert("RGBA"))
    assert max(ImageStat.Stat(difference).mean) < 1.0


# --- cleanup_paths against the installed PySide6 -----------------------------------------------------

SITE = Path(PySide6.__file__).resolve().parent.parent
KEPT_PLUGIN_DIRS = ("platforms", "platformthemes", "platforminputcontexts", "imageformats", "iconengines")


@pytest.fixture(scope="module")
def removed_by_linux_cleanup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[Path]]:
    """What Briefcase's cleanup (the same pathlib globs) deletes from this environment's site-packages.

    The bundle is simulated by a folder whose ``app_packages`` links to site-packages; paths come back
    relative to site-packages, folders included (everything under them goes too).
    """
    bundle = tmp_path_factory.mktemp("bundle")
    os.symlink(SITE, bundle / "app_packages")
    matches = {hit for glob in APP["linux"]["cleanup_paths"] for hit in bundle.glob(glob)}
    yield {hit.relative_to(bundle / "app_packages") for hit in matches}


def _removed(path: Path, removed: set[Path]) -> bool:
    relative = path.relative_to(SITE)
    return relative in removed or any(parent in removed for parent in relative.parents)


def _needed(path: Path) -> list[str]:
    """DT_NEEDED entries of a 64-bit little-endian ELF file (enough for the manylinux wheels)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return []
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names = []
    for _, kind, _, _, offset, size, link, *_ in sections:
        if kind != 6:  # SHT_DYNAMIC
            continue
        strtab = sections[link][4]
        for entry in range(offset, offset + size, 16):
            tag, value = struct.unpack_from("<qQ", data, entry)
            if tag == 1:  # DT_NEEDED
                names.append(data[strtab + value : data.index(b"\0", strtab + value)].decode())
    return names


def _imported_qt_modules() -> set[str]:
    found: set[str] = set()
    for source in [*(ROOT / "app").rglob("*.py"), *(ROOT / "model_io").rglob("*.py")]:
        found.update(re.findall(r"PySide6\.(Qt\w+)", source.read_text()))
    return found


@pytest.mark.skipif(not (SITE / "PySide6" / "Qt" / "lib").is_dir(), reason="Linux PySide6 layout only")
def test_linux_cleanup_keeps_every_library_the_app_loads(removed_by_linux_cleanup: set[Path]) -> None:
    removed = removed_by_linux_cleanup
    linux_globs = APP["linux"]["cleanup_paths"]
    assert linux_globs[: len(APP["cleanup_paths"])] == APP["cleanup_paths"]  # platform lists replace
    assert not any("{" in glob for glob in linux_globs)  # pathlib globs have no alternatives
    modules = _imported_qt_modules()
    assert {"QtCore", "QtGui", "QtWidgets"} <= modules
    roots = [SITE / "PySide6" / f"{m}.abi3.so" for m in modules]
    for folder in KEPT_PLUGIN_DIRS:
        plugins = (SITE / "PySide6" / "Qt" / "plugins" / folder).glob("*.so")
        roots += [p for p in plugins if not _removed(p, removed)]
    by_name = {p.name: p for p in (SITE / "PySide6").rglob("*.so*")} | {
        p.name: p for p in (SITE / "shiboken6").rglob("*.so*")
    }
    seen: set[Path] = set()
    todo = list(roots)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += [by_name[n] for n in _needed(path) if n in by_name]
    assert sorted(str(p) for p in seen if _removed(p, removed)) == []
    # ... and the cleanup really removes the big unused parts.
    for unused in ("PySide6/Qt/lib/libQt6Quick.so.6", "PySide6/Qt/qml", "PySide6/QtNetwork.abi3.so"):
        assert _removed(SITE / unused, removed), unused
