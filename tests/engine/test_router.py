"""Router and Mailbox: conflated ticks, ordered lossless updates, isolation between symbols."""

import asyncio
import time
from decimal import Decimal as D

from mm.core.model import OrderReport, OrderStatus, PriceTick, Side
from mm.core.quiet import ANY, QuietBox
from mm.engine.router import MAX_BATCH, Router
from tests.helpers import eventually, run

BTC, ETH = "BTCUSDT", "ETHUSDT"


def tick(price, symbol=BTC):
    return PriceTick(symbol, D(price), 0)


def update(n, symbol=BTC):
    return OrderReport(symbol, f"c{n}", Side.BUY, D("100"), D("1"), OrderStatus.OPEN, ts_ms=n)


class Sink:
    """Records every delivery; blocks while `gate` is clear; raises while `fail` is set."""

    def __init__(self, *, open_gate=True):
        self.deliveries = []
        self.gate = asyncio.Event()
        self.entered = 0  # calls started (including ones still blocked or failed)
        self.fail = 0  # raise on this many upcoming calls
        self.on_enter = None
        self.answer = None  # what the receiver answers (a QuietBox: ticks it need not see)
        if open_gate:
            self.gate.set()

    async def __call__(self, delivery):
        self.entered += 1
        if self.on_enter is not None:
            self.on_enter(delivery)
        await self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise ConnectionError("receiver restarting")
        self.deliveries.append(delivery)
        return self.answer

    @property
    def updates(self):
        return [u.client_id for d in self.deliveries for u in d.updates]

    @property
    def ticks(self):
        return [d.tick.price for d in self.deliveries if d.tick is not None]


def test_ticks_pending_behind_a_blocked_sink_are_conflated_to_the_newest():
    async def scenario():
        router, sink = Router(), Sink(open_gate=False)
        router.add(BTC, sink)
        router.tick(tick("100"))
        await eventually(lambda: sink.entered == 1, what="first delivery in the sink")
        for n in range(1, 101):
            router.tick(tick(100 + n))
        box = router.mailbox(BTC)
        assert box.pending_ticks == 1
        sink.gate.set()
        await eventually(lambda: len(sink.deliveries) == 2, what="the delivery after the block")
        stats = router.stats()
        await router.close()
        return sink, box, stats

    sink, box, stats = run(scenario())
    assert sink.ticks == [D("100"), D("200")]  # only the newest of the 100 pending ticks
    assert box.conflated == 99 and box.delivered_ticks == 2
    assert stats["ticks_conflated"] == 99 and stats["ticks_in"] == 101


def test_order_updates_arrive_in_order_and_none_is_lost_behind_a_slow_sink():
    async def scenario():
        router = Router()
        seen = []

        async def slow(delivery):
            seen.append(delivery)
            for _ in range(5):  # a receiver that takes several loop turns per batch
                await asyncio.sleep(0)

        router.add(BTC, slow)
        n = 0
        for burst in range(40):
            for _ in range(burst * 7 % 60 + 1):
                router.update(update(n))
                n += 1
            router.tick(tick(1000 + burst))
            await asyncio.sleep(0)
        big = range(n, n + 3 * MAX_BATCH)  # more than one batch pending at once
        for i in big:
            router.update(update(i))
        n += len(big)
        await eventually(
            lambda: sum(len(d.updates) for d in seen) == n, what="every update delivered"
        )
        await router.close()
        return seen, n

    seen, n = run(scenario())
    assert [u.client_id for d in seen for u in d.updates] == [f"c{i}" for i in range(n)]
    assert [d.seq for d in seen] == list(range(1, len(seen) + 1))
    assert max(len(d.updates) for d in seen) == MAX_BATCH  # batches are bounded
    assert len(seen) < n  # batched: fewer deliveries than updates


def test_at_most_one_delivery_is_in_flight_per_symbol():
    async def scenario():
        router = Router()
        active, peak, calls = [0], [0], [0]

        async def sink(delivery):
            active[0] += 1
            calls[0] += 1
            peak[0] = max(peak[0], active[0])
            for _ in range(3):
                await asyncio.sleep(0)
                router.update(update(calls[0] * 10))  # more work arrives mid-delivery
                router.tick(tick(calls[0]))
            active[0] -= 1

        router.add(BTC, sink)
        router.tick(tick("1"))
        await eventually(lambda: calls[0] >= 50, what="many deliveries")
        await router.close()
        return peak[0]

    assert run(scenario()) == 1


