#!/usr/bin/env bash
# Build the Gemma Desk .deb (or take one), install it, and prove it works and stays lean:
#   metadata and sizes; every Depends installed here (so `dpkg -i` succeeds); no unused Qt module,
#   type stub or tool inside; every bundled shared library resolves, and every system library it
#   needs comes from a package in Depends; `gemma-desk backends` inside the package loads a CPU
#   variant chosen at run time; `gemma-desk ask` answers on the tiny synthetic model; the desktop
#   window opens under Xvfb, loads the model and streams an answer (window title via xdotool, text
#   via tesseract, screenshots in test-artifacts/linux-package/).
# Too slow for the unit suite (the first wheel build takes ~25 min, the package ~3 min).
# Usage: packaging/check-linux-package.sh [DEB]
#   env: INSTALL=dpkg  install with dpkg -i (and remove it afterwards) instead of extracting into a
#                      temporary root; BRIEFCASE_TEMPLATE, GEMMA_DESK_TOOLS as for build-linux.sh.
# Needs: xvfb xdotool imagemagick tesseract-ocr binutils, and the project's .venv (tiny model).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
artifacts="$root/test-artifacts/linux-package"
mkdir -p "$artifacts"
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
"$root/scripts/system-packages.sh" packaging  # the Debian packages these scripts use (only missing ones)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ "${INSTALL:-}" = dpkg ] && dpkg -s gemma-desk >/dev/null 2>&1; then dpkg -r gemma-desk >/dev/null; fi
    [ -n "${work:-}" ] && rm -rf "$work"
}
trap cleanup EXIT
work="$(mktemp -d)"

deb="${1:-}"
if [ -z "$deb" ]; then
    step "build"
    deb="$("$root/packaging/build-linux.sh")"
fi

step "package"
dpkg-deb -f "$deb" Package Version Architecture Installed-Size Depends
depends="$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/ //g' | sed '/^$/d')"
echo "package size: $(stat -c %s "$deb") bytes ($(du -h "$deb" | cut -f1))"
for pkg in $depends; do
    dpkg -s "$pkg" >/dev/null 2>&1 || fail "dependency $pkg is not installed on this machine"
done
echo "all $(echo "$depends" | wc -l) dependencies are installed here"

step "install"
if [ "${INSTALL:-}" = dpkg ]; then
    dpkg -i "$deb"
    prefix=""
else
    prefix="$work/root"
    dpkg-deb -x "$deb" "$prefix"
fi
app="$prefix/usr/lib/gemma-desk"
exe="$prefix/usr/bin/gemma-desk"
echo "installed under ${prefix:-/}: $(du -sb "$app" | cut -f1) bytes ($(du -sh "$app" | cut -f1)) in $(find "$app" -type f | wc -l) files"
du -sh "$app"/app_packages/* | sort -h | tail -n 8

step "lean"
unwanted="$(find "$app" \( -path '*/PySide6/*.pyi' -o -name 'libQt6Quick*' -o -name 'libQt6Qml*' -o -name 'libQt6Network*' \
    -o -name 'QtNetwork.*' -o -name 'designer' -o -name 'qml' -o -path '*/app_packages/tests/*' \
    -o -path '*/app_packages/lib/*' -o -path '*/app_packages/include/*' -o -name '__pycache__' \) -print)"
[ -z "$unwanted" ] || fail "unused content in the package: $(echo "$unwanted" | awk 'NR <= 5')"
ls "$app/app/app" "$app/app/model_io" >/dev/null || fail "app sources missing"
[ ! -e "$app/app/tests" ] && [ ! -e "$app/app/tools" ] || fail "tests or tools were packaged"
echo "Qt libraries kept: $(ls "$app/app_packages/PySide6/Qt/lib" | sed 's/\.so.*//' | tr '\n' ' ')"
echo "PySide6 modules kept: $(ls "$app/app_packages/PySide6" | grep -E '^Qt.*\.so$' | sed 's/\..*//' | tr '\n' ' ')"

step "shared libraries"
# Optional: Qt's GTK3 theme plugin (used only on GNOME, which has GTK3); it fails to load quietly elsewhere.
find "$app" -type f \( -name '*.so' -o -name '*.so.*' \) ! -path '*/platformthemes/libqgtk3.so' >"$work/elfs"
find "$app" -type f \( -name '*.so' -o -name '*.so.*' \) -printf '%f\n' | sort -u >"$work/bundled"
missing="$(xargs -a "$work/elfs" -d '\n' -n 40 ldd 2>/dev/null | grep 'not found' | sort -u || true)"
[ -z "$missing" ] || fail "unresolved libraries: $missing"
while read -r elf; do readelf -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; done <"$work/elfs" | sort -u >"$work/needed"
owner() {  # the Debian package that ships a library (dpkg records /lib or /usr/lib: try both)
    local path="$1" candidate
    for candidate in "$path" "$(readlink -f "$path")" "${path#/usr}" "/usr$path"; do
        package="$(dpkg -S "$candidate" 2>/dev/null | awk -F: 'NR == 1 {print $1}')"
        [ -n "$package" ] && echo "$package" && return 0
    done
    return 1
}
uncovered=""
for lib in $(grep -vxFf "$work/bundled" "$work/needed"); do
    path="$(ldconfig -p | awk -v n="$lib" '$1 == n && /x86-64/ && !found {print $NF; found = 1}')"
    [ -n "$path" ] || fail "$lib is needed but not on this system"
    pkg="$(owner "$path")" || fail "no package owns $path"
    case "$pkg" in libc6 | "libpython3"*) continue ;; esac
    echo "$depends" | grep -qx "$pkg" || uncovered="$uncovered $pkg($lib)"
