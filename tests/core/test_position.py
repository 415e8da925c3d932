from decimal import Decimal as D

import pytest

from mm.core import ids
from mm.core.commands import PlaceOrder
from mm.core.model import CoreInvariantError, OrderReport, OrderStatus, Role, Side
from mm.core.position import PositionManager

SYMBOL = "BTCUSDT"


def place(level, side=Side.BUY, role=Role.OPEN, price="100", qty="1", generation=1):
    client_id = ids.encode("t1", SYMBOL, level, role, side, generation)
    return PlaceOrder(SYMBOL, client_id, level, role, side, D(price), D(qty), True, False)


def report(cmd, status, filled="0", avg=None, fee="0", ts=1):
    return OrderReport(
        SYMBOL,
        cmd.client_id,
        cmd.side,
        cmd.price,
        cmd.qty,
        status,
        D(filled),
        D(avg) if avg else (cmd.price if D(filled) else D(0)),
        D(fee),
        exchange_id="x1",
        ts_ms=ts,
    )


def test_intent_then_open_is_journaled_once():
    pm = PositionManager(SYMBOL)
    cmd = place(-1)
    pm.record_intent(cmd, 10)
    changes = pm.take_changes()
    assert changes.orders[cmd.client_id].status is OrderStatus.INTENT
    assert changes.slots[-1].order.client_id == cmd.client_id
    assert pm.next_generation == 2
    assert pm.apply_report(report(cmd, OrderStatus.OPEN)) is None
    assert pm.order(cmd.client_id).status is OrderStatus.OPEN
    assert pm.order(cmd.client_id).exchange_id == "x1"
    pm.take_changes()
    version = pm.version
    assert pm.apply_report(report(cmd, OrderStatus.OPEN)) is None
    assert pm.version == version and not pm.take_changes()


def test_round_trip_realizes_pnl_net_of_both_fees():
    pm = PositionManager(SYMBOL)
    buy = place(-1, price="100")
    pm.record_intent(buy, 1)
    part = pm.apply_report(report(buy, OrderStatus.PARTIALLY_FILLED, "0.4", fee="0.04"))
    assert (part.qty, part.price, part.fee, part.cum_filled_qty) == (
        D("0.4"),
        D(100),
        D("0.04"),
        D("0.4"),
    )
    full = pm.apply_report(report(buy, OrderStatus.FILLED, "1", fee="0.1"))
    assert (full.qty, full.fee) == (D("0.6"), D("0.06"))
    assert pm.slot(-1).inventory_qty == 1 and pm.slot(-1).entry_price == 100
    assert pm.slot(-1).order is None  # terminal orders leave the slot
    # a late partial update of the finished order changes nothing
    assert pm.apply_report(report(buy, OrderStatus.PARTIALLY_FILLED, "0.4")) is None
    close = place(-1, Side.SELL, Role.CLOSE, price="110", generation=2)
    pm.record_intent(close, 2)
    done = pm.apply_report(report(close, OrderStatus.FILLED, "1", fee="0.11"))
    assert done.closed_round_trip
    assert done.realized_pnl == D("10") - D("0.1") - D("0.11")
    assert pm.slot(-1).inventory_qty == 0
    assert pm.totals.round_trips == 1 and pm.totals.fill_count == 3
    assert pm.totals.realized_pnl == done.realized_pnl
    assert pm.totals.volume_quote == D("210")


def test_partial_fill_then_cancel_keeps_the_partial_inventory():
    pm = PositionManager(SYMBOL)
    buy = place(-2, qty="1")
    pm.record_intent(buy, 1)
    pm.apply_report(report(buy, OrderStatus.PARTIALLY_FILLED, "0.3"))
    pm.apply_report(report(buy, OrderStatus.CANCELED, "0.3"))
    slot = pm.slot(-2)
    assert slot.inventory_qty == D("0.3") and slot.order is None


def test_terminal_report_before_partial_counts_once():
    pm = PositionManager(SYMBOL)
    buy = place(-1)
    pm.record_intent(buy, 1)
    pm.apply_report(report(buy, OrderStatus.FILLED, "1"))
    assert pm.apply_report(report(buy, OrderStatus.PARTIALLY_FILLED, "0.5")) is None
    assert pm.slot(-1).inventory_qty == 1 and pm.totals.fill_count == 1


@pytest.mark.parametrize(
    "status", [OrderStatus.EXPIRED, OrderStatus.REJECTED, OrderStatus.CANCELED]
)
def test_terminal_statuses_free_the_order_and_keep_inventory(status):
    pm = PositionManager(SYMBOL)
    buy = place(-1)
    pm.record_intent(buy, 1)
    pm.apply_report(report(buy, OrderStatus.PARTIALLY_FILLED, "0.2"))
    pm.apply_report(report(buy, status, "0.2"))
    assert pm.slot(-1).order is None and pm.slot(-1).inventory_qty == D("0.2")
    assert pm.take_changes().orders[buy.client_id].status is status


def test_rejections_count_and_back_off():
    pm = PositionManager(SYMBOL)
    buy = place(-1)
    pm.record_intent(buy, 1)
    pm.apply_report(
        OrderReport(
            SYMBOL,
            buy.client_id,
            Side.BUY,
            D(100),
            D(1),
            OrderStatus.REJECTED,
            reason="post_only",
            ts_ms=5,
        )
    )
    assert pm.slot(-1).post_only_rejects == 1 and pm.slot(-1).retry_after_ms == 0
    again = place(-1, generation=2)
    pm.record_intent(again, 6)
    pm.apply_report(
        OrderReport(
            SYMBOL,
            again.client_id,
            Side.BUY,
            D(100),
            D(1),
            OrderStatus.REJECTED,
            reason="insufficient_funds",
            ts_ms=10,
        )
    )
    assert pm.slot(-1).rejects == 1 and pm.slot(-1).retry_after_ms == 1010


def test_one_live_order_per_slot_is_enforced():
    pm = PositionManager(SYMBOL)
    pm.record_intent(place(-1), 1)
    with pytest.raises(CoreInvariantError):
        pm.record_intent(place(-1, generation=2), 2)


def test_short_round_trip_in_neutral_mode():
    pm = PositionManager(SYMBOL)
    sell = place(2, Side.SELL, price="120")
    pm.record_intent(sell, 1)
    pm.apply_report(report(sell, OrderStatus.FILLED, "1"))
    assert pm.slot(2).inventory_qty == -1
    close = place(2, Side.BUY, Role.CLOSE, price="110", generation=2)
    pm.record_intent(close, 2)
    fill = pm.apply_report(report(close, OrderStatus.FILLED, "1"))
    assert fill.realized_pnl == D(10) and pm.slot(2).inventory_qty == 0


def test_adopt_takes_fills_as_already_held():
    pm = PositionManager(SYMBOL)
    cmd = place(-3, generation=77)
    adopted = pm.adopt(report(cmd, OrderStatus.PARTIALLY_FILLED, "0.25"), 5)
    assert adopted and pm.order(cmd.client_id).filled_qty == D("0.25")
    assert pm.slot(-3).inventory_qty == 0 and pm.next_generation == 78
    assert not pm.adopt(report(place(-3, generation=90), OrderStatus.OPEN), 6)


def test_snapshot_is_a_frozen_view():
    pm = PositionManager(SYMBOL)
    snap = pm.snapshot()
    assert pm.snapshot() is snap  # cached until something changes
    pm.record_intent(place(-1), 1)
    assert pm.snapshot() is not snap and -1 not in snap.slots
    with pytest.raises(TypeError):
        pm.snapshot().slots[5] = None  # type: ignore[index]
