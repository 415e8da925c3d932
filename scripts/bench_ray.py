"""Tick -> order latency and tick throughput of the market maker under Ray, 1..N symbols.

Three measurements:

live          For each N (default 1, 10, 20): an embedded Ray (no dashboard, usage stats off),
              the real market maker (orchestrator, connector, risk, one actor per symbol) over
              the simulated venue publishing a price every 10 ms (100 ticks/s per market asked;
              the feed is paced by deadlines, so a busy connector still gets them), its markets
              moving at their own offsets within the 10 ms (its default `spread_feeds`: 5
              slots 2 ms apart, as a real venue's per-market streams do not all arrive in one
              instant); the counts of `--same-instant` (default 20) are run again with every
              market moving in the same instant (the worst case: every symbol woken at once
              on 2 cores). N USDT spot
              markets, each with a 5+5-level long grid of 50 USDT orders spaced `--interval-bps`
              of its start price (rounded to the tick size). The defaults (volatility 0.0002 per
              4-point candle, 10 bp) give about one order per symbol per second. No risk limits,
              a REST budget that never throttles, no venue persistence. It waits until every
              symbol is QUOTING, warms up, then measures for `--seconds`:
              - tick -> order: wall time from the connector receiving a tick to a symbol actor
                issuing the order call it caused (raw samples of the window, pooled over all
                symbols; `SymbolManager.latency_samples`), p50/p99;
              - tick -> delivery: connector receipt -> the tick arriving in the symbol actor;
              - ticks received/s at the connector, delivered/s, the conflated share, orders/s;
              - memory per symbol actor process (VmRSS and USS from /proc) and CPU use of the
                connector, the symbol actors and the rest, in % of one core.
              Ray is shut down between N values, so each N starts clean.
ingest        The connector's ingest path in-process (no Ray, no venue): a `ConnectorService`
              over a stub exchange whose price stream yields pre-built ticks for N symbols as
              fast as it can (a batch per event-loop turn, like a socket buffer), with N routes
              whose sinks take 1 ms per delivery (a busy actor). Reports ticks ingested per
              wall second (`router.ticks_in`) and the conflated share. The live venue cannot
              produce 50k ticks/s in Python, so this is where the ingest goal is checked.
              (It excludes what a real venue adds: socket reads and message parsing.)
ray hop       The floor of the Ray path (symbol actors on another node than the connector): a
              bare async actor -> async actor call (a `Delivery` with one tick, awaited, one in
              flight) paced every 10 ms: one-way and round-trip latency, CPU per call.
local hop     The floor of the path the live run uses (every actor on one node): a tick-only
              `Delivery` over the local channel (Unix socket) to a spawned process whose apply
              does nothing, acked, paced every 10 ms and back to back: round trip, CPU per
              delivery on each side (this VM charges several times more CPU to wake an idle
              process than to serve a busy one).

Goals (issue): at 20 symbols tick -> order p50 <= 2 ms and p99 <= 10 ms; >= 50k ticks/s
ingested. Results depend on what else the machine runs: the live part needs the cores.
Usage: python scripts/bench_ray.py [--symbols 1,10,20] [--seconds 20] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal as D
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402

from connectors.simulated import markets  # noqa: E402
from mm.actors import client, options  # noqa: E402
from mm.actors.calls import get  # noqa: E402
from mm.composition import make_exchange  # noqa: E402
from mm.core.model import MarketType, PriceTick  # noqa: E402
from mm.core.rounding import snap  # noqa: E402
from mm.engine.connector_service import ConnectorService  # noqa: E402
from mm.engine.local_channel import LocalChannelServer, LocalLink, private_dir  # noqa: E402
from mm.engine.router import Delivery  # noqa: E402
from mm.settings import MarketMakerSettings  # noqa: E402
from scripts.benchlib import cpu_s as process_cpu_s  # noqa: E402
from scripts.benchlib import spawned  # noqa: E402
from scripts.machine import describe  # noqa: E402

TICK_INTERVAL_MS = 10  # 100 ticks/s per market
GOAL_P50_MS, GOAL_P99_MS, GOAL_INGEST = 2.0, 10.0, 50_000
GOAL_SYMBOLS = 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- numbers -------------------------------------------------------------------------------------
def percentile(samples: Sequence[float], q: float) -> float | None:
    """Nearest rank, as `LatencyStats.percentile` computes it."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def window(after: dict[str, Any], before: dict[str, Any], key: str) -> list[float]:
    """The samples observed between two `latency_samples()` reads (newest `count` delta)."""
    new = after[f"{key}_count"] - before[f"{key}_count"]
    recent = after[f"{key}_ms"]
    return recent[len(recent) - min(new, len(recent)) :] if new > 0 else []


