"""gRPC exchange_connector over loopback: PlaceOrder round trip and order-stream fan-out.

The connector (`ExchangeConnector`) serves a `SimulatedExchange` (SystemClock, feed not started:
no price ticks, the market stays at its start price) from a separate process started with the
multiprocessing 'spawn' context; the clients are `RemoteExchange`s in this process. Loopback
only (127.0.0.1), no TLS, no token.

unary         PlaceOrder round trip: post-only BUY limit orders on BTCUSDT far below the market
              (they rest, never fill), unique client ids, one call in flight, each `await
              client.place_order(...)` timed. Warm-up calls first. p50/p99/mean/max in ms,
              calls/s, CPU per call in both processes.
health floor  The same for `check_health()` (grpc.health.v1 Check): a unary call that does not
              touch the exchange, i.e. the bare gRPC round trip on this machine.
in-process    The same orders on a `SimulatedExchange` in this process (no gRPC); the overhead
              ratio is RemoteExchange p50 / in-process p50.
streams       Order-update fan-out to 1 and to 10 clients. Each client subscribes with
              `stream_orders(["BTCUSDT"])` (own channel); then the server process, on command
              over a pipe, places and cancels `--burst` orders directly on its exchange (an OPEN
              and a CANCELED update each, yielding to its event loop every 100 orders). The
              connector fans them out; the server batches queued events into one response (a
              repeated field, up to 500). Each client counts until it has every update; reported:
              updates/s per client and deliveries/s over all clients (from the command to the
              last update received), and a check that every client got every (id, status) once.
              A small warm-up burst precedes each measured one.

The burst never exceeds the connector's per-client buffer (`stream_buffer`, 10,000), so no client
can be cut off as a slow consumer. Ends with one JSON line holding every number.
Usage: .venv/bin/python scripts/bench_grpc.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal as D
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from connectors.remote.client import RemoteConfig, RemoteExchange  # noqa: E402
from connectors.remote.server import ExchangeConnector, ServerConfig  # noqa: E402
from connectors.simulated.exchange import SimConfig, SimulatedExchange  # noqa: E402
from mm.core.model import OrderReport, OrderRequest, Side  # noqa: E402
from mm.engine.clock import SystemClock  # noqa: E402
from scripts.benchlib import cpu_s, install_sigterm, spawned, summary  # noqa: E402
from scripts.machine import describe  # noqa: E402

SYMBOL = "BTCUSDT"
PRICE = D("30000.00")  # the market starts at 65,000: a post-only buy here rests
QTY = D("0.001")  # 30 USDT, above the 5 USDT minimum notional
BURST_CHUNK = 100  # orders placed+canceled between two turns of the server's event loop
STREAM_BUFFER = ServerConfig().stream_buffer
MAX_STREAM_BATCH = ServerConfig().max_stream_batch
CONSUME_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Sizes:
    warmup: int
    calls: int
    health_calls: int
    burst: int  # orders per measured burst (2 updates each)
    warmup_burst: int


FULL = Sizes(warmup=300, calls=3000, health_calls=1000, burst=5000, warmup_burst=100)
QUICK = Sizes(warmup=50, calls=300, health_calls=200, burst=500, warmup_burst=50)


# -- numbers -------------------------------------------------------------------------------------


def tcp_connections_to(port: int) -> int:
    """Established TCP connections to 127.0.0.1:`port` on this host (client ends)."""
    count = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == "01" and int(cols[2].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


# -- orders --------------------------------------------------------------------------------------
def resting_order(client_id: str) -> OrderRequest:
    return OrderRequest(SYMBOL, client_id, Side.BUY, PRICE, QTY, post_only=True)


def sim_config() -> SimConfig:
    return SimConfig(balances={"USDT": D(10**9)})


def new_exchange() -> SimulatedExchange:
    return SimulatedExchange(sim_config(), SystemClock())  # start() never called: no ticks


# -- the server process --------------------------------------------------------------------------
def serve(conn: Connection) -> None:
    """Entry point of the server process: a connector around a simulated exchange."""
    try:
        asyncio.run(_serve(conn))
    except Exception as e:
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(e).__name__}: {e}"))
        raise


async def _serve(conn: Connection) -> None:
    exchange = new_exchange()
    server = ExchangeConnector(exchange, ServerConfig(port=0))
    try:
        port = await server.start()
        await server.wait_serving()
        conn.send(("ready", port))
        while True:
            try:
                command = await _recv(conn)
            except EOFError:  # the benchmark went away
                return
            if command[0] != "burst":
                return
            conn.send(("burst", await burst(exchange, command[1], command[2])))
    finally:
        await server.stop(grace_s=1)
        await exchange.close()


async def _recv(conn: Connection) -> Any:
    loop = asyncio.get_running_loop()
    readable = loop.create_future()
    loop.add_reader(conn.fileno(), lambda: readable.done() or readable.set_result(None))
    try:
        await readable
    finally:
        loop.remove_reader(conn.fileno())
    return conn.recv()


async def burst(exchange: SimulatedExchange, prefix: str, orders: int) -> dict[str, float]:
    """Place and cancel `orders` resting orders: 2 order updates each on the exchange's stream."""
    started = time.perf_counter()
    for i in range(orders):
        client_id = f"{prefix}-{i}"
        await exchange.place_order(resting_order(client_id))
        await exchange.cancel_order(SYMBOL, client_id)
        if (i + 1) % BURST_CHUNK == 0:
            await asyncio.sleep(0)
    return {"updates": 2 * orders, "produce_s": time.perf_counter() - started}