def test_a_blocked_symbol_does_not_delay_another_symbols_deliveries():
    async def scenario():
        router = Router()
        stuck, free = Sink(open_gate=False), Sink()
        router.add(BTC, stuck)
        router.add(ETH, free)
        router.update(update(0, BTC))
        await eventually(lambda: stuck.entered == 1, what="BTC blocked in its sink")
        for n in range(20):
            router.update(update(n, BTC))
            router.update(update(n, ETH))
            router.tick(tick(1000 + n, ETH))
            await eventually(lambda n=n: f"c{n}" in free.updates, what=f"ETH update {n}")
        assert router.mailbox(BTC).in_flight and stuck.deliveries == []
        assert router.mailbox(BTC).pending_updates == 20  # kept for BTC, not lost
        await router.close()
        return free

    free = run(scenario())
    assert free.updates == [f"c{n}" for n in range(20)]
    assert free.ticks[-1] == D("1019")


def test_first_delivery_of_a_new_route_is_a_resync_and_later_ones_are_not():
    async def scenario():
        router, sink = Router(), Sink()
        assert router.add(BTC, sink) is True
        assert router.add(BTC, Sink()) is False  # idempotent: the route keeps its sink
        router.tick(tick("1"))
        await eventually(lambda: len(sink.deliveries) == 1)
        router.tick(tick("2"))
        await eventually(lambda: len(sink.deliveries) == 2)
        await router.close()
        return sink

    sink = run(scenario())
    assert [(d.seq, d.resync, d.tick.price) for d in sink.deliveries] == [
        (1, True, D("1")),
        (2, False, D("2")),
    ]


def test_overflow_clears_pending_updates_and_the_next_delivery_resyncs():
    async def scenario():
        router, sink = Router(max_updates=10), Sink()
        router.add(BTC, sink)
        router.tick(tick("1"))
        await eventually(lambda: len(sink.deliveries) == 1, what="the route's first resync")
        sink.gate.clear()
        router.tick(tick("2"))
        await eventually(lambda: sink.entered == 2, what="second delivery blocked")
        box = router.mailbox(BTC)
        peak = 0
        for n in range(25):
            router.update(update(n))
            peak = max(peak, box.pending_updates)
        sink.gate.set()
        await eventually(lambda: len(sink.deliveries) == 3, what="delivery after the overflow")
        await router.close()
        return sink, box, peak

    sink, box, peak = run(scenario())
    assert peak == 10  # bounded
    assert box.overflows == 2  # at the 11th and the 21st pending update
    second, third = sink.deliveries[1:]
    assert second.resync is False
    assert third.resync is True  # the receiver must reconcile: updates were discarded
    assert [u.client_id for u in third.updates] == [f"c{n}" for n in range(20, 25)]


def test_a_failed_delivery_is_retried_in_front_of_newer_updates_with_resync():
    async def scenario():
        router, sink = Router(), Sink()
        router.add(BTC, sink)
        router.tick(tick("1"))
        await eventually(lambda: len(sink.deliveries) == 1)
        sink.fail = 1

        def during_failing_call(delivery):
            if sink.fail:  # newer events arrive while the receiver is failing
                router.update(update(3))
                router.tick(tick("3"))

        sink.on_enter = during_failing_call
        router.update(update(1))
        router.update(update(2))
        router.tick(tick("2"))
        await eventually(lambda: len(sink.deliveries) == 2, what="the retried delivery")
        stats = router.stats()
        await router.close()
        return sink, stats

    sink, stats = run(scenario())
    retried = sink.deliveries[1]
    assert [u.client_id for u in retried.updates] == ["c1", "c2", "c3"]
    assert retried.resync is True
    assert retried.tick.price == D("3")  # the failed one's tick was superseded
    assert sink.entered == 3
    box = stats["symbols"][BTC]
    assert box["failures"] == 1 and box["delivered_updates"] == 3 and box["pending_updates"] == 0


def test_events_for_unrouted_symbols_are_counted_and_ignored():
    async def scenario():
        router, sink = Router(), Sink()
        router.add(BTC, sink)
        router.tick(tick("1", ETH))
        router.update(update(1, ETH))
        router.tick(tick("2"))
        await eventually(lambda: len(sink.deliveries) == 1)
        await router.close()
        return router, sink

    router, sink = run(scenario())
    assert router.unrouted == 2
    assert router.ticks_in == 2 and router.updates_in == 1
    assert sink.deliveries[0].tick.symbol == BTC and sink.updates == []


