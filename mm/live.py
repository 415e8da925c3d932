"""The `mm run` process: HTTP endpoints, health aggregation, the status line, clean shutdown.

Owns: what runs in the driver once the actors are up — a status poller (the snapshot `/status`
and `/metrics` read), the `HealthManager` loop, uvicorn on `http.host:http.port`, a compact
status line, and the shutdown on SIGINT/SIGTERM: stop serving, drain every symbol (cancel or
keep orders per `shutdown.cancel_orders`), stop the actors. Must not: trade or import Ray (it
talks to the cluster through `mm.actors.client.Cluster`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

import uvicorn

from mm.actors.client import Cluster
from mm.observability.metrics import registry
from mm.server.app import build_app
from mm.server.health import HealthManager
from mm.settings import MarketMakerSettings

log = logging.getLogger(__name__)

POLL_S = 1.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # `mm run` handles SIGINT/SIGTERM itself (it must drain before exiting)


def status_line(status: dict[str, Any], health_ok: bool) -> str:
    parts = []
    for symbol, s in sorted((status.get("symbols") or {}).items()):
        pnl = s.get("realized_pnl")
        pnl_text = f"{float(pnl):+.2f}" if pnl is not None else "?"
        parts.append(
            f"{symbol} {s.get('state', '?')} inv {s.get('inventory_qty', '?')} "
            f"open {s.get('open_orders', '?')} pnl {pnl_text}"
        )
    risk = status.get("risk") or {}
    risk_text = "halted: " + ",".join(risk.get("reasons", [])) if risk.get("halted") else "ok"
    parts.append(f"risk {risk_text}")
    parts.append("health ok" if health_ok else "health FAIL")
    return time.strftime("%H:%M:%S ") + " | ".join(parts)


class LiveProcess:
    def __init__(
        self, settings: MarketMakerSettings, cluster: Cluster, *, out: TextIO = sys.stdout
    ) -> None:
        self.settings = settings
        self.cluster = cluster
        self.out = out
        self.latest: dict[str, Any] | None = None
        self.health = HealthManager()
        self.health.register("market_maker", cluster.health)
        self.app = build_app(self.health, lambda: self.latest, registry(lambda: self.latest))
        self.port = 0
        self.stop = asyncio.Event()

    async def _poll(self) -> None:
        while True:
            try:
                self.latest = {**await self.cluster.status(), "ts_ms": time.time_ns() // 1_000_000}
            except Exception as e:
                log.warning("status unavailable: %s", e)
            await asyncio.sleep(POLL_S)

    async def _print_status(self, quiet: bool) -> None:
        tty = self.out.isatty()
        while not quiet:
            await asyncio.sleep(self.settings.status_every_s)
            if self.latest is not None:
                line = status_line(self.latest, self.health.snapshot.ok)
                self.out.write(("\r\x1b[2K" + line) if tty else line + "\n")
                self.out.flush()

    async def run(self, *, quiet: bool = False) -> dict[str, Any]:
        """Serve until SIGINT/SIGTERM (or `stop` is set), then shut down; returns the drains."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        http = self.settings.http
        server = _Server(
            uvicorn.Config(self.app, host=http.host, port=http.port, log_level="warning")
        )
        tasks = [
            loop.create_task(server.serve(), name="http"),
            loop.create_task(self.health.run(), name="health"),
            loop.create_task(self._poll(), name="status"),
            loop.create_task(self._print_status(quiet), name="status-line"),
        ]
        while not server.started and not tasks[0].done():
            await asyncio.sleep(0.05)
        if tasks[0].done():  # the port is taken, or the address is wrong
            tasks[0].result()
        self.port = server.servers[0].sockets[0].getsockname()[1]
        print(f"mm run: serving http://{http.host}:{self.port}/status", file=self.out, flush=True)
        await self.stop.wait()
        print("\nmm run: stopping ...", file=self.out, flush=True)
        server.should_exit = True
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        drained = await self.cluster.shutdown(self.settings.shutdown.cancel_orders)
        failed = {s: r["error"] for s, r in drained.items() if "error" in r}
        kept = "cancelled" if self.settings.shutdown.cancel_orders else "kept"
        done = len(drained) - len(failed)
        print(f"mm run: stopped; orders {kept} on {done} symbol(s)", file=self.out)
        for symbol, error in failed.items():
            print(
                f"mm run: {symbol} did not drain ({error}): its orders may still rest on the "
                f"exchange; the next `mm run` reconciles them",
                file=self.out,
            )
        return drained
