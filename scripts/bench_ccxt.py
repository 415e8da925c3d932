"""ccxt connector through the Binance-dialect emulator: order round trip and price-stream ticks.

The emulator (`BinanceEmulator`, Binance spot REST + WebSocket, served by uvicorn) runs over a
`SimulatedExchange` (SystemClock, feed not started: prices move only when this benchmark moves
them) in a separate process started with the multiprocessing 'spawn' context, so client and
server each have their own event loop and core. Loopback only (127.0.0.1, plain HTTP/WS).

orders       `CcxtExchange.place_order` (the real `ccxt.pro.binance` client, HMAC-signed POST
             /api/v3/order): post-only BUY limit orders on BTCUSDT far below the market (they
             rest, never fill), unique client ids, one call in flight, warm-up calls first.
             p50/p99/mean/max in ms, calls/s, CPU per call in both processes. Rows:
             - as configured (`enableRateLimit=True`), back to back;
             - as configured, 100 ms idle before each call (fewer calls);
             - ccxt's rate limiter switched off: ccxt's own cost plus HTTP and emulator;
             - a raw aiohttp POST signed by hand, the same parameters ccxt sends (no ccxt);
             - a raw GET /api/v3/ping (HTTP + server floor: no signature, no venue);
             - `SimulatedExchange.place_order` in this process (the venue alone, the floor).
ticks        `CcxtExchange.stream_prices(["BTCUSDT", "ETHUSDT"])` (ccxt `watch_tickers`, one
             `<symbol>@ticker` stream each, one connection). The server process moves both prices
             by one tick (bounded random walk) with `set_price`, yielding to its event loop after
             each pair, as fast as it can; the emulator sends one 24hrTicker event per tick per
             subscribed stream. After a warm-up, counted over a fixed window: ticks published,
             events the emulator made, ticker messages ccxt received, `PriceTick`s yielded (and
             how many were already superseded by a newer ticker in ccxt's cache when yielded);
             CPU per message and per tick in both processes; tick age when yielded. After the
             driver stops and the stream is drained: where ticks were lost (emulator queue vs
             ccxt), ticks per symbol, and whether each symbol's final price was ever yielded.

Ends with one JSON line holding every number.
Usage: .venv/bin/python scripts/bench_ccxt.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import math
import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal as D
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import ccxt  # noqa: E402

from connectors.ccxt.exchange import CcxtConfig, CcxtExchange  # noqa: E402
from connectors.emulator.binance import BinanceEmulator  # noqa: E402
from connectors.emulator.server import running  # noqa: E402
from connectors.simulated.exchange import SimConfig, SimulatedExchange  # noqa: E402
from mm.core.model import MarketRules, OrderRequest, PriceTick, Side  # noqa: E402
from mm.engine.clock import SystemClock  # noqa: E402
from scripts.benchlib import (  # noqa: E402
    cpu_s,
    install_sigterm,
    percentile,
    spawned,
    summary,
)
from scripts.machine import describe  # noqa: E402

KEY = "bench-ccxt-key-0001"
SECRET = "bench-ccxt-secret-0001"
SYMBOL = "BTCUSDT"
STREAM_SYMBOLS = ("BTCUSDT", "ETHUSDT")
PRICE = D("30000.00")  # the market starts at 65,000: a post-only buy here rests
QTY = D("0.001")  # 30 USDT, above the 5 USDT minimum notional
WALK_TICKS = 50  # the driven prices stay within this many ticks of their start
FIRST_TICK_TIMEOUT_S = 10.0
DRAIN_QUIET_S = 0.5  # the stream counts as drained after this long without a message
DRAIN_TIMEOUT_S = 10.0
PACED_WARMUP = 2  # calls before the paced row (it has no warm-up of its own)


@dataclass(frozen=True)
class Sizes:
    warmup: int
    calls: int
    paced_calls: int
    pace_s: float
    tick_warmup_s: float
    tick_window_s: float


FULL = Sizes(
    warmup=100, calls=1000, paced_calls=50, pace_s=0.1, tick_warmup_s=1.0, tick_window_s=5.0
)
QUICK = Sizes(
    warmup=20, calls=200, paced_calls=15, pace_s=0.1, tick_warmup_s=0.5, tick_window_s=2.0
)


# -- numbers -------------------------------------------------------------------------------------


# -- orders --------------------------------------------------------------------------------------
def resting_order(client_id: str) -> OrderRequest:
    return OrderRequest(SYMBOL, client_id, Side.BUY, PRICE, QTY, post_only=True)


def new_sim() -> SimulatedExchange:
    return SimulatedExchange(SimConfig(balances={"USDT": D(10**9)}), SystemClock())


# -- the server process --------------------------------------------------------------------------
class CountingEmulator(BinanceEmulator):
    """The emulator, counting the market-stream events it makes (queued or, if full, dropped)."""

    def __init__(self, sim: SimulatedExchange, api_key: str, api_secret: str) -> None:
        super().__init__(sim, api_key, api_secret)
        self.events = 0

    def _market_event(self, kind: str, rules: MarketRules, price: D, now: int) -> Any:
        event = super()._market_event(kind, rules, price, now)
        if event is not None:
            self.events += 1
        return event

    def backlog(self) -> int:
        """Events queued for market-stream sockets, not yet written."""
        return sum(queue.qsize() for *_, queue in self._markets)


@dataclass
class Driver:
    """Moves the venue's prices one tick at a time, as fast as its event loop lets it."""

    sim: SimulatedExchange
    published: int = 0
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name="bench-driver")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _run(self) -> None:
        rng = random.Random(1)
        rules = await self.sim.load_markets(STREAM_SYMBOLS)
        ticks = {s: rules[s].tick_size for s in STREAM_SYMBOLS}
        start = {s: self.sim.last_price(s) for s in STREAM_SYMBOLS}
        offset = dict.fromkeys(STREAM_SYMBOLS, 0)
        while True:
            for symbol in STREAM_SYMBOLS:
                step = rng.choice((-1, 1))
                offset[symbol] = max(-WALK_TICKS, min(WALK_TICKS, offset[symbol] + step))
                self.sim.set_price(symbol, start[symbol] + offset[symbol] * ticks[symbol])
                self.published += 1
            await asyncio.sleep(0)


