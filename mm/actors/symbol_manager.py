"""`mm:symbol:<SYMBOL>`: one symbol's engine as a Ray actor (restarts forever).

Owns: a thin shell over `SymbolService`. Every (re)start, retried until it succeeds:
1. ask the orchestrator what the registry wants for this symbol (paused? being removed? still
   registered at all?) — a restart never undoes a pause or a removal;
2. ask the risk actor for the global risk state — nothing is opened before it is known;
3. open the journal on this node's disk, exclusively (an old process of this actor that has not
   died yet blocks the new one: never two writers);
4. recover (the service's start), then quote.
Afterwards it reports exposure to the risk actor every `risk.report_every_s` (the answer is the
global risk state; no answer for `RISK_STALE_S` halts new openings: no trading without a risk
engine), through the connector's local channel when it has one (relayed in batches).
`drain` ends the actor's work for good: background loops stop, the journal closes.
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
from mm.actors.connector import REPORT_RISK, RISK_BATCH_S, RISK_CALL_TIMEOUT_S, ConnectorExchange
from mm.core.quiet import QuietBox
from mm.core.risk import ExposureReport, RiskState
from mm.engine import local_channel
from mm.engine.backoff import jittered
from mm.engine.clock import SystemClock
from mm.engine.router import Delivery
from mm.engine.symbol_engine import EngineConfig
from mm.engine.symbol_service import SymbolService
from mm.errors import TemporaryError
from mm.settings import MarketMakerSettings, grid_for, journal_dir
from mm.store.journal import WAL_ROOM_BYTES, Journal

log = logging.getLogger(__name__)

RISK_STALE_S = 10.0
CALL_TIMEOUT_S = 10.0
UNKNOWN_RISK = RiskState(True, ("risk_unknown",))


@ray.remote
class SymbolManager:
    def __init__(self, symbol: str, settings: MarketMakerSettings, grid: dict[str, Any]) -> None:
        self.symbol = symbol
        self.settings = settings
        self.ns = settings.ray.namespace
        self.node_id = ray.get_runtime_context().get_node_id()
        self.path = Path(journal_dir(settings, self.node_id)) / f"{symbol}.db"
        e = settings.engine
        self.config = EngineConfig(
            symbol,
            grid_for({}, grid, where=symbol).params(),
            max_concurrency=e.max_concurrency,
            reconcile_tolerance_qty=e.reconcile_tolerance_qty,
        )
        self.connector = ray.get_actor(options.CONNECTOR, namespace=self.ns)
        self.risk = ray.get_actor(options.RISK, namespace=self.ns)
        self.exchange = ConnectorExchange(self.connector)
        self.service: SymbolService | None = None
        self.ready_event = asyncio.Event()
        self.stopped = False
        self.slow_s = 0.0  # test hook: extra seconds per delivery (slow-symbol isolation)
        self.start_attempts = 0
        self.start_error = ""
        self._risk_ok_ms = 0
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._start(), name="start"),
            loop.create_task(self._receive_locally(), name="local-channel"),
        ]

    # -- start -------------------------------------------------------------------------------
    async def _start(self) -> None:
        """Never gives up: every failure is logged and retried with backoff."""
        while True:
            self.start_attempts += 1
            try:
                await self._start_once()
                break
            except Exception as e:
                self.start_error = f"{type(e).__name__}: {e}"
                log.warning("%s: start attempt %d failed: %s", self.symbol, self.start_attempts, e)
                await asyncio.sleep(jittered((0.2, 5.0), self.start_attempts))
        self.start_error = ""
        loop = asyncio.get_running_loop()
        assert self.service is not None
        self._tasks += [
            loop.create_task(self.service.run_periodic(), name="reconcile"),
            loop.create_task(self._report_risk(), name="risk"),
        ]

    async def _start_once(self) -> None:
        await self.exchange.describe()
        orchestrator = ray.get_actor(options.ORCHESTRATOR, namespace=self.ns)
        wanted = await call(orchestrator.desired.remote(self.symbol), timeout_s=CALL_TIMEOUT_S)
        try:
            risk = await call(self.risk.current.remote(), timeout_s=CALL_TIMEOUT_S)
        except Exception as e:  # start anyway, opening nothing until the risk actor answers
            log.warning("%s: risk state unknown (%s); openings halted", self.symbol, e)
            risk = UNKNOWN_RISK
        if self.service is None:
            # JournalBusy: an old process lives
            journal = Journal(self.path, exclusive=True, wal_room_bytes=WAL_ROOM_BYTES)
            self.service = SymbolService(
                self.config,
                self.exchange,
                journal,
                SystemClock(),
                reconcile_every_s=self.settings.engine.reconcile_every_s,
                risk=risk,
            )
            self.service.on_change = self._push_gate
        if wanted["paused"] or wanted["state"] != "active":
            await self.service.pause()  # stays so until the registry says otherwise
        self.service.draining = wanted["state"] != "active"
        self.ready_event.set()
        await self.service.start()

    async def _report_risk(self) -> None:
        """Report exposure, adopt the answer; fail safe when the risk actor stays silent."""
        assert self.service is not None
        service = self.service
        self._risk_ok_ms = service.clock.now_ms()
        while not self.stopped:
            try:
                state = await service.report_exposure(self._send_report)
                self._risk_ok_ms = service.clock.now_ms()
                await service.set_risk(state)
            except Exception as e:
                silent_s = (service.clock.now_ms() - self._risk_ok_ms) / 1000
                log.warning("%s: risk report failed (%s)", self.symbol, e)
                if silent_s > RISK_STALE_S and not service.engine.risk_halted:
                    await service.set_risk(RiskState(True, ("risk_unreachable",)))
            await asyncio.sleep(self.settings.risk.report_every_s)

    async def _send_report(self, report: ExposureReport) -> RiskState:
        return await send_risk_report(self.exchange.link, self.risk, report)

    async def _receive_locally(self) -> None:
        """Use the connector's local channel while both share a node: deliveries come in and
        exchange calls go out over it (by Ray calls otherwise, and meanwhile); reconnect
        whenever it drops. Only once the journal is ours: a new process of this symbol waiting
        for an old one to let go must not take the old one's channel."""
        await self.ready_event.wait()
        attempt = 0
        while not self.stopped:
            try:
                where = await call(self.connector.local_channel.remote(), timeout_s=CALL_TIMEOUT_S)
                if where is not None and where["node_id"] == self.node_id:
                    link = local_channel.LocalLink(self.symbol, self.deliver, self._quiet_box)
                    self.exchange.link = link  # exchange calls use it while it is connected
                    await link.run(where["path"])
                    # it ran until the connector went away (a restart): ask again soon, unless
                    # it carried nothing (then something is wrong: back off)
                    attempt = 0 if link.applied or link.calls else attempt + 1
                else:
                    attempt = 10  # another node or switched off: look again now and then
            except Exception as e:
                attempt += 1
                log.warning("%s: local channel failed (%s); using calls", self.symbol, e)
            await asyncio.sleep(jittered((0.2, 30.0), attempt))

    def _quiet_box(self) -> QuietBox | None:
        """Ticks the connector need not wake this actor for (sent with every delivery's ack)."""
        if self.stopped or self.slow_s or self.service is None:
            return None
        return self.service.quiet_box()

    def _push_gate(self) -> None:
        link = self.exchange.link
        if link is not None:
            link.push_gate()

    # -- called by the connector -------------------------------------------------------------
    async def deliver(self, delivery: Delivery) -> None:
        await self.ready_event.wait()
        if self.stopped or self.service is None:
            return  # drained: nothing more is applied (the next owner reconciles)
        if self.slow_s:
            await asyncio.sleep(self.slow_s)
        await self.service.deliver(delivery)

    # -- called by the orchestrator, the risk actor and the CLI --------------------------------
    async def ready(self) -> str:
        await self.ready_event.wait()
        assert self.service is not None
        await self.service.started.wait()
        return self.service.state()

    async def status(self) -> dict[str, Any]:
        if self.service is None:
            out: dict[str, Any] = {"symbol": self.symbol, "state": "STARTING"}
        else:
            out = self.service.status()
        link = self.exchange.link
        out.update(
            node_id=self.node_id,
            pid=os.getpid(),
            local_channel=None
            if link is None
            else {"connected": link.connected, "applied": link.applied, "calls": link.calls},
            journal=str(self.path),
            start_attempts=self.start_attempts,
            start_error=self.start_error,
        )
        return out

    async def health(self) -> tuple[bool, str]:
        if self.service is None:
            return False, f"starting ({self.start_error or 'first attempt'})"
        return self.service.health()

    async def set_risk(self, state: RiskState) -> None:
        if self.service is not None and not self.stopped:
            self._risk_ok_ms = self.service.clock.now_ms()
            await self.service.set_risk(state)

    async def pause(self) -> str:
        await self.ready_event.wait()
        assert self.service is not None
        await self.service.pause()
        return self.service.state()

    async def resume(self) -> str:
        await self.ready_event.wait()
        assert self.service is not None
        await self.service.resume()
        return self.service.state()

    async def drain(self, keep_orders: bool) -> dict[str, Any]:
        """Cancel our orders (unless `keep_orders`), then stop every loop and close the journal:
        after this the actor writes nothing, so it can be killed with nothing in flight."""
        await self.ready_event.wait()
        assert self.service is not None
        status = await self.service.drain(keep_orders=keep_orders)
        self.stopped = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        async with self.service.engine._lock:  # nothing is between intent and outcome
            self.service.journal.close()
        return status

    async def set_slow(self, seconds: float) -> None:
        """Test hook: make every delivery take `seconds` longer (slow-symbol isolation)."""
        self.slow_s = seconds

    async def latency_samples(self) -> dict[str, Any]:
        """Read-only: the recent raw latency samples (ms) and total counts (benchmarks pool
        them across symbols; the newest `count - earlier count` samples are a window's)."""
        s = self.service
        empty: list[float] = []
        return {
            "tick_to_order_ms": list(s.latency.recent) if s else empty,
            "tick_to_order_count": s.latency.count if s else 0,
            "tick_delivery_ms": list(s.tick_delivery.recent) if s else empty,
            "tick_delivery_count": s.tick_delivery.count if s else 0,
            "tick_to_intent_ms": list(s.tick_to_intent.recent) if s else empty,
            "tick_to_intent_count": s.tick_to_intent.count if s else 0,
            "journal_commit_ms": list(s.journal_commit.recent) if s else empty,
            "journal_commit_count": s.journal_commit.count if s else 0,
        }


async def send_risk_report(
    link: local_channel.LocalLink | None,
    risk: Any,
    report: ExposureReport,
    *,
    relay_timeout_s: float = RISK_BATCH_S + RISK_CALL_TIMEOUT_S + 1.0,
) -> RiskState:
    """Through the connector while the local channel is up (it relays the reports of its
    node's symbols in one actor call), else straight to the risk actor (`risk`, its handle).
    A report the channel lost is sent again as it is (the risk engine counts a report, same
    ts_ms, once); one unanswered in time is a failed report, like an actor call's timeout, so
    one attempt never lasts much longer than before (`RISK_STALE_S` counts on that)."""
    if link is not None and link.connected:
        try:
            return await asyncio.wait_for(link.call(REPORT_RISK, report), relay_timeout_s)
        except local_channel.ChannelClosed as e:
            log.info("%s: risk report by actor call (%s)", report.symbol, e)
        except TimeoutError:
            raise TemporaryError("the connector relayed no risk answer in time") from None
    return await call(risk.report.remote(report), timeout_s=RISK_CALL_TIMEOUT_S)
