#!/usr/bin/env bash
# Install everything into .venv (Python, pip and git are all it needs) and run the full gate:
# ruff format --check, ruff check, pytest (warnings are errors). Used by README and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
export RAY_USAGE_STATS_ENABLED=0 PYTHONDONTWRITEBYTECODE=1
.venv/bin/ruff format --check .
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
