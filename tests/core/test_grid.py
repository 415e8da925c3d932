from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mm.core import ids
from mm.core.commands import CancelOrder, PlaceOrder
from mm.core.grid import GridMode, GridParams, GridStrategy
from mm.core.model import MarketRules, MarketType, OrderReport, OrderStatus, Role, Side
from mm.core.position import PositionManager
from tests.helpers import grid

SPOT = MarketRules(
    "BTCUSDT", "BTC", "USDT", MarketType.SPOT, D("0.01"), D("0.001"), D("0.001"), D("5")
)
PERP = MarketRules(
    "BTCUSDT-PERP", "BTC", "USDT", MarketType.LINEAR, D("0.01"), D("0.001"), D("0.001"), D("5")
)
ANCHOR = D("10000")


def setup(params=None, rules=SPOT):
    return GridStrategy(params or grid(), rules, ANCHOR), PositionManager(rules.symbol)


def apply(pm, commands, status=OrderStatus.OPEN, ts=1):
    """Carry out commands the way a perfect venue would: places OPEN, cancels CANCELED."""
    for c in commands:
        if isinstance(c, PlaceOrder):
            pm.record_intent(c, ts)
            pm.apply_report(OrderReport(c.symbol, c.client_id, c.side, c.price, c.qty, status))
        else:
            o = pm.order(c.client_id)
            pm.apply_report(
                OrderReport(
                    c.symbol,
                    o.client_id,
                    o.side,
                    o.price,
                    o.qty,
                    OrderStatus.CANCELED,
                    o.filled_qty,
                    o.avg_price,
                )
            )


def fill(pm, level, qty=None):
    o = pm.slot(level).order
    qty = o.qty if qty is None else D(qty)
    status = OrderStatus.FILLED if qty == o.qty else OrderStatus.PARTIALLY_FILLED
    pm.apply_report(
        OrderReport(pm.symbol, o.client_id, o.side, o.price, o.qty, status, qty, o.price)
    )


def refuse(pm, cmd, ts_ms):
    """The venue refuses a placement for funds: the slot backs off."""
    pm.record_intent(cmd, ts_ms)
    pm.apply_report(
        OrderReport(
            pm.symbol,
            cmd.client_id,
            cmd.side,
            cmd.price,
            cmd.qty,
            OrderStatus.REJECTED,
            reason="insufficient_funds",
            ts_ms=ts_ms,
        )
    )


def placed(commands):
    return {
        c.level: (c.role, c.side, c.price, c.qty) for c in commands if isinstance(c, PlaceOrder)
    }


def cancelled(commands):
    return {c.level: c.reason for c in commands if isinstance(c, CancelOrder)}


def test_long_grid_places_post_only_buys_below_the_centre():
    strategy, pm = setup()
    commands = strategy.decide(pm.snapshot(), D("10000"), now_ms=0)
    assert placed(commands) == {
        -1: (Role.OPEN, Side.BUY, D("9900"), D("0.01")),
        -2: (Role.OPEN, Side.BUY, D("9800"), D("0.01")),
        -3: (Role.OPEN, Side.BUY, D("9700"), D("0.01")),
    }
    assert all(c.post_only and not c.reduce_only for c in commands)
    keys = [ids.parse(c.client_id) for c in commands]
    assert [k.level for k in keys] == [-1, -2, -3]
    assert [k.generation for k in keys] == [1, 2, 3]
    assert all(k.role is Role.OPEN and k.side is Side.BUY for k in keys)


def test_same_state_and_key_is_the_quiet_hot_path():
    strategy, pm = setup()
    apply(pm, strategy.decide(pm.snapshot(), D("10000"), now_ms=0))
    assert strategy.decide(pm.snapshot(), D("10000"), now_ms=1) == []
    assert strategy.decide(pm.snapshot(), D("10020"), now_ms=2) == []  # same centre


def test_filled_buy_gets_its_close_one_level_up_for_the_held_qty():
    strategy, pm = setup()
    apply(pm, strategy.decide(pm.snapshot(), D("10000"), now_ms=0))
    fill(pm, -1)
    commands = strategy.decide(pm.snapshot(), D("9900"), now_ms=1)
    assert placed(commands)[-1] == (Role.CLOSE, Side.SELL, D("10000"), D("0.01"))
    close = next(c for c in commands if c.level == -1)
    assert not close.post_only and not close.reduce_only  # spot: no reduce-only
    assert ids.parse(close.client_id).role is Role.CLOSE


def test_closes_are_reduce_only_on_a_perpetual_when_all_inventory_is_one_sided():
    strategy, pm = setup(grid("neutral"), PERP)
    apply(pm, strategy.decide(pm.snapshot(), D("10000"), now_ms=0))
    fill(pm, -1)
    close = next(c for c in strategy.decide(pm.snapshot(), D("9900"), now_ms=1) if c.level == -1)
    assert close.reduce_only
    apply(pm, [close])
    fill(pm, 1)  # a short appears on the other side: slots no longer net to one side
    commands = strategy.decide(pm.snapshot(), D("10100"), now_ms=2)
    short_close = next(c for c in commands if c.level == 1)
    assert short_close.side is Side.BUY and short_close.price == D("10000")
    assert not short_close.reduce_only