@dataclass
class Server:
    process: Any  # multiprocessing SpawnProcess
    conn: Connection
    port: int

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def request(self, *command: Any, timeout_s: float = 30.0) -> Any:
        self.conn.send(command)
        if not self.conn.poll(timeout_s):
            raise TimeoutError(f"server process did not answer {command[0]!r} in {timeout_s} s")
        kind, value = self.conn.recv()
        if kind == "error":
            raise RuntimeError(f"server process failed: {value}")
        return value


@contextlib.contextmanager
def server_process(start_timeout_s: float = 30.0) -> Iterator[Server]:
    """The connector in a spawned process; always stopped (then terminated, then killed)."""
    with spawned(serve, "bench-grpc-server", start_timeout_s) as (process, conn, value):
        yield Server(process, conn, value)


# -- unary round trips ---------------------------------------------------------------------------
async def timed_calls(call: Callable[[int], Awaitable[Any]], n: int) -> tuple[list[float], float]:
    """Await `call(i)` n times, one in flight; per-call ms and the wall seconds of the loop."""
    samples: list[float] = []
    started = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter_ns()
        await call(i)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples, time.perf_counter() - started


async def place_latency(
    exchange: RemoteExchange | SimulatedExchange, prefix: str, sizes: Sizes, server_pid: int
) -> dict[str, float]:
    orders = [resting_order(f"{prefix}-{i}") for i in range(sizes.warmup + sizes.calls)]
    warm, measured = orders[: sizes.warmup], orders[sizes.warmup :]
    await timed_calls(lambda i: exchange.place_order(warm[i]), len(warm))
    return await with_cpu(
        timed_calls(lambda i: exchange.place_order(measured[i]), len(measured)), server_pid
    )


