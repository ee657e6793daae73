#!/usr/bin/env bash
# Build llama.cpp's own command-line tools (llama-bench, llama-mtmd-cli) from the very llama.cpp source
# vendored in the pinned llama-cpp-python sdist, so benchmarks compare like with like.
# Usage: tools/build_llama_cpp_tools.sh [BUILD_DIR]   (default: ~/.cache/gemma-desk-tools)
# Prints the directory holding the binaries. Takes ~10 minutes on 2 cores the first time.
set -euo pipefail
version="0.3.36"
root="${1:-$HOME/.cache/gemma-desk-tools}"
python="${PYTHON:-python3}"
src="$root/llama_cpp_python-$version"
bin="$root/build-$version/bin"
if [ -x "$bin/llama-bench" ] && [ -x "$bin/llama-mtmd-cli" ]; then
    echo "$bin"
    exit 0
fi
mkdir -p "$root"
if [ ! -d "$src" ]; then
    "$python" -m pip download --quiet --no-deps --no-binary :all: -d "$root" "llama-cpp-python==$version"
    tar -xzf "$root/llama_cpp_python-$version.tar.gz" -C "$root"
fi
# Same defaults as the wheel pip builds for this machine (GGML_NATIVE on, OpenMP), tools only.
cmake -S "$src/vendor/llama.cpp" -B "$root/build-$version" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >&2
cmake --build "$root/build-$version" --config Release -j "$(nproc)" --target llama-bench llama-mtmd-cli >&2
echo "$bin"
