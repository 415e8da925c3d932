"""ConnectorService: one exchange connection shared by every symbol (DESIGN 6, "Routing").

Owns: the single subscription per stream type for all routed symbols — re-made when a symbol is
added or removed (the new one opened before the old one closes, so nothing is missed) and after
a break (with jittered backoff; then every symbol is asked to resync, i.e. reconcile over REST,
because the gap may have swallowed updates; a halting `OperationalError`, such as a revoked key,
stops the streams for good with an error log and `halted`: the routes go silent, which the health
check reports) — the fan-out through a `Router`, and the one
account-wide budget for REST calls: a token bucket shared by all symbols, plus a global pause
when the venue says "rate limited" (honouring its Retry-After), never a per-symbol backoff.
Every REST call is timed; the samples feed the latency guard.
Must not: import Ray or know where symbols live; a route is an async callable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mm.engine.backoff import jittered
from mm.engine.router import HOLD_S, Router, Sink
from mm.errors import OperationalError, RateLimited, StreamDisconnected
from mm.observability.latency import LatencyStats
from mm.ports import Exchange

log = logging.getLogger(__name__)


HANDOVER_S = 1.0  # overlap of the old and the new subscription when the routed set changes


@dataclass(eq=False)
class _Subscription:
    """One price and one order stream with their reader tasks."""

    streams: list[Any]
    tasks: list[asyncio.Task[None]]

    async def until(self, changed: asyncio.Event) -> None:
        """Return when `changed` is set; raise when a stream breaks or ends."""
        waiter = asyncio.create_task(changed.wait(), name="routes-changed")
        try:
            done, _ = await asyncio.wait([*self.tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        for task in done:
            if task is not waiter:
                raise task.exception() or StreamDisconnected(f"{task.get_name()} stream ended")

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for stream in self.streams:
            with contextlib.suppress(Exception):
                await stream.aclose()


class TokenBucket:
    """`rate_per_s` calls per second on average, bursts up to `burst`; a global pause on top."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._at = time.monotonic()
        self._blocked_until = 0.0
        self.waits = 0

    def block_for(self, seconds: float) -> None:
        self._blocked_until = max(self._blocked_until, time.monotonic() + seconds)

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            if now < self._blocked_until:
                self.waits += 1
                await asyncio.sleep(self._blocked_until - now)
                continue
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            self.waits += 1
            await asyncio.sleep((1 - self._tokens) / self.rate)


