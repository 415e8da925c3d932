"""SymbolService driven by hand-built deliveries over a real SimulatedExchange and journal."""

import asyncio
import time
from decimal import Decimal as D

import pytest

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.core import ids
from mm.core.model import OrderReport, OrderStatus, PriceTick, Role, Side
from mm.core.risk import RiskState
from mm.engine.clock import VirtualClock
from mm.engine.router import Delivery
from mm.engine.symbol_engine import EngineConfig
from mm.engine.symbol_service import SymbolService
from mm.errors import OperationalError, TemporaryError
from mm.store.journal import Journal
from tests.helpers import T0, check_invariants, grid, run

SYMBOL = "BTCUSDT"


class Harness:
    """A service over a venue at BTC 10000 (grid: interval 100, 3 buys of 0.01 BTC)."""

    def __init__(self, tmp_path):
        self.clock = VirtualClock(T0)
        self.sim = SimulatedExchange(
            SimConfig(
                balances={"USDT": D(1_000_000)},
                start_prices={SYMBOL: D("10000")},
                maker_fee_rate=D("0.001"),
                taker_fee_rate=D("0.002"),
            ),
            self.clock,
        )
        self.journal = Journal(tmp_path / "journal.db")
        self.service = SymbolService(
            EngineConfig(SYMBOL, grid()), self.sim, self.journal, self.clock
        )
        self.seq = 0

    def delivery(self, price=None, updates=(), *, resync=False, recv_ns=None):
        self.seq += 1
        self.clock.advance(1000)
        tick = None if price is None else PriceTick(SYMBOL, D(price), self.clock.now_ms())
        if recv_ns is None:
            recv_ns = time.time_ns() if tick is not None else 0
        return Delivery(SYMBOL, self.seq, tuple(updates), tick, resync, recv_ns)

    async def deliver(self, price=None, updates=(), **kwargs):
        await self.service.deliver(self.delivery(price, updates, **kwargs))

    async def move(self, price):
        """The venue moves to `price` and the service gets its reports and the tick."""
        self.clock.advance(1)
        reports = self.sim.set_price(SYMBOL, D(price))
        await self.deliver(price, reports)
        return reports

    def open_orders(self):
        """{(side, price): qty} of the orders resting on the venue (all of them are ours)."""
        live = [o for o in self.sim.orders(SYMBOL) if not o.status.is_terminal]
        return {(o.side.value, o.price): o.qty for o in live}

    def venue_order(self, level):
        live = [o for o in self.sim.orders(SYMBOL) if not o.status.is_terminal]
        return next(o for o in live if ids.parse(o.client_id).level == level)

    def invariants(self):
        return check_invariants(self.journal, self.sim, SYMBOL, "t1")


OPENING = {("BUY", D("9900.00")), ("BUY", D("9800.00")), ("BUY", D("9700.00"))}


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.journal.close()


def test_health_is_false_before_start_and_start_recovers_into_quoting(h):
    before = h.service.health()

    async def scenario():
        await h.service.start()
        await h.service.start()  # idempotent

    run(scenario())
    assert before[0] is False and "starting" in before[1]
    assert h.service.state() == "QUOTING"
    assert h.service.health() == (True, "quoting")
    assert h.sim.orders(SYMBOL) == []  # nothing quoted before the first tick


def test_start_retries_while_the_exchange_is_unreachable(h):
    h.sim.faults.inject("load_markets", "unavailable", times=2)
    run(h.service.start())
    assert h.service.start_failures == 2
    assert h.service.health() == (True, "quoting")


def test_a_symbol_the_venue_does_not_list_halts_and_reports_unhealthy(h):
    service = SymbolService(EngineConfig("NOPEUSDT", grid()), h.sim, h.journal, h.clock)
    run(service.start())
    ok, detail = service.health()
    assert service.state() == "HALTED" and ok is False and detail.startswith("halted")