async def health_latency(client: RemoteExchange, n: int, server_pid: int) -> dict[str, float]:
    await timed_calls(lambda i: client.check_health(), max(1, n // 10))
    return await with_cpu(timed_calls(lambda i: client.check_health(), n), server_pid)


async def with_cpu(run: Awaitable[tuple[list[float], float]], server_pid: int) -> dict[str, float]:
    """`summary` of the run plus CPU ms per call here and in the server process (if any)."""
    client0, server0 = time.process_time(), cpu_s(server_pid) if server_pid else 0.0
    samples, wall_s = await run
    out = summary(samples, wall_s)
    out["client_cpu_ms_per_call"] = 1000 * (time.process_time() - client0) / len(samples)
    if server_pid:
        out["server_cpu_ms_per_call"] = 1000 * (cpu_s(server_pid) - server0) / len(samples)
    return out


# -- streams -------------------------------------------------------------------------------------
@dataclass
class Consumer:
    client: RemoteExchange
    stream: AsyncIterator[OrderReport]
    seen: list[tuple[str, str]] = field(default_factory=list)
    first_at: float | None = None
    last_at: float | None = None
    error: str | None = None

    async def take(self, expected: int) -> None:
        """Read until `expected` updates arrived since the last call (or the stream fails)."""
        self.seen, self.first_at, self.last_at = [], None, None
        try:
            while len(self.seen) < expected:
                report = await anext(self.stream)
                self.last_at = time.perf_counter()
                self.first_at = self.first_at or self.last_at
                self.seen.append((report.client_id, report.status.name))
        except Exception as e:
            self.error = f"{type(e).__name__}: {e}"


@contextlib.asynccontextmanager
async def consumers(port: int, n: int) -> AsyncIterator[list[Consumer]]:
    """n clients (one channel each) whose order streams the connector has confirmed."""
    out: list[Consumer] = []
    try:
        for _ in range(n):
            client = await RemoteExchange.connect(RemoteConfig(f"127.0.0.1:{port}"))
            out.append(Consumer(client, client.stream_orders([SYMBOL])))
        for c in out:
            await c.client.describe()  # returns once this client's subscription is confirmed
        yield out
    finally:
        for c in out:
            with contextlib.suppress(Exception):
                await c.stream.aclose()  # type: ignore[attr-defined]
            await c.client.close()


async def run_burst(
    server: Server, group: list[Consumer], prefix: str, orders: int
) -> tuple[float, dict[str, float]]:
    """Command a burst; every consumer reads it. Returns (command time, server's answer)."""
    readers = [asyncio.create_task(c.take(2 * orders)) for c in group]
    try:
        await asyncio.sleep(0)  # readers waiting before the first update exists
        sent_at = time.perf_counter()
        produced = await asyncio.to_thread(server.request, "burst", prefix, orders)
        await asyncio.wait(readers, timeout=CONSUME_TIMEOUT_S)
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return sent_at, produced


async def stream_throughput(
    server: Server, n_clients: int, sizes: Sizes, run_id: str
) -> dict[str, Any]:
    async with consumers(server.port, n_clients) as group:
        await run_burst(server, group, f"{run_id}-warm", sizes.warmup_burst)
        connections = tcp_connections_to(server.port)
        wall0, client0, server0 = time.perf_counter(), time.process_time(), cpu_s(server.pid)
        sent_at, produced = await run_burst(server, group, run_id, sizes.burst)
        wall = time.perf_counter() - wall0
        client_cpu, server_cpu = time.process_time() - client0, cpu_s(server.pid) - server0
        result = stream_result(group, sent_at, produced, run_id, sizes.burst)
    deliveries = max(1, result["deliveries"])
    result.update(
        clients=n_clients,
        tcp_connections=connections,
        client_cpu_us_per_delivery=1e6 * client_cpu / deliveries,
        server_cpu_us_per_delivery=1e6 * server_cpu / deliveries,
        client_busy_pct_of_one_core=100 * client_cpu / wall,
        server_busy_pct_of_one_core=100 * server_cpu / wall,
    )
    return result


def stream_result(
    group: list[Consumer], sent_at: float, produced: dict[str, float], prefix: str, orders: int
) -> dict[str, Any]:
    wanted = {(f"{prefix}-{i}", s) for i in range(orders) for s in ("OPEN", "CANCELED")}
    per_client = []
    for c in group:
        elapsed = (c.last_at or sent_at) - sent_at
        per_client.append(
            {
                "received": len(c.seen),
                "complete": set(c.seen) == wanted and len(c.seen) == len(wanted),
                "seconds": elapsed,
                "updates_per_s": len(c.seen) / elapsed if elapsed > 0 else 0.0,
                "first_update_ms": 1000 * ((c.first_at or sent_at) - sent_at),
                "error": c.error,
            }
        )
    deliveries = sum(p["received"] for p in per_client)
    span = max(p["seconds"] for p in per_client)
    return {
        "expected_per_client": len(wanted),
        "deliveries": deliveries,
        "all_complete": all(p["complete"] for p in per_client),
        "server_produce_s": produced["produce_s"],
        "span_s": span,
        "aggregate_deliveries_per_s": deliveries / span if span > 0 else 0.0,
        "per_client_updates_per_s": {
            "min": min(p["updates_per_s"] for p in per_client),
            "mean": statistics.fmean(p["updates_per_s"] for p in per_client),
        },
        "per_client": per_client,
    }


# -- the run -------------------------------------------------------------------------------------
async def measure(server: Server, sizes: Sizes) -> dict[str, Any]:
    pid = server.pid
    client = await RemoteExchange.connect(RemoteConfig(f"127.0.0.1:{server.port}"))
    try:
        remote = await place_latency(client, "lat", sizes, pid)
        health = await health_latency(client, sizes.health_calls, pid)
    finally:
        await client.close()
    local_exchange = new_exchange()
    try:
        local = await place_latency(local_exchange, "lat", sizes, 0)
    finally:
        await local_exchange.close()
    streams = [await stream_throughput(server, n, sizes, f"s{n}") for n in (1, 10)]
    return {
        "place_order_remote": remote,
        "health_check_remote": health,
        "place_order_in_process": local,
        "overhead_ratio_p50": remote["p50_ms"] / local["p50_ms"],
        "streams": streams,
    }


# -- output --------------------------------------------------------------------------------------
def print_unary(name: str, r: dict[str, float]) -> None:
    server = r.get("server_cpu_ms_per_call")
    cpu = f"  CPU/call client {r['client_cpu_ms_per_call']:.3f} ms" + (
        f", server {server:.3f} ms" if server is not None else ""
    )
    print(
        f"  {name:<26} p50 {r['p50_ms']:7.3f}  p99 {r['p99_ms']:7.3f}  mean {r['mean_ms']:7.3f}"
        f"  max {r['max_ms']:7.2f} ms  {r['calls_per_s']:>8,.0f} calls/s{cpu}"
    )


def print_stream(r: dict[str, Any]) -> None:
    check = "every client got every update" if r["all_complete"] else "INCOMPLETE"
    counts = ", ".join(str(p["received"]) for p in r["per_client"])
    errors = [p["error"] for p in r["per_client"] if p["error"]]
    first = statistics.fmean(p["first_update_ms"] for p in r["per_client"])
    print(
        f"  {r['clients']:>2} client(s): per client {r['per_client_updates_per_s']['mean']:>8,.0f}"
        f" updates/s (min {r['per_client_updates_per_s']['min']:,.0f}), aggregate"
        f" {r['aggregate_deliveries_per_s']:>8,.0f} deliveries/s; {r['span_s']:.2f} s to the"
        f" last update, first after {first:.1f} ms; server produced the burst in"
        f" {r['server_produce_s']:.2f} s\n"
        f"     check: {r['expected_per_client']:,} expected per client, received [{counts}]:"
        f" {check}\n     CPU per delivery: client process {r['client_cpu_us_per_delivery']:.1f}"
        f" us, server {r['server_cpu_us_per_delivery']:.1f} us (busy: client"
        f" {r['client_busy_pct_of_one_core']:.0f}%, server {r['server_busy_pct_of_one_core']:.0f}%"
        f" of a core); {r['tcp_connections']} TCP connection(s) to the connector"
    )
    for error in errors:
        print(f"     stream error: {error}")


def report(results: dict[str, Any], sizes: Sizes) -> None:
    print(
        f"\nunary round trips over loopback, one call in flight, {sizes.warmup} warm-up +"
        f" {sizes.calls} measured PlaceOrder calls (post-only BUY {QTY} {SYMBOL} @ {PRICE}:"
        " rests, never fills)"
    )
    print_unary("PlaceOrder (RemoteExchange)", results["place_order_remote"])
    print_unary("Health.Check (gRPC floor)", results["health_check_remote"])
    print_unary("place_order (in-process)", results["place_order_in_process"])
    print(
        f"  overhead ratio RemoteExchange / in-process (p50): {results['overhead_ratio_p50']:,.1f}x"
    )
    print(
        f"\norder-update fan-out: the server process places and cancels {sizes.burst:,} orders"
        f" ({2 * sizes.burst:,} updates, a loop turn every {BURST_CHUNK} orders); each client"
        f" (own RemoteExchange) reads stream_orders([{SYMBOL!r}]).\n  The connector batches"
        f" the events queued for a client into one SubscribeOrders response (repeated field,"
        f" up to {MAX_STREAM_BATCH}); times run from the command to the last update received."
    )
    for r in results["streams"]:
        print_stream(r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and a smaller burst")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    install_sigterm()
    print(f"machine: {describe()}")
    print(
        f"grpcio {grpc.__version__}; load avg {os.getloadavg()[0]:.2f} at start;"
        f" mode {'quick' if args.quick else 'full'}"
    )
    started = time.perf_counter()
    with server_process() as server:
        results = asyncio.run(measure(server, sizes))
    report(results, sizes)
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    payload = {
        "bench": "grpc",
        "machine": describe(),
        "grpcio": grpc.__version__,
        "mode": "quick" if args.quick else "full",
        "sizes": asdict(sizes),
        **results,
    }
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload))


if __name__ == "__main__":
    main()