done
[ -z "$uncovered" ] || fail "system libraries from packages missing in Depends:$uncovered"
echo "$(wc -l <"$work/elfs") shared objects resolve; their $(grep -cvxFf "$work/bundled" "$work/needed") system libraries all come from Depends"

step "llama.cpp backends inside the package"
(cd "$work" && "$exe" backends --json) | tee "$artifacts/backends.json"
python3 - "$artifacts/backends.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
assert report["backends"] == ["CPU"] and not report["gpu_offload"], report
assert report["llama_cpp_version"].endswith("+cpu"), "not the portable wheel"
assert (report["cpu_module"] or "").startswith("libggml-cpu-"), "no CPU variant chosen at run time"
print(f"CPU variant chosen at run time: {report['cpu_variant']}")
EOF

step "answer on the command line"
model="$(cd "$root" && GEMMA_DESK_HOME="$HOME/.cache/gemma-desk-tests" .venv/bin/python -c \
    "from model_io.synth import cached_text_model; print(cached_text_model('tiny'))")"
mkdir -p "$work/home/config"
answer="$(cd "$work" && GEMMA_DESK_HOME="$work/home" "$exe" ask --model "$model" --temp 0 --max-tokens 8 --threads 1 "Hello")"
[ -n "$answer" ] || fail "no answer"
echo "greedy answer (random weights): ${answer:0:80}"

step "desktop window under Xvfb"
display=90
while [ -e "/tmp/.X$display-lock" ]; do display=$((display + 1)); done
Xvfb ":$display" -screen 0 1280x800x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
pids+=($!)
export DISPLAY=":$display"
for _ in $(seq 50); do xdotool getmouselocation >/dev/null 2>&1 && break; sleep 0.1; done
printf '[model]\npath=%s\nthreads=1\ncontext=2048\n[sampling]\nmax_tokens=24\n' "$model" >"$work/home/config/settings.ini"
(cd "$work" && QT_QPA_PLATFORM=xcb GEMMA_DESK_HOME="$work/home" exec "$exe") >"$artifacts/app.log" 2>&1 &
app_pid=$!
pids+=("$app_pid")
window="$(timeout 60 xdotool search --sync --name '^Gemma Desk$' | awk 'NR == 1')" || fail "no window titled 'Gemma Desk'"
echo "window $window: title '$(xdotool getwindowname "$window")', $(xdotool getwindowgeometry "$window" | grep Geometry)"
grep -q "$app/app_packages/PySide6/Qt/lib/libQt6Core" "/proc/$app_pid/maps" || fail "Qt is not the packaged one"
ocr_until() {  # screenshot (of the screen, or of window $3) + OCR until the text shows up
    local text="$1" shot="$2" target="${3:-root}"
    for _ in $(seq 30); do
        import -window "$target" "$shot"
        tesseract "$shot" - 2>/dev/null >"$shot.txt" || true
        grep -q "$text" "$shot.txt" && return 0
        sleep 2
    done
    fail "'$text' never appeared on screen (see $shot, $shot.txt)"
}
ocr_until "random weights" "$artifacts/window.png"
echo "model loaded: $(grep -o '.*random weights.*' "$artifacts/window.png.txt" | awk 'NR == 1')"
# The engine may run in the window's process or in a worker process it started: find llama.cpp in either.
engine_pid=""
for pid in "$app_pid" $(pgrep -P "$app_pid" || true); do
    grep -q "$app/app_packages/llama_cpp/lib/libggml-cpu-" "/proc/$pid/maps" 2>/dev/null && engine_pid="$pid"
done
[ -n "$engine_pid" ] || fail "no process of the app mapped a packaged CPU variant of llama.cpp"
variant="$(grep -o 'libggml-cpu-[a-z0-9_]*\.so' "/proc/$engine_pid/maps" | awk 'NR == 1')"
echo "engine in process $engine_pid ($([ "$engine_pid" = "$app_pid" ] && echo "the window's" || echo "a worker")): $variant"
height="$(xdotool getwindowgeometry "$window" | sed -n 's/.*Geometry: [0-9]*x\([0-9]*\)/\1/p')"
xdotool mousemove --window "$window" 500 $((height - 100)) click 1
xdotool type --delay 20 "Hello from the package"
xdotool key Return
ocr_until "Hello from the package" "$artifacts/answer.png"
sleep 4
import -window root "$artifacts/answer.png"
colours="$(identify -format %k "$artifacts/answer.png")"
[ "$colours" -gt 50 ] || fail "the screenshot looks blank ($colours colours)"
echo "screenshots: $artifacts/{window,answer,settings}.png ($colours colours in answer.png)"
# Settings show what llama.cpp can run on, detected in a child process of the packaged app.
xdotool key ctrl+comma
dialog="$(timeout 30 xdotool search --sync --name '^Settings$' | awk 'NR == 1')" || fail "no Settings dialog"
cpu_name="${variant#libggml-cpu-}"
ocr_until "Runs on: CPU (${cpu_name%.so})" "$artifacts/settings.png" "$dialog"
echo "settings: $(grep -o 'Runs on.*' "$artifacts/settings.png.txt" | awk 'NR == 1')"
grep -q "GPU layers" "$artifacts/settings.png.txt" && fail "GPU layers offered without a GPU"
xdotool key Escape
kill -0 "$app_pid" || fail "the app exited"
echo
echo "OK: $(basename "$deb") builds, installs, runs from the command line and opens its window"