def test_a_tick_places_the_opening_orders_and_times_them_from_the_tick(h):
    async def scenario():
        await h.service.start()
        await h.deliver("10000")

    run(scenario())
    assert set(h.open_orders()) == OPENING
    assert h.service.orders_placed == 3 and h.service.orders_rejected == 0
    assert h.service.latency.count == 3  # one tick -> order sample per order call
    assert all(ms >= 0 for ms in h.service.latency.recent)
    status = h.service.status()
    assert status["open_orders"] == 3 and len(status["live_orders"]) == 3
    assert status["tick_to_order_ms"]["count"] == 3 and status["deliveries"] == 1
    h.invariants()


def test_no_latency_sample_without_a_receive_time(h):
    async def scenario():
        await h.service.start()
        await h.deliver("10000", recv_ns=0)

    run(scenario())
    assert h.service.orders_placed == 3 and h.service.latency.count == 0


def test_a_delivered_fill_gets_its_closing_order(h):
    async def scenario():
        await h.service.start()
        await h.deliver("10000")
        h.sim.set_price(SYMBOL, D("9950"))  # nothing fills; a sell at 10000 will rest
        report = h.sim.force_fill(SYMBOL, h.venue_order(-1).client_id, D("0.01"))
        await h.deliver(updates=[report])
        return report

    report = run(scenario())
    assert h.open_orders()[("SELL", D("10000.00"))] == D("0.01")
    close = h.service.engine.pm.slot(-1).order
    assert close.role is Role.CLOSE and close.side is Side.SELL
    assert h.service.engine.pm.slot(-1).inventory_qty == D("0.01")
    assert [f.client_id for f in h.journal.fills(SYMBOL)] == [report.client_id]
    h.invariants()


def test_a_delivery_is_one_decision_and_its_fills_share_the_intents_commit(h):
    """Two partial fills and a tick in one delivery: both fills are journaled in the same
    transaction as the close's intent, before it is sent, and one decision places one close
    for the whole filled quantity (not one per report)."""
    journal_writes, sent = [], []

    async def scenario():
        await h.service.start()
        await h.deliver("10000")
        h.sim.set_price(SYMBOL, D("9950"))  # nothing fills by itself
        buy = h.venue_order(-1).client_id
        fills = [h.sim.force_fill(SYMBOL, buy, D("0.005")) for _ in range(2)]
        commit, place = h.journal.commit, h.sim.place_order

        def spy_commit(symbol, changes, meta=None, *, durable=True):
            journal_writes.append((len(sent), len(changes.fills)))
            return commit(symbol, changes, meta, durable=durable)

        async def spy_place(request):
            sent.append(request)
            return await place(request)

        h.journal.commit, h.sim.place_order = spy_commit, spy_place
        await h.deliver("9950", fills)

    run(scenario())
    assert [(r.side, r.price, r.qty) for r in sent] == [(Side.SELL, D("10000.00"), D("0.01"))]
    assert journal_writes[0] == (0, 2)  # first write: both fills, before anything was sent
    assert len(journal_writes) == 2  # then the outcome; no write per report
    assert h.open_orders()[("SELL", D("10000.00"))] == D("0.01")
    h.invariants()


def test_a_resync_delivery_applies_a_fill_whose_update_was_never_delivered(h):
    async def scenario():
        await h.service.start()
        await h.deliver("10000")
        lost = h.sim.force_fill(SYMBOL, h.venue_order(-2).client_id, D("0.01"))
        await h.deliver(updates=[])  # the update went missing: a plain delivery knows nothing
        assert h.journal.fills(SYMBOL) == []
        await h.deliver(resync=True)
        return lost

    lost = run(scenario())
    fills = h.journal.fills(SYMBOL)
    assert [(f.client_id, f.qty, f.price) for f in fills] == [
        (lost.client_id, D("0.01"), D("9800"))
    ]
    assert h.service.resyncs == 1
    assert h.service.engine.pm.slot(-2).inventory_qty == D("0.01")
    h.invariants()


