"""GridStrategy.quiet_box: the ticks a connector may hold back because they cannot change a
decision. The promise is checked against `decide` itself."""

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from mm.core.model import PriceTick, Side
from mm.core.quiet import ANY, QuietBox, widest_box
from tests.core.test_grid import apply, fill, placed, refuse, setup
from tests.helpers import grid

TICK = D("0.01")


def tick(price, bid=None, ask=None):
    def dec(v):
        return None if v is None else D(str(v))

    return PriceTick("BTCUSDT", D(str(price)), 0, dec(bid), dec(ask))


def settle(strategy, pm, t, now_ms=0, halted=False):
    for _ in range(3):  # decide and carry out until nothing more is wanted, like the engine
        commands = strategy.decide(
            pm.snapshot(), t.price, now_ms=now_ms, risk_halted=halted, bid=t.bid, ask=t.ask
        )
        if not commands:
            return
        apply(pm, commands)


def box_of(strategy, pm, t, now_ms=0, halted=False):
    return strategy.quiet_box(
        pm.snapshot(), t.price, now_ms=now_ms, risk_halted=halted, bid=t.bid, ask=t.ask
    )


def test_a_settled_long_grid_gets_a_box_from_half_level_to_half_level():
    strategy, pm = setup()
    t = tick("10020")
    settle(strategy, pm, t)
    assert box_of(strategy, pm, tick("10050")) is None  # another centre: never decided there
    box = box_of(strategy, pm, t)
    # the centre changes at the half-levels 9950 and 10050; the gap edge 10010 and the buy cap
    # edge 10000.01 change nothing in a long grid here, so the box walks across them
    assert box == QuietBox(D("9950"), D("10050"), None, ANY, box.until_ms)
    assert box.holds(tick("10049.99"), 0) and box.holds(tick("10010"), 0)
    assert not box.holds(tick("10050"), 0) and not box.holds(tick("9950"), 0)
    assert not box.holds(tick("10020", ask="10020.01"), 0)  # a book the decision did not see


def test_the_box_uses_the_ask_for_the_buy_cap_and_ignores_the_bid_in_a_long_grid():
    strategy, pm = setup()
    t = tick("10020", bid="10019.99", ask="10020.01")
    settle(strategy, pm, t)
    box = box_of(strategy, pm, t)
    # the first buy (level -1, 9900) stays while the cap (ask - tick) is at least 9900; above,
    # the walk goes as far as it looks (four levels)
    assert box.ask == (D("9900.01"), D("10400.01")) and box.bid is ANY
    assert box.holds(tick("10030", bid="9000", ask="10100"), 0)
    assert not box.holds(tick("10030", bid="10029", ask="9900.01"), 0)
    assert not box.holds(tick("10030"), 0)  # no ask: the cap would come from the price


def test_a_neutral_box_bounds_the_bid_too():
    strategy, pm = setup(grid("neutral"))
    t = tick("10020", bid="10019.99", ask="10020.01")
    settle(strategy, pm, t)
    box = box_of(strategy, pm, t)
    # the first sell (level 1, 10100) stays while the floor (bid + tick) is at most 10100
    assert box.bid == (D("9599.99"), D("10099.99"))
    assert (box.lo, box.hi) == (D("9950"), D("10050"))


def test_the_widest_box_checks_its_corners_together():
    """Each axis alone may keep the key where both together do not: then only the point's
    own cell is promised."""

    def key(at):
        return int(at[0] >= 1 and at[1] >= 1)

    edges = [D(0), D(1), D(2)]
    half = [D("0.5"), D("0.5")]
    assert widest_box(key, half, [edges, edges], walk=True) == [(0, 1), (0, 1)]
    assert widest_box(lambda at: 0, half, [edges, edges], walk=True) == [(0, 2), (0, 2)]
    either = widest_box(
        lambda at: int(at[0] >= 1 or at[1] >= 1), [D("1.5")] * 2, [edges] * 2, walk=True
    )
    assert either == [(1, 2), (1, 2)]  # (0.5, 0.5) would decide otherwise
    on_edge = widest_box(lambda at: int(at[0] >= 1), [D(1), D("0.5")], [edges, edges], walk=True)
    assert on_edge == [(D(1).next_minus(), 2), (0, 2)]  # the edge itself is kept, not below it
    assert widest_box(key, [D(3), D("0.5")], [edges, edges], walk=True) is None  # beyond them


