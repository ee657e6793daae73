#!/usr/bin/env bash
# Unpack newer Vulkan headers (Debian 13 "trixie" libvulkan-dev) for building llama.cpp's Vulkan backend
# on Debian 12, whose 1.3.239 headers lack VK_EXT_layer_settings ("'LayerSettingEXT' is not a member of
# 'vk'"). Only the headers are used: nothing is installed, the loader and glslc stay Debian 12's.
# apt runs with its own throw-away state so the system's sources and package lists are untouched.
# Usage: packaging/fetch-vulkan-headers.sh [CACHE_DIR]  -> prints the include directory
set -euo pipefail
cache="${1:-$HOME/.cache/gemma-desk-tools}/vulkan-headers-trixie"
include="$cache/root/usr/include"
if [ -f "$include/vulkan/vulkan.hpp" ]; then
    echo "$include"
    exit 0
fi
mkdir -p "$cache/apt/lists/partial" "$cache/apt/archives/partial" "$cache/debs"
cat >"$cache/apt/sources.list" <<'EOF'
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
EOF
apt_opts=(-o "Dir::Etc::sourcelist=$cache/apt/sources.list" -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$cache/apt/lists" -o "Dir::Cache::Archives=$cache/apt/archives"
    -o "Dir::State::status=/dev/null" -o "APT::Get::List-Cleanup=0")
apt-get "${apt_opts[@]}" update -qq >&2
(cd "$cache/debs" && apt-get "${apt_opts[@]}" download libvulkan-dev >&2)
deb="$(ls "$cache"/debs/libvulkan-dev_*.deb | awk 'NR == 1')"
dpkg-deb -x "$deb" "$cache/root"
echo "unpacked $(basename "$deb")" >&2
echo "$include"