def serve(conn: Connection) -> None:
    """Entry point of the server process: the emulator around a simulated exchange."""
    try:
        asyncio.run(_serve(conn))
    except Exception as e:
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(e).__name__}: {e}"))
        raise


async def _serve(conn: Connection) -> None:
    sim = new_sim()
    emu = CountingEmulator(sim, KEY, SECRET)
    driver = Driver(sim)
    try:
        async with running(emu) as port:
            conn.send(("ready", port))
            while True:
                try:
                    command = await _recv(conn)
                except EOFError:  # the benchmark went away
                    return
                if command[0] == "stop":
                    return
                conn.send(("ok", await _handle(command[0], sim, emu, driver)))
    finally:
        await driver.stop()
        await sim.close()


async def _handle(
    command: str, sim: SimulatedExchange, emu: CountingEmulator, driver: Driver
) -> Any:
    if command == "drive":
        driver.start()
        return None
    if command == "halt":
        await driver.stop()
    if command in ("snapshot", "halt"):
        return {
            "t": time.perf_counter(),  # CLOCK_MONOTONIC: comparable across processes
            "published": driver.published,
            "events": emu.events,
            "backlog": emu.backlog(),
            "cpu_s": time.process_time(),
            "prices": {s: str(sim.last_price(s)) for s in STREAM_SYMBOLS},
        }
    if command == "orders":
        open_orders = [o for o in sim.orders(SYMBOL) if not o.status.is_terminal]
        return {"open": len(open_orders), "requests": emu.requests}
    raise ValueError(f"unknown command {command!r}")


async def _recv(conn: Connection) -> Any:
    loop = asyncio.get_running_loop()
    readable = loop.create_future()
    loop.add_reader(conn.fileno(), lambda: readable.done() or readable.set_result(None))
    try:
        await readable
    finally:
        loop.remove_reader(conn.fileno())
    return conn.recv()