def test_pause_places_nothing_and_resume_quotes_again(h):
    async def scenario():
        await h.service.start()
        await h.service.pause()
        await h.deliver("10000")
        paused = (h.service.state(), dict(h.open_orders()), h.service.orders_placed)
        await h.service.resume()
        return paused

    state, orders, placed = run(scenario())
    assert (state, orders, placed) == ("PAUSED", {}, 0)
    assert set(h.open_orders()) == OPENING and h.service.state() == "QUOTING"


def test_a_risk_halt_cancels_every_opening_order_at_once_and_keeps_the_closes(h):
    async def scenario():
        await h.service.start()
        await h.deliver("10000")
        await h.move("9900")  # the buy at 9900 fills; its close rests at 10000
        before = set(h.open_orders())
        await h.service.set_risk(RiskState(halted=True, reasons=("breaker",)))
        halted = dict(h.open_orders())
        await h.deliver("9900")  # while halted nothing new opens
        return before, halted

    before, halted = run(scenario())
    assert ("SELL", D("10000.00")) in before and len(before) == 4
    assert halted == {("SELL", D("10000.00")): D("0.01")}
    assert h.open_orders() == halted
    assert h.service.status()["risk_reasons"] == ["breaker"]
    h.invariants()


def test_drain_cancels_every_order_of_ours_on_the_venue(h):
    async def scenario():
        await h.service.start()
        await h.deliver("10000")
        await h.move("9900")
        assert len(h.open_orders()) == 4
        status = await h.service.drain(keep_orders=False)
        await h.service.drain(keep_orders=False)  # idempotent
        return status

    status = run(scenario())
    assert h.open_orders() == {}
    assert status["live_orders"] == [] and status["state"] == "DRAINING"
    assert h.service.state() == "DRAINING"
    with pytest.raises(OperationalError):
        run(h.service.resume())
    h.invariants()


def test_drain_keeping_orders_leaves_them_on_the_venue(h):
    async def scenario():
        await h.service.start()
        await h.deliver("10000")
        status = await h.service.drain(keep_orders=True)
        await h.deliver("9000")  # draining: no decisions, even as the grid would move
        return status

    status = run(scenario())
    assert set(h.open_orders()) == OPENING
    assert status["state"] == "DRAINING" and len(status["live_orders"]) == 3
    h.invariants()


def test_exposure_report_carries_inventory_value_and_each_round_trip_once(h):
    async def scenario():
        await h.service.start()
        await h.deliver("10000")
        first = h.service.exposure_report()
        h.service.confirm_report()
        await h.move("9900")  # bought 0.01 at 9900
        holding = h.service.exposure_report()
        h.service.confirm_report()
        await h.move("10000")  # sold it at 10000: one round trip
        lost = h.service.exposure_report()  # never confirmed: its round trip is sent again
        closed = h.service.exposure_report()
        h.service.confirm_report()
        again = h.service.exposure_report()
        return first, holding, lost, closed, again

    first, holding, lost, closed, again = run(scenario())
    assert first.closed_pnls == () and first.exposure_quote == 0
    assert holding.inventory_qty == D("0.01") and holding.price == D("9900")
    assert holding.exposure_quote == D("99.00") and holding.closed_pnls == ()
    pnl = D("1") - D("0.099") - D("0.1")  # (10000 - 9900) * 0.01 minus both maker fees
    assert lost.closed_pnls == closed.closed_pnls == (pnl,)
    assert closed.realized_pnl == pnl and closed.inventory_qty == 0
    assert again.closed_pnls == ()  # reported once
    assert again.realized_pnl == pnl
    numbers = h.invariants()
    assert numbers["realized"] == pnl and numbers["fills"] == 2


