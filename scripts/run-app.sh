#!/usr/bin/env bash
# One command from a fresh Debian/Ubuntu machine to a running Gemma Desk:
# system packages, a virtual environment with the app, then start it (arguments pass through).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-packages.sh
bash scripts/venv.sh
exec .venv/bin/gemma-desk "$@"