@dataclass
class Server:
    process: Any  # multiprocessing SpawnProcess
    conn: Connection
    port: int

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def request(self, command: str, timeout_s: float = 30.0) -> Any:
        self.conn.send((command,))
        if not self.conn.poll(timeout_s):
            raise TimeoutError(f"server process did not answer {command!r} in {timeout_s} s")
        kind, value = self.conn.recv()
        if kind == "error":
            raise RuntimeError(f"server process failed: {value}")
        return value

    async def ask(self, command: str) -> Any:
        """`request` without blocking this event loop (the price stream keeps being read)."""
        return await asyncio.to_thread(self.request, command)


@contextlib.contextmanager
def server_process(start_timeout_s: float = 30.0) -> Iterator[Server]:
    """The emulator in a spawned process; always stopped (then terminated, then killed)."""
    with spawned(serve, "bench-ccxt-emulator", start_timeout_s) as (process, conn, value):
        yield Server(process, conn, value)


# -- clients -------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def ccxt_exchange(port: int) -> AsyncIterator[CcxtExchange]:
    """A CcxtExchange for binance spot whose every URL points at the emulator."""
    exchange = CcxtExchange(
        CcxtConfig(
            venue="binance",
            market="spot",
            api_key=KEY,
            api_secret=SECRET,
            http_base=f"http://127.0.0.1:{port}",
            ws_base=f"ws://127.0.0.1:{port}",
            loopback_only=True,
        )
    )
    try:
        await exchange.load_markets(list(STREAM_SYMBOLS))
        yield exchange
    finally:
        await exchange.close()


@contextlib.contextmanager
def rate_limiter_off(exchange: CcxtExchange) -> Iterator[None]:
    """ccxt's client-side throttle disabled for the block (CcxtExchange always enables it)."""
    exchange.client.enableRateLimit = False
    try:
        yield
    finally:
        exchange.client.enableRateLimit = True


@dataclass
class RawBinance:
    """Binance's order endpoint over a bare aiohttp session, signed by hand (no ccxt)."""

    session: aiohttp.ClientSession
    base: str

    async def place(self, client_id: str) -> dict[str, Any]:
        params = {  # what ccxt sends for `resting_order` (same order, same recvWindow)
            "timestamp": int(time.time() * 1000),
            "symbol": SYMBOL,
            "side": "BUY",
            "newClientOrderId": client_id,
            "newOrderRespType": "FULL",
            "type": "LIMIT_MAKER",
            "quantity": format(QTY, "f"),
            "price": format(PRICE, "f"),
            "recvWindow": 10_000,
        }
        body = urlencode(params)
        signature = hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
        headers = {
            "X-MBX-APIKEY": KEY,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        url = f"{self.base}/api/v3/order"
        data = f"{body}&signature={signature}".encode()
        async with self.session.post(url, data=data, headers=headers) as response:
            answer = await response.json()
            if response.status != 200 or answer.get("status") != "NEW":
                raise RuntimeError(f"raw order {client_id}: {response.status} {answer}")
            return answer

    async def ping(self) -> None:
        async with self.session.get(f"{self.base}/api/v3/ping") as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"ping: {response.status}")


# -- order round trips ---------------------------------------------------------------------------
async def timed_calls(
    call: Callable[[int], Awaitable[Any]], n: int, pause_s: float = 0.0
) -> tuple[list[float], float]:
    """Await `call(i)` n times, one in flight; per-call ms and the wall seconds of the loop.
    With `pause_s`, that long idle before each call (not part of its time)."""
    samples: list[float] = []
    started = time.perf_counter()
    for i in range(n):
        if pause_s:
            await asyncio.sleep(pause_s)
        t0 = time.perf_counter_ns()
        await call(i)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples, time.perf_counter() - started


async def measure(
    call: Callable[[int], Awaitable[Any]],
    warmup: int,
    n: int,
    server_pid: int = 0,
    pause_s: float = 0.0,
) -> dict[str, float]:
    """Warm-up calls, then `summary` of n calls plus CPU ms per call here and in the server.
    Call i of the measured ones gets index warmup + i (unique client ids across both)."""
    await timed_calls(call, warmup)
    client0, server0 = time.process_time(), cpu_s(server_pid) if server_pid else 0.0
    samples, wall_s = await timed_calls(lambda i: call(warmup + i), n, pause_s)
    out = summary(samples, wall_s)
    out["client_cpu_ms_per_call"] = 1000 * (time.process_time() - client0) / n
    if server_pid:
        out["server_cpu_ms_per_call"] = 1000 * (cpu_s(server_pid) - server0) / n
    return out


