"""Fan-out of one upstream stream to many gRPC clients, each with its own bounded buffer.

Owns: the upstream subscription of one stream kind (one for all clients) and one queue per
client. Must not: know gRPC (the server turns a `Subscriber` into a response stream).

- The upstream subscription covers the union of every client's symbols. A client asking for a
  symbol not yet covered makes the fan-out open a wider subscription *before* closing the old
  one (make before break). Existing clients stay on the old subscription for `handover_s`
  while the new one records what it delivers; then they move over and receive the recorded
  items that follow the last one they got (all of them if it is not found: a repeat, even of
  an older item, is allowed by the port; a gap is not). If the old subscription breaks before
  that, its clients are cut off (it may have lost items the new one never saw).
- Publishing never waits: a client whose buffer is full is cut off (`Subscriber.failure` says
  why) while everyone else carries on.
- When the upstream stream breaks, every client is cut off with `StreamDisconnected`: they may
  have missed updates and must resubscribe and catch up over the unary calls. The next
  subscription opens a fresh upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from mm.errors import ExchangeUnavailable, MMError, RateLimited, StreamDisconnected

log = logging.getLogger(__name__)

Open = Callable[[frozenset[str]], AsyncIterator[Any]]
_NOTHING = object()


class SlowConsumer(RateLimited):
    """This client did not read its stream fast enough; its buffer overflowed."""


class Subscriber:
    def __init__(self, symbols: frozenset[str], capacity: int) -> None:
        self.symbols = symbols  # empty: every symbol
        self.capacity = capacity
        self.items: deque[Any] = deque()
        self.failure: MMError | None = None
        self.closed = False
        self.upstream: _Upstream | None = None  # the subscription it is fed from
        self.last: Any = _NOTHING  # the last item given to it
        self._event = asyncio.Event()

    def wants(self, symbol: str | None) -> bool:
        return not self.symbols or symbol is None or symbol in self.symbols

    def put(self, item: Any) -> None:
        if self.failure is not None or self.closed:
            return
        if len(self.items) >= self.capacity:
            self.fail(SlowConsumer(f"stream buffer of {self.capacity} messages overflowed"))
            return
        self.items.append(item)
        self.last = item
        self._event.set()

    def fail(self, error: MMError) -> None:
        if self.failure is None:
            self.failure = error
            self.items.clear()
        self._event.set()

    def close(self) -> None:
        self.closed = True
        self._event.set()

    async def batches(self, max_batch: int) -> AsyncIterator[list[Any]]:
        """Everything queued since the last batch (at most `max_batch`); raises the failure."""
        while True:
            while not self.items and self.failure is None and not self.closed:
                self._event.clear()
                await self._event.wait()
            if self.failure is not None:
                raise self.failure
            if not self.items:  # closed and drained
                return
            n = min(len(self.items), max_batch)
            yield [self.items.popleft() for _ in range(n)]


class _Upstream:
    def __init__(self, symbols: frozenset[str], stream: AsyncIterator[Any], capacity: int) -> None:
        self.symbols = symbols
        self.stream = stream
        self.task: asyncio.Task[None] | None = None
        self.replay: deque[Any] | None = None  # recorded during a handover
        self.capacity = capacity

    def record(self, item: Any) -> None:
        if self.replay is not None:
            self.replay.append(item)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.stream.aclose()  # type: ignore[attr-defined]


class Fanout:
    def __init__(
        self,
        name: str,
        open_upstream: Open,
        symbol_of: Callable[[Any], str | None],
        *,
        capacity: int = 10_000,
        handover_s: float = 0.5,
        all_symbols: bool = False,
    ) -> None:
        self.name = name
        self._open = open_upstream
        self._symbol_of = symbol_of
        self.capacity = capacity
        self.handover_s = handover_s
        self.all_symbols = all_symbols  # the upstream takes no symbol list (account streams)
        self._subs: list[Subscriber] = []
        self._current: _Upstream | None = None
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()
        self.upstream_opens = 0
        self.published = 0
        self.cut_off = 0
        self.handovers = 0
        self.closed = False  # shutting down: no new subscriptions

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    async def subscribe(self, symbols: frozenset[str]) -> Subscriber:
        """A new client; returns once an upstream subscription covering `symbols` is open."""
        if self.closed:
            raise ExchangeUnavailable(f"the connector is shutting down ({self.name})")
        sub = Subscriber(symbols, self.capacity)
        async with self._lock:
            current = self._current
            covered = current is not None and (self.all_symbols or symbols <= current.symbols)
            if not covered:
                wanted = symbols | (current.symbols if current is not None else frozenset())
                self._current = self._start(wanted)
                if current is not None:
                    self._current.replay = deque(maxlen=self.capacity)
                    self._retire(current)
            sub.upstream = self._current
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        sub.close()
        with contextlib.suppress(ValueError):
            self._subs.remove(sub)

    def _start(self, symbols: frozenset[str]) -> _Upstream:
        self.upstream_opens += 1
        upstream = _Upstream(symbols, self._open(symbols), self.capacity)
        upstream.task = asyncio.get_running_loop().create_task(
            self._pump(upstream), name=f"fanout-{self.name}"
        )
        return upstream

    def _retire(self, old: _Upstream) -> None:
        async def later() -> None:
            await asyncio.sleep(self.handover_s)
            self._hand_over(old)
            await old.close()

        task = asyncio.get_running_loop().create_task(later(), name=f"retire-{self.name}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def _hand_over(self, old: _Upstream) -> None:
        """Move `old`'s clients to the current subscription, replaying what they have not seen."""
        new = self._current
        if new is None:
            return
        replay = list(new.replay or ())
        self.handovers += 1
        for sub in [s for s in self._subs if s.upstream is old]:
            sub.upstream = new
            start = next((i + 1 for i, item in enumerate(replay) if item == sub.last), 0)
            for item in replay[start:]:
                if sub.wants(self._symbol_of(item)):
                    self._give(sub, item)
        if not any(s.upstream is not new for s in self._subs):
            new.replay = None

    async def _pump(self, upstream: _Upstream) -> None:
        try:
            async for item in upstream.stream:
                self.publish(item, upstream)
            error: MMError = StreamDisconnected(f"upstream {self.name} stream ended")
        except asyncio.CancelledError:
            raise
        except MMError as e:
            error = e if isinstance(e, StreamDisconnected) else StreamDisconnected(str(e))
        except Exception as e:
            log.exception("upstream %s stream failed", self.name)
            error = StreamDisconnected(f"upstream {self.name} stream failed: {e}")
        if self._current is not upstream:  # a retired upstream broke before its handover:
            for sub in [s for s in self._subs if s.upstream is upstream]:  # it may have lost
                sub.fail(error)  # items the new one never saw, so its clients must resync
                self.cut_off += 1
                self._subs.remove(sub)
            return
        log.warning("upstream %s stream broke (%s): cutting off its clients", self.name, error)
        self._current = None
        for sub in self._subs:
            sub.fail(error)
            self.cut_off += 1
        self._subs.clear()

    def publish(self, item: Any, upstream: _Upstream | None = None) -> None:
        """Give `item` to every client fed from `upstream` (None: the current one)."""
        upstream = upstream or self._current
        if upstream is None:
            return
        self.published += 1
        upstream.record(item)
        symbol = self._symbol_of(item)
        for sub in list(self._subs):
            if sub.upstream is upstream and sub.wants(symbol):
                self._give(sub, item)

    def _give(self, sub: Subscriber, item: Any) -> None:
        sub.put(item)
        if sub.failure is not None:
            log.warning("stream %s: cutting off a slow client (%s)", self.name, sub.failure)
            self.cut_off += 1
            with contextlib.suppress(ValueError):
                self._subs.remove(sub)

    async def close(self) -> None:
        """End every client's stream normally (shutdown) and close the upstream."""
        self.closed = True
        for sub in self._subs:
            sub.close()
        self._subs.clear()
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        if self._current is not None:
            current, self._current = self._current, None
            await current.close()
