"""Regressions from the correctness review: each test is a scenario that once lost, doubled or
miscounted money (or halted for nothing), run against the real engine, journal and venue."""

import asyncio
import sqlite3
from decimal import Decimal as D

import pytest

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from connectors.simulated.faults import FaultConfig
from mm.core.model import OrderRequest, OrderStatus, PriceTick, Role, Side
from mm.engine.clock import VirtualClock
from mm.engine.symbol_engine import EngineState
from mm.store.journal import Journal
from tests.helpers import T0, check_invariants, grid, make_rig, run


class Crash(Exception):
    """Stands in for the process dying at a phase of the journal protocol."""


def venue(clock, **config):
    values = dict(balances={"USDT": D(1_000_000)}, start_prices={"BTCUSDT": D("10000")})
    values.update(config)
    return SimulatedExchange(SimConfig(**values), clock)


def open_on_venue(rig):
    return [o for o in rig.sim.orders(rig.symbol) if not o.status.is_terminal]


def test_an_adopted_close_filling_before_the_first_tick_is_a_round_trip_not_a_short():
    async def scenario():
        rig = make_rig(symbol="BTCUSDT-PERP")
        await rig.engine.start()
        await rig.step("10000")
        await rig.step("9900")  # long 0.01, its close rests at 10000
        fresh = make_rig(
            symbol=rig.symbol, clock=rig.clock, venue=rig.sim, journal=Journal(":memory:")
        )  # the journal is gone
        await fresh.engine.start()  # inventory is rebuilt here, not on the first tick
        assert fresh.engine.pm.inventory_qty() == D("0.01")
        fresh.clock.advance(1000)
        for report in fresh.sim.set_price(fresh.symbol, D("10000")):  # update before the tick
            await fresh.engine.on_order_report(report)
        await fresh.engine.on_tick(PriceTick(fresh.symbol, D("10000"), fresh.clock.now_ms()))
        pm = fresh.engine.pm
        assert pm.inventory_qty() == 0 and pm.totals.round_trips == 1
        assert all(s.inventory_qty == 0 for s in pm.snapshot().slots.values())
        assert rig.sim.account.position_view(rig.symbol).qty == 0
        check_invariants(fresh.journal, fresh.sim, fresh.symbol, "t1", complete_history=False)

    run(scenario())


def test_a_fresh_node_with_a_partial_close_fill_before_the_first_tick_stays_in_step():
    async def scenario():
        rig = make_rig(symbol="BTCUSDT-PERP")
        await rig.engine.start()
        await rig.step("10000")
        await rig.step("9900")
        fresh = make_rig(
            symbol=rig.symbol, clock=rig.clock, venue=rig.sim, journal=Journal(":memory:")
        )
        await fresh.engine.start()
        close = next(o for o in fresh.engine.pm.live_orders() if o.role is Role.CLOSE)
        await fresh.engine.on_order_report(
            rig.sim.force_fill(rig.symbol, close.client_id, D("0.004"))
        )
        await fresh.step("9950")
        assert fresh.engine.state is EngineState.QUOTING
        assert fresh.engine.pm.inventory_qty() == rig.sim.account.position_view(rig.symbol).qty
        check_invariants(fresh.journal, fresh.sim, fresh.symbol, "t1", complete_history=False)

    run(scenario())


def test_a_cancel_journaled_but_never_sent_is_asked_for_again(tmp_path):
    async def scenario():
        crash = {"armed": False}

        def on_phase(name):
            if crash["armed"] and name == "intent_committed":
                raise Crash(name)

        rig = make_rig(journal=Journal(tmp_path / "j.db"), on_phase=on_phase)
        await rig.engine.start()
        await rig.step("10000")
        rig.engine.set_risk_halted(True)
        crash["armed"] = True
        with pytest.raises(Crash):  # the risk cancels are journaled, then the process dies
            await rig.step("10000")
        again = make_rig(
            symbol=rig.symbol, clock=rig.clock, venue=rig.sim, journal=Journal(tmp_path / "j.db")
        )
        again.engine.set_risk_halted(True)
        await again.engine.start()
        await again.step("10000")
        assert open_on_venue(again) == []  # the cancels went out after all
        assert not any(o.cancel_requested for o in again.engine.pm.live_orders())

    run(scenario())


