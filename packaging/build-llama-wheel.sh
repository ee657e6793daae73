#!/usr/bin/env bash
# Build the llama-cpp-python wheel Gemma Desk ships, for one backend:
#   cpu     portable build: every CPU backend variant llama.cpp offers for the architecture (x86-64: x64,
#           sse42, sandybridge, haswell, skylakex, icelake, zen4, alderlake, ...) as loadable modules;
#           at run time ggml scores them against the CPU and loads the best (model_io/backends.py
#           loads them from llama_cpp/lib, since ggml only searches the executable's folder by itself).
#   vulkan  the same CPU variants plus libggml-vulkan as a loadable module (Linux/Windows): a machine
#           without a Vulkan loader or GPU still runs on the CPU instead of failing to import.
#           Needs Vulkan headers >= 1.4 (Debian 12: packaging/fetch-vulkan-headers.sh; Windows: the
#           LunarG SDK, VULKAN_SDK set) and glslc.
#   metal   Apple silicon (macOS only): Metal with the shader library embedded, linked in (not a module),
#           arm64, for macOS >= $MACOSX_DEPLOYMENT_TARGET (default 13.0, as PySide6 6.11 and pyproject.toml).
# Usage: packaging/build-llama-wheel.sh cpu|vulkan|metal [OUT_DIR]
#   env: PYTHON (default python3), LLAMA_SDIST (default: cached sdist, else downloaded from PyPI),
#        GEMMA_DESK_TOOLS (work/cache folder, default ~/.cache/gemma-desk-tools), VULKAN_INCLUDE_DIR,
#        DRY_RUN=1 (print the CMake arguments for the backend and stop; works for every backend anywhere).
# The wheel is post-processed by slim_wheel.py (drops duplicate .so copies and the headers/CMake files
# the sdist installs outside the package). Builds go through ccache when it is installed, in fixed
# per-backend folders, so a second backend reuses the CPU objects of the first.
set -euo pipefail
backend="${1:?usage: build-llama-wheel.sh cpu|vulkan|metal [OUT_DIR]}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(mkdir -p "${2:-dist/wheels/$backend}" && cd "${2:-dist/wheels/$backend}" && pwd)"
version="0.3.36"
python="${PYTHON:-python3}"
tools="${GEMMA_DESK_TOOLS:-$HOME/.cache/gemma-desk-tools}"

# Runtime CPU dispatch: ggml builds each variant with its own instruction set and picks one at load time.
# The modules go beside libggml (llama_cpp/lib) and find libggml-base there ($ORIGIN).
portable_cpu="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DCMAKE_INSTALL_BINDIR=llama_cpp/lib"
portable_cpu="$portable_cpu -DCMAKE_INSTALL_RPATH=\$ORIGIN"
case "$backend" in
    cpu) cmake_args="$portable_cpu" ;;
    vulkan)
        if [ -z "${VULKAN_INCLUDE_DIR:-}${VULKAN_SDK:-}${DRY_RUN:-}" ] && [ -f /etc/debian_version ]; then
            VULKAN_INCLUDE_DIR="$("$here/fetch-vulkan-headers.sh" "$tools")"
        fi
        cmake_args="$portable_cpu -DGGML_VULKAN=ON ${VULKAN_INCLUDE_DIR:+-DVulkan_INCLUDE_DIR=$VULKAN_INCLUDE_DIR}"
        ;;
    metal)
        [ "$(uname -s)" = Darwin ] || [ -n "${DRY_RUN:-}" ] || { echo "the Metal wheel needs macOS" >&2; exit 2; }
        export MACOSX_DEPLOYMENT_TARGET="${MACOSX_DEPLOYMENT_TARGET:-13.0}"
        cmake_args="-DGGML_METAL=ON -DGGML_METAL_EMBED_LIBRARY=ON -DGGML_NATIVE=OFF -DCMAKE_OSX_ARCHITECTURES=arm64"
        ;;
    *) echo "unknown backend '$backend' (cpu, vulkan or metal)" >&2; exit 2 ;;
esac
if [ -n "${DRY_RUN:-}" ]; then
    echo "CMAKE_ARGS=$cmake_args${MACOSX_DEPLOYMENT_TARGET:+ MACOSX_DEPLOYMENT_TARGET=$MACOSX_DEPLOYMENT_TARGET}"
    exit 0
fi

# A fresh copy of the sdist every time: its CMake install step also writes libraries into the source
# tree's llama_cpp/lib, which would otherwise leak one backend's libraries into the next wheel.
work="$tools/wheel-work/$backend"
sdist="${LLAMA_SDIST:-$tools/llama_cpp_python-$version.tar.gz}"
if [ ! -f "$sdist" ]; then
    mkdir -p "$tools"
    "$python" -m pip download --quiet --no-deps --no-binary :all: -d "$tools" "llama-cpp-python==$version"
fi
rm -rf "$work" && mkdir -p "$work/src" "$work/raw"
tar -xzf "$sdist" -C "$work/src"
src="$work/src/llama_cpp_python-$version"

export CCACHE_BASEDIR="$work" CCACHE_NOHASHDIR=1 CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}"
echo "building llama-cpp-python $version for $backend with CMAKE_ARGS='$cmake_args'" >&2
CMAKE_ARGS="$cmake_args" "$python" -m pip wheel --no-deps --no-cache-dir -C "build-dir=$work/build" \
    -w "$work/raw" "$src" >&2
raw_wheel="$(ls "$work"/raw/llama_cpp_python-"$version"-*.whl)"
"$python" "$here/slim_wheel.py" "$raw_wheel" "$out" --local-version "$backend"
rm -rf "$work/src" "$work/build"