# -- /proc (Linux) -------------------------------------------------------------------------------
def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def rss_mib(pid: int) -> float | None:
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def uss_mib(pid: int) -> float | None:
    """Unique set size: private pages (smaps_rollup Private_Clean + Private_Dirty)."""
    kib = [
        int(line.split()[1])
        for line in _read(f"/proc/{pid}/smaps_rollup").splitlines()
        if line.startswith(("Private_Clean:", "Private_Dirty:"))
    ]
    return sum(kib) / 1024 if kib else None


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 if it is gone)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (all cores)."""
    values = [int(v) for v in _read("/proc/stat").splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def ray_processes() -> dict[int, str]:
    """pid -> label of this driver's Ray processes: the raylet's descendants (actor workers,
    labelled by their process title, e.g. `ray::Connector`) and Ray's own daemons."""
    out: dict[int, str] = {}
    try:
        node = ray._private.worker._global_node  # type: ignore[attr-defined]
        for kind, infos in node.all_processes.items():
            for info in infos:
                out[info.process.pid] = f"ray:{kind}"
        raylet = next(p for p, k in out.items() if k == "ray:raylet")
    except Exception:
        return out
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read(f"/proc/{entry}/stat")
            if stat:
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    todo = list(children.get(raylet, []))
    while todo:
        pid = todo.pop()
        title = _read(f"/proc/{pid}/cmdline").split("\0")[0].strip()
        out[pid] = title.split(" ")[0] if title.startswith("ray::") else "ray:other"
        todo.extend(children.get(pid, []))
    return out


# -- live ----------------------------------------------------------------------------------------
def grid_interval(symbol: str, bps: float) -> D:
    """About `bps` basis points of the start price, a multiple of the tick size (>= 1 tick)."""
    rules = markets.rules_for(symbol, MarketType.SPOT)
    assert rules is not None
    raw = markets.start_price(symbol) * D(str(bps)) / 10_000
    return max(rules.tick_size, snap(raw, rules.tick_size))


def live_settings(
    data_dir: Path, symbols: list[str], args: argparse.Namespace, spread: bool = True
) -> Any:
    return MarketMakerSettings(
        data_dir=data_dir,
        exchange={
            "simulated": {
                "tick_interval_ms": TICK_INTERVAL_MS,
                "spread_feeds": spread,
                "volatility": args.volatility,
                "persist": False,
                "balances": {"USDT": "100000000"},
            }
        },
        grid_defaults={
            "strategy_id": "bench",
            "mode": "long",
            "buy_levels": 5,
            "sell_levels": 5,
            "level_notional": "50",
            "max_open_orders": 20,
        },
        symbols={s: {"interval": str(grid_interval(s, args.interval_bps))} for s in symbols},
        ray={"namespace": "bench", "dashboard": False},
        connector={
            "rate_limit_per_s": 100_000,
            "rate_limit_burst": 100_000,
            "hold_quiet_ticks_ms": args.hold_ms,
        },
        risk={},  # no limits
    )


def _poll(refs: list[Any], timeout_s: float = 30) -> list[Any]:
    return [get(ref, timeout_s=timeout_s) for ref in refs]


