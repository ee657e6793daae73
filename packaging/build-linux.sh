#!/usr/bin/env bash
# Build the Debian/Ubuntu package of Gemma Desk with Briefcase (native build, no Docker):
#   1. the portable llama-cpp-python wheel (packaging/build-llama-wheel.sh cpu; ~25 min on 2 cores the
#      first time, then reused from $GEMMA_DESK_TOOLS/wheels/cpu) is put where pyproject.toml's
#      [tool.briefcase.app.gemma-desk.linux] requirement_installer_args looks: dist/wheels/cpu;
#   2. Briefcase runs from a virtual environment made from /usr/bin/python3 (a "system" package must
#      use the distribution's Python, and Briefcase checks that it does);
#   3. briefcase create / build / package linux system  ->  dist/gemma-desk_<version>-1~<distro>_<arch>.deb
# Configuration: pyproject.toml [tool.briefcase*] only. Prints the path of the .deb on stdout.
# env: BRIEFCASE_TEMPLATE  a local copy of beeware/briefcase-linux-system-template, for machines that
#                          cannot reach GitHub (default: Briefcase's own pinned template from GitHub)
#      GEMMA_DESK_TOOLS    cache folder (default ~/.cache/gemma-desk-tools)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${GEMMA_DESK_TOOLS:-$HOME/.cache/gemma-desk-tools}"
briefcase_version="0.4.7"
cd "$root"
"$root/scripts/system-packages.sh" packaging  # the Debian packages these scripts use (only missing ones)

# 1. The llama-cpp-python wheel.
wheel_dir="$root/dist/wheels/cpu"
cached="$(ls "$tools"/wheels/cpu/llama_cpp_python-*+cpu-*.whl 2>/dev/null | awk 'NR == 1' || true)"
if [ -z "$cached" ]; then
    echo "building the portable CPU wheel of llama-cpp-python (once; cached in $tools/wheels/cpu)" >&2
    nice -n 10 "$root/packaging/build-llama-wheel.sh" cpu "$tools/wheels/cpu" >/dev/null
    cached="$(ls "$tools"/wheels/cpu/llama_cpp_python-*+cpu-*.whl | awk 'NR == 1')"
fi
rm -rf "$wheel_dir" && mkdir -p "$wheel_dir" && cp "$cached" "$wheel_dir/"
echo "llama-cpp-python wheel: $(basename "$cached")" >&2

# 2. Briefcase, on the system Python.
venv="$tools/briefcase-venv"
if [ ! -x "$venv/bin/briefcase" ] || [ "$("$venv/bin/briefcase" --version)" != "$briefcase_version" ]; then
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "briefcase==$briefcase_version"
fi
options=(linux system --no-input)
if [ -n "${BRIEFCASE_TEMPLATE:-}" ]; then
    options+=(-C "template=\"$BRIEFCASE_TEMPLATE\"")
fi

# 3. Create (app code + requirements + cleanup), build (launcher), package (.deb).
# A fresh bundle every time: Briefcase keeps an existing one (and its old requirements) otherwise.
rm -rf "$root/build/gemma-desk"
rm -f "$root"/dist/gemma-desk_*.deb
"$venv/bin/briefcase" create "${options[@]}" >&2
"$venv/bin/briefcase" build "${options[@]}" >&2
"$venv/bin/briefcase" package "${options[@]}" --adhoc-sign >&2  # unsigned: no GPG identity here
rm -rf "$root/.briefcase"  # Briefcase's scratch environment for the app; nothing to keep
deb="$(ls "$root"/dist/gemma-desk_*.deb)"
echo "package: $deb ($(du -h "$deb" | cut -f1))" >&2
echo "$deb"