def test_a_scenario_of_fills_and_resyncs_keeps_the_invariants(h):
    async def scenario():
        await h.service.start()
        await h.deliver("10000")
        for price in ("9900", "9800", "9900", "9750", "10000", "10100", "9950"):
            await h.move(price)
        h.sim.set_price(SYMBOL, D("9700"))  # fills the venue sees but the service never hears
        await h.deliver(resync=True)
        await h.deliver("9700")
        await h.move("9900")

    run(scenario())
    numbers = h.invariants()
    assert numbers["fills"] >= 6
    assert h.service.engine.state.value == "QUOTING"


def test_an_update_for_an_unknown_order_is_ignored(h):
    async def scenario():
        await h.service.start()
        await h.deliver("10000")
        foreign = OrderReport(SYMBOL, "someoneelse1", Side.BUY, D("9000"), D("1"), OrderStatus.OPEN)
        await h.deliver(updates=[foreign])

    run(scenario())
    assert set(h.open_orders()) == OPENING
    h.invariants()


def test_lifting_the_risk_halt_quotes_the_openings_again(h):
    async def scenario():
        await h.service.start()
        await h.deliver("10000")
        await h.service.set_risk(RiskState(halted=True, reasons=("exposure",)))
        assert h.open_orders() == {}
        await h.service.set_risk(RiskState(halted=False))

    run(scenario())
    assert set(h.open_orders()) == OPENING
    h.invariants()


def test_a_risk_halt_while_paused_still_cancels_the_opening_orders(h):
    async def scenario():
        await h.service.start()
        await h.deliver("10000")
        await h.service.pause()
        await h.service.set_risk(RiskState(halted=True, reasons=("breaker",)))

    run(scenario())
    assert h.open_orders() == {}


def test_a_retried_send_counts_as_one_order_placed(h):
    async def scenario():
        await h.service.start()
        h.sim.faults.inject("place_order", "rate_limit")
        await h.deliver("10000")

    run(scenario())
    assert len(h.sim.orders(SYMBOL)) == 3
    assert h.service.orders_placed == 3


def test_the_quiet_box_covers_ticks_that_decide_nothing_and_changes_are_told(h):
    """After a settled decision the service names the ticks it need not see; every change made
    outside a delivery (risk, pause, resume, drain) is told through `on_change`."""
    told = []
    h.service.on_change = lambda: told.append(h.service.quiet_box())

    async def scenario():
        assert h.service.quiet_box() is None  # not started
        await h.service.start()
        await h.deliver("10000")
        box = h.service.quiet_box()
        assert (box.lo, box.hi) == (D("9950"), D("10050"))  # between the half-levels
        placed = h.service.orders_placed
        await h.deliver("9960")  # inside the box: nothing to do
        assert h.service.orders_placed == placed and h.service.quiet_box() is not None
        await h.service.set_risk(RiskState(halted=False))  # no change: nothing told
        assert told == []
        await h.service.set_risk(RiskState(halted=True, reasons=("breaker",)))
        assert len(told) == 1 and told[0] is not None and h.open_orders() == {}  # cancelled
        await h.service.pause()
        await h.service.resume()
        assert told[1] is None and told[2] is not None  # paused: every tick matters
        await h.service.drain(keep_orders=True)
        assert told[3] is None and h.service.quiet_box() is None

    run(scenario())