def _snapshot(actors: list[Any], connector: Any, pids: dict[int, str]) -> dict[str, Any]:
    lat_refs = [a.latency_samples.remote() for a in actors]
    status_refs = [a.status.remote() for a in actors]
    stats_ref = connector.stats.remote()
    return {
        "at": time.perf_counter(),
        "latency": _poll(lat_refs),
        "status": _poll(status_refs),
        "connector": get(stats_ref, timeout_s=30),
        "cpu": {pid: cpu_s(pid) for pid in pids},
        "machine": machine_busy_s(),
    }


def _wait_quoting(ns: str, symbols: list[str], timeout_s: float = 180) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    actors: dict[str, Any] = {}
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        for s in symbols:
            if s not in actors:
                try:
                    actors[s] = ray.get_actor(options.symbol_actor(s), namespace=ns)
                except ValueError:
                    continue
        if len(actors) == len(symbols):
            refs = [actors[s].status.remote() for s in symbols]
            try:
                seen = _poll(refs, timeout_s=10)
            except Exception:
                seen = []
            states = {st["symbol"]: st["state"] for st in seen}
            halted = [s for s, state in states.items() if state == "HALTED"]
            if halted:
                raise RuntimeError(f"symbols halted at start: {halted}")
            if seen and all(st["state"] == "QUOTING" and st["open_orders"] for st in seen):
                return [actors[s] for s in symbols]
        time.sleep(0.25)
    raise RuntimeError(f"not every symbol is quoting after {timeout_s}s: {states}")


def run_live(n: int, args: argparse.Namespace, spread: bool = True) -> dict[str, Any]:
    symbols = list(markets.SYMBOLS[:n])
    with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
        settings = live_settings(Path(tmp), symbols, args, spread)
        started = time.perf_counter()
        ray.init(
            address="local",
            namespace=settings.ray.namespace,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
        )
        handle = None
        try:
            handle = client.launch(settings, make_exchange)
            actors = _wait_quoting(settings.ray.namespace, symbols)
            boot_s = time.perf_counter() - started
            time.sleep(args.warmup)
            connector = ray.get_actor(options.CONNECTOR, namespace=settings.ray.namespace)
            pids = ray_processes()
            before = _snapshot(actors, connector, pids)
            time.sleep(args.seconds)
            after = _snapshot(actors, connector, pids)
            result = summarize_live(n, symbols, before, after, pids, settings)
            result["boot_s"] = boot_s
            return result
        finally:
            if handle is not None:
                try:
                    get(handle.shutdown.remote(True), timeout_s=120)
                    ray.kill(handle, no_restart=True)
                except Exception as e:  # report, but always shut Ray down
                    print(f"  (shutdown of the market maker failed: {e})", file=sys.stderr)
            ray.shutdown()


