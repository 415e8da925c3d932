"""`mm:risk`: the global risk engine as a Ray actor (restarts forever, state kept in SQLite).

Owns: a thin shell over `RiskBook` — exposure reports from symbol actors, directly or relayed
in batches by the connector for the symbols on its node (the answer to each is the current
`RiskState`), latency samples pulled from the connector, basket candles for the
anomaly monitor, manual breaker trip/reset, persistence of the breaker (a tripped breaker stays
tripped across restarts) and pushing every change of the halt state to every symbol at once.
Must not: place or cancel orders itself (symbols do, on the state they receive).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import ray

from mm.actors import options
from mm.actors.calls import call
from mm.core.model import Candle
from mm.core.risk import ExposureReport, RiskBook, RiskState
from mm.settings import MarketMakerSettings
from mm.store.registry import ACTIVE, Registry

log = logging.getLogger(__name__)

LATENCY_PULL_S = 1.0


def state_view(state: RiskState) -> dict[str, Any]:
    return {
        "halted": state.halted,
        "reasons": list(state.reasons),
        "breaker_reason": state.breaker_reason,
        "exposure_quote": str(state.exposure_quote),
        "total_pnl": str(state.total_pnl),
        "peak_pnl": str(state.peak_pnl),
        "losing_streak": state.losing_streak,
        "latency_ms": state.latency_ms,
    }


@ray.remote
class RiskActor:
    def __init__(self, settings: MarketMakerSettings) -> None:
        self.settings = settings
        self.namespace = settings.ray.namespace
        self.registry = Registry(settings.data_dir / "control.db")
        saved = self.registry.control("risk")
        self.book = RiskBook(settings.risk.limits(), json.loads(saved) if saved else None)
        self._saved = saved
        self._pushed: tuple[bool, tuple[str, ...]] | None = None
        self._symbols: set[str] = set()
        self._pending: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._pull_latency(), name="latency")]
        if settings.risk.anomaly is not None:
            self._tasks.append(loop.create_task(self._poll_candles(), name="anomaly"))

    # -- inputs ------------------------------------------------------------------------------
    async def report(self, report: ExposureReport) -> RiskState:
        return await self.report_many([report])

    async def report_many(self, reports: Sequence[ExposureReport]) -> RiskState:
        """Several symbols' reports in one call (the connector relays those of its node's
        symbols together); the answer is the state after all of them. A report of a symbol
        that is not an active one of the registry (being removed, or removed: a report still
        in a connector's batch can arrive after `forget`) is not counted."""
        state = self.book.state()
        for report in reports:
            if not self._active(report.symbol):
                log.info("risk report of %s ignored: not an active symbol", report.symbol)
                continue
            self._symbols.add(report.symbol)
            state = self.book.report(report)
        return self._changed(state)

    def _active(self, symbol: str) -> bool:
        entry = self.registry.get(symbol)
        return entry is not None and entry.state == ACTIVE

    async def forget(self, symbol: str) -> RiskState:
        self._symbols.discard(symbol)
        return self._changed(self.book.forget(symbol))

    async def observe_candles(self, symbol: str, candles: Sequence[Candle]) -> RiskState:
        return self._changed(self.book.observe_candles(symbol, candles))

    async def observe_latency(self, samples_ms: Sequence[float]) -> RiskState:
        state = self.book.state()
        for ms in samples_ms:
            state = self.book.observe_latency(ms)
        return self._changed(state)

    async def trip(self, reason: str) -> dict[str, Any]:
        """Manual breaker trip: every symbol stops opening (and cancels its openings) at once."""
        log.warning("circuit breaker tripped by hand: %s", reason)
        return state_view(self._changed(self.book.trip(reason)))

    async def reset(self) -> dict[str, Any]:
        log.warning("circuit breaker reset by hand")
        return state_view(self._changed(self.book.reset()))

    async def current(self) -> RiskState:
        """The state now, without a report (a starting symbol asks before it quotes)."""
        return self.book.state()

    async def state(self) -> dict[str, Any]:
        return state_view(self.book.state())

    # -- propagation -------------------------------------------------------------------------
    def _changed(self, state: RiskState) -> RiskState:
        """Persist the durable part if it changed; push a change of the halt to every symbol."""
        saved = json.dumps(self.book.persisted(), sort_keys=True)
        if saved != self._saved:
            self.registry.set_control(risk=saved)
            self._saved = saved
        key = (state.halted, state.reasons)
        if key != self._pushed:
            self._pushed = key
            self._push(state)
        return state

    def _push(self, state: RiskState) -> None:
        for symbol in sorted(self._symbols):
            try:
                handle = ray.get_actor(options.symbol_actor(symbol), namespace=self.namespace)
            except ValueError:
                continue
            task = asyncio.get_running_loop().create_task(self._send(symbol, handle, state))
            self._pending.add(task)  # one per symbol per change: bounded
            task.add_done_callback(self._pending.discard)

    async def _send(self, symbol: str, handle: Any, state: RiskState) -> None:
        try:
            await call(handle.set_risk.remote(state), timeout_s=10.0)
        except Exception as e:  # the symbol also gets the state with its next report
            log.warning("risk state not delivered to %s: %s", symbol, e)

    # -- loops -------------------------------------------------------------------------------
    async def _pull_latency(self) -> None:
        connector = None
        while True:
            await asyncio.sleep(LATENCY_PULL_S)
            try:
                if connector is None:
                    connector = ray.get_actor(options.CONNECTOR, namespace=self.namespace)
                samples = await call(connector.take_round_trips.remote(), timeout_s=5.0)
                await self.observe_latency(samples)
            except Exception as e:
                connector = None
                log.warning("latency samples unavailable: %s", e)

    async def _poll_candles(self) -> None:
        anomaly = self.settings.risk.anomaly
        assert anomaly is not None
        while True:
            try:
                connector = ray.get_actor(options.CONNECTOR, namespace=self.namespace)
                for symbol in anomaly.basket:
                    ref = connector.call.remote(
                        "fetch_klines", symbol, anomaly.interval, None, anomaly.window + 2
                    )
                    candles = await call(ref, timeout_s=10.0)
                    await self.observe_candles(symbol, candles[:-1])  # the last one is open
            except Exception as e:
                log.warning("anomaly monitor: candles unavailable: %s", e)
            await asyncio.sleep(anomaly.poll_every_s)
