"""Streams of the simulated venue: every order state change in order, ticks, and stream faults."""

import asyncio
import itertools
from decimal import Decimal as D

import numpy as np
import pytest

from connectors.simulated import markets
from connectors.simulated.exchange import SimConfig, SimulatedExchange
from connectors.simulated.faults import FaultConfig
from connectors.simulated.feeds import Candles, candle_path
from mm.engine.clock import SystemClock, VirtualClock
from mm.errors import StreamDisconnected
from tests.connectors.venue import (
    BUY,
    CANCELED,
    FILLED,
    MINUTE,
    OPEN,
    PERP,
    SPOT,
    T0,
    request,
    venue,
)
from tests.helpers import run


# -- streams -------------------------------------------------------------------------------------
async def take(stream, n, timeout_s=2.0):
    return [await asyncio.wait_for(anext(stream), timeout_s) for _ in range(n)]


async def aplace(ex, cid, price="9900", qty="0.01"):
    return await ex.place_order(request(cid, BUY, price, qty))


async def drain(stream):
    return [item async for item in stream]


def summary(reports):
    return [(r.client_id, r.status) for r in reports]


def test_order_stream_delivers_every_state_change_in_order(sim):
    async def scenario():
        stream = sim.stream_orders([SPOT])
        await aplace(sim, "a")
        await aplace(sim, "b", "9800")
        sim.set_price(SPOT, D("9900"))
        await sim.cancel_order(SPOT, "b")
        await sim.place_order(request("p", BUY, "9000", "0.01", PERP))  # other symbol
        await aplace(sim, "c", "9700")
        assert summary(await take(stream, 5)) == [
            ("a", OPEN),
            ("b", OPEN),
            ("a", FILLED),
            ("b", CANCELED),
            ("c", OPEN),
        ]
        await sim.close()

    run(scenario())


def test_stream_fault_drop_never_delivers_the_update(sim):
    async def scenario():
        stream = sim.stream_orders([SPOT])
        sim.faults.inject("order_update", "drop")
        await aplace(sim, "a")
        await aplace(sim, "b")
        assert summary(await take(stream, 1)) == [("b", OPEN)]
        assert sim.faults.fired["drop"] == 1
        assert (await sim.fetch_order(SPOT, "a")).status is OPEN  # only the update was lost
        await sim.close()

    run(scenario())


def test_stream_fault_duplicate_delivers_the_update_twice(sim):
    async def scenario():
        stream = sim.stream_orders([SPOT])
        sim.faults.inject("order_update", "duplicate")
        await aplace(sim, "a")
        await aplace(sim, "b")
        assert summary(await take(stream, 3)) == [("a", OPEN), ("a", OPEN), ("b", OPEN)]
        await sim.close()

    run(scenario())


def test_stream_fault_reorder_delivers_the_update_after_the_next_one(sim):
    async def scenario():
        stream = sim.stream_orders([SPOT])
        sim.faults.inject("order_update", "reorder")
        await aplace(sim, "a")
        await aplace(sim, "b")
        await aplace(sim, "c")
        assert summary(await take(stream, 3)) == [("b", OPEN), ("a", OPEN), ("c", OPEN)]
        await sim.close()

    run(scenario())


def test_a_held_back_update_is_released_by_the_next_tick(sim):
    async def scenario():
        stream = sim.stream_orders([SPOT])
        sim.faults.inject("order_update", "reorder")
        await aplace(sim, "a")
        sim.set_price(SPOT, D("10001"))
        assert summary(await take(stream, 1)) == [("a", OPEN)]
        await sim.close()

    run(scenario())


def test_stream_fault_disconnect_breaks_the_stream(sim):
    async def scenario():
        stream = sim.stream_orders([SPOT])
        await aplace(sim, "a")
        sim.faults.inject("order_update", "disconnect")
        await aplace(sim, "b")
        assert summary(await take(stream, 1)) == [("a", OPEN)]
        with pytest.raises(StreamDisconnected):
            await take(stream, 1)
        assert (await sim.fetch_order(SPOT, "b")).status is OPEN  # the order itself is fine
        again = sim.stream_orders([SPOT])
        await sim.cancel_order(SPOT, "b")
        assert summary(await take(again, 1)) == [("b", CANCELED)]
        await sim.close()

    run(scenario())


def test_disconnect_after_messages(clock):
    sim = venue(clock, faults=FaultConfig(disconnect_after_messages=2))

    async def scenario():
        stream = sim.stream_orders([SPOT])
        for cid in "abc":
            await aplace(sim, cid)
        assert summary(await take(stream, 2)) == [("a", OPEN), ("b", OPEN)]
        with pytest.raises(StreamDisconnected):
            await take(stream, 1)
        await sim.close()

    run(scenario())


def replay_path(*prices):
    """One candle whose four path points are `prices` (ticks of 0.01), for a replayed feed."""
    o, a, b, c = (int(D(p) * 100) for p in prices)
    high, low = max(prices, key=D), min(prices, key=D)
    arr = lambda v: np.array([v], dtype=np.int64)  # noqa: E731
    candles = Candles(
        arr(T0), arr(o), arr(int(D(high) * 100)), arr(int(D(low) * 100)), arr(c), arr(0), MINUTE
    )
    path = candle_path(candles)
    assert [int(p) for p in path.price] == [o, a, b, c]
    return path


