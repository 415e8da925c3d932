"""Scenario tests: price paths through the real engine, venue and SQLite journal.

After each step both the PositionManager and the journal rows are checked.
"""

from decimal import Decimal as D

from mm.core.commands import CancelOrder
from mm.core.model import OrderStatus
from tests.helpers import check_invariants, grid, make_rig, run


def order_rows(rig):
    return {r["client_id"]: r for r in rig.rows("orders")}


def live_rows(rig):
    return {
        r["level"]: r for r in rig.rows("orders") if r["status"] in ("OPEN", "PARTIALLY_FILLED")
    }


def test_buy_fills_close_placed_one_level_up_fills_and_pnl_is_recorded():
    async def scenario():
        rig = make_rig()
        await rig.engine.start()
        await rig.step("10000")
        assert rig.live() == {
            -1: ("OPEN", "BUY", D("9900.00"), D("0.01")),
            -2: ("OPEN", "BUY", D("9800.00"), D("0.01")),
            -3: ("OPEN", "BUY", D("9700.00"), D("0.01")),
        }
        assert set(live_rows(rig)) == {-1, -2, -3}
        assert rig.journal.meta(rig.symbol)["anchor"] == "10000.00"
        buy_id = rig.sim_order(-1).client_id

        await rig.step("9900")  # the buy at 9900 fills as maker
        slot = rig.engine.pm.slot(-1)
        assert (slot.inventory_qty, slot.entry_price) == (D("0.01"), D("9900.00"))
        assert slot.order.role.value == "CLOSE" and slot.order.price == D("10000.00")
        assert slot.order.qty == D("0.01") and slot.order.side.value == "SELL"
        assert order_rows(rig)[buy_id]["status"] == "FILLED"
        [fill_row] = rig.rows("fills")
        assert (fill_row["client_id"], D(fill_row["qty"]), D(fill_row["price"])) == (
            buy_id,
            D("0.01"),
            D("9900"),
        )
        assert D(fill_row["fee"]) == D("0.0990")  # 0.1% maker fee on 99 quote
        assert D(rig.slot_rows()[-1]["inventory_qty"]) == D("0.01")
        assert live_rows(rig)[-1]["side"] == "SELL"

        await rig.step("10000")  # the close fills: one round trip
        assert rig.engine.pm.slot(-1).inventory_qty == 0
        expected = (D("10000") - D("9900")) * D("0.01") - D("0.099") - D("0.1")
        assert rig.engine.pm.totals.realized_pnl == expected == D("0.801")
        assert rig.engine.pm.totals.round_trips == 1
        fills = rig.rows("fills")
        assert D(fills[-1]["realized_pnl"]) == expected and fills[-1]["closed_round_trip"] == 1
        assert D(rig.slot_rows()[-1]["inventory_qty"]) == 0
        again = rig.engine.pm.slot(-1).order  # back at 10000: the level buys again
        assert (again.role.value, again.side.value, again.price) == ("OPEN", "BUY", D("9900.00"))
        assert again.client_id != buy_id
        usdt = rig.sim.account.balances()["USDT"]
        assert usdt.total == D(1_000_000) + expected  # the venue agrees to the last digit
        check_invariants(rig.journal, rig.sim, rig.symbol, "t1")

    run(scenario())


def test_partial_fill_then_cancel_keeps_the_partial_inventory():
    async def scenario():
        rig = make_rig()
        await rig.engine.start()
        await rig.step("10000")
        order = rig.sim_order(-1)
        report = rig.sim.force_fill(rig.symbol, order.client_id, D("0.004"))
        await rig.engine.on_order_report(report)
        assert rig.engine.pm.slot(-1).inventory_qty == D("0.004")
        assert live_rows(rig)[-1]["status"] == "PARTIALLY_FILLED"
        assert D(live_rows(rig)[-1]["filled_qty"]) == D("0.004")

        await rig.engine.execute([CancelOrder(rig.symbol, order.client_id, -1, "test")])
        slot = rig.engine.pm.slot(-1)
        assert slot.inventory_qty == D("0.004") and slot.order is None
        row = order_rows(rig)[order.client_id]
        assert row["status"] == "CANCELED" and D(row["filled_qty"]) == D("0.004")
        assert D(rig.slot_rows()[-1]["inventory_qty"]) == D("0.004")

        await rig.step("9950")  # the held partial gets its own close at level 0
        close = rig.engine.pm.slot(-1).order
        assert (close.role.value, close.price, close.qty) == ("CLOSE", D("10000.00"), D("0.004"))
        check_invariants(rig.journal, rig.sim, rig.symbol, "t1")

    run(scenario())