def test_a_stream_break_mid_act_does_not_leave_a_cancel_stuck():
    async def scenario():
        clock = VirtualClock(T0)
        sim = venue(clock, faults=FaultConfig(latency_ms=5))
        journaled = asyncio.Event()

        def on_phase(name):
            if name == "intent_committed" and rig.engine.risk_halted:
                journaled.set()  # the cancels are in the journal, not yet on the venue

        rig = make_rig(clock=clock, venue=sim, on_phase=on_phase)
        await rig.engine.start()
        await rig.step("10000")
        rig.engine.set_risk_halted(True)
        task = asyncio.create_task(
            rig.engine.on_tick(PriceTick(rig.symbol, D("10000"), clock.now_ms()))
        )
        await journaled.wait()
        task.cancel()  # what the runner does to its tasks when a stream breaks
        await asyncio.gather(task, return_exceptions=True)
        assert any(o.cancel_requested for o in rig.engine.pm.live_orders())
        await rig.engine.reconcile()  # the reconnect's gap-fill
        await rig.step("10000")
        assert open_on_venue(rig) == []

    run(scenario())


def test_the_consistency_window_counts_from_recovery_not_from_the_intent(tmp_path):
    async def scenario():
        clock = VirtualClock(T0)
        sim = venue(clock, consistency_window_ms=1000)
        params = grid(buy_levels=1, max_open_orders=1)

        def on_phase(name):
            if name == "sent":
                raise Crash(name)

        rig = make_rig(
            params, clock=clock, venue=sim, journal=Journal(tmp_path / "j.db"), on_phase=on_phase
        )
        await rig.engine.start()
        sim.faults.inject("place_order", "rate_limit", 2)  # accepted ~150 ms after the intent
        with pytest.raises(Crash):
            await rig.step("10000")
        intent = Journal(tmp_path / "j.db").orders(rig.symbol)[0]
        clock.advance(1050 - (clock.now_ms() - intent.created_ms))  # 1.05 s after the intent
        again = make_rig(params, clock=clock, venue=sim, journal=Journal(tmp_path / "j.db"))
        await again.engine.start()
        assert again.journal.order(intent.client_id).status is OrderStatus.OPEN
        await again.step("10000", advance_ms=10)
        assert len(open_on_venue(again)) == 1  # no second order on the slot
        clock.advance(2000)
        check_invariants(again.journal, sim, again.symbol, "t1")

    run(scenario())


def test_an_acknowledged_order_not_yet_visible_to_lookups_does_not_halt():
    async def scenario():
        clock = VirtualClock(T0)
        rig = make_rig(clock=clock, venue=venue(clock, consistency_window_ms=5000))
        await rig.engine.start()
        await rig.step("10000")  # three orders acknowledged, invisible to lookups for 5 s
        await rig.engine.reconcile()
        assert rig.engine.state is EngineState.QUOTING

    run(scenario())


def test_a_fill_landing_during_reconcile_does_not_halt():
    async def scenario():
        rig = make_rig(symbol="BTCUSDT-PERP")
        await rig.engine.start()
        await rig.step("10000")
        real = rig.sim.fetch_positions
        queued = []

        async def racy_fetch_positions(symbols):  # a buy fills while reconcile is looking
            queued.extend(rig.sim.set_price(rig.symbol, D("9890")))
            return await real(symbols)

        rig.sim.fetch_positions = racy_fetch_positions
        await rig.engine.reconcile()
        rig.sim.fetch_positions = real
        assert rig.engine.state is EngineState.QUOTING
        for report in queued:  # the stream delivers the fill late: nothing counted twice
            await rig.engine.on_order_report(report)
        await rig.step("9890")
        assert rig.live()[-1][0] == "CLOSE"
        check_invariants(rig.journal, rig.sim, rig.symbol, "t1")

    run(scenario())


def test_a_mismatch_halt_lifts_once_journal_and_venue_agree_again(tmp_path):
    async def scenario():
        rig = make_rig(symbol="BTCUSDT-PERP", journal=Journal(tmp_path / "j.db"))
        await rig.engine.start()
        await rig.step("10000")
        hand = OrderRequest(rig.symbol, "hand-1", Side.SELL, D("9000.00"), D("0.05"))
        await rig.sim.place_order(hand)  # a human trades the account
        await rig.engine.reconcile()
        assert rig.engine.state is EngineState.HALTED
        back = OrderRequest(rig.symbol, "hand-2", Side.BUY, D("11000.00"), D("0.05"))
        await rig.sim.place_order(back)  # ... and undoes it
        await rig.engine.reconcile()
        assert rig.engine.state is EngineState.QUOTING and not rig.engine.halt_reason

    run(scenario())