def test_neutral_grid_opens_sells_above():
    strategy, pm = setup(grid("neutral"))
    assert placed(strategy.decide(pm.snapshot(), D("10000"), now_ms=0)) == {
        -1: (Role.OPEN, Side.BUY, D("9900"), D("0.01")),
        -2: (Role.OPEN, Side.BUY, D("9800"), D("0.01")),
        -3: (Role.OPEN, Side.BUY, D("9700"), D("0.01")),
        1: (Role.OPEN, Side.SELL, D("10100"), D("0.01")),
        2: (Role.OPEN, Side.SELL, D("10200"), D("0.01")),
        3: (Role.OPEN, Side.SELL, D("10300"), D("0.01")),
    }


def test_safety_gap_keeps_new_orders_away_from_the_price():
    strategy, pm = setup(grid(min_gap=D("0.6")))
    assert set(placed(strategy.decide(pm.snapshot(), D("9955"), now_ms=0))) == {-2, -3}
    strategy, pm = setup(grid(min_gap=D("0.6")))
    assert set(placed(strategy.decide(pm.snapshot(), D("9960"), now_ms=0))) == {-1, -2, -3}


def test_never_places_an_opening_order_that_would_cross_the_book():
    strategy, pm = setup()
    commands = strategy.decide(pm.snapshot(), D("10000"), now_ms=0, ask=D("9900.00"))
    assert set(placed(commands)) == {-2, -3}  # 9900 would take the ask


def test_window_trails_a_rising_price_with_one_level_of_slack():
    strategy, pm = setup()
    apply(pm, strategy.decide(pm.snapshot(), D("10000"), now_ms=0))
    commands = strategy.decide(pm.snapshot(), D("10100"), now_ms=1)
    assert cancelled(commands) == {}  # -3 is one level beyond the edge: kept
    assert placed(commands) == {0: (Role.OPEN, Side.BUY, D("10000"), D("0.01"))}
    apply(pm, commands)
    commands = strategy.decide(pm.snapshot(), D("10300"), now_ms=2)
    assert cancelled(commands) == {-3: "outside_window", -2: "outside_window"}
    assert set(placed(commands)) == {1, 2}


def test_an_order_the_price_moves_towards_is_kept():
    strategy, pm = setup()
    apply(pm, strategy.decide(pm.snapshot(), D("10000"), now_ms=0))
    # 9930: the centre is now level -1, where the resting buy is about to fill
    commands = strategy.decide(pm.snapshot(), D("9930"), now_ms=1)
    assert -1 not in cancelled(commands)
    assert placed(commands) == {-4: (Role.OPEN, Side.BUY, D("9600"), D("0.01"))}


def test_risk_cancels_openings_keeps_closes_and_still_closes_new_inventory():
    strategy, pm = setup()
    apply(pm, strategy.decide(pm.snapshot(), D("10000"), now_ms=0))
    fill(pm, -1)
    apply(pm, strategy.decide(pm.snapshot(), D("9900"), now_ms=1))
    fill(pm, -2, "0.004")  # partial fill of the next buy just before risk trips
    commands = strategy.decide(pm.snapshot(), D("9850"), now_ms=2, risk_halted=True)
    assert cancelled(commands) == {-2: "risk", -3: "risk", -4: "risk"}
    assert placed(commands) == {}
    apply(pm, commands)
    assert pm.slot(-1).order.role is Role.CLOSE  # the close stays
    commands = strategy.decide(pm.snapshot(), D("9850"), now_ms=3, risk_halted=True)
    assert placed(commands) == {-2: (Role.CLOSE, Side.SELL, D("9900"), D("0.004"))}


def test_max_open_orders_prefers_closes_inside_the_window():
    strategy, pm = setup(grid(max_open_orders=3, buy_levels=3))
    apply(pm, strategy.decide(pm.snapshot(), D("10000"), now_ms=0))
    fill(pm, -1)
    # wanted: the close of -1 (inside the window), buys at -2, -3 (resting) and -4 (new); the
    # budget of 3 keeps the close and the two nearest buys
    commands = strategy.decide(pm.snapshot(), D("9900"), now_ms=1)
    assert placed(commands) == {-1: (Role.CLOSE, Side.SELL, D("10000"), D("0.01"))}
    assert cancelled(commands) == {}
    apply(pm, commands)
    assert {o.level for o in pm.live_orders()} == {-1, -2, -3}
    assert strategy.decide(pm.snapshot(), D("9900"), now_ms=2) == []


def test_inventory_skew_lowers_the_reference_for_a_long():
    params = grid(inventory_skew_bps=D("2"))
    strategy, pm = setup(params)
    apply(pm, strategy.decide(pm.snapshot(), D("10000"), now_ms=0))
    fill(pm, -1)  # 0.01 BTC held at 9900: 99 quote -> 198 bps lower
    assert strategy.reference_price(D("10000"), pm.snapshot()) == D("10000") * (1 - D("0.0198"))