def placer(exchange: CcxtExchange | SimulatedExchange, prefix: str) -> Callable[[int], Any]:
    return lambda i: exchange.place_order(resting_order(f"{prefix}-{i}"))


async def in_process_row(sizes: Sizes, prefix: str) -> dict[str, float]:
    sim = new_sim()
    try:
        return await measure(placer(sim, prefix), sizes.warmup, sizes.calls)
    finally:
        await sim.close()


async def raw_rows(server: Server, sizes: Sizes, prefix: str) -> dict[str, dict[str, float]]:
    """Bare HTTP on the emulator: the signed order POST and the unsigned ping."""
    async with aiohttp.ClientSession() as session:
        raw = RawBinance(session, f"http://127.0.0.1:{server.port}")
        return {
            "raw_aiohttp_ping": await measure(
                lambda i: raw.ping(), sizes.warmup, sizes.calls, server.pid
            ),
            "raw_aiohttp_signed_post": await measure(
                lambda i: raw.place(f"{prefix}-{i}"), sizes.warmup, sizes.calls, server.pid
            ),
        }


async def ccxt_rows(server: Server, sizes: Sizes, prefix: str) -> dict[str, dict[str, float]]:
    pid = server.pid
    async with ccxt_exchange(server.port) as exchange:
        with rate_limiter_off(exchange):
            free = await measure(placer(exchange, f"{prefix}f"), sizes.warmup, sizes.calls, pid)
        throttled = await measure(placer(exchange, f"{prefix}t"), sizes.warmup, sizes.calls, pid)
        paced = await measure(
            placer(exchange, f"{prefix}p"), PACED_WARMUP, sizes.paced_calls, pid, sizes.pace_s
        )
    return {
        "ccxt_as_configured": throttled,
        "ccxt_as_configured_paced": {**paced, "pause_before_each_call_s": sizes.pace_s},
        "ccxt_rate_limiter_off": free,
    }


async def order_latency(server: Server, sizes: Sizes, run_id: str) -> dict[str, Any]:
    """Every order row (see the module docstring), the floor first, and a check that every
    order sent over HTTP rests on the venue."""
    local = await in_process_row(sizes, f"{run_id}l")
    rows = {**await raw_rows(server, sizes, f"{run_id}r"), **await ccxt_rows(server, sizes, run_id)}
    rows["sim_in_process"] = local
    sent = 3 * (sizes.warmup + sizes.calls) + PACED_WARMUP + sizes.paced_calls
    book = await server.ask("orders")
    p50 = {name: row["p50_ms"] for name, row in rows.items()}
    raw_post, free = p50["raw_aiohttp_signed_post"], p50["ccxt_rate_limiter_off"]
    return {
        **rows,
        "ratios_p50": {
            "ccxt_off_over_raw_post": free / raw_post,
            "ccxt_configured_over_raw_post": p50["ccxt_as_configured"] / raw_post,
            "raw_post_over_ping": raw_post / p50["raw_aiohttp_ping"],
            "raw_post_over_in_process": raw_post / p50["sim_in_process"],
            "ccxt_off_over_in_process": free / p50["sim_in_process"],
        },
        "check": {
            "orders_sent": sent,
            "resting_on_venue": book["open"],
            "ok": book["open"] == sent,
        },
    }


