"""ConnectorService over a real SimulatedExchange: one subscription for every routed symbol,
resubscribe + resync after a break, timed REST calls under one shared budget."""

import asyncio
import time
from decimal import Decimal as D

import pytest

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.core.model import OrderRequest, Side
from mm.engine.clock import VirtualClock
from mm.engine.connector_service import ConnectorService, TokenBucket
from mm.errors import AuthenticationError, OrderNotFound, RateLimited
from tests.helpers import T0, eventually, run

BTC, ETH = "BTCUSDT", "ETHUSDT"
FAST = (0.01, 0.05)  # reconnect backoff bounds (s)
SIM_RETRY_AFTER_S = 0.01  # what the simulated venue's 429 asks for


def venue():
    config = SimConfig(
        balances={"USDT": D(100_000)},
        start_prices={BTC: D("10000"), ETH: D("2000")},
    )
    return SimulatedExchange(config, VirtualClock(T0))


class Recorder:
    def __init__(self):
        self.deliveries = []

    async def __call__(self, delivery):
        self.deliveries.append(delivery)

    @property
    def ticks(self):
        return [d.tick.price for d in self.deliveries if d.tick is not None]

    @property
    def updates(self):
        return [u.client_id for d in self.deliveries for u in d.updates]

    def symbols(self):
        out = {u.symbol for d in self.deliveries for u in d.updates}
        return out | {d.tick.symbol for d in self.deliveries if d.tick is not None}

    def resyncs(self):
        return sum(d.resync for d in self.deliveries)


async def two_routes():
    """A started service over a fresh venue with BTC and ETH routed, one tick published each."""
    sim = venue()
    service = ConnectorService(sim, backoff_s=FAST)
    btc, eth = Recorder(), Recorder()
    service.add_route(BTC, btc)
    service.add_route(ETH, eth)
    service.start()
    await eventually(lambda: service.subscriptions == 1, what="subscribed")
    sim.set_price(BTC, D("10100"))
    sim.set_price(ETH, D("2020"))
    return sim, service, btc, eth


def buy(client_id, price="9000", symbol=BTC, qty="0.01"):
    return OrderRequest(symbol, client_id, Side.BUY, D(price), D(qty), post_only=True)


def test_each_routed_symbol_gets_its_own_ticks_and_order_updates():
    async def scenario():
        sim, service, btc, eth = await two_routes()
        await eventually(lambda: btc.ticks and eth.ticks, what="a tick for each symbol")
        report = await service.call("place_order", buy("btc1"))
        await eventually(lambda: "btc1" in btc.updates, what="the order update at BTC")
        sim.set_price(ETH, D("2030"))  # a later ETH event: anything misrouted would be seen
        await eventually(lambda: D("2030") in eth.ticks, what="second ETH tick")
        stats = service.stats()
        await service.close()
        return btc, eth, report, stats

    btc, eth, report, stats = run(scenario())
    assert report.client_id == "btc1"
    assert btc.ticks == [D("10100")] and btc.updates == ["btc1"] and btc.symbols() == {BTC}
    assert eth.ticks == [D("2020"), D("2030")] and eth.updates == [] and eth.symbols() == {ETH}
    assert stats["subscriptions"] == 1  # one subscription serves both symbols
    assert stats["unrouted"] == 0 and stats["ticks_in"] == 3 and stats["updates_in"] == 1


def test_a_symbol_added_later_is_subscribed_too():
    async def scenario():
        sim = venue()
        service = ConnectorService(sim, backoff_s=FAST)
        btc, eth = Recorder(), Recorder()
        service.add_route(BTC, btc)
        service.start()
        await eventually(lambda: service.subscriptions == 1, what="subscribed")
        sim.set_price(ETH, D("2010"))  # not routed yet: not wanted
        sim.set_price(BTC, D("10100"))
        await eventually(lambda: btc.ticks == [D("10100")])
        assert service.add_route(ETH, eth) is True
        await eventually(lambda: service.subscriptions == 2, what="resubscribed with ETH")
        sim.set_price(ETH, D("2020"))
        sim.set_price(BTC, D("10200"))
        await eventually(lambda: D("2020") in eth.ticks, what="ETH tick after being added")
        await eventually(lambda: D("10200") in btc.ticks, what="BTC still served")
        await service.call("place_order", buy("eth1", "1900", ETH, "0.1"))
        await eventually(lambda: eth.updates == ["eth1"], what="ETH order update")
        await service.close()
        return eth

    eth = run(scenario())
    assert D("2010") not in eth.ticks
    assert eth.deliveries[0].resync is True  # a new route starts with a reconcile


def test_a_removed_symbol_is_no_longer_delivered():
    async def scenario():
        sim = venue()
        service = ConnectorService(sim, backoff_s=FAST)
        btc, eth = Recorder(), Recorder()
        service.add_route(BTC, btc)
        service.add_route(ETH, eth)
        service.start()
        await eventually(lambda: service.subscriptions == 1, what="subscribed")
        assert await service.remove_route(ETH) is True
        await eventually(lambda: service.subscriptions == 2, what="resubscribed without ETH")
        sim.set_price(ETH, D("2020"))
        sim.set_price(BTC, D("10100"))
        await eventually(lambda: D("10100") in btc.ticks)
        await service.close()
        return eth

    assert run(scenario()).deliveries == []


