#!/usr/bin/env bash
# Install the Debian/Ubuntu packages Gemma Desk needs (only those missing).
#   app:  compiler + CMake to build llama.cpp, PortAudio, the libraries Qt's xcb plugin loads
#   test: the same plus espeak-ng and sox (speech fixtures) and a PulseAudio daemon with ALSA's pulse
#         plugin (the microphone tests feed a real null sink, as no sound card exists in CI), Xvfb,
#         xdotool, xclip and tesseract (the real-window end-to-end test), strace (the privacy test)
#   packaging: the test set plus what packaging/*.sh use: ccache and git (wheel builds, Briefcase),
#         ImageMagick (screenshots of the installed app), and for the Vulkan wheel and its check on
#         Mesa's lavapipe: glslc, SPIR-V headers, the Vulkan loader, Mesa's drivers and vulkaninfo
# On other systems this prints what to install and returns.
set -euo pipefail

packages=(build-essential cmake python3-venv python3-dev libgomp1 libportaudio2 libgl1 libegl1
          libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 fontconfig)

mode="${1:-app}"
if [ "$mode" = "test" ] || [ "$mode" = "packaging" ]; then
    packages+=(espeak-ng sox pulseaudio pulseaudio-utils libasound2-plugins
               xvfb xdotool xclip x11-apps tesseract-ocr tesseract-ocr-eng fonts-dejavu-core
               libx11-xcb1 libxcb-glx0 libxcb-image0 libxcb-randr0 libxcb-render0 libxcb-render-util0
               libxcb-shm0 libxcb-sync1 libxcb-xfixes0 libxcb-xkb1 libxkbcommon0 libfontconfig1
               libfreetype6 libdbus-1-3 libglib2.0-0 strace util-linux)
fi
if [ "$mode" = "packaging" ]; then
    packages+=(ccache git imagemagick glslc spirv-headers libvulkan-dev mesa-vulkan-drivers vulkan-tools)
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "gemma-desk setup: not a Debian/Ubuntu system; install a C/C++ compiler, CMake and PortAudio yourself (see README)." >&2
    exit 0
fi

missing=()
for pkg in "${packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    sudo_cmd=(sudo)
fi
echo "gemma-desk setup: installing ${missing[*]}" >&2
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