# -- price-stream ticks --------------------------------------------------------------------------
@dataclass
class TickCount:
    """What the client saw: ccxt's ticker messages and the PriceTicks stream_prices yielded."""

    newest: Callable[[str], dict[str, Any] | None]  # ccxt's newest parsed ticker of a symbol
    messages: int = 0  # 24hrTicker events ccxt received (each parsed into its ticker cache)
    ticks: int = 0
    superseded: int = 0  # yielded while ccxt already held a newer ticker of that symbol
    per_symbol: dict[str, int] = field(default_factory=dict)
    last_price: dict[str, D] = field(default_factory=dict)
    last_at: float = 0.0
    recording: bool = False
    ages_ms: list[float] = field(default_factory=list)

    def on_tick(self, tick: PriceTick) -> None:
        self.ticks += 1
        self.last_at = time.perf_counter()
        self.per_symbol[tick.symbol] = self.per_symbol.get(tick.symbol, 0) + 1
        self.last_price[tick.symbol] = tick.price
        newest = self.newest(tick.symbol)
        if newest is not None and (
            newest.get("timestamp") != tick.ts_ms or newest.get("last") != float(tick.price)
        ):
            self.superseded += 1
        if self.recording:
            self.ages_ms.append(time.time() * 1000 - tick.ts_ms)

    def snapshot(self) -> dict[str, float]:
        return {
            "t": time.perf_counter(),
            "messages": self.messages,
            "ticks": self.ticks,
            "superseded": self.superseded,
            "cpu_s": time.process_time(),
        }


def tick_count(exchange: CcxtExchange) -> TickCount:
    """A TickCount fed by `exchange`'s ccxt client: every ticker message it handles is counted
    (before ccxt's own parsing and conflation). Must run before the first watch: ccxt binds
    `handle_message` when it opens a connection."""
    client = exchange.client
    unified = {s: client.safe_symbol(s) for s in STREAM_SYMBOLS}
    count = TickCount(lambda symbol: client.tickers.get(unified[symbol]))
    handle = client.handle_message

    def counted(ws: Any, message: Any) -> Any:
        if isinstance(message, dict) and message.get("e") == "24hrTicker":
            count.messages += 1
        return handle(ws, message)

    client.handle_message = counted
    return count


def deflate_bits(exchange: CcxtExchange) -> list[int]:
    """permessage-deflate window bits negotiated per ccxt WebSocket (0: uncompressed)."""
    return [int(c.connection.compress or 0) for c in exchange.client.clients.values()]


async def consume(stream: AsyncIterator[PriceTick], count: TickCount) -> None:
    async for tick in stream:
        count.on_tick(tick)


async def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.01)


async def drain(count: TickCount) -> float:
    """Wait until no tick arrived for DRAIN_QUIET_S; seconds from now to the last tick."""
    start = time.perf_counter()
    while time.perf_counter() - max(count.last_at, start) < DRAIN_QUIET_S:
        if time.perf_counter() - start > DRAIN_TIMEOUT_S:
            break
        await asyncio.sleep(0.05)
    return max(0.0, count.last_at - start)


async def tick_throughput(server: Server, sizes: Sizes) -> dict[str, Any]:
    async with ccxt_exchange(server.port) as exchange:
        count = tick_count(exchange)
        stream = exchange.stream_prices(list(STREAM_SYMBOLS))
        reader = asyncio.create_task(consume(stream, count), name="bench-ticks")
        try:
            await server.ask("drive")
            await wait_for(
                lambda: count.ticks > 0 or reader.done(), FIRST_TICK_TIMEOUT_S, "first tick"
            )
            if reader.done():
                reader.result()  # the stream failed: say why
            await asyncio.sleep(sizes.tick_warmup_s)
            server0, client0 = await server.ask("snapshot"), count.snapshot()
            count.recording = True
            await asyncio.sleep(sizes.tick_window_s)
            server1, client1 = await server.ask("snapshot"), count.snapshot()
            count.recording = False
            final = await server.ask("halt")
            drain_s = await drain(count)
            bits = deflate_bits(exchange)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
    result = window_rates(server0, server1, client0, client1, count)
    result["ws_deflate_window_bits"] = bits
    result["totals_after_drain"] = totals(final, count, drain_s)
    return result