def test_dust_too_small_to_close_is_topped_up_instead():
    strategy, pm = setup(grid(level_qty=D("0.001")))
    apply(pm, strategy.decide(pm.snapshot(), D("10000"), now_ms=0))
    o = pm.slot(-1).order
    pm.apply_report(
        OrderReport(
            pm.symbol, o.client_id, o.side, o.price, o.qty, OrderStatus.CANCELED, D("0"), D("0")
        )
    )
    # 0.0004 at 10000 is below min qty and min notional: no close, a new buy on the same slot
    fake = PlaceOrder(
        pm.symbol,
        ids.encode("t1", pm.symbol, -1, Role.OPEN, Side.BUY, 50),
        -1,
        Role.OPEN,
        Side.BUY,
        D("9900"),
        D("0.001"),
        True,
        False,
    )
    pm.record_intent(fake, 1)
    pm.apply_report(
        OrderReport(
            pm.symbol,
            fake.client_id,
            Side.BUY,
            D("9900"),
            D("0.001"),
            OrderStatus.CANCELED,
            D("0.0004"),
            D("9900"),
        )
    )
    commands = strategy.decide(pm.snapshot(), D("10000"), now_ms=2)
    assert placed(commands)[-1] == (Role.OPEN, Side.BUY, D("9900"), D("0.001"))


def test_a_rejected_slot_waits_for_its_backoff():
    strategy, pm = setup()
    commands = strategy.decide(pm.snapshot(), D("10000"), now_ms=0)
    first = commands[0]
    refuse(pm, first, ts_ms=0)
    for c in commands[1:]:
        apply(pm, [c])
    assert strategy.decide(pm.snapshot(), D("10000"), now_ms=500) == []
    again = strategy.decide(pm.snapshot(), D("10000"), now_ms=1000)
    assert set(placed(again)) == {first.level}


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="multiple of tick"):
        GridStrategy(grid(interval=D("0.005")), SPOT, ANCHOR)
    with pytest.raises(ValueError, match="exactly one"):
        GridParams("t1", GridMode.LONG, D("1"), 3, 3, 10, level_notional=D("10"), level_qty=D("1"))
    with pytest.raises(ValueError, match="max_open_orders"):
        grid("neutral", max_open_orders=5)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(9400_00, 10600_00), min_size=1, max_size=12),
    st.sampled_from(["long", "neutral"]),
    st.integers(9400_00, 10600_00),
)
def test_quiet_band_promises_hold(path, mode, probe):
    """Whatever the history, every price strictly inside the quiet band decides nothing."""
    strategy, pm = setup(grid(mode))
    price = D("10000")
    for cents in path:
        price = D(cents) / 100
        for _ in range(3):  # settle like the engine does
            commands = strategy.decide(pm.snapshot(), price, now_ms=0)
            if not commands:
                break
            apply(pm, commands)
        for o in list(pm.live_orders()):  # the venue fills what the price reached
            if (o.side is Side.BUY and o.price >= price) or (
                o.side is Side.SELL and o.price <= price
            ):
                fill(pm, o.level)
    if strategy.decide(pm.snapshot(), price, now_ms=0):
        return  # not settled: no band promised
    lo, hi, _ = strategy.quiet_band(pm.snapshot(), price)
    p = D(probe) / 100
    if lo < p < hi:
        assert strategy.decide(pm.snapshot(), p, now_ms=0) == []


def test_a_settled_decision_keeps_the_reject_backoff_horizon():
    strategy, pm = setup()
    commands = strategy.decide(pm.snapshot(), D("10000"), now_ms=0)
    first = commands[0]  # level -1: refused for funds, backs off until t=1000
    refuse(pm, first, ts_ms=0)
    apply(pm, commands[1:])
    moved = strategy.decide(pm.snapshot(), D("10100"), now_ms=500)
    assert set(placed(moved)) == {0}
    apply(pm, moved)
    strategy.settled(pm.snapshot(), 500)  # nominal outcome: remembered as quiet ...
    retry = strategy.decide(pm.snapshot(), D("10100"), now_ms=1500)  # ... until the back-off ends
    assert set(placed(retry)) == {-1}


def test_a_close_whose_remainder_fell_below_the_minimum_is_kept():
    strategy, pm = setup()
    apply(pm, strategy.decide(pm.snapshot(), D("10000"), now_ms=0))
    fill(pm, -1)
    apply(pm, strategy.decide(pm.snapshot(), D("9900"), now_ms=1))
    fill(pm, -1, "0.0096")  # the close leaves 0.0004 BTC: below min qty, yet resting on the venue
    assert pm.slot(-1).order.role is Role.CLOSE
    commands = strategy.decide(pm.snapshot(), D("9990"), now_ms=2)
    assert -1 not in cancelled(commands) and -1 not in placed(commands)