def summarize_live(
    n: int,
    symbols: list[str],
    before: dict[str, Any],
    after: dict[str, Any],
    pids: dict[int, str],
    settings: Any,
) -> dict[str, Any]:
    secs = after["at"] - before["at"]
    to_order: list[float] = []
    to_deliver: list[float] = []
    to_intent: list[float] = []
    commits: list[float] = []
    for b, a in zip(before["latency"], after["latency"], strict=True):
        to_order += window(a, b, "tick_to_order")
        to_deliver += window(a, b, "tick_delivery")
        to_intent += window(a, b, "tick_to_intent")
        commits += window(a, b, "journal_commit")
    cb, ca = before["connector"], after["connector"]
    ticks_in = ca["ticks_in"] - cb["ticks_in"]
    delivered = ca["ticks_delivered"] - cb["ticks_delivered"]
    conflated = ca["ticks_conflated"] - cb["ticks_conflated"]
    held = ca["ticks_held"] - cb["ticks_held"]
    orders = sum(
        a["orders_placed"] - b["orders_placed"]
        for b, a in zip(before["status"], after["status"], strict=True)
    )
    rejected = sum(
        a["orders_rejected"] - b["orders_rejected"]
        for b, a in zip(before["status"], after["status"], strict=True)
    )
    symbol_pids = [st["pid"] for st in after["status"]]
    rss = [rss_mib(p) or 0.0 for p in symbol_pids]
    uss = [uss_mib(p) or 0.0 for p in symbol_pids]

    def cpu_pct(which: list[int]) -> float:
        used = sum(after["cpu"].get(p, 0.0) - before["cpu"].get(p, 0.0) for p in which)
        return 100 * used / secs

    connector_pids = [p for p, k in pids.items() if k.startswith("ray::Connector")]
    others = [p for p in pids if p not in connector_pids and p not in symbol_pids]
    busy = after["machine"][0] - before["machine"][0]
    total = after["machine"][1] - before["machine"][1]
    sim = settings.exchange.simulated
    return {
        "symbols": n,
        "names": symbols,
        "seconds": secs,
        "tick_interval_ms": sim.tick_interval_ms,
        "spread_feeds": sim.spread_feeds,
        "volatility": sim.volatility,
        "intervals": {s: settings.symbols[s]["interval"] for s in symbols},
        "tick_to_order_ms": {
            "p50": percentile(to_order, 0.5),
            "p99": percentile(to_order, 0.99),
            "max": max(to_order, default=None),
            "samples": len(to_order),
        },
        "tick_to_intent_ms": {
            "p50": percentile(to_intent, 0.5),
            "p99": percentile(to_intent, 0.99),
            "samples": len(to_intent),
        },
        "journal_commit_ms": {
            "p50": percentile(commits, 0.5),
            "p99": percentile(commits, 0.99),
            "samples": len(commits),
        },
        "tick_delivery_ms": {
            "p50": percentile(to_deliver, 0.5),
            "p99": percentile(to_deliver, 0.99),
            "max": max(to_deliver, default=None),
            "samples": len(to_deliver),
        },
        "ticks_in_per_s": ticks_in / secs,
        "ticks_in_per_s_per_symbol": ticks_in / secs / n,
        "ticks_delivered_per_s": delivered / secs,
        "conflated_share": conflated / ticks_in if ticks_in else None,
        "held_share": held / ticks_in if ticks_in else None,
        "hold_quiet_ticks_ms": settings.connector.hold_quiet_ticks_ms,
        "orders_per_s": orders / secs,
        "orders_rejected": rejected,
        "states": sorted({st["state"] for st in after["status"]}),
        "rss_mib_per_symbol_actor": {"mean": sum(rss) / n, "max": max(rss)},
        "uss_mib_per_symbol_actor": {"mean": sum(uss) / n, "max": max(uss)},
        "cpu_pct_of_one_core": {
            "connector": cpu_pct(connector_pids),
            "symbol_actors": cpu_pct(symbol_pids),
            "other_ray": cpu_pct(others),
            "machine_busy_pct_of_all_cores": 100 * busy / total if total else None,
        },
    }


# -- ingest (in-process) -------------------------------------------------------------------------
class IngestExchange:
    """Just enough of the `Exchange` port for `ConnectorService`'s streams: prices as fast as
    the loop turns (`batch` ticks per turn), an order stream that never speaks."""

    name = "ingest-stub"
    consistency_window_ms = 0

    async def describe(self) -> None:
        pass

    def __init__(self, symbols: list[str], batch: int, per_symbol: int = 256) -> None:
        self.batch = batch
        self.ticks = [
            PriceTick(s, D(1000 + i), 1_700_000_000_000 + i)
            for i in range(per_symbol)
            for s in symbols
        ]

    async def _prices(self) -> AsyncIterator[PriceTick]:
        ticks, batch = self.ticks, self.batch
        while True:
            for start in range(0, len(ticks), batch):
                for tick in ticks[start : start + batch]:
                    yield tick
                await asyncio.sleep(0)  # one socket read's worth, then let the loop turn

    async def _silent(self) -> AsyncIterator[Any]:
        await asyncio.Event().wait()
        yield None  # never reached; makes this an async generator

    def stream_prices(self, symbols: Sequence[str]) -> AsyncIterator[PriceTick]:
        return self._prices()

    def stream_orders(self, symbols: Sequence[str]) -> AsyncIterator[Any]:
        return self._silent()

    async def close(self) -> None:
        return None