def test_a_stream_break_resubscribes_and_every_route_resyncs():
    async def scenario():
        sim, service, btc, eth = await two_routes()
        await eventually(lambda: btc.ticks and eth.ticks, what="first deliveries")
        before = btc.resyncs(), eth.resyncs()
        sim.faults.inject("price_update", "disconnect")
        sim.set_price(BTC, D("10200"))  # this message breaks the price stream
        await eventually(lambda: service.reconnects == 1, what="the break noticed")
        await eventually(lambda: service.subscriptions == 2, what="resubscribed")
        await eventually(lambda: (btc.resyncs(), eth.resyncs()) == (2, 2), what="resyncs")
        sim.set_price(BTC, D("10300"))
        sim.set_price(ETH, D("2030"))
        await service.call("place_order", buy("btc1"))
        await eventually(lambda: D("10300") in btc.ticks and D("2030") in eth.ticks)
        await eventually(lambda: "btc1" in btc.updates, what="order stream back too")
        stats = service.stats()
        await service.close()
        return before, sim, stats

    before, sim, stats = run(scenario())
    assert before == (1, 1)  # only the first delivery of each route was a resync
    assert sim.faults.fired["disconnect"] == 1
    assert stats["reconnects"] == 1


class Revocable:
    """The venue, except that its price stream fails as a revoked key would once `revoked`."""

    def __init__(self, inner):
        self.inner = inner
        self.revoked = False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def stream_prices(self, symbols):
        async for tick in self.inner.stream_prices(symbols):
            if self.revoked:
                raise AuthenticationError("API key revoked")
            yield tick


def test_a_halting_stream_error_stops_the_streams_and_health_says_why():
    async def scenario():
        sim = venue()
        exchange = Revocable(sim)
        service = ConnectorService(exchange, backoff_s=FAST)
        btc = Recorder()
        service.add_route(BTC, btc)
        service.start()
        await eventually(lambda: service.subscriptions == 1, what="subscribed")
        sim.set_price(BTC, D("10100"))
        await eventually(lambda: btc.ticks, what="first delivery")
        fine = service.stream_health(stale_after_s=60)
        exchange.revoked = True
        sim.set_price(BTC, D("10200"))
        await eventually(lambda: service.halted is not None, what="the halt")
        await asyncio.sleep(0.2)  # a resubscription would come within FAST's 0.05 s
        health = service.stream_health(stale_after_s=60)
        await service.close()
        return fine, health, service

    fine, health, service = run(scenario())
    assert fine is None
    assert health == (False, "streams stopped: AuthenticationError: API key revoked")
    assert service.subscriptions == 1 and service.reconnects == 0  # never resubscribed


def test_call_times_every_round_trip_and_counts_errors():
    async def scenario():
        service = ConnectorService(venue())
        await service.call("fetch_open_orders", BTC)
        await service.call("fetch_balances")
        with pytest.raises(OrderNotFound):
            await service.call("fetch_order", BTC, "nope")
        first = service.take_round_trips()
        second = service.take_round_trips()
        await service.call("fetch_balances")
        third = service.take_round_trips()
        return service, first, second, third

    service, first, second, third = run(scenario())
    assert len(first) == 3 and all(ms >= 0 for ms in first)  # a failed call is timed too
    assert second == []
    assert len(third) == 1
    assert service.calls == {"fetch_open_orders": 1, "fetch_balances": 2, "fetch_order": 1}
    assert service.errors == {"OrderNotFound": 1}
    assert service.round_trips.count == 4


class Entered:
    """The simulated venue, noting when each REST call reaches it (time.monotonic)."""

    def __init__(self, inner):
        self._inner = inner
        self.entered = []

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if not name.startswith(("fetch_", "place_", "cancel_")):
            return attr

        async def noted(*args, **kwargs):
            self.entered.append((name, time.monotonic()))
            return await attr(*args, **kwargs)

        return noted


def test_a_rate_limit_pauses_the_whole_account_for_every_method():
    async def scenario():
        sim = venue()
        port = Entered(sim)
        service = ConnectorService(port)
        sim.faults.inject("fetch_open_orders", "rate_limit")
        with pytest.raises(RateLimited):
            await service.call("fetch_open_orders", BTC)
        blocked_until = service.budget._blocked_until
        await asyncio.gather(  # other symbols' and other methods' calls, right after the 429
            service.call("fetch_balances"),
            service.call("fetch_open_orders", ETH),
            service.call("place_order", buy("btc1")),
        )
        return port.entered, blocked_until, service

    entered, blocked_until, service = run(scenario())
    (first, limited_at), *later = entered
    assert first == "fetch_open_orders" and len(later) == 3
    assert blocked_until >= limited_at + SIM_RETRY_AFTER_S
    # none of the later calls reached the venue before the venue's Retry-After had passed
    assert all(at >= blocked_until for _, at in later), (later, blocked_until)
    assert service.errors == {"RateLimited": 1}


def test_token_bucket_allows_a_burst_then_paces_at_its_rate():
    async def scenario():
        bucket = TokenBucket(rate_per_s=20, burst=5)
        for _ in range(5):
            await bucket.take()
        after_burst = bucket.waits
        for _ in range(3):
            await bucket.take()
        return after_burst, bucket.waits

    after_burst, waits = run(scenario())
    assert after_burst == 0  # the burst goes through at once
    assert waits >= 3  # every take beyond it waited for a token


def test_token_bucket_block_makes_the_next_take_wait():
    async def scenario():
        bucket = TokenBucket(rate_per_s=1000, burst=100)
        await bucket.take()
        assert bucket.waits == 0
        bucket.block_for(0.05)
        blocked_until = bucket._blocked_until
        await bucket.take()
        return bucket, blocked_until, time.monotonic()

    bucket, blocked_until, done_at = run(scenario())
    assert bucket.waits >= 1 and done_at >= blocked_until