def test_stream_prices_delivers_ticks_after_set_price_and_step(clock):
    sim = venue(clock, replay={"BTCUSDT": replay_path("10000", "9990", "10020", "10010")})

    async def scenario():
        stream = sim.stream_prices([SPOT])
        perp = sim.stream_prices([PERP])
        sim.set_price(SPOT, D("10005"))
        for _ in range(4):
            clock.advance(1000)
            sim.step()
        sim.step()  # the replayed file is exhausted: nothing new for BTC
        clock.advance(1000)
        sim.set_price(SPOT, D("9999.99"))
        ticks = await take(stream, 6)
        assert [(t.symbol, t.price) for t in ticks] == [
            (SPOT, D("10005")),
            (SPOT, D("10000")),
            (SPOT, D("9990")),
            (SPOT, D("10020")),
            (SPOT, D("10010")),
            (SPOT, D("9999.99")),
        ]
        assert [t.ts_ms for t in ticks] == [T0, *(T0 + k * 1000 for k in (1, 2, 3, 4, 5))]
        assert [t.price for t in await take(perp, 2)] == [D("10005"), D("10000")]
        await sim.close()

    run(scenario())


@pytest.mark.timeout(30)
def test_start_runs_the_live_feed_on_the_system_clock():
    config = dict(start_prices={"BTCUSDT": D("10000")}, seed=5, volatility=0.01)
    live = SimulatedExchange(SimConfig(tick_interval_ms=5, **config), SystemClock())
    stepped = SimulatedExchange(SimConfig(**config), VirtualClock(T0))
    expected = []
    for _ in range(4):
        stepped.step()
        expected.append(stepped.last_price(SPOT))

    async def scenario():
        stream = live.stream_prices([SPOT])
        live.start()
        ticks = await take(stream, 4, timeout_s=10)
        assert [t.price for t in ticks] == expected
        assert all(a.ts_ms <= b.ts_ms for a, b in itertools.pairwise(ticks))
        assert (await live.check_health()).ok
        await live.close()
        assert not (await live.check_health()).ok
        await asyncio.wait_for(drain(stream), 5)  # close ends the streams

    run(scenario())


@pytest.mark.parametrize("spread", [True, False])
def test_live_feed_moves_markets_at_their_own_offsets_within_an_interval(spread):
    """Spread feeds: market i moves in slot i mod 5 of each 10 ms interval (slots 2 ms apart),
    each market once per interval; not spread: every market in the same instant."""
    bases = list(markets.SYMBOLS)
    sim = SimulatedExchange(
        SimConfig(tick_interval_ms=10, spread_feeds=spread, seed=3), VirtualClock(T0)
    )
    slots = 5 if spread else 1
    assert sim.feed_groups() == [bases[k::slots] for k in range(slots)]

    async def scenario():
        stream = sim.stream_prices(bases)
        sim.start()
        ticks = []
        async with asyncio.timeout(5):
            async for tick in stream:  # drained at each wake: the feed runs as fast as it can
                ticks.append(tick)
                if len(ticks) == 2 * len(bases):
                    break
        await sim.close()
        for i, base in enumerate(bases):
            seen = [t.ts_ms for t in ticks if t.symbol == base]
            first = T0 + (2 * (i % 5 + 1) if spread else 10)
            assert seen == [first, first + 10], base

    run(scenario())


async def live_tick_times(sim, n):
    """Run `sim`'s live feed until it published `n` ticks of SPOT: their times from T0."""
    stream = sim.stream_prices([SPOT])
    sim.start()
    ticks = await take(stream, n, timeout_s=5)
    await sim.close()
    return [t.ts_ms - T0 for t in ticks]


def test_live_feed_keeps_its_pace_and_resumes_after_a_stall_without_a_burst():
    """Steps are paced by deadlines (the time a step takes is not added on); after a stall of
    more than an interval the feed resumes from now instead of catching up in a burst."""
    clock = VirtualClock(T0)
    sim = SimulatedExchange(SimConfig(tick_interval_ms=10, spread_feeds=False, seed=3), clock)
    step, calls = sim.step, []

    def slow_step(bases=None):
        step(bases)
        calls.append(clock.now_ms())
        clock.advance(4 if len(calls) != 2 else 35)  # each step takes 4 ms, the 2nd 35 ms

    sim.step = slow_step

    async def scenario():
        ticks = await live_tick_times(sim, 6)
        assert ticks == [10, 20, 55, 65, 75, 85]  # not 55, 55, 55, 60 (a burst to catch up)

    run(scenario())


def test_live_feed_keeps_going_when_the_wall_clock_is_stepped_back():
    """The system clock is wall time; NTP can step it back. The feed resumes from the new now
    instead of going silent for the length of the step."""
    clock = VirtualClock(T0)
    sim = SimulatedExchange(SimConfig(tick_interval_ms=10, spread_feeds=False, seed=3), clock)
    step, slept = sim.step, []

    def stepped_back_after_the_2nd_step(bases=None):
        step(bases)
        slept.append(clock.now_ms())
        if len(slept) == 2:
            clock._now_ms -= 60_000  # VirtualClock.set never moves back; the wall clock can

    sim.step = stepped_back_after_the_2nd_step
    longest = []
    sleep = clock.sleep

    async def recorded_sleep(seconds):
        longest.append(seconds)
        await sleep(seconds)

    clock.sleep = recorded_sleep

    async def scenario():
        ticks = await live_tick_times(sim, 5)
        assert ticks == [10, 20, -59_980, -59_970, -59_960]
        assert max(longest) <= 0.010  # never longer than an interval

    run(scenario())