def test_neutral_mode_opens_and_closes_a_short_on_the_perpetual():
    async def scenario():
        rig = make_rig(grid("neutral"), symbol="BTCUSDT-PERP")
        await rig.engine.start()
        await rig.step("10000")
        assert {lvl: v[1] for lvl, v in rig.live().items()} == {
            -1: "BUY",
            -2: "BUY",
            -3: "BUY",
            1: "SELL",
            2: "SELL",
            3: "SELL",
        }
        await rig.step("10100")  # the opening sell at 10100 fills: short 0.01
        slot = rig.engine.pm.slot(1)
        assert (slot.inventory_qty, slot.entry_price) == (D("-0.01"), D("10100.00"))
        close = slot.order
        assert (close.side.value, close.price, close.reduce_only) == ("BUY", D("10000.00"), True)
        assert rig.sim.account.position_view(rig.symbol).qty == D("-0.01")
        assert D(rig.slot_rows()[1]["inventory_qty"]) == D("-0.01")

        # the short's closing buy and the opening buy of level 0 (placed when the centre moved
        # up) both rest at 10000 and both fill: slot 1 is flat, slot 0 now holds a long
        await rig.step("10000")
        assert rig.engine.pm.slot(1).inventory_qty == 0
        assert rig.engine.pm.slot(0).inventory_qty == D("0.01")
        assert rig.sim.account.position_view(rig.symbol).qty == D("0.01")
        pnl = D("1") - D("0.101") - D("0.1")  # 100 * 0.01 minus both maker fees
        assert rig.engine.pm.totals.realized_pnl == pnl
        closing = [r for r in rig.rows("fills") if r["closed_round_trip"]]
        assert [D(r["realized_pnl"]) for r in closing] == [pnl]
        check_invariants(rig.journal, rig.sim, rig.symbol, "t1")

    run(scenario())


def test_the_window_trails_a_trending_price():
    async def scenario():
        rig = make_rig()
        await rig.engine.start()
        await rig.step("10000")
        for price in ("10100", "10200", "10300", "10400", "10500", "10600"):
            await rig.step(price)
            centre = int((D(price) - 10000) / 100)
            levels = set(rig.live())
            assert levels <= set(range(centre - 4, centre)), (price, levels)
            assert {centre - 1, centre - 2, centre - 3} <= levels
            assert set(live_rows(rig)) == levels  # the journal agrees
        cancelled = [r for r in rig.rows("orders") if r["status"] == "CANCELED"]
        assert len(cancelled) >= 5 and all(r["role"] == "OPEN" for r in cancelled)
        assert len(rig.sim.orders(rig.symbol)) == len(rig.rows("orders"))
        check_invariants(rig.journal, rig.sim, rig.symbol, "t1")

    run(scenario())


def test_risk_triggered_cancels_opening_orders_and_keeps_closes():
    async def scenario():
        rig = make_rig()
        await rig.engine.start()
        await rig.step("10000")
        await rig.step("9900")  # -1 fills, its close rests at 10000
        close_id = rig.engine.pm.slot(-1).order.client_id
        rig.engine.set_risk_halted(True)
        await rig.step("9950")
        assert rig.live() == {-1: ("CLOSE", "SELL", D("10000.00"), D("0.01"))}
        on_venue = {o.client_id: o.status for o in rig.sim.orders(rig.symbol)}
        assert on_venue[close_id] is OrderStatus.OPEN
        assert sum(s is OrderStatus.OPEN for s in on_venue.values()) == 1
        assert {r["level"] for r in rig.rows("orders") if r["status"] == "CANCELED"} == {-2, -3, -4}
        await rig.step("9800")  # nothing new while triggered
        assert set(rig.live()) == {-1}
        rig.engine.set_risk_halted(False)
        await rig.step("9850")
        assert {-2, -3} <= set(rig.live()) and rig.live()[-1][0] == "CLOSE"
        check_invariants(rig.journal, rig.sim, rig.symbol, "t1")

    run(scenario())