def test_remove_stops_deliveries_and_cancels_one_in_flight():
    async def scenario():
        router, sink = Router(), Sink(open_gate=False)
        router.add(BTC, sink)
        router.update(update(1))
        await eventually(lambda: sink.entered == 1, what="delivery blocked in the sink")
        assert await router.remove(BTC) is True
        assert await router.remove(BTC) is False
        sink.gate.set()
        router.update(update(2))
        router.tick(tick("2"))
        other = Sink()
        router.add(ETH, other)  # the loop keeps running: a later route is served
        router.tick(tick("5", ETH))
        await eventually(lambda: len(other.deliveries) == 1)
        await router.close()
        return router, sink

    router, sink = run(scenario())
    assert sink.entered == 1 and sink.deliveries == []
    assert router.symbols == []
    assert router.unrouted == 2


# -- quiet boxes: ticks that cannot change the receiver's decision do not wake it ---------------
QUIET = QuietBox(D("99"), D("101"), None, ANY, 2**62)


async def quiet_route(hold_s=5.0):
    """A route whose receiver answered its first delivery (tick 100) with QUIET."""
    router, sink = Router(hold_s=hold_s), Sink()
    sink.answer = QUIET
    router.add(BTC, sink)
    router.tick(tick("100"))
    await eventually(lambda: router.mailbox(BTC).gate == QUIET, what="the receiver's box")
    return router, sink, router.mailbox(BTC)


async def one_turn():
    for _ in range(5):  # let the delivery task run, if it were woken
        await asyncio.sleep(0)


def test_ticks_inside_the_box_wait_and_the_first_one_outside_goes_at_once():
    async def scenario():
        router, sink, box = await quiet_route()
        for price in ("100.5", "99.5", "100.7"):
            router.tick(tick(price))
        await one_turn()
        assert sink.ticks == [D("100")] and box.held == 3 and box.pending_ticks == 1
        router.tick(tick("101"))  # on the edge: outside the open interval
        await eventually(lambda: len(sink.deliveries) == 2, what="the tick outside the box")
        assert sink.ticks == [D("100"), D("101")] and box.conflated == 3
        await router.close()

    run(scenario())


def test_a_held_tick_goes_with_the_next_order_update_or_a_new_box():
    async def scenario():
        router, sink, box = await quiet_route()
        router.tick(tick("100.5"))
        router.update(update(1))
        await eventually(lambda: len(sink.deliveries) == 2, what="the update")
        assert sink.deliveries[1].tick.price == D("100.5") and sink.updates == ["c1"]
        router.tick(tick("100.6"))
        await one_turn()
        assert len(sink.deliveries) == 2
        box.set_gate(None)  # the receiver's state changed: every tick may matter again
        await eventually(lambda: len(sink.deliveries) == 3, what="the held tick")
        assert sink.ticks[-1] == D("100.6")
        await router.close()

    run(scenario())


def test_a_held_tick_goes_hold_s_after_the_last_delivery():
    async def scenario():
        router, sink, box = await quiet_route(hold_s=0.3)
        sent = time.monotonic()
        router.tick(tick("100.5"))
        await eventually(lambda: len(sink.deliveries) == 2, what="the held tick")
        assert time.monotonic() - sent >= 0.25  # held, not sent at once ...
        assert box.held == 1  # ... and delivered although it is inside the box
        await router.close()

    run(scenario())


def test_a_box_past_its_time_holds_nothing_and_each_delivery_clears_it():
    async def scenario():
        router, sink, box = await quiet_route()
        box.set_gate(QuietBox(D("99"), D("101"), None, ANY, time.time_ns() // 1_000_000 - 1))
        router.tick(tick("100.5"))  # a reject back-off ended: the receiver must decide again
        await eventually(lambda: len(sink.deliveries) == 2, what="the tick after the horizon")
        sink.answer = None  # this receiver now says nothing about quiet ticks
        box.set_gate(QUIET)
        router.update(update(1))
        await eventually(lambda: len(sink.deliveries) == 3, what="the update")
        assert box.gate is None
        router.tick(tick("100.6"))
        await eventually(lambda: len(sink.deliveries) == 4, what="an ungated tick")
        await router.close()

    run(scenario())


def test_hold_0_delivers_every_tick_whatever_the_receiver_says():
    async def scenario():
        router, sink = Router(hold_s=0), Sink()
        sink.answer = QUIET
        router.add(BTC, sink)
        router.tick(tick("100"))
        await eventually(lambda: len(sink.deliveries) == 1, what="first")
        router.tick(tick("100.5"))
        await eventually(lambda: len(sink.deliveries) == 2, what="second")
        assert router.mailbox(BTC).gate is None and router.stats()["ticks_held"] == 0
        await router.close()

    run(scenario())