def test_a_short_larger_than_the_lattice_below_zero_still_rebuilds():
    async def scenario():
        rig = make_rig(grid("neutral"), symbol="BTCUSDT-PERP")
        await rig.sim.place_order(
            OrderRequest(rig.symbol, "hand-1", Side.SELL, D("9000.00"), D("2"))
        )
        await rig.engine.start()
        assert rig.engine.pm.inventory_qty() == D("-2")
        assert all(
            rig.engine.strategy.level_price(lvl) > 0 for lvl in rig.engine.pm.snapshot().slots
        )

    run(scenario())


class FlakyJournal(Journal):
    fail_next = False

    def commit(self, symbol, changes, meta=None, *, durable=True):
        if self.fail_next:
            self.fail_next = False
            raise sqlite3.OperationalError("database is locked")
        return super().commit(symbol, changes, meta, durable=durable)


def test_a_failed_journal_write_keeps_its_changes_for_the_next_one():
    async def scenario():
        journal = FlakyJournal(":memory:")
        rig = make_rig(journal=journal)
        await rig.engine.start()
        await rig.step("10000")
        reports = rig.sim.set_price(rig.symbol, D("9900"))
        journal.fail_next = True
        with pytest.raises(sqlite3.OperationalError):
            await rig.engine.on_order_report(reports[0])
        for price in ("9900", "10000", "9950"):  # the engine carries on
            await rig.step(price)
        assert len(journal.fills(rig.symbol)) == rig.engine.pm.totals.fill_count == 2
        check_invariants(journal, rig.sim, rig.symbol, "t1")

    run(scenario())


def test_a_power_cut_loses_only_lazy_commits_and_recovery_gets_them_back(tmp_path):
    """Outcomes and fills are journaled lazily (no fsync of their own); intents durably. A
    power cut can therefore leave the journal as it was right after the last intents: here
    the files are copied at that moment and restored after later lazy commits (the close's
    placement outcome and a fill), and a restart recovers both from the venue."""
    path = tmp_path / "journal.db"
    saved = tmp_path / "saved"
    saved.mkdir()

    def phase(name):
        if name == "intent_committed":  # durable: a power cut after this keeps at least this
            for suffix in ("", "-wal"):
                (saved / f"journal.db{suffix}").write_bytes(
                    path.with_name(f"journal.db{suffix}").read_bytes()
                )

    async def scenario():
        rig = make_rig(journal=Journal(path), on_phase=phase)
        await rig.engine.start()
        await rig.step("10000")  # three buys
        await rig.step("9900")  # level -1 fills: its close rests at 10000
        close = rig.engine.pm.slot(-1).order.client_id
        buy = rig.engine.pm.slot(-2).order.client_id
        rig.engine.paused = True  # no decision after the next fill: its commit stays lazy
        await rig.step("9800")  # level -2 fills
        assert rig.engine.pm.slot(-2).inventory_qty > 0  # bought
        assert rig.journal.commits["lazy"] > 0 and rig.journal.commits["durable"] > 0
        rig.journal.close()
        for suffix in ("", "-wal"):  # the cut: every write after the last intents is gone
            path.with_name(f"journal.db{suffix}").write_bytes(
                (saved / f"journal.db{suffix}").read_bytes()
            )
        path.with_name("journal.db-shm").unlink(missing_ok=True)
        cut = Journal(path)
        assert cut.order(close).status is OrderStatus.INTENT  # its outcome was lazy
        assert cut.order(buy).status is OrderStatus.OPEN  # its fill was lazy
        again = make_rig(clock=rig.clock, venue=rig.sim, journal=cut)
        await again.engine.start()
        return rig, again

    rig, again = run(scenario())
    numbers = check_invariants(again.journal, rig.sim, rig.symbol, "t1")
    assert numbers["fills"] == 2  # both buys, the second one found again on the venue
    assert again.engine.pm.snapshot().inventory_qty == D("0.02")
    assert again.live() == rig.live()


