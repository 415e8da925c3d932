#!/usr/bin/env bash
# Install and run the main job on the embedded default: a backtest of the default grid on the
# built-in seeded random walk (no keys, no network). Extra arguments go to `mm backtest`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/mm backtest --config configs/backtest.yaml "$@"
