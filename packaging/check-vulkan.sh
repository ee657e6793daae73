#!/usr/bin/env bash
# Verify the Vulkan build of llama.cpp without a GPU, on Mesa's lavapipe (a CPU Vulkan driver):
#   1. build (or reuse) the Vulkan wheel: packaging/build-llama-wheel.sh vulkan
#   2. install it into its own virtual environment, never touching the project's .venv: the new
#      environment sees the project and the .venv's other packages through a .pth file, but its own
#      llama_cpp comes first on sys.path
#   3. detection: `gemma-desk backends` lists the lavapipe device (ggml skips CPU-type Vulkan devices
#      unless GGML_VK_VISIBLE_DEVICES names them) and none without it
#   4. greedy tokens through the app's runtime: CPU build vs Vulkan build with every layer offloaded
#      (and the Vulkan wheel's own CPU variant), on the tiny synthetic Gemma 3n and on Gemma 3 270M
# Needs: mesa-vulkan-drivers vulkan-tools (and libvulkan-dev glslc spirv-headers to build), installed
# through scripts/system-packages.sh packaging.
# Usage: packaging/check-vulkan.sh        env: GEMMA_DESK_TOOLS (cache folder)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${GEMMA_DESK_TOOLS:-$HOME/.cache/gemma-desk-tools}"
project_python="$root/.venv/bin/python"
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
"$root/scripts/system-packages.sh" packaging  # the Debian packages these scripts use (only missing ones)

step "Vulkan driver"
vulkaninfo --summary 2>/dev/null | grep -E 'deviceName|deviceType|driverName' || fail "no Vulkan device (install mesa-vulkan-drivers)"

step "wheel"
wheel="$(ls "$tools"/wheels/vulkan/llama_cpp_python-*+vulkan-*.whl 2>/dev/null | awk 'NR == 1' || true)"
if [ -z "$wheel" ]; then
    PYTHON="$project_python" nice -n 10 "$root/packaging/build-llama-wheel.sh" vulkan "$tools/wheels/vulkan" >/dev/null
    wheel="$(ls "$tools"/wheels/vulkan/llama_cpp_python-*+vulkan-*.whl | awk 'NR == 1')"
fi
echo "$(basename "$wheel") ($(du -h "$wheel" | cut -f1))"

step "separate environment"
venv="$tools/vulkan-venv"
marker="$venv/installed-$(sha256sum "$wheel" | cut -c1-16)"
if [ ! -f "$marker" ]; then
    rm -rf "$venv"
    "$project_python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --no-deps "$wheel"
    touch "$marker"
fi
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
project_site="$("$project_python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
printf '%s\n%s\n' "$root" "$project_site" >"$site/gemma-desk-project.pth"
"$venv/bin/python" -c 'import llama_cpp, sys; assert "vulkan-venv" in llama_cpp.__file__, llama_cpp.__file__'
echo "llama_cpp in $venv; the project's .venv keeps its own build"

step "detection (gemma-desk backends)"
echo "-- lavapipe hidden (ggml's default for CPU-type Vulkan devices):"
(cd "$root" && "$venv/bin/python" -m app backends)
echo "-- GGML_VK_VISIBLE_DEVICES=0:"
(cd "$root" && GGML_VK_VISIBLE_DEVICES=0 "$venv/bin/python" -m app backends --json) >"$tools/vulkan-backends.json"
python3 - "$tools/vulkan-backends.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
gpus = [d for d in report["devices"] if d["kind"] in ("gpu", "igpu")]
assert report["gpu_offload"] and "Vulkan" in report["backends"], report
assert gpus and "llvmpipe" in gpus[0]["description"], report["devices"]
assert "vulkan" in report["offered_backends"], report["offered_backends"]
for device in report["devices"]:
    print(f"  {device['name']}: {device['description']} ({device['kind']}, {device['memory_total'] / 2**30:.1f} GiB)")
print(f"  CPU module: {report['cpu_module']}; offered backends: {report['offered_backends']}")
EOF

step "greedy tokens: CPU build vs Vulkan build"
tiny="$(cd "$root" && GEMMA_DESK_HOME="$HOME/.cache/gemma-desk-tests" "$project_python" -c \
    "from model_io.synth import cached_text_model; print(cached_text_model('tiny'))")"
gemma3="$(cd "$root/tests" && "$project_python" -c "from gguf_fixtures import gemma3_270m_path; print(gemma3_270m_path())")"
status=0
for model in "$tiny" "$gemma3"; do
    echo "-- $(basename "$model")"
    cd "$root"
    cpu="$("$project_python" packaging/greedy_tokens.py "$model")"
    vulkan="$(GGML_VK_VISIBLE_DEVICES=0 "$venv/bin/python" packaging/greedy_tokens.py "$model" --gpu-layers -1)"
    variant="$("$venv/bin/python" packaging/greedy_tokens.py "$model")"
    python3 - "$cpu" "$vulkan" "$variant" <<'EOF' || status=1
import json, sys
cpu, vulkan, variant = (json.loads(arg) for arg in sys.argv[1:])
print(f"  CPU build {cpu['llama_cpp_version']}: {cpu['tokens']} ({cpu['seconds']} s)")
print(f"  Vulkan build, all layers on the GPU: {vulkan['tokens']} ({vulkan['seconds']} s)")
for line in vulkan["llama_log"]:
    if "offloaded" in line or "using device" in line:
        print(f"    llama.cpp: {line.strip()}")
print(f"    devices: {vulkan['devices']}")
print(f"  Vulkan wheel, CPU only ({variant['cpu_module']}): {variant['tokens']} ({variant['seconds']} s)")
assert any("offloaded" in line and "layers to GPU" in line and not line.split("offloaded")[1].startswith(" 0/")
           for line in vulkan["llama_log"]), "nothing was offloaded"
same = cpu["tokens"] == vulkan["tokens"] == variant["tokens"]
print("  equal" if same else "  DIFFERENT")
sys.exit(0 if same else 1)
EOF
done
[ "$status" = 0 ] || fail "greedy tokens differ between the CPU and Vulkan builds"
echo
echo "OK: the Vulkan build finds lavapipe, offloads every layer and gives the CPU build's greedy tokens"
