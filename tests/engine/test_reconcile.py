"""Recovery (DESIGN 4): restarts against a venue that kept trading, with and without a journal."""

from decimal import Decimal as D

import pytest

from connectors.simulated.exchange import SimConfig, SimulatedExchange
from mm.core import ids
from mm.core.commands import CancelAll
from mm.core.model import OrderRequest, OrderStatus, Role, Side
from mm.engine.clock import VirtualClock
from mm.engine.symbol_engine import EngineState
from mm.store.journal import Journal
from tests.helpers import T0, check_invariants, grid, make_rig, run


class Crash(Exception):
    """Stands in for the process dying at a phase of the journal protocol."""


def crash_at(phase):
    def on_phase(name):
        if name == phase:
            raise Crash(phase)

    return on_phase


def restart(rig, journal_path, **kwargs):
    """A new engine on the same venue and clock, reading the journal file from disk."""
    return make_rig(
        kwargs.pop("params", None),
        symbol=rig.symbol,
        clock=rig.clock,
        venue=rig.sim,
        journal=Journal(journal_path),
        **kwargs,
    )


def venue(clock, **config):
    values = dict(
        balances={"USDT": D(1_000_000)},
        start_prices={"BTCUSDT": D("10000")},
        maker_fee_rate=D("0.001"),
        taker_fee_rate=D("0.002"),
    )
    values.update(config)
    return SimulatedExchange(SimConfig(**values), clock)


def open_on_venue(rig):
    return sorted(o.client_id for o in rig.sim.orders(rig.symbol) if not o.status.is_terminal)


def test_crash_after_intent_commit_never_duplicates(tmp_path):
    async def scenario():
        rig = make_rig(journal=Journal(tmp_path / "j.db"), on_phase=crash_at("intent_committed"))
        await rig.engine.start()
        with pytest.raises(Crash):
            await rig.step("10000")
        assert rig.sim.orders(rig.symbol) == []  # died before sending anything
        again = restart(rig, tmp_path / "j.db")
        await again.engine.start()
        never = [r for r in again.rows("orders") if r["reason"] == "never_placed"]
        assert len(never) == 3 and all(r["status"] == "REJECTED" for r in never)
        await again.step("10000")
        assert len(open_on_venue(again)) == 3
        check_invariants(again.journal, again.sim, again.symbol, "t1")

    run(scenario())


def test_crash_after_send_adopts_what_the_venue_accepted(tmp_path):
    async def scenario():
        rig = make_rig(journal=Journal(tmp_path / "j.db"), on_phase=crash_at("sent"))
        await rig.engine.start()
        with pytest.raises(Crash):
            await rig.step("10000")
        sent = open_on_venue(rig)
        assert len(sent) == 3
        assert {o.status for o in Journal(tmp_path / "j.db").orders(rig.symbol)} == {
            OrderStatus.INTENT
        }
        again = restart(rig, tmp_path / "j.db")
        await again.engine.start()
        assert {o.client_id: o.status for o in again.journal.orders(rig.symbol)} == {
            c: OrderStatus.OPEN for c in sent
        }
        await again.step("10010")
        assert open_on_venue(again) == sent  # nothing placed twice
        check_invariants(again.journal, again.sim, again.symbol, "t1")

    run(scenario())


def test_lookups_wait_out_the_venue_consistency_window(tmp_path):
    async def scenario():
        clock = VirtualClock(T0)
        sim = venue(clock, consistency_window_ms=5_000)
        rig = make_rig(
            journal=Journal(tmp_path / "j.db"), clock=clock, venue=sim, on_phase=crash_at("sent")
        )
        await rig.engine.start()
        with pytest.raises(Crash):
            await rig.step("10000")
        before = clock.now_ms()
        again = restart(rig, tmp_path / "j.db")
        await again.engine.start()  # lookups say "not found" until the window has passed
        assert clock.now_ms() - before >= 4_000
        assert {o.status for o in again.journal.orders(rig.symbol)} == {OrderStatus.OPEN}
        assert [r for r in again.rows("orders") if r["reason"] == "never_placed"] == []

    run(scenario())


def test_fills_that_happened_while_down_are_applied_not_lost(tmp_path):
    async def scenario():
        rig = make_rig(journal=Journal(tmp_path / "j.db"))
        await rig.engine.start()
        await rig.step("10000")
        await rig.step("9900")  # -1 fills, its close rests at 10000
        rig.journal.close()
        rig.clock.advance(1000)
        rig.sim.set_price(rig.symbol, D("9750"))  # -2 fills while the bot is down
        rig.sim.set_price(rig.symbol, D("10050"))  # ... and so does the close of -1
        rig.sim.set_price(rig.symbol, D("9850"))
        again = restart(rig, tmp_path / "j.db")
        await again.engine.start()
        pm = again.engine.pm
        assert pm.slot(-1).inventory_qty == 0 and pm.totals.round_trips == 1
        assert pm.slot(-2).inventory_qty == D("0.01")
        assert pm.totals.realized_pnl == D("0.801")
        await again.step("9850")
        assert again.live()[-2] == ("CLOSE", "SELL", D("9900.00"), D("0.01"))
        check_invariants(again.journal, again.sim, again.symbol, "t1")

    run(scenario())


def test_a_dropped_update_is_recovered_by_reconcile():
    async def scenario():
        rig = make_rig()
        await rig.engine.start()
        await rig.step("10000")
        rig.sim.set_price(rig.symbol, D("9890"))  # the fill report never reaches the engine
        assert rig.engine.pm.slot(-1).inventory_qty == 0
        await rig.engine.reconcile()
        assert rig.engine.pm.slot(-1).inventory_qty == D("0.01")
        check_invariants(rig.journal, rig.sim, rig.symbol, "t1")

    run(scenario())


