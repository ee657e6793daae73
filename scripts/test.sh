#!/usr/bin/env bash
# One command from a fresh Debian/Ubuntu machine to the whole test suite passing:
# system packages, a virtual environment with the test extra, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-packages.sh
bash scripts/venv.sh test
.venv/bin/python -m pytest "$@"
