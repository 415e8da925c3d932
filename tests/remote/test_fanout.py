"""Fan-out of one upstream stream to many clients: handover without gaps, slow clients, breaks.

Upstreams here are queues the test feeds by hand, so the order in which the old and the new
subscription see items is chosen exactly (a real venue may deliver to either first).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.remote.fanout import Fanout, SlowConsumer, Subscriber
from mm.errors import ExchangeUnavailable, StreamDisconnected
from tests.helpers import eventually, run


class Upstreams:
    """Each `open` is a new upstream subscription fed through its own queue."""

    def __init__(self) -> None:
        self.queues: list[asyncio.Queue[Any]] = []
        self.symbols: list[frozenset[str]] = []

    def open(self, symbols: frozenset[str]) -> AsyncIterator[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self.queues.append(queue)
        self.symbols.append(symbols)

        async def stream() -> AsyncIterator[Any]:
            while True:
                item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                yield item

        return stream()

    def feed(self, index: int, *items: Any) -> None:
        for item in items:
            self.queues[index].put_nowait(item)


def symbol_of(item: tuple[str, int]) -> str:
    return item[0]


async def drain(sub: Subscriber, n: int) -> list[Any]:
    out: list[Any] = []
    async for batch in sub.batches(100):
        out += batch
        if len(out) >= n:
            return out
    return out


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("old_saw", "new_saw", "after_handover"),
    [
        # the new subscription is ahead: the client gets what it missed, once
        ([1, 2], [1, 2, 3, 4], [3, 4]),
        # the last item the client saw is not (yet) on the new one: replay all of it, since
        # "behind" and "never saw it" look the same - repeats are allowed, a gap is not
        ([1, 2, 3], [1, 2], [1, 2]),
        ([0], [1, 2], [1, 2]),
    ],
)
def test_a_widened_subscription_hands_clients_over_without_a_gap(old_saw, new_saw, after_handover):
    async def scenario() -> None:
        ups = Upstreams()
        fanout = Fanout("t", ups.open, symbol_of, handover_s=0.05)
        early = await fanout.subscribe(frozenset({"A"}))
        late = await fanout.subscribe(frozenset({"A", "B"}))  # widens: a second upstream
        assert ups.symbols == [frozenset({"A"}), frozenset({"A", "B"})]
        ups.feed(0, *[("A", i) for i in old_saw])
        ups.feed(1, *[("A", i) for i in new_saw], ("B", 99))
        assert await drain(early, len(old_saw)) == [("A", i) for i in old_saw]
        assert await drain(late, len(new_saw) + 1) == [("A", i) for i in new_saw] + [("B", 99)]
        await eventually(lambda: fanout.handovers == 1, what="the handover")
        if after_handover:
            assert await drain(early, len(after_handover)) == [("A", i) for i in after_handover]
        assert list(early.items) == []  # ("B", 99) is not for it
        ups.feed(1, ("A", 100))
        assert await drain(early, 1) == [("A", 100)]
        assert await drain(late, 1) == [("A", 100)]
        await fanout.close()

    run(scenario())


def test_a_covered_subscription_reuses_the_upstream():
    async def scenario() -> None:
        ups = Upstreams()
        fanout = Fanout("t", ups.open, symbol_of)
        await fanout.subscribe(frozenset({"A", "B"}))
        await fanout.subscribe(frozenset({"B"}))
        assert len(ups.queues) == 1
        await fanout.close()

    run(scenario())


def test_a_client_that_falls_behind_is_cut_off_and_the_others_keep_everything():
    async def scenario() -> None:
        ups = Upstreams()
        fanout = Fanout("t", ups.open, symbol_of, capacity=10)
        slow = await fanout.subscribe(frozenset({"A"}))
        fast = await fanout.subscribe(frozenset({"A"}))
        got: list[Any] = []

        async def read_fast() -> None:
            got.extend(await drain(fast, 50))

        reader = asyncio.create_task(read_fast())
        for i in range(50):
            ups.feed(0, ("A", i))
            await settle()  # the fast reader keeps up; nobody reads `slow`
        await asyncio.wait_for(reader, 5)
        assert got == [("A", i) for i in range(50)]
        assert isinstance(slow.failure, SlowConsumer) and fanout.cut_off == 1
        with pytest.raises(SlowConsumer):
            await drain(slow, 1)
        assert fanout.subscribers == 1
        await fanout.close()

    run(scenario())


def test_an_upstream_break_cuts_every_client_off_and_the_next_subscription_reopens():
    async def scenario() -> None:
        ups = Upstreams()
        fanout = Fanout("t", ups.open, symbol_of)
        subs = [await fanout.subscribe(frozenset({"A"})) for _ in range(2)]
        ups.feed(0, ("A", 1), StreamDisconnected("venue closed the socket"))
        for sub in subs:
            with pytest.raises(StreamDisconnected):
                await drain(sub, 2)  # the item before the break may or may not be read first
        assert fanout.subscribers == 0
        again = await fanout.subscribe(frozenset({"A"}))
        assert len(ups.queues) == 2  # a fresh upstream subscription
        ups.feed(1, ("A", 2))
        assert await drain(again, 1) == [("A", 2)]
        await fanout.close()

    run(scenario())


def test_close_ends_client_streams_normally():
    async def scenario() -> None:
        ups = Upstreams()
        fanout = Fanout("t", ups.open, symbol_of)
        sub = await fanout.subscribe(frozenset({"A"}))
        ups.feed(0, ("A", 1))
        await settle()
        await fanout.close()
        assert await drain(sub, 5) == [("A", 1)]  # what was queued, then the end

    run(scenario())


def test_a_retired_upstream_that_breaks_before_the_handover_makes_its_clients_resync():
    async def scenario() -> None:
        ups = Upstreams()
        fanout = Fanout("t", ups.open, symbol_of, handover_s=60)
        early = await fanout.subscribe(frozenset({"A"}))
        late = await fanout.subscribe(frozenset({"A", "B"}))
        ups.feed(0, StreamDisconnected("old socket closed"))  # items may be lost with it
        with pytest.raises(StreamDisconnected):
            await drain(early, 1)
        ups.feed(1, ("A", 1))
        assert await drain(late, 1) == [("A", 1)]  # the new subscription is unaffected
        await fanout.close()

    run(scenario())


def test_no_subscription_is_taken_once_closing():
    async def scenario() -> None:
        fanout = Fanout("t", Upstreams().open, symbol_of)
        await fanout.close()
        with pytest.raises(ExchangeUnavailable):
            await fanout.subscribe(frozenset({"A"}))

    run(scenario())