class ConnectorService:
    def __init__(
        self,
        exchange: Exchange,
        *,
        rate_limit_per_s: float = 50.0,
        rate_limit_burst: int = 100,
        max_pending_updates: int = 10_000,
        backoff_s: tuple[float, float] = (0.05, 5.0),
        hold_quiet_ticks_s: float = HOLD_S,
    ) -> None:
        self.exchange = exchange
        self.router = Router(max_updates=max_pending_updates, hold_s=hold_quiet_ticks_s)
        self.budget = TokenBucket(rate_limit_per_s, rate_limit_burst)
        self.backoff_s = backoff_s
        self.round_trips = LatencyStats(recent=1000)
        self._new_round_trips: list[float] = []
        self.calls: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.reconnects = 0
        self.subscriptions = 0
        self.halted: str | None = None  # why the streams stopped for good (a halting error)
        self.last_message_ms = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    # -- routes ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._pump(), name="connector")

    def add_route(self, symbol: str, sink: Sink) -> bool:
        """Deliver `symbol`'s events to `sink`; the streams are re-made to include it."""
        added = self.router.add(symbol, sink)
        if added:
            self._changed.set()
        return added

    async def remove_route(self, symbol: str) -> bool:
        removed = await self.router.remove(symbol)
        if removed:
            self._changed.set()
        return removed

    # -- REST --------------------------------------------------------------------------------
    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the exchange port method `name` under the shared budget, timed."""
        method: Callable[..., Awaitable[Any]] = getattr(self.exchange, name)
        await self.budget.take()
        started = time.perf_counter()
        self.calls[name] = self.calls.get(name, 0) + 1
        try:
            return await method(*args, **kwargs)
        except RateLimited as e:
            self.budget.block_for(e.retry_after_s or 1.0)  # the whole account backs off
            self.errors[type(e).__name__] = self.errors.get(type(e).__name__, 0) + 1
            raise
        except Exception as e:
            self.errors[type(e).__name__] = self.errors.get(type(e).__name__, 0) + 1
            raise
        finally:
            ms = (time.perf_counter() - started) * 1000
            self.round_trips.observe(ms)
            if len(self._new_round_trips) < 10_000:
                self._new_round_trips.append(ms)

    def take_round_trips(self) -> list[float]:
        """Round-trip samples (ms) since the previous call (for the latency guard)."""
        out, self._new_round_trips = self._new_round_trips, []
        return out

    # -- streams -----------------------------------------------------------------------------
    async def _pump(self) -> None:
        """Keep one price and one order subscription for the routed symbols; never dies.

        When the routed set changes, the new subscription is opened before the old one is
        closed (make before break, `HANDOVER_S` of overlap): nothing published in between is
        missed, and the overlap's duplicates are harmless (reports are idempotent). After a
        break there was a gap, so every route is asked to resync over REST.
        """
        failures = 0
        current: _Subscription | None = None
        try:
            while True:
                symbols = self.router.symbols
                self._changed.clear()
                if not symbols:
                    if current is not None:
                        await current.close()
                        current = None
                    await self._changed.wait()
                    continue
                fresh = self._open(symbols)
                if current is not None:
                    self._retire(current)
                elif failures:
                    self.router.resync_all()  # whatever the broken subscription missed
                current = fresh
                try:
                    await fresh.until(self._changed)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except OperationalError as e:  # the key revoked, ...: resubscribing cannot help
                    self.halted = f"{type(e).__name__}: {e}"
                    log.error("connector streams stopped, not resubscribing: %s", self.halted)
                    return
                except Exception as e:
                    await fresh.close()
                    current = None
                    failures += 1
                    self.reconnects += 1
                    log.warning("connector streams broke (%s); resubscribing", e)
                    await asyncio.sleep(jittered(self.backoff_s, failures))
        finally:
            if current is not None:
                await current.close()

    def _open(self, symbols: list[str]) -> _Subscription:
        self.subscriptions += 1
        prices = self.exchange.stream_prices(symbols)
        orders = self.exchange.stream_orders(symbols)
        return _Subscription(
            [prices, orders],
            [
                asyncio.create_task(self._read(prices, self._on_tick), name="prices"),
                asyncio.create_task(self._read(orders, self._on_update), name="orders"),
            ],
        )

    def _retire(self, old: _Subscription) -> None:
        async def later() -> None:
            await asyncio.sleep(HANDOVER_S)
            await old.close()

        task = asyncio.get_running_loop().create_task(later(), name="retire-subscription")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _read(self, stream: AsyncIterator[Any], handle: Callable[[Any], None]) -> None:
        async for item in stream:
            handle(item)
        raise StreamDisconnected("the stream ended")

    def _on_tick(self, tick: Any) -> None:
        now = time.time_ns()
        self.last_message_ms = now // 1_000_000
        self.router.tick(tick, now)

    def _on_update(self, report: Any) -> None:
        self.last_message_ms = time.time_ns() // 1_000_000
        self.router.update(report)

    # -- views -------------------------------------------------------------------------------
    def stream_health(self, stale_after_s: float) -> tuple[bool, str] | None:
        """(False, why) when the streams stopped for good or are silent while symbols are
        routed; None when they look fine (the exchange itself is asked separately)."""
        if self.halted is not None:
            return False, f"streams stopped: {self.halted}"
        age = self.last_message_age_s()
        if self.router.symbols and (age is None or age > stale_after_s):
            return False, f"streams silent for {age if age is not None else 'ever'} s"
        return None

    def last_message_age_s(self) -> float | None:
        if not self.last_message_ms:
            return None
        return (time.time_ns() // 1_000_000 - self.last_message_ms) / 1000

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.router.stats())
        out.update(
            exchange=self.exchange.name,
            reconnects=self.reconnects,
            halted=self.halted,
            subscriptions=self.subscriptions,
            last_message_age_s=self.last_message_age_s(),
            calls=dict(self.calls),
            errors=dict(self.errors),
            budget_waits=self.budget.waits,
            round_trip_ms=self.round_trips.to_dict(),
        )
        return out

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await self.router.close()
