"""`mm:symbol:<SYMBOL>`: one symbol's engine as a Ray actor (restarts forever).

Owns: a thin shell over `SymbolService` — the journal on this node's disk, the exchange through
the connector actor, a report to the risk actor every `risk.report_every_s` (its answer is the
global risk state; no answer for `RISK_STALE_S` halts new openings here: no trading without a
risk engine). Every (re)start runs recovery before quoting (the service's start).
Must not: decide anything itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import ray

from mm.actors import options
from mm.actors.calls import call
from mm.actors.connector import ConnectorExchange
from mm.core.risk import RiskState
from mm.engine.clock import SystemClock
from mm.engine.router import Delivery
from mm.engine.symbol_engine import EngineConfig
from mm.engine.symbol_service import SymbolService
from mm.settings import MarketMakerSettings, grid_for, journal_dir
from mm.store.journal import Journal

log = logging.getLogger(__name__)

RISK_STALE_S = 10.0


@ray.remote
class SymbolManager:
    def __init__(self, symbol: str, settings: MarketMakerSettings, grid: dict[str, Any]) -> None:
        self.symbol = symbol
        self.settings = settings
        ns = settings.ray.namespace
        self.node_id = ray.get_runtime_context().get_node_id()
        path = Path(journal_dir(settings, self.node_id)) / f"{symbol}.db"
        self.connector = ray.get_actor(options.CONNECTOR, namespace=ns)
        self.risk = ray.get_actor(options.RISK, namespace=ns)
        self.exchange = ConnectorExchange(self.connector)
        e = settings.engine
        config = EngineConfig(
            symbol,
            grid_for({}, grid, where=symbol).params(),
            max_concurrency=e.max_concurrency,
            reconcile_tolerance_qty=e.reconcile_tolerance_qty,
        )
        self.service = SymbolService(
            config,
            self.exchange,
            Journal(path),
            SystemClock(),
            reconcile_every_s=e.reconcile_every_s,
        )
        self.slow_s = 0.0  # test hook: extra seconds per delivery (slow-symbol isolation)
        self._risk_ok_ms = 0
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._start(), name="start"),
            loop.create_task(self.service.run_periodic(), name="reconcile"),
            loop.create_task(self._report_risk(), name="risk"),
        ]

    async def _start(self) -> None:
        info = await call(self.connector.info.remote())
        self.exchange.name = info["name"]
        self.exchange.consistency_window_ms = info["consistency_window_ms"]
        await self.service.start()

    async def _report_risk(self) -> None:
        """Report exposure, adopt the answer; fail safe when the risk actor stays silent."""
        every = self.settings.risk.report_every_s
        await self.service.started.wait()
        while True:
            try:
                state = await call(
                    self.risk.report.remote(self.service.exposure_report()), timeout_s=5.0
                )
                self._risk_ok_ms = self.service.clock.now_ms()
                await self.service.set_risk(state)
            except Exception as e:
                silent_s = (self.service.clock.now_ms() - self._risk_ok_ms) / 1000
                log.warning("%s: risk report failed (%s)", self.symbol, e)
                if silent_s > RISK_STALE_S and not self.service.engine.risk_halted:
                    await self.service.set_risk(RiskState(True, ("risk_unreachable",)))
            await asyncio.sleep(every)

    # -- called by the connector -------------------------------------------------------------
    async def deliver(self, delivery: Delivery) -> None:
        if self.slow_s:
            await asyncio.sleep(self.slow_s)
        await self.service.deliver(delivery)

    # -- called by the orchestrator, the risk actor and the CLI --------------------------------
    async def ready(self) -> str:
        await self.service.started.wait()
        return self.service.state()

    async def status(self) -> dict[str, Any]:
        out = self.service.status()
        out["node_id"] = self.node_id
        out["pid"] = os.getpid()
        out["journal"] = self.service.journal.path
        return out

    async def latency_samples(self) -> dict[str, Any]:
        """Read-only: the recent raw latency samples (ms) and total counts (benchmarks pool
        them across symbols; the newest `count - earlier count` samples are a window's)."""
        s = self.service
        return {
            "tick_to_order_ms": list(s.latency.recent),
            "tick_to_order_count": s.latency.count,
            "tick_delivery_ms": list(s.tick_delivery.recent),
            "tick_delivery_count": s.tick_delivery.count,
        }

    async def health(self) -> tuple[bool, str]:
        return self.service.health()

    async def set_risk(self, state: RiskState) -> None:
        self._risk_ok_ms = self.service.clock.now_ms()
        await self.service.set_risk(state)

    async def pause(self) -> str:
        await self.service.pause()
        return self.service.state()

    async def resume(self) -> str:
        await self.service.resume()
        return self.service.state()

    async def drain(self, keep_orders: bool) -> dict[str, Any]:
        return await self.service.drain(keep_orders=keep_orders)

    async def set_slow(self, seconds: float) -> None:
        """Test hook: make every delivery take `seconds` longer (slow-symbol isolation)."""
        self.slow_s = seconds
