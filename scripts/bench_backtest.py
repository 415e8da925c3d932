"""Candles per second of `mm backtest` (the same code path) on a long random walk.

Default: 1,000,000 random-walk 1m candles, 40-level grid (configs/bench_backtest.yaml).
Prints the time to generate the feed and to run the backtest, and candles/s for both.
Usage: python scripts/bench_backtest.py [--candles N] [--config PATH] [--volatility X]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mm import cli, config  # noqa: E402
from scripts.machine import describe  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=1_000_000)
    parser.add_argument("--config", type=Path, default=ROOT / "configs/bench_backtest.yaml")
    parser.add_argument("--volatility", type=float, help="override feed.volatility")
    args = parser.parse_args()
    cfg = config.load(config.BacktestSettings, args.config)
    if args.volatility is not None:
        cfg = cfg.model_copy(
            update={"feed": cfg.feed.model_copy(update={"volatility": args.volatility})}
        )
    print(f"machine: {describe()}")
    print(
        f"grid: {cfg.symbol} {cfg.grid.mode}, {cfg.grid.buy_levels}+{cfg.grid.sell_levels} "
        f"levels, interval {cfg.grid.interval}; feed: {args.candles:,} 1m candles, "
        f"volatility {cfg.feed.volatility}"
    )
    started = time.perf_counter()
    path = cli._price_path(cfg, None, args.candles)
    generated = time.perf_counter()
    result, _engine, seconds = asyncio.run(cli._run_backtest(cfg, path, progress=False))
    total = time.perf_counter() - started
    s = result.summary
    print(f"feed generation   {generated - started:7.2f} s")
    print(f"backtest          {seconds:7.2f} s   {args.candles / seconds:>11,.0f} candles/s")
    print(f"end to end        {total:7.2f} s   {args.candles / total:>11,.0f} candles/s")
    print(
        f"visited {s.events:,} of {s.points:,} path points; {s.fills:,} fills, "
        f"{s.round_trips:,} round trips, realized {s.realized_pnl:.2f}"
    )


if __name__ == "__main__":
    main()
