"""Live driver: feed one SymbolEngine from the exchange's streams, recover after every break.

Owns: the live event loop of one symbol — price ticks conflated (only the newest pending tick is
processed), order updates processed one at a time in arrival order (never dropped), a periodic
reconcile, and on any stream break: resubscribe first, then reconcile (REST gap-fill), then go on.
Must not: decide anything itself; the engine does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from mm.core.model import PriceTick
from mm.engine.backoff import jittered
from mm.engine.symbol_engine import SymbolEngine
from mm.errors import StreamDisconnected, TemporaryError
from mm.ports import Clock, Exchange

log = logging.getLogger(__name__)


class SymbolRunner:
    def __init__(
        self,
        engine: SymbolEngine,
        exchange: Exchange,
        clock: Clock,
        *,
        reconcile_every_s: float = 30.0,
        backoff_s: tuple[float, float] = (0.05, 5.0),
    ) -> None:
        self.engine = engine
        self.exchange = exchange
        self.clock = clock
        self.reconcile_every_s = reconcile_every_s
        self.backoff_s = backoff_s
        self.reconnects = 0
        self.ticks_seen = 0
        self.ticks_processed = 0
        self.updates_processed = 0
        self._latest: PriceTick | None = None
        self._tick_ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Start (recover) the engine, then pump streams until `stop` is set."""
        attempt = 0
        while not stop.is_set():
            try:
                await self.engine.start()
                break
            except TemporaryError as e:
                attempt += 1
                log.warning("%s: start failed (%s), retrying", self.engine.symbol, e)
                await self._backoff(attempt)
        attempt = 0
        while not stop.is_set():
            try:
                await self._pump(stop, recover=attempt > 0)
                attempt = 0
            except TemporaryError as e:
                attempt += 1
                self.reconnects += 1
                log.warning("%s: stream broke (%s); reconnecting", self.engine.symbol, e)
                await self._backoff(attempt)

    async def _backoff(self, attempt: int) -> None:
        await self.clock.sleep(jittered(self.backoff_s, attempt + 1))

    async def _pump(self, stop: asyncio.Event, *, recover: bool) -> None:
        symbol = self.engine.symbol
        prices = self.exchange.stream_prices([symbol])  # subscribe before the gap-fill
        orders = self.exchange.stream_orders([symbol])
        if recover:
            await self.engine.reconcile()
        tasks = [
            asyncio.create_task(self._read_prices(prices), name=f"{symbol}-prices"),
            asyncio.create_task(self._read_orders(orders), name=f"{symbol}-orders"),
            asyncio.create_task(self._process_ticks(), name=f"{symbol}-ticks"),
            asyncio.create_task(self._reconcile_periodically(), name=f"{symbol}-reconcile"),
            asyncio.create_task(stop.wait(), name=f"{symbol}-stop"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for stream in (prices, orders):
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        if not stop.is_set():
            raise StreamDisconnected(f"{symbol}: a stream ended")

    async def _read_prices(self, prices) -> None:  # type: ignore[no-untyped-def]
        async for tick in prices:
            self.ticks_seen += 1
            self._latest = tick
            self._tick_ready.set()

    async def _read_orders(self, orders) -> None:  # type: ignore[no-untyped-def]
        async for report in orders:
            await _to_completion(self.engine.on_order_report(report))
            self.updates_processed += 1

    async def _process_ticks(self) -> None:
        while True:
            await self._tick_ready.wait()
            self._tick_ready.clear()
            tick, self._latest = self._latest, None
            if tick is not None:
                await _to_completion(self.engine.on_tick(tick))
                self.ticks_processed += 1

    async def _reconcile_periodically(self) -> None:
        while True:
            await self.clock.sleep(self.reconcile_every_s)
            await self.engine.reconcile()


async def _to_completion(call: Coroutine[Any, Any, None]) -> None:
    """Run an engine call that must not stop halfway (journal intents, then sends, then
    outcomes): when a stream breaks and this task is cancelled, the call still finishes in the
    background; recovery, which takes the same engine lock, runs after it."""
    task = asyncio.ensure_future(call)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_log_failure)
        raise


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("engine call failed after its caller was cancelled", exc_info=task.exception())