async def run_ingest(n: int, seconds: float, sink_ms: float, batch: int) -> dict[str, Any]:
    symbols = list(markets.SYMBOLS[:n])
    service = ConnectorService(IngestExchange(symbols, batch), rate_limit_per_s=1e9)

    async def sink(delivery: Delivery) -> None:
        await asyncio.sleep(sink_ms / 1000)

    for s in symbols:
        service.add_route(s, sink)
    service.start()
    await asyncio.sleep(0.5)  # warm up
    router = service.router
    t0, s0 = time.perf_counter(), router.stats()
    await asyncio.sleep(seconds)
    t1, s1 = time.perf_counter(), router.stats()
    await service.close()
    secs = t1 - t0
    ticks_in = s1["ticks_in"] - s0["ticks_in"]  # type: ignore[operator]
    delivered = s1["ticks_delivered"] - s0["ticks_delivered"]  # type: ignore[operator]
    conflated = s1["ticks_conflated"] - s0["ticks_conflated"]  # type: ignore[operator]
    return {
        "symbols": n,
        "seconds": secs,
        "sink_ms": sink_ms,
        "batch": batch,
        "ticks_in_per_s": ticks_in / secs,
        "ticks_delivered_per_s": delivered / secs,
        "conflated_share": conflated / ticks_in if ticks_in else None,
    }


# -- ray hop baseline ----------------------------------------------------------------------------
@ray.remote(num_cpus=0, max_concurrency=1000)
class _HopSink:
    def __init__(self) -> None:
        self.one_way_ms: list[float] = []

    async def deliver(self, delivery: Delivery) -> None:
        self.one_way_ms.append((time.time_ns() - delivery.tick_recv_ns) / 1e6)

    async def take(self) -> tuple[int, list[float]]:
        out, self.one_way_ms = self.one_way_ms, []
        return os.getpid(), out