def window_rates(
    server0: dict[str, Any],
    server1: dict[str, Any],
    client0: dict[str, float],
    client1: dict[str, float],
    count: TickCount,
) -> dict[str, Any]:
    """Rates and costs over the measured window (between the two snapshots)."""

    def rate(before: dict[str, Any], after: dict[str, Any], key: str) -> float:
        return (after[key] - before[key]) / (after["t"] - before["t"])

    window_s = client1["t"] - client0["t"]
    ticks = max(1, int(client1["ticks"] - client0["ticks"]))
    messages = max(1, int(client1["messages"] - client0["messages"]))
    events = max(1, int(server1["events"] - server0["events"]))
    client_cpu = client1["cpu_s"] - client0["cpu_s"]
    server_cpu = server1["cpu_s"] - server0["cpu_s"]
    ages = count.ages_ms or [math.nan]
    return {
        "window_s": window_s,
        "published_per_s": rate(server0, server1, "published"),
        "emulator_events_per_s": rate(server0, server1, "events"),
        "ccxt_messages_per_s": rate(client0, client1, "messages"),
        "price_ticks_per_s": rate(client0, client1, "ticks"),
        "delivered_pct_of_events": 100 * ticks / events,
        "superseded_pct_of_ticks": 100 * (client1["superseded"] - client0["superseded"]) / ticks,
        "client_cpu_us_per_tick": 1e6 * client_cpu / ticks,
        "client_cpu_us_per_message": 1e6 * client_cpu / messages,
        "client_busy_pct_of_one_core": 100 * client_cpu / window_s,
        "server_cpu_us_per_event": 1e6 * server_cpu / events,
        "server_busy_pct_of_one_core": 100 * server_cpu / (server1["t"] - server0["t"]),
        "emulator_backlog_at_window_end": server1["backlog"],
        "tick_age_ms": {
            "p50": percentile(ages, 0.5),
            "p99": percentile(ages, 0.99),
            "max": max(ages),
        },
    }


def totals(final: dict[str, Any], count: TickCount, drain_s: float) -> dict[str, Any]:
    """Whole-run counts once the stream is drained: where ticks were lost, and whether the
    last price of each symbol ever reached the consumer."""
    last = {s: str(count.last_price.get(s)) for s in STREAM_SYMBOLS}
    return {
        "published": final["published"],
        "emulator_events": final["events"],
        "ccxt_messages": count.messages,
        "price_ticks": count.ticks,
        "price_ticks_per_symbol": {s: count.per_symbol.get(s, 0) for s in STREAM_SYMBOLS},
        "lost_before_ccxt": final["events"] - count.messages,
        "conflated_in_ccxt": count.messages - count.ticks,
        "superseded_at_yield": count.superseded,
        "final_price_on_venue": final["prices"],
        "last_price_yielded": last,
        "final_price_yielded": {
            s: count.last_price.get(s) == D(final["prices"][s]) for s in STREAM_SYMBOLS
        },
        "drain_s": drain_s,
    }


# -- the run -------------------------------------------------------------------------------------
async def run(server: Server, sizes: Sizes) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    orders = await order_latency(server, sizes, run_id)
    ticks = await tick_throughput(server, sizes)
    return {"orders": orders, "ticks": ticks}


def print_row(name: str, r: dict[str, float]) -> None:
    server = r.get("server_cpu_ms_per_call")
    cpu = f"  CPU/call client {r['client_cpu_ms_per_call']:.3f} ms" + (
        f", server {server:.3f} ms" if server is not None else ""
    )
    print(
        f"  {name:<34} p50 {r['p50_ms']:7.3f}  p99 {r['p99_ms']:7.3f}  mean {r['mean_ms']:7.3f}"
        f"  max {r['max_ms']:7.2f} ms  {r['calls_per_s']:>7,.0f} calls/s{cpu}"
    )


def print_orders(o: dict[str, Any], sizes: Sizes) -> None:
    print(
        f"\norder round trip over loopback, one call in flight, {sizes.warmup} warm-up +"
        f" {sizes.calls} measured calls per row (post-only BUY {QTY} {SYMBOL} @ {PRICE}: rests)"
    )
    print_row("CcxtExchange.place_order", o["ccxt_as_configured"])
    print_row(
        f"  same, {sizes.pace_s * 1000:.0f} ms idle before each ({sizes.paced_calls})",
        o["ccxt_as_configured_paced"],
    )
    print_row("  same, ccxt rate limiter off", o["ccxt_rate_limiter_off"])
    print_row("raw aiohttp signed POST /order", o["raw_aiohttp_signed_post"])
    print_row("raw aiohttp GET /ping (floor)", o["raw_aiohttp_ping"])
    print_row("SimulatedExchange in-process", o["sim_in_process"])
    r = o["ratios_p50"]
    print(
        f"  p50 ratios: ccxt (limiter off) / raw POST {r['ccxt_off_over_raw_post']:.2f}x;"
        f" ccxt as configured / raw POST {r['ccxt_configured_over_raw_post']:.2f}x;"
        f" raw POST / ping {r['raw_post_over_ping']:.2f}x;"
        f" raw POST / in-process {r['raw_post_over_in_process']:,.0f}x;"
        f" ccxt (limiter off) / in-process {r['ccxt_off_over_in_process']:,.0f}x"
    )
    c = o["check"]
    state = "ok" if c["ok"] else "MISMATCH"
    print(f"  check: {c['orders_sent']:,} orders sent, {c['resting_on_venue']:,} resting: {state}")


