"""OrderFeed: one `watch_orders` reader per ccxt client, fanned out to every open order stream.

Owns: the reader task, the streams subscribed to it (a queue and the symbols each wants) and how
each one ends (closed, broken, or cut off for falling behind). Must not: know a venue or read an
order: the exchange hands in how to log in, how to wait for the next batch and how to convert.

Why one reader: ccxt.pro gives every caller of `watch_orders` the same Future (one per message
hash). With a reader per stream, closing a stream cancelled its reader, which cancelled that
shared Future, and the other stream's reader ended on the CancelledError without a word: a
make-before-break handover (the new stream opened, then the old one closed) left a dead stream.
Here closing a stream only removes its queue; the reader stops when the last stream goes, and
when it breaks (watchdog, disconnect) every stream ends with the error, so each driver
resubscribes and gap-fills.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mm.core.model import OrderReport
from mm.errors import StreamDisconnected

STREAM_QUEUE = 10_000  # order updates buffered per stream; a stream further behind is cut off
_CLOSED: Any = object()  # the end of a stream closed by us


@dataclass(eq=False)
class _Stream:
    """One order stream: an async iterator over its queue. Closing it (`aclose`, or cancelling
    a read, as for an async generator) leaves the feed, even if it was never read."""

    feed: OrderFeed
    wanted: frozenset[str]
    queue: asyncio.Queue[Any] = field(default_factory=lambda: asyncio.Queue(STREAM_QUEUE))
    ready: asyncio.Task[None] | None = None  # its markets loaded and the reader logged in
    done: bool = False

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> OrderReport:
        if self.done:
            raise StopAsyncIteration
        try:
            item = await self.queue.get()
        except BaseException:
            await self.aclose()
            raise
        if item is _CLOSED or isinstance(item, BaseException):
            await self.aclose()
            if isinstance(item, BaseException):
                raise item
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        if not self.done:
            self.done = True
            self.feed._leave(self)


class OrderFeed:
    def __init__(
        self,
        *,
        prepare: Callable[[Sequence[str]], Awaitable[None]],  # load these symbols' markets
        login: Callable[[], Awaitable[None]],  # the venue's login, before the first watch
        watch: Callable[[], Awaitable[list[dict[str, Any]]]],  # the next batch of ccxt orders
        symbol_of: Callable[[dict[str, Any]], str | None],  # our symbol of a ccxt order
        report: Callable[[dict[str, Any], str], OrderReport],  # a ccxt order, converted
    ) -> None:
        self._prepare = prepare
        self._login = login
        self._watch = watch
        self._symbol_of = symbol_of
        self._report = report
        self._streams: set[_Stream] = set()
        self._reader: asyncio.Task[None] | None = None
        self._logged_in: asyncio.Future[None] | None = None
        # streams not yet ready: the exchange's other calls wait for them, so an order placed
        # after `subscribe` returned is seen by the stream
        self.pending: set[asyncio.Task[None]] = set()

    def subscribe(self, symbols: Sequence[str]) -> AsyncIterator[OrderReport]:
        """A new stream of the updates of `symbols`' orders; the reader starts if it is not
        running. Idempotent in effect: another stream of the same symbols is one more queue."""
        loop = asyncio.get_running_loop()
        stream = _Stream(self, frozenset(symbols))
        self._streams.add(stream)
        if self._reader is None or self._logged_in is None:
            self._logged_in = loop.create_future()
            self._reader = loop.create_task(self._read(self._logged_in), name="ccxt-orders")
        stream.ready = loop.create_task(self._join(stream, self._logged_in), name="ccxt-join")
        self.pending.add(stream.ready)
        stream.ready.add_done_callback(self.pending.discard)
        return stream

    async def close(self) -> None:
        """Stops the reader; every open stream ends (its reader sees the iteration stop)."""
        tasks = [self._reader] if self._reader else []
        tasks += [s.ready for s in self._streams if s.ready is not None]
        self._reader = self._logged_in = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for stream in list(self._streams):
            self._end(stream, _CLOSED)

    # -- the reader ---------------------------------------------------------------------------
    async def _read(self, logged_in: asyncio.Future[None]) -> None:
        try:
            await self._login()
            logged_in.set_result(None)
            while True:
                for order in await self._watch():
                    self._dispatch(order)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if self._reader is asyncio.current_task():
                self._reader = self._logged_in = None  # the next stream starts a new reader
            for stream in list(self._streams):
                self._end(stream, e)
        finally:
            if not logged_in.done():
                logged_in.set_result(None)

    async def _join(self, stream: _Stream, logged_in: asyncio.Future[None]) -> None:
        try:
            await self._prepare(sorted(stream.wanted))
            await asyncio.shield(logged_in)  # shared by every stream joining this reader
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._end(stream, e)

    def _dispatch(self, order: dict[str, Any]) -> None:
        symbol = self._symbol_of(order)
        targets = [s for s in self._streams if symbol in s.wanted]
        if symbol is None or not targets:
            return
        report = self._report(order, symbol)  # once: it also notes fees and ids
        for stream in targets:
            try:
                stream.queue.put_nowait(report)
            except asyncio.QueueFull:
                behind = StreamDisconnected(f"orders: {STREAM_QUEUE} updates unread; resubscribe")
                self._end(stream, behind)

    # -- the streams --------------------------------------------------------------------------
    def _end(self, stream: _Stream, item: Any) -> None:
        """No more updates for `stream`: what it has queued, then `item` (an error or the end);
        a stream closed by us, or too far behind, skips what it has queued."""
        self._streams.discard(stream)
        if stream.ready is not None and stream.ready is not asyncio.current_task():
            stream.ready.cancel()
        if isinstance(item, BaseException):
            cause, item = item, copy.copy(item)  # one per stream: each raises its own
            item.__cause__ = cause.__cause__
        if item is _CLOSED or stream.queue.full():
            while not stream.queue.empty():
                stream.queue.get_nowait()
        stream.queue.put_nowait(item)

    def _leave(self, stream: _Stream) -> None:
        """A stream's reader stopped reading: forget it; the last one out stops the reader."""
        self._streams.discard(stream)
        if stream.ready is not None:
            stream.ready.cancel()
        if not self._streams and self._reader is not None:
            # cancels its wait inside ccxt, which nobody else shares (ccxt replaces a cancelled
            # Future with a fresh one for the next reader)
            self._reader.cancel()
            self._reader = self._logged_in = None
