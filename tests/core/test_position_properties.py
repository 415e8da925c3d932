"""Properties of the PositionManager over arbitrary fill sequences (Hypothesis)."""

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from mm.core import ids
from mm.core.commands import PlaceOrder
from mm.core.model import OrderReport, OrderStatus, Role, Side
from mm.core.position import PositionManager

SYMBOL = "ETHUSDT"
FINAL = [OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED]


@st.composite
def order_lives(draw):
    """Orders on a few slots, each with its reports (cumulative fills) shuffled and repeated."""
    lives = []
    for generation in range(1, draw(st.integers(1, 12)) + 1):
        level = draw(st.integers(-3, 3))
        side = draw(st.sampled_from([Side.BUY, Side.SELL]))
        role = draw(st.sampled_from([Role.OPEN, Role.CLOSE]))
        price = D(draw(st.integers(90, 110)))
        qty = D(draw(st.integers(1, 20))) / 10
        steps = sorted(draw(st.lists(st.integers(0, int(qty * 10)), max_size=3)))
        final = draw(st.sampled_from(FINAL))
        final_fill = qty if final is OrderStatus.FILLED else D(steps[-1] if steps else 0) / 10
        if final is OrderStatus.REJECTED:
            final_fill, steps = D(0), []
        client_id = ids.encode("p1", SYMBOL, level, role, side, generation)
        cmd = PlaceOrder(SYMBOL, client_id, level, role, side, price, qty, False, False)

        def report(status, cum=D(0), ts_ms=0, side=side, price=price, qty=qty, cid=client_id):
            return OrderReport(
                SYMBOL, cid, side, price, qty, status, cum, price, cum * price / 1000, ts_ms=ts_ms
            )

        reports = [report(OrderStatus.OPEN)]
        for i, cum in enumerate(steps):
            reports.append(report(OrderStatus.PARTIALLY_FILLED, min(D(cum) / 10, final_fill), i))
        reports.append(report(final, final_fill, 9))
        shuffled = draw(st.permutations(reports))
        repeats = draw(st.lists(st.sampled_from(reports), max_size=3))
        lives.append((cmd, list(shuffled) + repeats))
    return lives


def drive(pm, lives):
    """Apply each order's reports after its intent; returns the reports applied per order."""
    applied = {}
    for cmd, reports in lives:
        if pm.slot(cmd.level).order is not None:
            continue  # the slot is busy: a real strategy would not place here
        pm.record_intent(cmd, 0)
        applied[cmd.client_id] = (cmd, [])
        for r in reports:
            pm.apply_report(r)
            applied[cmd.client_id][1].append(r)
            if pm.order(cmd.client_id) is None:
                break  # terminal: later reports are stale duplicates (tested separately)
    return applied


@settings(max_examples=200, deadline=None)
@given(order_lives())
def test_inventory_is_conserved(lives):
    pm = PositionManager(SYMBOL)
    deltas = []
    original = pm.apply_report

    def spy(report):
        fill = original(report)
        if fill is not None:
            deltas.append(fill)
        return fill

    pm.apply_report = spy
    applied = drive(pm, lives)
    expected = sum(
        (cmd.side.sign * max(r.filled_qty for r in reports) for cmd, reports in applied.values()),
        D(0),
    )
    assert pm.inventory_qty() == expected
    assert sum((d.qty * d.side.sign for d in deltas), D(0)) == expected
    assert pm.totals.realized_pnl == sum((d.realized_pnl for d in deltas), D(0))
    assert pm.totals.fill_count == len(deltas)


@settings(max_examples=200, deadline=None)
@given(order_lives())
def test_applying_any_update_twice_changes_nothing(lives):
    pm = PositionManager(SYMBOL)
    for cmd, reports in lives:
        if pm.slot(cmd.level).order is not None:
            continue
        pm.record_intent(cmd, 0)
        for r in reports:
            pm.apply_report(r)
            pm.take_changes()
            version, snapshot = pm.version, pm.snapshot()
            assert pm.apply_report(r) is None
            assert pm.version == version and not pm.take_changes()
            assert pm.snapshot() == snapshot


@settings(max_examples=200, deadline=None)
@given(order_lives())
def test_never_two_live_orders_on_one_slot(lives):
    pm = PositionManager(SYMBOL)
    drive(pm, lives)
    live = pm.live_orders()
    assert len({o.level for o in live}) == len(live)
    for order in live:
        assert pm.slot(order.level).order == order and not order.status.is_terminal