def print_ticks(t: dict[str, Any], sizes: Sizes) -> None:
    total, age = t["totals_after_drain"], t["tick_age_ms"]
    print(
        f"\nprice stream: stream_prices({list(STREAM_SYMBOLS)}) (ccxt watch_tickers, @ticker);"
        f" the emulator process moves both prices one tick per loop turn;"
        f" {sizes.tick_warmup_s} s warm-up, {t['window_s']:.2f} s window;"
        f" permessage-deflate window bits {t['ws_deflate_window_bits']}"
    )
    print(
        f"  published {t['published_per_s']:>8,.0f} ticks/s -> emulator events"
        f" {t['emulator_events_per_s']:>8,.0f}/s -> ccxt ticker messages"
        f" {t['ccxt_messages_per_s']:>8,.0f}/s -> PriceTicks {t['price_ticks_per_s']:>6,.0f}/s"
        f" ({t['delivered_pct_of_events']:.1f}% of events;"
        f" {t['superseded_pct_of_ticks']:.0f}% already superseded when yielded)"
    )
    print(
        f"  CPU: client {t['client_cpu_us_per_message']:.1f} us per message ="
        f" {t['client_cpu_us_per_tick']:,.0f} us per PriceTick"
        f" ({t['client_busy_pct_of_one_core']:.0f}% of a core); server"
        f" {t['server_cpu_us_per_event']:.1f} us per event"
        f" ({t['server_busy_pct_of_one_core']:.0f}% of a core);"
        f" emulator backlog at window end {t['emulator_backlog_at_window_end']:,}"
    )
    print(
        f"  tick age when yielded (1 ms clock): p50 {age['p50']:.0f} ms,"
        f" p99 {age['p99']:.0f} ms, max {age['max']:.0f} ms"
    )
    per_symbol = ", ".join(f"{s} {n:,}" for s, n in total["price_ticks_per_symbol"].items())
    finals = ", ".join(
        f"{s} {total['last_price_yielded'][s]} vs {total['final_price_on_venue'][s]}"
        f" ({'ok' if ok else 'STALE'})"
        for s, ok in total["final_price_yielded"].items()
    )
    print(
        f"  totals, drained {total['drain_s']:.2f} s after the driver stopped:"
        f" {total['emulator_events']:,} events, {total['ccxt_messages']:,} reached ccxt"
        f" ({total['lost_before_ccxt']:,} lost before), {total['price_ticks']:,} PriceTicks"
        f" ({per_symbol}; {total['conflated_in_ccxt']:,} conflated by ccxt)\n"
        f"  last price yielded vs the venue's final price: {finals}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls, a shorter window")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    mode = "quick" if args.quick else "full"
    install_sigterm()
    print(f"machine: {describe()}")
    print(
        f"ccxt {ccxt.__version__}, aiohttp {aiohttp.__version__}; load avg"
        f" {os.getloadavg()[0]:.2f} at start; mode {mode}"
    )
    started = time.perf_counter()
    with server_process() as server:
        results = asyncio.run(run(server, sizes))
    print_orders(results["orders"], sizes)
    print_ticks(results["ticks"], sizes)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    payload = {
        "bench": "ccxt",
        "machine": describe(),
        "ccxt": ccxt.__version__,
        "aiohttp": aiohttp.__version__,
        "mode": mode,
        "sizes": asdict(sizes),
        **results,
    }
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload))


if __name__ == "__main__":
    main()
