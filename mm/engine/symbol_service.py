"""SymbolService: one symbol driven by pushed deliveries (the live driver inside a Ray actor).

Owns: the life of one symbol under orchestration — start = recovery (retried while the exchange is
unreachable; nothing is quoted before it succeeds), applying `Delivery` batches in order (a
`resync` delivery reconciles first), operator pause/resume, the global risk flag, draining before
removal, the periodic reconcile, and the numbers the status page and the risk engine need
(exposure, PnL, orders placed/rejected, tick-to-order latency).
Must not: import Ray or pick an exchange; the actor shell hands in the port and the journal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

from mm.core.commands import CancelAll, CancelOrder
from mm.core.model import OrderReport, OrderRequest, Role
from mm.core.quiet import QuietBox
from mm.core.risk import ExposureReport, RiskState
from mm.engine.backoff import jittered
from mm.engine.router import Delivery
from mm.engine.symbol_engine import EngineConfig, EngineState, SymbolEngine
from mm.errors import OperationalError, OrderRejected, TemporaryError
from mm.observability.latency import LatencyStats
from mm.ports import Clock, Exchange
from mm.store.journal import Journal

log = logging.getLogger(__name__)

DRAIN_ATTEMPTS = 5
RECENT_IDS = 1024


class _ObservedExchange:
    """The port as the engine sees it, counting orders and timing tick -> order call."""

    def __init__(self, inner: Exchange, service: SymbolService) -> None:
        self._inner = inner
        self._service = service
        self._recent: deque[str] = deque(maxlen=RECENT_IDS)  # a retry is not a new order
        self._recent_set: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _first_send(self, client_id: str) -> bool:
        if client_id in self._recent_set:
            return False
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(client_id)
        self._recent_set.add(client_id)
        return True

    async def place_order(self, request: OrderRequest) -> OrderReport:
        if self._first_send(request.client_id):
            self._service._order_issued()
        try:
            report = await self._inner.place_order(request)
        except OrderRejected:
            self._service.orders_rejected += 1
            raise
        return report

    async def place_orders(self, requests: Sequence[OrderRequest]) -> list[OrderReport | Exception]:
        for request in requests:
            if self._first_send(request.client_id):
                self._service._order_issued()
        out = await self._inner.place_orders(requests)
        self._service.orders_rejected += sum(isinstance(r, OrderRejected) for r in out)
        return out


class SymbolService:
    def __init__(
        self,
        config: EngineConfig,
        exchange: Exchange,
        journal: Journal,
        clock: Clock,
        *,
        reconcile_every_s: float = 30.0,
        start_backoff_s: tuple[float, float] = (0.2, 5.0),
        risk: RiskState | None = None,
    ) -> None:
        """`risk`: the global risk state known at construction; under orchestration an actor
        passes what the risk actor said (or a halted "risk_unknown" state) so that nothing is
        opened before the symbol knows whether opening is allowed."""
        self.symbol = config.symbol
        self.clock = clock
        self.journal = journal
        self.engine = SymbolEngine(config, _ObservedExchange(exchange, self), journal, clock)
        self.reconcile_every_s = reconcile_every_s
        self.start_backoff_s = start_backoff_s
        self.started = asyncio.Event()
        self.start_failures = 0
        self.created_ms = clock.now_ms()
        self.orders_placed = 0
        self.orders_rejected = 0
        self.deliveries = 0
        self.resyncs = 0
        self.last_tick_ms = 0  # wall time the last tick was applied
        self.latency = LatencyStats()  # tick at the connector -> order call issued
        self.tick_delivery = LatencyStats()  # tick at the connector -> delivery here
        self.tick_to_intent = LatencyStats()  # tick at the connector -> decision made, journaling
        self.journal_commit = LatencyStats()  # the commit of a decision's intents (its fsync)
        self.engine.on_phase = self._phase
        self._commit_ns = 0
        self.risk = risk or RiskState(halted=False)
        self.engine.set_risk_halted(self.risk.halted)
        self.draining = False
        self._trigger_ns = 0
        self._fill_watermark = journal.last_fill_rowid(self.symbol)
        self._pending_watermark = self._fill_watermark
        self._unanswered: ExposureReport | None = None  # sent, answer lost
        self._report_ts = 0  # the last report's ts_ms: the next one's is always newer
        # told after any change made outside a delivery (risk, pause, resume, drain, periodic
        # reconcile): whoever holds ticks back by `quiet_box` must ask again
        self.on_change: Callable[[], None] = _nothing

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Recover (retrying while the exchange is unreachable), then quote. Idempotent."""
        if self.started.is_set():
            return
        attempt = 0
        while True:
            try:
                await self.engine.start()
                break
            except TemporaryError as e:
                attempt += 1
                self.start_failures += 1
                log.warning("%s: recovery failed (%s); retrying", self.symbol, e)
                await self.clock.sleep(jittered(self.start_backoff_s, attempt))
            except OperationalError as e:  # unknown symbol, bad grid: a human must look
                self.engine.halt(str(e))
                break
        self.started.set()
        log.info("%s: started in state %s", self.symbol, self.engine.state.value)

    async def run_periodic(self) -> None:
        """Reconcile every `reconcile_every_s` (catches anything a stream missed); never dies."""
        await self.started.wait()
        while True:
            await self.clock.sleep(self.reconcile_every_s)
            try:
                await self.engine.reconcile()
            except Exception:
                log.exception("%s: periodic reconcile failed", self.symbol)
            self.on_change()

    # -- events ------------------------------------------------------------------------------
    async def deliver(self, delivery: Delivery) -> None:
        """Apply one delivery: reconcile first if asked, then the updates in order and the tick
        as one event. Orders placed while it is applied are timed from the tick's arrival."""
        await self.started.wait()
        self.deliveries += 1
        engine = self.engine
        tick = delivery.tick
        self._trigger_ns = delivery.tick_recv_ns if tick is not None else 0
        if self._trigger_ns:
            self.tick_delivery.observe((time.time_ns() - self._trigger_ns) / 1e6)
        try:
            if delivery.resync:
                self.resyncs += 1
                await engine.reconcile()
            if delivery.updates or tick is not None:
                await engine.on_events(delivery.updates, tick)  # one decision for all of it
            if tick is not None:
                self.last_tick_ms = time.time_ns() // 1_000_000
        finally:
            self._trigger_ns = 0

    def quiet_box(self) -> QuietBox | None:
        """The ticks that cannot change this symbol's decision now (see `QuietBox`), or None."""
        if not self.started.is_set() or self.draining:
            return None
        return self.engine.quiet_box()

    def _phase(self, name: str) -> None:
        if name == "intent_commit":
            self._commit_ns = time.perf_counter_ns()
            if self._trigger_ns:
                self.tick_to_intent.observe((time.time_ns() - self._trigger_ns) / 1e6)
        elif name == "intent_committed" and self._commit_ns:
            self.journal_commit.observe((time.perf_counter_ns() - self._commit_ns) / 1e6)
            self._commit_ns = 0

    def _order_issued(self) -> None:
        self.orders_placed += 1
        if self._trigger_ns:
            self.latency.observe((time.time_ns() - self._trigger_ns) / 1e6)

    async def set_risk(self, state: RiskState) -> None:
        """Apply the global risk state; a change is acted on at once (not at the next tick)."""
        changed = state.halted != self.engine.risk_halted
        self.risk = state
        self.engine.set_risk_halted(state.halted)
        if not changed:
            return
        try:
            await self._act_on_risk(state)
        finally:
            self.on_change()

    async def _act_on_risk(self, state: RiskState) -> None:
        if not self.started.is_set():
            return
        if self.engine.paused and state.halted:  # no decisions while paused: cancel directly
            openings = [
                CancelOrder(self.symbol, o.client_id, o.level, "risk")
                for o in self.engine.pm.live_orders()
                if o.role is Role.OPEN and not o.cancel_requested
            ]
            if openings:
                await self.engine.execute(openings)
        elif self.engine.last_tick is not None:
            await self.engine.on_tick(self.engine.last_tick)

    async def pause(self) -> None:
        """Stop deciding: no new orders; resting orders stay and fills are still journaled."""
        self.engine.paused = True
        self.on_change()

    async def resume(self) -> None:
        if self.draining:
            raise OperationalError(f"{self.symbol} is being removed; it cannot resume")
        self.engine.paused = False
        try:
            if self.started.is_set() and self.engine.last_tick is not None:
                await self.engine.on_tick(self.engine.last_tick)
        finally:
            self.on_change()

    async def drain(self, *, keep_orders: bool) -> dict[str, Any]:
        """Stop quoting for good and (unless `keep_orders`) cancel every order of ours, checking
        with the exchange until none is left. Idempotent; raises `OperationalError` if orders
        remain after `DRAIN_ATTEMPTS` rounds."""
        self.draining = True
        self.engine.paused = True
        self.on_change()
        await self.started.wait()
        if keep_orders:
            return self.status()
        for attempt in range(1, DRAIN_ATTEMPTS + 1):
            await self.engine.execute([CancelAll(self.symbol, "remove")])
            await self.engine.reconcile()
            if not self.engine.pm.live_orders():
                return self.status()
            await self.clock.sleep(jittered(self.start_backoff_s, attempt))
        left = [o.client_id for o in self.engine.pm.live_orders()]
        raise OperationalError(f"{self.symbol}: orders still live after draining: {left}")

    # -- views -------------------------------------------------------------------------------
    def exposure_report(self) -> ExposureReport:
        """What the risk engine needs, with the round trips closed since the last report the
        risk engine confirmed receiving (`confirm_report`): a lost report loses no loss."""
        pnls, self._pending_watermark = self.journal.closed_pnls_since(
            self.symbol, self._fill_watermark
        )
        engine = self.engine
        price = engine.last_tick.price if engine.last_tick is not None else Decimal(0)
        # newer than the last even if the wall clock was stepped back: the risk engine counts
        # the round trips of a report only when its ts_ms is newer than the last it counted
        self._report_ts = max(self.clock.now_ms(), self._report_ts + 1)
        return ExposureReport(
            symbol=self.symbol,
            inventory_qty=engine.pm.snapshot().inventory_qty,
            price=price,
            realized_pnl=engine.pm.totals.realized_pnl,
            unrealized_pnl=engine.unrealized_pnl(),
            closed_pnls=tuple(pnls),
            ts_ms=self._report_ts,
        )

    def confirm_report(self) -> None:
        """The last `exposure_report` reached the risk engine: its round trips are counted."""
        self._fill_watermark = self._pending_watermark
        self._unanswered = None

    async def report_exposure(
        self, send: Callable[[ExposureReport], Awaitable[RiskState]]
    ) -> RiskState:
        """Send a fresh exposure report with `send` and return the risk engine's answer; raises
        what `send` raises. A report whose answer was lost (the risk engine may or may not have
        counted it) is first sent again as it was: the engine counts a report (same ts_ms)
        once, so a closed round trip is counted once however many answers are lost. (A fresh
        report instead would carry the same round trips under a newer ts_ms.)"""
        if self._unanswered is not None:
            await send(self._unanswered)
            self.confirm_report()
        report = self._unanswered = self.exposure_report()
        state = await send(report)
        self.confirm_report()
        return state

    def state(self) -> str:
        if not self.started.is_set():
            return "STARTING"
        if self.draining:
            return "DRAINING"
        if self.engine.paused and self.engine.state is EngineState.QUOTING:
            return "PAUSED"
        return self.engine.state.value

    def status(self) -> dict[str, Any]:
        now = time.time_ns() // 1_000_000  # last_tick_ms is wall time, whatever the clock
        out = self.engine.status()
        out.update(
            state=self.state(),
            paused=self.engine.paused,
            risk_reasons=list(self.risk.reasons),
            last_tick_age_s=(now - self.last_tick_ms) / 1000 if self.last_tick_ms else None,
            orders_placed=self.orders_placed,
            orders_rejected=self.orders_rejected,
            fill_volume_quote=str(self.engine.pm.totals.volume_quote),
            deliveries=self.deliveries,
            resyncs=self.resyncs,
            tick_to_order_ms=self.latency.to_dict(),
            tick_delivery_ms=self.tick_delivery.to_dict(),
            tick_to_intent_ms=self.tick_to_intent.to_dict(),
            journal_commit_ms=self.journal_commit.to_dict(),
            journal_commits={**self.journal.commits, "checkpoints": self.journal.checkpoints},
            live_orders=[_order_view(o) for o in self.engine.pm.live_orders()],
        )
        return out

    def health(self) -> tuple[bool, str]:
        """(ok, detail): started and trading (or deliberately paused), journal writable."""
        if not self.journal.writable():
            return False, "journal not writable"
        state = self.state()
        if state == "HALTED":
            return False, f"halted: {self.engine.halt_reason}"
        if state in ("STARTING", "RECOVERING"):
            return False, f"{state.lower()} (start failures: {self.start_failures})"
        return True, state.lower()


def _nothing() -> None:
    return None


def _order_view(order: Any) -> dict[str, Any]:
    return {
        "client_id": order.client_id,
        "level": order.level,
        "role": order.role.value,
        "side": order.side.value,
        "price": str(order.price),
        "qty": str(order.qty),
        "filled_qty": str(order.filled_qty),
        "status": order.status.value,
    }
