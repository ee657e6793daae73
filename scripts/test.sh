#!/usr/bin/env bash
# One command from a fresh Debian/Ubuntu machine to the whole test suite passing:
# system packages, a virtual environment with the test extra, lint and type checks, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-packages.sh test
bash scripts/venv.sh test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