def test_no_box_while_the_decision_would_act_or_after_the_state_changed():
    strategy, pm = setup()
    t = tick("10000.5")
    assert box_of(strategy, pm, t) is None  # nothing decided yet
    commands = strategy.decide(pm.snapshot(), t.price, now_ms=0)
    assert commands and box_of(strategy, pm, t) is None  # it wants orders
    apply(pm, commands)
    assert box_of(strategy, pm, t) is None  # a new snapshot nobody has decided on
    settle(strategy, pm, t)
    assert box_of(strategy, pm, t) is not None
    assert box_of(strategy, pm, t, halted=True) is None  # another risk state, another key
    fill(pm, -1)
    assert box_of(strategy, pm, t) is None


def test_a_reject_back_off_bounds_the_box_in_time():
    strategy, pm = setup()
    commands = strategy.decide(pm.snapshot(), D("10000"), now_ms=0)
    refuse(pm, commands[0], ts_ms=0)  # level -1 backs off until t=1000
    apply(pm, commands[1:])
    t = tick("10000.5")
    assert strategy.decide(pm.snapshot(), t.price, now_ms=500) == []
    box = box_of(strategy, pm, t, now_ms=500)
    assert box.until_ms == 1000
    assert box.holds(t, 999) and not box.holds(t, 1000)
    retry = strategy.decide(pm.snapshot(), t.price, now_ms=1000)
    assert set(placed(retry)) == {-1}


prices = st.integers(9500_00, 10500_00)
# (bid offset, ask offset) in cents from the last price; either may cross it (a stale last trade)
books = st.one_of(st.none(), st.tuples(st.integers(-15000, 2000), st.integers(-15000, 2000)))


def inside(rnd, bounds, fallback):
    """A price in cents strictly inside `bounds` (infinite ends replaced by `fallback` +- 200)."""
    lo = bounds[0] if bounds[0].is_finite() else fallback - 200
    hi = bounds[1] if bounds[1].is_finite() else fallback + 200
    cents = rnd.randint(int(lo * 100), int(hi * 100) + 1)
    return D(cents) / 100


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(prices, min_size=1, max_size=10),
    st.sampled_from(["long", "neutral"]),
    st.sampled_from([D(0), D(25)]),
    st.sampled_from([D(0), D("0.15")]),
    books,
    st.booleans(),
    st.randoms(use_true_random=False),
)
def test_every_tick_the_box_holds_decides_nothing(path, mode, skew, gap, book, halt, rnd):
    """Whatever the history, skew, gap, book and risk flag: ticks inside the box (drawn from
    it, 30 per example) decide nothing."""
    strategy, pm = setup(grid(mode, inventory_skew_bps=skew, min_gap=gap))

    def at(cents, book):
        price = D(cents) / 100
        if book is None:
            return tick(price)
        return tick(price, price - D(book[0]) / 100, price + D(book[1]) / 100)

    t = at(path[0], book)
    for cents in path:
        t = at(cents, book)
        settle(strategy, pm, t, halted=halt)
        for o in list(pm.live_orders()):  # the venue fills what the price reached
            if (o.side is Side.BUY and o.price >= t.price) or (
                o.side is Side.SELL and o.price <= t.price
            ):
                fill(pm, o.level)
    settle(strategy, pm, t, halted=halt)
    box = box_of(strategy, pm, t, halted=halt)
    if box is None:
        return
    for _ in range(30):
        price = inside(rnd, (box.lo, box.hi), t.price)
        ask = None if box.ask is None else inside(rnd, box.ask, price)
        bid = None if box.bid is None else inside(rnd, box.bid, price)
        probe = tick(price, bid, ask)
        if box.holds(probe, 0):
            decided = strategy.decide(
                pm.snapshot(), price, now_ms=0, risk_halted=halt, bid=bid, ask=ask
            )
            assert decided == [], probe
