"""OrderFeed (connectors/ccxt/order_feed.py) with hand-written fakes for ccxt: one reader shared
by every order stream, how streams end, and when the reader starts and stops."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from connectors.ccxt.order_feed import STREAM_QUEUE, OrderFeed
from mm.errors import ExchangeUnavailable, StreamDisconnected
from tests.helpers import eventually

TIMEOUT_S = 10.0


class FakeVenue:
    """Stands in for the exchange's ccxt side: `push` a batch, the reader's `watch` returns it."""

    def __init__(self) -> None:
        self.batches: asyncio.Queue[list[dict[str, Any]] | Exception] = asyncio.Queue()
        self.logins = 0
        self.watching = 0  # reader calls waiting for a batch right now

    async def prepare(self, symbols: Sequence[str]) -> None:
        return None

    async def login(self) -> None:
        self.logins += 1

    async def watch(self) -> list[dict[str, Any]]:
        self.watching += 1
        try:
            await asyncio.sleep(0)  # a socket read yields to the loop even when data is there
            batch = await self.batches.get()
        finally:
            self.watching -= 1
        if isinstance(batch, Exception):
            raise batch
        return batch

    def feed(self) -> OrderFeed:
        return OrderFeed(
            prepare=self.prepare,
            login=self.login,
            watch=self.watch,
            symbol_of=lambda order: order["symbol"],
            report=lambda order, symbol: order,  # type: ignore[arg-type,return-value]
        )


def run(scenario: Callable[[FakeVenue, OrderFeed], Awaitable[None]]) -> None:
    async def main() -> None:
        venue = FakeVenue()
        feed = venue.feed()
        try:
            await scenario(venue, feed)
        finally:
            await feed.close()

    asyncio.run(main())


def order(n: int, symbol: str = "BTCUSDT") -> dict[str, Any]:
    return {"symbol": symbol, "n": n}


def test_every_stream_gets_the_updates_of_its_symbols_from_one_reader() -> None:
    async def scenario(venue: FakeVenue, feed: OrderFeed) -> None:
        btc, both = feed.subscribe(["BTCUSDT"]), feed.subscribe(["BTCUSDT", "ETHUSDT"])
        await venue.batches.put([order(1), order(2, "ETHUSDT")])
        assert await anext(btc) == order(1)
        assert [await anext(both), await anext(both)] == [order(1), order(2, "ETHUSDT")]
        assert venue.logins == 1

    run(scenario)


def test_the_last_stream_out_stops_the_reader_and_the_next_one_starts_another() -> None:
    async def scenario(venue: FakeVenue, feed: OrderFeed) -> None:
        first = feed.subscribe(["BTCUSDT"])
        await eventually(lambda: venue.watching == 1, TIMEOUT_S, "the reader to wait")
        await first.aclose()  # type: ignore[attr-defined]
        await eventually(lambda: venue.watching == 0, TIMEOUT_S, "the reader to stop")
        second = feed.subscribe(["BTCUSDT"])
        await venue.batches.put([order(1)])
        assert await anext(second) == order(1)
        assert venue.logins == 2

    run(scenario)


def test_a_broken_reader_ends_every_stream_with_the_error_after_what_it_delivered() -> None:
    async def scenario(venue: FakeVenue, feed: OrderFeed) -> None:
        a, b = feed.subscribe(["BTCUSDT"]), feed.subscribe(["BTCUSDT"])
        await venue.batches.put([order(1)])
        await venue.batches.put(StreamDisconnected("orders: no message for 120s"))
        for stream in (a, b):
            assert await anext(stream) == order(1)
            with pytest.raises(StreamDisconnected, match="no message"):
                await anext(stream)
        c = feed.subscribe(["BTCUSDT"])  # a new reader
        await venue.batches.put([order(2)])
        assert await anext(c) == order(2)

    run(scenario)


def test_a_stream_too_far_behind_is_cut_off_and_the_others_go_on() -> None:
    async def scenario(venue: FakeVenue, feed: OrderFeed) -> None:
        idle, busy = feed.subscribe(["BTCUSDT"]), feed.subscribe(["BTCUSDT"])
        got = []

        async def read() -> None:
            async for item in busy:
                got.append(item)

        reader = asyncio.ensure_future(read())
        try:
            for n in range(STREAM_QUEUE + 1):
                venue.batches.put_nowait([order(n)])
            await eventually(lambda: len(got) == STREAM_QUEUE + 1, TIMEOUT_S, "every update")
            with pytest.raises(StreamDisconnected, match="unread"):
                await anext(idle)  # what it had queued is gone: it must resubscribe
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    run(scenario)


def test_a_failed_login_ends_the_streams_waiting_for_it() -> None:
    async def scenario(venue: FakeVenue, feed: OrderFeed) -> None:
        async def refused() -> None:
            raise ExchangeUnavailable("login: 503")

        feed._login = refused
        stream = feed.subscribe(["BTCUSDT"])
        with pytest.raises(ExchangeUnavailable, match="503"):
            await anext(stream)
        await eventually(lambda: not feed.pending, TIMEOUT_S, "nothing left to wait for")

    run(scenario)


def test_close_ends_every_stream() -> None:
    async def scenario(venue: FakeVenue, feed: OrderFeed) -> None:
        stream = feed.subscribe(["BTCUSDT"])
        await eventually(lambda: venue.watching == 1, TIMEOUT_S, "the reader to wait")
        await feed.close()
        assert [item async for item in stream] == []

    run(scenario)