def test_foreign_orders_are_never_touched():
    async def scenario():
        rig = make_rig()
        manual = OrderRequest(rig.symbol, "manual-order-1", Side.BUY, D("9500.00"), D("0.01"))
        await rig.sim.place_order(manual)
        await rig.engine.start()
        await rig.step("10000")
        await rig.engine.reconcile()
        await rig.engine.execute([CancelAll(rig.symbol, "drain")])
        foreign = await rig.sim.fetch_order(rig.symbol, "manual-order-1")
        assert foreign.status is OrderStatus.OPEN
        assert rig.journal.order("manual-order-1") is None
        assert open_on_venue(rig) == ["manual-order-1"]

    run(scenario())


def test_our_unknown_orders_are_adopted_and_a_stray_on_a_busy_slot_is_cancelled(tmp_path):
    async def scenario():
        rig = make_rig(journal=Journal(tmp_path / "j.db"))
        await rig.engine.start()
        await rig.step("10000")
        stray_id = ids.encode("t1", rig.symbol, -1, Role.OPEN, Side.BUY, 999)
        lost_id = ids.encode("t1", rig.symbol, -5, Role.OPEN, Side.BUY, 998)
        for cid, price in ((stray_id, "9900.00"), (lost_id, "9500.00")):
            await rig.sim.place_order(OrderRequest(rig.symbol, cid, Side.BUY, D(price), D("0.01")))
        await rig.engine.reconcile()
        assert rig.journal.order(lost_id).reason == "adopted"
        assert rig.engine.pm.slot(-5).order.client_id == lost_id
        assert (await rig.sim.fetch_order(rig.symbol, stray_id)).status is OrderStatus.CANCELED
        assert rig.engine.pm.next_generation > 999
        check_invariants(rig.journal, rig.sim, rig.symbol, "t1")

    run(scenario())


def test_a_fresh_node_rebuilds_inventory_from_the_perpetual_position(tmp_path):
    async def scenario():
        rig = make_rig(symbol="BTCUSDT-PERP", journal=Journal(tmp_path / "a.db"))
        await rig.engine.start()
        await rig.step("10000")
        await rig.step("9800")  # -1 and -2 fill: long 0.02, closes rest at 10000 and 9900
        assert rig.sim.account.position_view(rig.symbol).qty == D("0.02")
        closes = {o.level: o.client_id for o in rig.engine.pm.live_orders() if o.role is Role.CLOSE}
        fresh = restart(rig, tmp_path / "fresh.db")  # the journal is gone (new node)
        await fresh.engine.start()
        assert fresh.engine.state is EngineState.QUOTING
        await fresh.step("9810")
        pm = fresh.engine.pm
        assert fresh.engine.strategy.anchor == D("10000.00")  # derived from our closes
        assert pm.inventory_qty() == D("0.02")
        assert {lvl: pm.slot(lvl).inventory_qty for lvl in closes} == {-1: D("0.01"), -2: D("0.01")}
        assert {lvl: pm.slot(lvl).order.client_id for lvl in closes} == closes  # kept, not churned
        check_invariants(fresh.journal, fresh.sim, fresh.symbol, "t1", complete_history=False)

    run(scenario())


def test_an_unexplained_mismatch_halts_and_trades_nothing(tmp_path):
    async def scenario():
        rig = make_rig(symbol="BTCUSDT-PERP", journal=Journal(tmp_path / "j.db"))
        await rig.engine.start()
        await rig.step("10000")
        # someone trades the same account by hand while the bot is down
        await rig.sim.place_order(
            OrderRequest(rig.symbol, "hand-1", Side.SELL, D("9000.00"), D("0.05"))
        )
        again = restart(rig, tmp_path / "j.db")
        await again.engine.start()
        assert again.engine.state is EngineState.HALTED
        assert "journal inventory 0" in again.engine.halt_reason
        assert "-0.05" in again.engine.halt_reason
        before = len(again.sim.orders(again.symbol))
        await again.step("9500")
        assert len(again.sim.orders(again.symbol)) == before

    run(scenario())


def test_spot_balance_already_held_on_a_fresh_node_is_not_taken_as_inventory(tmp_path):
    async def scenario():
        clock = VirtualClock(T0)
        sim = venue(clock, balances={"USDT": D(100_000), "BTC": D("1.5")})
        rig = make_rig(clock=clock, venue=sim, journal=Journal(tmp_path / "j.db"))
        await rig.engine.start()
        await rig.step("10000")
        await rig.step("9900")
        assert rig.journal.meta(rig.symbol)["base_baseline"] == "1.5"
        assert rig.engine.pm.inventory_qty() == D("0.01")
        check_invariants(rig.journal, rig.sim, rig.symbol, "t1", base_baseline=D("1.5"))

    run(scenario())


def test_spot_inventory_is_rebuilt_when_the_baseline_is_configured(tmp_path):
    async def scenario():
        clock = VirtualClock(T0)
        sim = venue(clock, balances={"USDT": D(100_000), "BTC": D("0.03")})
        rig = make_rig(
            grid(),
            clock=clock,
            venue=sim,
            journal=Journal(tmp_path / "j.db"),
            engine_config={"spot_base_baseline": D("0")},
        )
        await rig.engine.start()
        await rig.step("10000")
        assert rig.engine.pm.inventory_qty() == D("0.03")
        closes = sorted(o.price for o in rig.engine.pm.live_orders() if o.role is Role.CLOSE)
        assert closes == [D("10100.00"), D("10200.00"), D("10300.00")]
        check_invariants(rig.journal, rig.sim, rig.symbol, "t1")

    run(scenario())
