#!/usr/bin/env bash
# Build the llama-cpp-python wheel Gemma Desk ships, for one backend:
#   cpu     portable x86-64/arm64 build (GGML_NATIVE=OFF): runs on any CPU of the architecture
#   vulkan  GPU offload through Vulkan (Linux/Windows; needs the Vulkan SDK headers and glslc)
#   metal   GPU offload on Apple silicon (macOS)
# Usage: packaging/build-llama-wheel.sh BACKEND [OUT_DIR]
# pip's wheel cache ignores CMAKE_ARGS, so this always builds from source without the cache.
set -euo pipefail
backend="${1:?usage: build-llama-wheel.sh cpu|vulkan|metal [OUT_DIR]}"
out="${2:-dist/wheels/$backend}"
version="0.3.36"
python="${PYTHON:-python3}"

case "$backend" in
    cpu) cmake_args="-DGGML_NATIVE=OFF" ;;
    vulkan) cmake_args="-DGGML_VULKAN=ON -DGGML_NATIVE=OFF ${VULKAN_INCLUDE_DIR:+-DVulkan_INCLUDE_DIR=$VULKAN_INCLUDE_DIR}" ;;
    metal) cmake_args="-DGGML_METAL=ON" ;;
    *) echo "unknown backend '$backend' (cpu, vulkan or metal)" >&2; exit 2 ;;
esac

mkdir -p "$out"
echo "building llama-cpp-python $version for $backend with CMAKE_ARGS='$cmake_args'" >&2
CMAKE_ARGS="$cmake_args" "$python" -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
    -w "$out" "llama-cpp-python==$version"
ls -l "$out"