@ray.remote(num_cpus=0, max_concurrency=1000)
class _HopSource:
    async def run(self, sink: Any, seconds: float, every_ms: float) -> tuple[int, list[float]]:
        round_trip_ms: list[float] = []
        end, seq = time.monotonic() + seconds, 0
        while time.monotonic() < end:
            await asyncio.sleep(every_ms / 1000)
            seq += 1
            sent = time.time_ns()
            tick = PriceTick("BTCUSDT", D("65000.01"), sent // 1_000_000)
            await sink.deliver.remote(Delivery("BTCUSDT", seq, (), tick, False, sent))
            round_trip_ms.append((time.time_ns() - sent) / 1e6)
        return os.getpid(), round_trip_ms


def run_hop(seconds: float, every_ms: float = TICK_INTERVAL_MS) -> dict[str, Any]:
    ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        sink, source = _HopSink.remote(), _HopSource.remote()  # type: ignore[attr-defined]
        sink_pid, _ = get(sink.take.remote(), timeout_s=60)
        get(source.run.remote(sink, 0.5, every_ms), timeout_s=60)  # warm up (and start it)
        get(sink.take.remote(), timeout_s=60)
        pids = ray_processes()
        source_pid = next((p for p, k in pids.items() if k.startswith("ray::_HopSource")), 0)
        cpu0 = {p: cpu_s(p) for p in (sink_pid, source_pid)}
        _, round_trip = get(source.run.remote(sink, seconds, every_ms), timeout_s=seconds + 60)
        cpu1 = {p: cpu_s(p) for p in (sink_pid, source_pid)}
        _, one_way = get(sink.take.remote(), timeout_s=60)
    finally:
        ray.shutdown()
    calls = max(1, len(round_trip))
    return {
        "every_ms": every_ms,
        "calls": len(round_trip),
        "one_way_ms": {"p50": percentile(one_way, 0.5), "p99": percentile(one_way, 0.99)},
        "round_trip_ms": {"p50": percentile(round_trip, 0.5), "p99": percentile(round_trip, 0.99)},
        "cpu_ms_per_call": {
            "receiver": 1000 * (cpu1[sink_pid] - cpu0[sink_pid]) / calls,
            "sender": 1000 * (cpu1[source_pid] - cpu0[source_pid]) / calls if source_pid else None,
        },
    }


# -- local channel hop ---------------------------------------------------------------------------
def _local_receiver(path: str, conn: Any) -> None:
    """A spawned process holding a `LocalLink` whose deliveries do nothing (the floor)."""

    async def main() -> None:
        async def apply(delivery: Delivery) -> None:
            return None

        task = asyncio.create_task(LocalLink("BTCUSDT", apply).run(path))
        conn.send(("ready", os.getpid()))
        await task

    asyncio.run(main())


async def _local_hop(seconds: float, every_ms: float) -> dict[str, Any]:
    path = private_dir() / f"bench-{os.getpid()}.sock"
    server = LocalChannelServer(path)
    await server.start()
    try:
        with spawned(functools.partial(_local_receiver, str(path)), "local-receiver") as (
            _,
            _,
            pid,
        ):
            while (channel := server.channel("BTCUSDT")) is None:
                await asyncio.sleep(0.01)
            round_trip_ms: list[float] = []
            cpu0, own0 = process_cpu_s(pid), time.process_time()
            end, seq = time.monotonic() + seconds, 0
            while time.monotonic() < end:
                if every_ms:
                    await asyncio.sleep(every_ms / 1000)
                seq += 1
                sent = time.time_ns()
                tick = PriceTick("BTCUSDT", D("65000.01"), sent // 1_000_000)
                await channel.send(Delivery("BTCUSDT", seq, (), tick, False, sent))
                round_trip_ms.append((time.time_ns() - sent) / 1e6)
            receiver_s, sender_s = process_cpu_s(pid) - cpu0, time.process_time() - own0
            await server.close()  # the receiver's link ends, so does its process
    finally:
        await server.close()
    calls = max(1, len(round_trip_ms))
    return {
        "every_ms": every_ms,
        "calls": len(round_trip_ms),
        "round_trip_ms": {
            "p50": percentile(round_trip_ms, 0.5),
            "p99": percentile(round_trip_ms, 0.99),
        },
        "cpu_ms_per_call": {
            "receiver": 1000 * receiver_s / calls,
            "sender": 1000 * sender_s / calls,
        },
    }


def run_local_hop(seconds: float) -> list[dict[str, Any]]:
    """The local channel's floor: a delivery paced like a tick (every 10 ms) and back to back;
    the sender's CPU includes this loop."""
    return [asyncio.run(_local_hop(seconds, every)) for every in (TICK_INTERVAL_MS, 0)]


# -- output --------------------------------------------------------------------------------------
def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_live(r: dict[str, Any]) -> None:
    o, d, cpu = r["tick_to_order_ms"], r["tick_delivery_ms"], r["cpu_pct_of_one_core"]
    rss, uss = r["rss_mib_per_symbol_actor"]["mean"], r["uss_mib_per_symbol_actor"]["mean"]
    feed = "spread" if r["spread_feeds"] else "same"
    print(
        f"{r['symbols']:>3} {feed:>6} {r['ticks_in_per_s']:>9,.0f}"
        f" {r['ticks_in_per_s_per_symbol']:>7.1f}"
        f" {r['ticks_delivered_per_s']:>9,.0f} {100 * (r['conflated_share'] or 0):>6.1f}%"
        f" {100 * (r['held_share'] or 0):>5.1f}% {r['orders_per_s']:>7.1f}"
        f" {_ms(d['p50']):>7} {_ms(d['p99']):>7}"
        f" {_ms(o['p50']):>7} {_ms(o['p99']):>7} {o['samples']:>6}"
        f" {rss:>6.0f} {uss:>6.0f}"
        f" {cpu['connector']:>5.0f}% {cpu['symbol_actors']:>5.0f}% {cpu['other_ray']:>5.0f}%"
        f" {cpu['machine_busy_pct_of_all_cores'] or 0:>5.0f}%"
    )
    i, c = r["tick_to_intent_ms"], r["journal_commit_ms"]
    print(
        f"      of which: tick -> decision made (intents about to be journaled) p50/p99"
        f" {_ms(i['p50'])} / {_ms(i['p99'])} ms; journal commit (fsync) p50/p99"
        f" {_ms(c['p50'])} / {_ms(c['p99'])} ms ({c['samples']} commits)"
    )


def goals(live: list[dict[str, Any]], ingest: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if live:
        spread = [r for r in live if r["spread_feeds"]] or live
        at = next((r for r in spread if r["symbols"] == GOAL_SYMBOLS), spread[-1])
        p50, p99 = at["tick_to_order_ms"]["p50"], at["tick_to_order_ms"]["p99"]
        out["latency_at_symbols"] = at["symbols"]
        out["p50_le_2ms"] = p50 is not None and p50 <= GOAL_P50_MS
        out["p99_le_10ms"] = p99 is not None and p99 <= GOAL_P99_MS
    if ingest:
        at = next((r for r in ingest if r["symbols"] == GOAL_SYMBOLS), ingest[-1])
        out["ingest_at_symbols"] = at["symbols"]
        out["ingest_ge_50k"] = at["ticks_in_per_s"] >= GOAL_INGEST
    return out


def run_hops(seconds: float) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The two floors under the live numbers (skipped when `seconds` is 0), printed."""
    hop: dict[str, Any] | None = None
    if seconds > 0:
        hop = run_hop(seconds)
        o, r, c = hop["one_way_ms"], hop["round_trip_ms"], hop["cpu_ms_per_call"]
        print(
            f"\nray hop (floor of the live numbers): async actor -> async actor, a Delivery every"
            f" {hop['every_ms']:g} ms, awaited, {seconds:g} s, {hop['calls']} calls\n"
            f"  one-way p50 {_ms(o['p50'])} p99 {_ms(o['p99'])} ms; round trip p50"
            f" {_ms(r['p50'])} p99 {_ms(r['p99'])} ms; CPU per call: receiver"
            f" {_ms(c['receiver'])} ms, sender {_ms(c['sender'])} ms"
        )
    local_hop: list[dict[str, Any]] = []
    if seconds > 0:
        local_hop = run_local_hop(seconds)
        print(
            "\nlocal channel hop (what a symbol actor on the connector's node costs): a tick-only"
        )
        print("Delivery sent and acked by a process whose apply does nothing")
        for h in local_hop:
            r, c = h["round_trip_ms"], h["cpu_ms_per_call"]
            pace = f"every {h['every_ms']:g} ms" if h["every_ms"] else "back to back"
            print(
                f"  {pace:>14}: round trip p50 {_ms(r['p50'])} p99 {_ms(r['p99'])} ms;"
                f" CPU per delivery: receiver {_ms(c['receiver'])} ms, sender {_ms(c['sender'])} ms"
                f" ({h['calls']} deliveries)"
            )
    return hop, local_hop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", default="1,10,20", help="comma-separated symbol counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="live measurement window")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after all quote")
    parser.add_argument("--volatility", type=float, default=0.0002, help="per 4-point candle")
    parser.add_argument("--interval-bps", type=float, default=10.0, help="grid spacing")
    parser.add_argument(
        "--hold-ms",
        type=int,
        default=500,
        help="connector.hold_quiet_ticks_ms (0: every tick wakes its symbol)",
    )
    parser.add_argument(
        "--same-instant",
        default="20",
        help="symbol counts measured again with every market moving in the same instant"
        " (the worst case; '' for none)",
    )
    parser.add_argument("--ingest-seconds", type=float, default=3.0)
    parser.add_argument("--ingest-sink-ms", type=float, default=1.0)
    parser.add_argument("--ingest-batch", type=int, default=100, help="ticks per loop turn")
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--hop-seconds", type=float, default=5.0, help="0 skips the Ray hop")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    counts = [int(x) for x in args.symbols.split(",") if x.strip()]
    same = [int(x) for x in args.same_instant.split(",") if x.strip()]
    if max(counts + same) > len(markets.SYMBOLS) or min(counts + same) < 1:
        parser.error(f"symbol counts must be 1..{len(markets.SYMBOLS)}")

    print(f"machine: {describe()}")
    print(f"ray {ray.__version__}; symbols {counts}; load avg {os.getloadavg()[0]:.2f} at start")
    live: list[dict[str, Any]] = []
    if not args.skip_live:
        print(
            f"\nlive market maker under Ray: simulated venue, a tick every {TICK_INTERVAL_MS} ms"
            f" per market, volatility {args.volatility}, long grid 5+5 levels x 50 USDT,"
            f" interval ~{args.interval_bps:g} bp; {args.warmup:g} s warm-up,"
            f" {args.seconds:g} s measured"
        )
        print(
            "  N   feed  ticks in/s per sym  deliv/s  confl  held  ord/s  deliv50 deliv99"
            " order50 order99  samp  RSS/a  USS/a  conn%  sym%  ray%  mach%"
        )
        runs = [(n, True) for n in counts] + [(n, False) for n in same]
        for n, spread in runs:
            result = run_live(n, args, spread)
            live.append(result)
            print_live(result)
        print(
            "  (feed: spread = each market moves at its own offset within the 10 ms (as separate"
            " streams of a real venue arrive), same = every market in the same instant (the"
            " worst case; the goals are judged on spread);\n   per sym = ticks/s per symbol the"
            " venue produced (asked: 100); confl = share of"
            " received ticks replaced by a newer one; held = share that did not wake their"
            f" symbol (inside its quiet box; --hold-ms {args.hold_ms});\n   latencies in ms:"
            " deliv = connector"
            " receipt -> symbol actor, order = connector receipt -> order call issued, samp ="
            " order samples;\n   memory in MiB per symbol actor process; CPU in % of one core"
            " over the window, mach% = whole machine, all cores)"
        )
    ingest: list[dict[str, Any]] = []
    if not args.skip_ingest:
        print(
            f"\nconnector ingest path, in-process (stub exchange, {args.ingest_batch} ticks per"
            f" loop turn, sinks take {args.ingest_sink_ms:g} ms, {args.ingest_seconds:g} s)"
        )
        print("  N  ticks ingested/s  delivered/s  conflated")
        for n in counts:
            r = asyncio.run(
                run_ingest(n, args.ingest_seconds, args.ingest_sink_ms, args.ingest_batch)
            )
            ingest.append(r)
            print(
                f"{n:>3} {r['ticks_in_per_s']:>17,.0f} {r['ticks_delivered_per_s']:>12,.0f}"
                f" {100 * (r['conflated_share'] or 0):>9.1f}%"
            )
    hop, local_hop = run_hops(args.hop_seconds)
    met = goals(live, ingest)
    if met:
        print("\ngoals:")
    if "p50_le_2ms" in met:
        print(
            f"  tick->order p50 <= {GOAL_P50_MS:g} ms at {met['latency_at_symbols']} symbols:"
            f" {'met' if met['p50_le_2ms'] else 'NOT met'}"
        )
        print(
            f"  tick->order p99 <= {GOAL_P99_MS:g} ms at {met['latency_at_symbols']} symbols:"
            f" {'met' if met['p99_le_10ms'] else 'NOT met'}"
        )
    if "ingest_ge_50k" in met:
        print(
            f"  >= {GOAL_INGEST:,} ticks/s ingested (connector ingest path, in-process,"
            f" {met['ingest_at_symbols']} symbols): {'met' if met['ingest_ge_50k'] else 'NOT met'}"
        )
    if args.json:
        payload = {
            "machine": describe(),
            "ray": ray.__version__,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "live": live,
            "ingest": ingest,
            "ray_hop": hop,
            "local_hop": local_hop,
            "goals": met,
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
