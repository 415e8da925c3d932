#!/usr/bin/env bash
# Install and run the main job on the embedded default: `mm run` trades BTCUSDT and ETHUSDT on
# the simulated exchange under an embedded Ray (no keys, no network). Extra arguments go to
# `mm run`; Ctrl-C stops it cleanly. (`mm backtest` is the one-symbol offline run.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export RAY_USAGE_STATS_ENABLED="${RAY_USAGE_STATS_ENABLED:-0}"
exec .venv/bin/mm run --config configs/market_maker.yaml "$@"