def test_a_round_trip_reported_to_risk_is_not_reported_again_after_a_power_cut(tmp_path):
    """A round trip the risk engine has counted (its losing streak is persisted) must not come
    back after a power cut: the fill it was read from has to be on disk before it is reported.
    Emulated as in test_recovery_regressions: the journal files are copied at each durable
    commit and the last copy restored after the close's fill, then the symbol restarts."""
    h = Harness(tmp_path)
    path = tmp_path / "journal.db"
    saved = tmp_path / "saved"
    saved.mkdir()
    commit = h.journal.commit

    def spy(symbol, changes, meta=None, *, durable=True):
        commit(symbol, changes, meta, durable=durable)
        if durable:  # on disk: a power cut keeps at least this
            for suffix in ("", "-wal"):
                (saved / f"journal.db{suffix}").write_bytes(
                    path.with_name(f"journal.db{suffix}").read_bytes()
                )

    h.journal.commit = spy

    async def scenario():
        await h.service.start()
        await h.deliver("10000")  # three buys
        await h.move("9900")  # level -1 fills; its close rests at 10000
        assert h.service.exposure_report().closed_pnls == ()
        h.service.confirm_report()
        h.service.engine.paused = True  # nothing to decide after the close fills
        await h.move("10000")  # the close fills: one round trip
        report = h.service.exposure_report()
        assert len(report.closed_pnls) == 1
        h.service.confirm_report()  # the risk engine has counted it
        h.journal.close()
        for suffix in ("", "-wal"):  # the cut
            path.with_name(f"journal.db{suffix}").write_bytes(
                (saved / f"journal.db{suffix}").read_bytes()
            )
        path.with_name("journal.db-shm").unlink(missing_ok=True)
        journal = Journal(path)
        again = SymbolService(EngineConfig(SYMBOL, grid()), h.sim, journal, h.clock)
        await again.start()  # recovery finds the close's fill on the venue
        assert again.engine.pm.totals.realized_pnl == h.service.engine.pm.totals.realized_pnl
        assert again.exposure_report().closed_pnls == ()  # counted once already

    run(scenario())


def test_the_periodic_reconcile_tells_its_changes(h):
    """A fill the stream missed, found by the periodic reconcile, changes what the next tick
    decides (the close): the box held by the connector must be replaced at once."""
    told = []

    async def scenario():
        await h.service.start()
        await h.deliver("10000")
        assert h.service.quiet_box() is not None
        h.sim.force_fill(SYMBOL, h.venue_order(-1).client_id, D("0.01"))  # never delivered
        reached = asyncio.Event()

        def on_change():
            told.append(h.service.quiet_box())
            reached.set()

        h.service.on_change = on_change
        task = asyncio.create_task(h.service.run_periodic())
        await asyncio.wait_for(reached.wait(), 5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(scenario())
    assert h.journal.fills(SYMBOL) != [] and told[0] is None


def test_a_report_whose_answer_was_lost_is_sent_again_as_it_was_before_a_fresh_one(h):
    """The risk engine counts a report (same ts_ms) once: re-sending the very report whose
    answer was lost, not a fresh one carrying its round trip again, counts that round trip
    once however the loss happened."""
    sent = []

    async def send(report):
        sent.append(report)
        if len(sent) == 1:
            raise TemporaryError("answer lost")  # the risk engine may have counted it
        return RiskState(halted=False)

    async def scenario():
        await h.service.start()
        await h.deliver("10000")
        await h.move("9900")
        await h.move("10000")  # one round trip closed
        with pytest.raises(TemporaryError):
            await h.service.report_exposure(send)
        h.clock.advance(1000)
        await h.service.report_exposure(send)
        h.clock.advance(1000)
        await h.service.report_exposure(send)

    run(scenario())
    lost, resent, fresh, later = sent
    assert len(lost.closed_pnls) == 1 and resent is lost  # the same report, the same ts_ms
    assert fresh.closed_pnls == () and fresh.ts_ms > lost.ts_ms
    assert later.closed_pnls == () and later.ts_ms > fresh.ts_ms


def test_report_times_keep_increasing_when_the_wall_clock_is_stepped_back(h):
    """The risk engine counts a report's round trips only when its ts_ms is newer than the
    last it counted: a report stamped with a clock stepped back would lose its round trips."""
    sent = []

    async def send(report):
        sent.append(report)
        return RiskState(halted=False)

    async def scenario():
        await h.service.start()
        await h.deliver("10000")
        await h.service.report_exposure(send)
        await h.move("9900")
        await h.move("10000")  # one round trip closed
        h.clock._now_ms -= 60_000  # stepped back (VirtualClock.set never moves back)
        await h.service.report_exposure(send)

    run(scenario())
    first, second = sent
    assert len(second.closed_pnls) == 1 and second.ts_ms > first.ts_ms