def test_every_intent_is_journaled_durably_and_only_outcomes_and_reports_lazily(tmp_path):
    commits = []

    async def scenario():
        rig = make_rig(journal=Journal(tmp_path / "journal.db"))
        real = rig.journal.commit

        def commit(symbol, changes, meta=None, *, durable=True):
            intents = [
                (o.client_id, o.status, o.cancel_requested)
                for o in changes.orders.values()
                if o.status is OrderStatus.INTENT
                or (o.cancel_requested and not o.status.is_terminal)
            ]
            commits.append((durable, intents))
            real(symbol, changes, meta, durable=durable)

        rig.journal.commit = commit
        await rig.engine.start()
        for price in ("10000", "9900", "9800", "10100", "10300", "9950"):
            await rig.step(price)  # fills, closes, trailing cancels

    run(scenario())
    assert any(intent for _, intent in commits) and any(not d for d, _ in commits)
    assert [c for c in commits if c[1] and not c[0]] == []


def test_a_fill_learned_by_reconcile_is_in_phase_fill_received_and_a_crash_there_loses_nothing(
    tmp_path,
):
    """Under load the periodic reconcile often learns a fill before its stream report does
    (CI once ran 60 s of fills that never reached phase `fill_received`). The phase means "a
    fill is in memory, not yet journaled", whichever path brought it."""

    async def scenario():
        crash = {"armed": False}

        def on_phase(name):
            if crash["armed"] and name == "fill_received":
                raise Crash(name)

        rig = make_rig(journal=Journal(tmp_path / "j.db"), on_phase=on_phase)
        await rig.engine.start()
        await rig.step("10000")
        rig.clock.advance(1000)
        reports = rig.sim.set_price(rig.symbol, D("9850"))  # fills the buy at 9900...
        filled = {r.client_id for r in reports if r.filled_qty > 0}
        assert filled  # ...whose stream report never reaches the engine
        crash["armed"] = True
        with pytest.raises(Crash):
            await rig.engine.reconcile()
        assert not Journal(tmp_path / "j.db").fills(rig.symbol)  # died before the commit
        again = make_rig(
            symbol=rig.symbol, clock=rig.clock, venue=rig.sim, journal=Journal(tmp_path / "j.db")
        )
        await again.engine.start()
        counted = {f.client_id for f in again.journal.fills(rig.symbol)}
        assert counted == filled
        assert again.engine.pm.inventory_qty() == sum(
            (o.filled for o in rig.sim.orders(rig.symbol)), D(0)
        )
        check_invariants(again.journal, rig.sim, rig.symbol, "t1")

    run(scenario())


@pytest.mark.parametrize("path", ["on_order_report", "on_events"])
def test_a_crash_after_a_streamed_fill_is_applied_but_before_its_commit_loses_nothing(
    tmp_path, path
):
    """Phase `fill_received` on the stream paths (an order update alone, or in a pushed
    delivery): the fill is in memory and its commit is lazy; the process dies before it."""

    async def scenario():
        crash = {"armed": False}

        def on_phase(name):
            if crash["armed"] and name == "fill_received":
                rig.journal.db.conn.close()  # the process is gone: nothing more reaches the file
                raise Crash(name)  # (on_events commits in a `finally`, which now fails)

        rig = make_rig(journal=Journal(tmp_path / "j.db"), on_phase=on_phase)
        await rig.engine.start()
        await rig.step("10000")
        rig.clock.advance(1000)
        reports = rig.sim.set_price(rig.symbol, D("9850"))
        filled = {r.client_id for r in reports if r.filled_qty > 0}
        assert filled
        crash["armed"] = True
        tick = PriceTick(rig.symbol, D("9850"), rig.clock.now_ms())
        with pytest.raises((Crash, sqlite3.ProgrammingError)):
            if path == "on_order_report":
                for report in reports:
                    await rig.engine.on_order_report(report)
            else:
                await rig.engine.on_events(reports, tick)
        assert not Journal(tmp_path / "j.db").fills(rig.symbol)  # died before the commit
        again = make_rig(
            symbol=rig.symbol, clock=rig.clock, venue=rig.sim, journal=Journal(tmp_path / "j.db")
        )
        await again.engine.start()
        assert {f.client_id for f in again.journal.fills(rig.symbol)} == filled
        await again.step("9850")
        check_invariants(again.journal, rig.sim, rig.symbol, "t1")

    run(scenario())
