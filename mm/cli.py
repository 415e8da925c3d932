"""`mm` command line: the composition root, the only place that picks concrete classes.

Owns: argument parsing, wiring config -> venue/journal/engine, exit codes (0 ok, 1 runtime
failure, 2 bad config, usage or request, 3 no market maker running) and what is printed.
Must not: hold trading logic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from connectors.simulated import markets
from connectors.simulated.exchange import SimulatedExchange, rules_for
from connectors.simulated.feeds import FeedError, PricePath, candle_path, load_csv, random_walk
from mm import config, report
from mm.composition import sim_config
from mm.config import SimulatedConfig
from mm.core.rounding import is_multiple
from mm.engine.backtest import Backtest, BacktestResult
from mm.engine.clock import VirtualClock
from mm.engine.symbol_engine import EngineConfig, SymbolEngine
from mm.errors import ConfigError, MMError, NotRunning, RequestError, RequestTimeout
from mm.netaddr import is_loopback
from mm.observability.logs import register_secret, setup_logging
from mm.settings import (
    ExchangeConnectorSettings,
    MarketMakerSettings,
    check_symbol,
)
from mm.store.journal import Journal

log = logging.getLogger("mm.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mm", description="OpenSQT grid market maker")
    sub = parser.add_subparsers(dest="command", required=True)
    bt = sub.add_parser("backtest", help="run the grid over a price series (virtual clock)")
    bt.add_argument("--config", type=Path, default=Path("configs/backtest.yaml"))
    bt.add_argument("--data", type=Path, help="CSV of candles or trades (default: random walk)")
    bt.add_argument("--report", type=Path, metavar="DIR", help="write summary.json and chart.png")
    bt.add_argument("--candles", type=int, help="override feed.candles of the random walk")
    bt.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal)",
    )
    bt.add_argument("-v", "--verbose", action="store_true", help="log every rejected order")
    _live_parsers(sub)
    return parser


def _cluster_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default="auto", help="Ray cluster of the running market maker")
    p.add_argument("--namespace", default="opensqt", help="Ray namespace (ray.namespace)")


def _live_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = sub.add_parser("run", help="run every registered symbol under Ray (embedded by default)")
    run.add_argument("--config", type=Path, default=Path("configs/market_maker.yaml"))
    run.add_argument("--address", help="join this Ray cluster ('auto' inside `ray up`)")
    run.add_argument("--quiet", action="store_true", help="no status line")
    run.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    conn = sub.add_parser(
        "connector", help="serve the configured exchange over gRPC (exchange_connector)"
    )
    conn.add_argument("--config", type=Path, default=Path("configs/exchange_connector.yaml"))
    conn.add_argument(
        "--host", help="bind address (default: the config's; MM_CONNECTOR_HOST wins if set)"
    )
    conn.add_argument(
        "--port", type=int, help="port (default: the config's; MM_CONNECTOR_PORT wins if set)"
    )
    conn.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    emu = sub.add_parser(
        "emulator", help="serve a Binance-dialect exchange on 127.0.0.1 (for ccxt, no internet)"
    )
    emu.add_argument("--port", type=int, default=8090, help="port (default 8090)")
    emu.add_argument("--api-key", help="API key clients must send (env MM_EMULATOR_API_KEY)")
    emu.add_argument("--api-secret", help="secret they sign with (env MM_EMULATOR_API_SECRET)")
    emu.add_argument("--seed", type=int, default=0, help="seed of the simulated price walks")
    add = sub.add_parser("add-symbol", help="register a symbol and start trading it")
    add.add_argument("symbol", help="exchange-native name, e.g. SOLUSDT or SOLUSDT-PERP")
    for flag, kind, text in _GRID_FLAGS:
        add.add_argument(flag, type=kind, help=text)
    add.add_argument("--post-only", action=argparse.BooleanOptionalAction, default=None)
    add.add_argument("--wait", type=float, default=60.0, help="seconds to wait for quoting")
    _cluster_args(add)
    remove = sub.add_parser("remove-symbol", help="drain a symbol and unregister it")
    remove.add_argument("symbol")
    remove.add_argument("--keep-orders", action="store_true", help="leave its orders resting")
    _cluster_args(remove)
    status = sub.add_parser("status", help="state of every symbol, risk and connector")
    status.add_argument("--json", action="store_true", help="the full status as JSON")
    _cluster_args(status)
    for name, text in (("pause", "stop placing orders"), ("resume", "quote again")):
        p = sub.add_parser(name, help=f"{text} (one symbol, or all)")
        p.add_argument("symbol", nargs="?")
        _cluster_args(p)
    breaker = sub.add_parser("breaker", help="trip or reset the global circuit breaker")
    breaker.add_argument("action", choices=["trip", "reset"])
    breaker.add_argument("--reason", default="operator", help="recorded with a trip")
    _cluster_args(breaker)


_GRID_FLAGS = (
    ("--interval", str, "price distance between levels, in quote (required)"),
    ("--mode", str, "long | neutral"),
    ("--buy-levels", int, "opening buy levels"),
    ("--sell-levels", int, "sell levels"),
    ("--level-notional", str, "quote per opening order"),
    ("--level-qty", str, "base per opening order (instead of --level-notional)"),
    ("--max-open-orders", int, "cap on live orders"),
    ("--min-gap", str, "minimum distance of a new opening order, in intervals"),
    ("--strategy-id", str, "1-6 of [a-z0-9], carried in client ids"),
)


def _price_path(cfg: config.BacktestSettings, data: Path | None, candles: int | None) -> PricePath:
    rules = rules_for(cfg.symbol)
    assert rules is not None
    if data is not None:
        return load_csv(data, rules.tick_size)
    base = cfg.symbol.removesuffix("-PERP")
    start = cfg.feed.start_price or markets.start_price(base)
    count = candles if candles is not None else cfg.feed.candles
    if count < 1:
        raise ConfigError(f"--candles = {count}: must be at least 1")
    walk = random_walk(
        count,
        start,
        rules.tick_size,
        volatility=cfg.feed.volatility,
        drift=cfg.feed.drift,
        seed=cfg.feed.seed,
    )
    return candle_path(walk)


def _check(cfg: config.BacktestSettings) -> None:
    rules = rules_for(cfg.symbol)
    if rules is None:
        listed = [s for b in markets.SYMBOLS for s in (b, b + "-PERP")]
        raise ConfigError(f"symbol = {cfg.symbol!r}: not listed; allowed: {', '.join(listed)}")
    if not is_multiple(cfg.grid.interval, rules.tick_size):
        raise ConfigError(
            f"grid.interval = {cfg.grid.interval}: must be a multiple of {cfg.symbol}'s tick size "
            f"{rules.tick_size}"
        )


async def _run_backtest(
    cfg: config.BacktestSettings, path: PricePath, progress: bool
) -> tuple[BacktestResult, SymbolEngine, float]:
    rules = rules_for(cfg.symbol)
    assert rules is not None
    base = cfg.symbol.removesuffix("-PERP")
    clock = VirtualClock(int(path.ts_ms[0]))
    ex = cfg.exchange
    venue = SimulatedExchange(
        sim_config(ex, start_prices={base: int(path.price[0]) * rules.tick_size}), clock
    )
    journal = Journal(cfg.journal_path, durable=False)
    engine = SymbolEngine(EngineConfig(cfg.symbol, cfg.grid.params()), venue, journal, clock)
    await engine.start()
    closes = np.flatnonzero(np.r_[path.candle[1:] != path.candle[:-1], True])
    backtest = Backtest(engine, venue, clock, path.ts_ms, path.price, closes)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(path), unit="pt", unit_scale=True, desc="backtest", file=sys.stderr)
    started = time.perf_counter()
    try:
        result = await backtest.run(progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    return result, engine, time.perf_counter() - started


def _write_report(
    directory: Path,
    cfg: config.BacktestSettings,
    path: PricePath,
    result: BacktestResult,
    engine: SymbolEngine,
    seconds: float,
) -> None:
    tick = float(engine.rules.tick_size)  # type: ignore[union-attr]
    candles = path.candles
    strategy = engine.strategy
    levels: list[float] = []
    if strategy is not None:
        lo, hi = float(np.min(candles.low)) * tick, float(np.max(candles.high)) * tick
        k_lo = strategy.nearest_level(engine.rules.tick_size * int(np.min(candles.low))) - 1  # type: ignore[union-attr]
        k_hi = strategy.nearest_level(engine.rules.tick_size * int(np.max(candles.high))) + 1  # type: ignore[union-attr]
        levels = [float(strategy.level_price(k)) for k in range(k_lo, k_hi + 1)]
        levels = [lv for lv in levels if lo <= lv <= hi]
    fills = [
        (f.ts_ms, float(f.price), f.side.value == "BUY") for f in engine.journal.fills(cfg.symbol)
    ]
    json_path = report.write_json(
        directory,
        result.summary,
        {
            "symbol": cfg.symbol,
            "seconds": round(seconds, 3),
            "anchor": str(strategy.anchor) if strategy else None,
            "grid": cfg.grid.model_dump(mode="json"),
        },
    )
    png_path = report.write_png(
        directory,
        times_ms=candles.ts_ms,
        closes=candles.close * tick,
        equity=result.equity,
        levels=levels,
        fills=fills,
        title=f"{cfg.symbol} grid backtest",
    )
    print(f"report: {json_path} {png_path}")


def backtest(args: argparse.Namespace) -> int:
    cfg = config.load(config.BacktestSettings, args.config)
    _check(cfg)
    data = args.data or cfg.data
    try:
        path = _price_path(cfg, data, args.candles)
    except FeedError as e:
        raise ConfigError(f"data {data}: {e}") from e
    if not args.verbose:
        logging.getLogger("mm.engine").setLevel(logging.ERROR)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    result, engine, seconds = asyncio.run(_run_backtest(cfg, path, progress))
    if engine.state.value == "HALTED":
        print(f"halted: {engine.halt_reason}", file=sys.stderr)
    for line in report.summary_lines(result.summary, cfg.symbol, seconds):
        print(line)
    if args.report is not None:
        _write_report(args.report, cfg, path, result, engine, seconds)
    return 0


def run(args: argparse.Namespace) -> int:
    from mm import live
    from mm.actors import client
    from mm.composition import make_exchange

    settings = config.load(MarketMakerSettings, args.config)
    # actors may run in another working directory (or on another node): absolute paths only
    settings = settings.model_copy(update={"data_dir": settings.data_dir.resolve()})
    if args.verbose:
        logging.getLogger().setLevel(logging.INFO)
    embedded = client.start(settings, args.address)
    where = "embedded Ray on this host" if embedded else f"Ray cluster {args.address}"
    print(f"mm run: starting on {where}, data in {settings.data_dir}", flush=True)
    try:
        handle = client.launch(settings, make_exchange)
        process = live.LiveProcess(settings, client.Cluster(handle))
        drained = asyncio.run(process.run(quiet=args.quiet))
    finally:
        client.stop()
    return 1 if any("error" in result for result in drained.values()) else 0


def _orchestrator(args: argparse.Namespace) -> Any:
    from mm.actors import client

    return client.connect(args.address, args.namespace)


def _ask(ref: Any, timeout_s: float = 120.0, *, changes_state: bool = True) -> Any:
    """Wait for the orchestrator's answer. A state change that times out may still complete:
    the message says so (check with `mm status`)."""
    from mm.actors.calls import get

    return get(ref, timeout_s=timeout_s, changes_state=changes_state)


def add_symbol(args: argparse.Namespace) -> int:
    symbol = check_symbol(args.symbol)
    overrides = {
        flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_"))
        for flag, _, _ in _GRID_FLAGS
    }
    overrides["post_only"] = args.post_only
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "interval" not in overrides:
        raise ConfigError("--interval is required (price distance between levels, in quote)")
    orchestrator = _orchestrator(args)
    status = _ask(orchestrator.add_symbol.remote(symbol, overrides, args.wait), args.wait + 30)
    print(f"{symbol}: {status['state']} (anchor {status['anchor']}, {status['open_orders']} open)")
    return 0


def remove_symbol(args: argparse.Namespace) -> int:
    status = _ask(_orchestrator(args).remove_symbol.remote(args.symbol, args.keep_orders))
    kept = "kept" if args.keep_orders else "cancelled"
    print(
        f"{args.symbol}: removed; orders {kept}; inventory {status.get('inventory_qty', '?')} "
        f"stays in its journal"
    )
    return 0


def status(args: argparse.Namespace) -> int:
    current = _ask(_orchestrator(args).status.remote(), 30, changes_state=False)
    if args.json:
        print(json.dumps(current, indent=2, default=str))
        return 0
    print(report.status_table(current))
    return 0


def pause_resume(args: argparse.Namespace) -> int:
    orchestrator = _orchestrator(args)
    states = _ask(getattr(orchestrator, args.command).remote(args.symbol))
    for symbol, state in states.items():
        print(f"{symbol}: {state}")
    return 0


def breaker(args: argparse.Namespace) -> int:
    state = _ask(_orchestrator(args).breaker.remote(args.action, args.reason))
    reasons = ", ".join(state["reasons"]) or "none"
    print(f"breaker {args.action}: halted={state['halted']} reasons={reasons}")
    return 0


def connector(args: argparse.Namespace) -> int:
    flags = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = config.load(ExchangeConnectorSettings, args.config, overrides=flags)
    if args.verbose:
        logging.getLogger().setLevel(logging.INFO)
    return asyncio.run(_serve_connector(settings))


async def _serve_connector(settings: ExchangeConnectorSettings) -> int:
    import signal

    from connectors.remote.server import ExchangeConnector
    from mm.composition import make_venue, server_config

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    exchange = make_venue(settings.exchange, settings.data_dir.resolve())
    try:
        server = ExchangeConnector(exchange, server_config(settings))
        port = await server.start()
        token = "required" if settings.token else "not required"
        tls = "on" if settings.tls_cert else "off"
        print(
            f"mm connector: serving {exchange.name} on {settings.host}:{port} "
            f"(token {token}, TLS {tls}); Ctrl-C stops",
            flush=True,
        )
        if settings.tls_cert is None and not is_loopback(settings.host):
            log.warning("serving %s without TLS: the token travels in clear", settings.host)

        async def announce() -> None:
            await server.wait_serving(timeout_s=None)
            print(f"mm connector: exchange {exchange.name} is healthy (SERVING)", flush=True)

        announced = asyncio.create_task(announce())
        await stop.wait()
        announced.cancel()
        print("mm connector: stopping (finishing in-flight calls)", flush=True)
        await server.stop()
    finally:
        await exchange.close()
    print("mm connector: stopped", flush=True)
    return 0


EMULATOR_DEFAULT_KEY = ("test-key", "test-secret")  # loopback only, so a fresh machine can try it


def emulator(args: argparse.Namespace) -> int:
    import os

    key = args.api_key or os.environ.get("MM_EMULATOR_API_KEY") or EMULATOR_DEFAULT_KEY[0]
    secret = args.api_secret or os.environ.get("MM_EMULATOR_API_SECRET") or EMULATOR_DEFAULT_KEY[1]
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: 0..65535")
    return asyncio.run(_serve_emulator(args.port, key, secret, args.seed))


async def _serve_emulator(port: int, key: str, secret: str, seed: int) -> int:
    import signal

    from connectors.emulator.binance import BinanceEmulator
    from connectors.emulator.server import running
    from mm.engine.clock import SystemClock

    register_secret(secret)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    balances = {"USDT": Decimal(100_000), "BTC": Decimal(1), "ETH": Decimal(10)}
    sim = SimulatedExchange(
        sim_config(SimulatedConfig(balances=balances), seed=seed), SystemClock()
    )
    sim.start()
    try:
        async with running(BinanceEmulator(sim, key, secret), port=port) as bound:
            default = "default test" if (key, secret) == EMULATOR_DEFAULT_KEY else "configured"
            print(
                f"mm emulator: Binance spot dialect on http://127.0.0.1:{bound} "
                f"(ws://127.0.0.1:{bound}/ws, /ws-api/v3), {default} API key; Ctrl-C stops",
                flush=True,
            )
            await stop.wait()
    finally:
        await sim.close()
    print("mm emulator: stopped", flush=True)
    return 0


COMMANDS = {
    "backtest": backtest,
    "emulator": emulator,
    "run": run,
    "connector": connector,
    "add-symbol": add_symbol,
    "remove-symbol": remove_symbol,
    "status": status,
    "pause": pause_resume,
    "resume": pause_resume,
    "breaker": breaker,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging()
    try:
        return COMMANDS[args.command](args)
    except ConfigError as e:
        for line in str(e).splitlines():
            print(f"config error: {line}", file=sys.stderr)
        return 2
    except NotRunning as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except RequestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RequestTimeout as e:
        print(f"error: {e}; check with `mm status`", file=sys.stderr)
        return 1
    except MMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
