"""The simulated venue (connectors/simulated): matching, fees, balances, positions, faults, streams.

Assertions are on what a client of the venue can see — reports, fills, balances, positions and
stream items — never on the book's internals.
"""

from decimal import Decimal as D

import pytest

from connectors.simulated import markets
from mm.core.model import MarketType
from mm.errors import (
    ConfigError,
    DuplicateOrder,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    PostOnlyRejected,
    RateLimited,
    ReduceOnlyRejected,
    RequestTimeout,
)
from tests.connectors.venue import (
    BTC0,
    BUY,
    CANCELED,
    EXPIRED,
    FILLED,
    MAKER,
    MINUTE,
    OPEN,
    PARTIAL,
    PERP,
    SELL,
    SPOT,
    T0,
    TAKER,
    USDT0,
    fills,
    lookup,
    open_ids,
    place,
    position,
    request,
    venue,
    wallet,
)
from tests.helpers import run


# -- matching ------------------------------------------------------------------------------------
@pytest.mark.parametrize("touch", ["9900", "9850"], ids=["at-price", "gapped-below"])
def test_resting_buy_fills_at_its_own_price_as_maker_when_the_price_reaches_it(sim, touch):
    assert place(sim, "b1", BUY, "9900", "0.01").status is OPEN
    assert sim.set_price(SPOT, D("9900.01")) == []
    [report] = sim.set_price(SPOT, D(touch))
    assert (report.client_id, report.status, report.filled_qty) == ("b1", FILLED, D("0.01"))
    assert report.avg_price == D("9900") and report.fee == D("0.099")
    [fill] = fills(sim)
    assert (fill.client_id, fill.side, fill.price, fill.qty) == ("b1", BUY, D("9900"), D("0.01"))
    assert fill.is_maker and fill.fee == D("9900") * D("0.01") * MAKER
    assert open_ids(sim) == []


@pytest.mark.parametrize("touch", ["10100", "10150"], ids=["at-price", "gapped-above"])
def test_resting_sell_fills_at_its_own_price_as_maker_when_the_price_reaches_it(sim, touch):
    place(sim, "s1", SELL, "10100", "0.01")
    assert sim.set_price(SPOT, D("10099.99")) == []
    [report] = sim.set_price(SPOT, D(touch))
    assert (report.status, report.avg_price, report.fee) == (FILLED, D("10100"), D("0.101"))
    [fill] = fills(sim)
    assert (fill.price, fill.qty, fill.is_maker) == (D("10100"), D("0.01"), True)
    assert wallet(sim) == {
        "BTC": (BTC0 - D("0.01"), 0),
        "USDT": (USDT0 + D("101") - D("0.101"), 0),
    }


@pytest.mark.parametrize(
    ("side", "price", "usdt", "btc"),
    [
        (BUY, "10100", USDT0 - D("100") - D("0.2"), BTC0 + D("0.01")),
        (BUY, "10000", USDT0 - D("100") - D("0.2"), BTC0 + D("0.01")),
        (SELL, "9900", USDT0 + D("100") - D("0.2"), BTC0 - D("0.01")),
        (SELL, "10000", USDT0 + D("100") - D("0.2"), BTC0 - D("0.01")),
    ],
)
def test_a_crossing_order_fills_at_once_at_the_last_price_as_taker(sim, side, price, usdt, btc):
    report = place(sim, "t1", side, price, "0.01")
    assert (report.status, report.filled_qty) == (FILLED, D("0.01"))
    assert report.avg_price == D("10000") and report.fee == D("0.2")  # 0.2% of 100 quote
    [fill] = fills(sim)
    assert (fill.price, fill.qty, fill.fee, fill.is_maker) == (
        D("10000"),
        D("0.01"),
        D("0.2"),
        False,
    )
    assert wallet(sim) == {"BTC": (btc, 0), "USDT": (usdt, 0)}
    assert open_ids(sim) == []


@pytest.mark.parametrize(
    ("side", "price"), [(BUY, "10000"), (BUY, "10500"), (SELL, "10000"), (SELL, "9500")]
)
def test_post_only_that_would_cross_is_rejected_and_creates_nothing(sim, side, price):
    before = wallet(sim)
    with pytest.raises(PostOnlyRejected):
        place(sim, "p1", side, price, "0.01", post_only=True)
    assert wallet(sim) == before and fills(sim) == [] and open_ids(sim) == []
    with pytest.raises(OrderNotFound):
        lookup(sim, "p1")
    safe = "9000" if side is BUY else "11000"
    assert place(sim, "p1", side, safe, "0.01", post_only=True).status is OPEN  # id still free


@pytest.mark.parametrize(
    ("price", "qty", "symbol", "flags", "why"),
    [
        ("9900.005", "0.01", SPOT, {}, "multiple of 0.01"),
        ("0", "0.01", SPOT, {}, "multiple of 0.01"),
        ("-9900", "0.01", SPOT, {}, "multiple of 0.01"),
        ("9900", "0.012345", SPOT, {}, "multiple of 0.00001"),
        ("9900", "0", SPOT, {}, "qty_not_positive"),
        ("9900", "-0.01", SPOT, {}, "qty_not_positive"),
        ("100", "0.01", SPOT, {}, "below_min_notional"),
        ("9900", "0.0005", PERP, {}, "below_min_notional"),
        ("9900", "0.01", SPOT, {"reduce_only": True}, "perpetual"),
        ("9900", "0.01", "NOPEUSDT", {}, "unknown symbol"),
    ],
)
def test_rule_violations_raise_invalid_order_and_create_nothing(
    sim, price, qty, symbol, flags, why
):
    before = wallet(sim)
    with pytest.raises(InvalidOrder, match=why):
        place(sim, "bad", BUY, price, qty, symbol, **flags)
    assert wallet(sim) == before and sim.orders(symbol) == []


def test_min_qty_is_enforced(monkeypatch, clock):
    # Every listed market has min qty == lot size; list one where the minimum is a hundred lots.
    monkeypatch.setitem(
        markets._TABLE,
        "BTCUSDT",
        ("BTC", D("0.01"), D("0.00001"), D("0.001"), D("5"), D("65000.00")),
    )
    sim = venue(clock)
    with pytest.raises(InvalidOrder, match="below_min_qty"):
        place(sim, "x", BUY, "9900", "0.00099")  # 9.80 quote: notional is fine
    assert sim.orders(SPOT) == []
    assert place(sim, "y", BUY, "9900", "0.001").status is OPEN
    assert run(sim.load_markets([PERP]))[PERP].min_qty == D("0.001")


def test_duplicate_client_id_raises_and_changes_nothing(sim):
    place(sim, "d1", BUY, "9900", "0.01")
    before = wallet(sim)
    with pytest.raises(DuplicateOrder):
        place(sim, "d1", BUY, "9800", "0.02")
    with pytest.raises(DuplicateOrder):  # the id is taken on every market of the venue
        place(sim, "d1", SELL, "11000", "0.01", PERP)
    assert wallet(sim) == before and open_ids(sim) == ["d1"] and open_ids(sim, PERP) == []
    assert (lookup(sim, "d1").price, lookup(sim, "d1").qty) == (D("9900"), D("0.01"))


@pytest.mark.parametrize("finish", ["filled", "canceled"])
def test_duplicate_client_id_of_a_finished_order_raises(sim, finish):
    place(sim, "d1", BUY, "9900", "0.01")
    if finish == "filled":
        sim.set_price(SPOT, D("9900"))
    else:
        run(sim.cancel_order(SPOT, "d1"))
    before = wallet(sim)
    with pytest.raises(DuplicateOrder):
        place(sim, "d1", BUY, "9000", "0.01")
    assert wallet(sim) == before and open_ids(sim) == []


# -- spot balances -------------------------------------------------------------------------------
def test_spot_buy_locks_quote_with_the_taker_fee_and_the_fill_settles_exactly(sim):
    place(sim, "b1", BUY, "9900", "0.01")
    lock = D("9900") * D("0.01") * (1 + TAKER)
    assert lock == D("99.198")
    assert wallet(sim) == {"BTC": (BTC0, 0), "USDT": (USDT0 - lock, lock)}
    sim.set_price(SPOT, D("9900"))
    assert wallet(sim) == {"BTC": (BTC0 + D("0.01"), 0), "USDT": (USDT0 - D("99") - D("0.099"), 0)}


def test_spot_sell_locks_base_and_the_fill_settles_exactly(sim):
    place(sim, "s1", SELL, "10200", "0.25")
    assert wallet(sim) == {"BTC": (D("0.75"), D("0.25")), "USDT": (USDT0, 0)}
    sim.set_price(SPOT, D("10200"))
    assert wallet(sim) == {"BTC": (D("0.75"), 0), "USDT": (USDT0 + D("2550") - D("2.55"), 0)}


def test_cancel_releases_the_lock_exactly(sim):
    place(sim, "b1", BUY, "9900", "0.01")
    place(sim, "s1", SELL, "10100", "0.3")
    report = run(sim.cancel_order(SPOT, "b1"))
    assert (report.status, report.filled_qty) == (CANCELED, 0)
    run(sim.cancel_order(SPOT, "s1"))
    assert wallet(sim) == {"BTC": (BTC0, 0), "USDT": (USDT0, 0)}


def test_cancel_after_a_partial_fill_releases_exactly_the_rest(sim):
    place(sim, "b1", BUY, "9900", "0.01")
    assert sim.force_fill(SPOT, "b1", D("0.004")).status is PARTIAL
    report = run(sim.cancel_order(SPOT, "b1"))
    assert (report.status, report.filled_qty, report.avg_price) == (CANCELED, D("0.004"), D("9900"))
    cost = D("9900") * D("0.004")
    assert wallet(sim) == {"BTC": (BTC0 + D("0.004"), 0), "USDT": (USDT0 - cost * (1 + MAKER), 0)}


@pytest.mark.parametrize(
    ("side", "price", "qty", "symbol"),
    [
        (BUY, "9900", "10.1", SPOT),  # 99,990 USDT, 100,189.98 with the taker fee
        (SELL, "10100", "1.00001", SPOT),  # holds 1 BTC
        (BUY, "9900", "101.1", PERP),  # margin 100,089 USDT at 10x
        (SELL, "10100", "99.1", PERP),
    ],
)
def test_insufficient_funds_raises_and_creates_nothing(sim, side, price, qty, symbol):
    before = wallet(sim)
    with pytest.raises(InsufficientFunds):
        place(sim, "big", side, price, qty, symbol)
    assert wallet(sim) == before and sim.orders(symbol) == []


def test_funds_locked_by_resting_orders_are_not_available_twice(sim):
    place(sim, "b1", BUY, "9900", "5")
    with pytest.raises(InsufficientFunds):
        place(sim, "b2", BUY, "9900", "5.1")
    run(sim.cancel_order(SPOT, "b1"))
    assert place(sim, "b2", BUY, "9900", "5.1").status is OPEN


# -- linear perpetual ----------------------------------------------------------------------------
def test_perp_position_entry_price_and_realized_pnl_into_usdt(sim):
    place(sim, "p1", BUY, "9900", "0.1", PERP)
    assert wallet(sim)["USDT"] == (USDT0 - D("99"), D("99"))  # margin = notional / 10x leverage
    sim.set_price(PERP, D("9900"))
    place(sim, "p2", BUY, "9700", "0.1", PERP)
    sim.set_price(PERP, D("9700"))
    assert position(sim) == (D("0.2"), D("9800"))
    usdt = USDT0 - D("0.99") - D("0.97")
    assert wallet(sim)["USDT"] == (usdt, 0)

    place(sim, "p3", SELL, "10000", "0.1", PERP)
    sim.set_price(PERP, D("10000"))
    usdt += (D("10000") - D("9800")) * D("0.1") - D("1.0")
    assert position(sim) == (D("0.1"), D("9800")) and wallet(sim)["USDT"] == (usdt, 0)

    place(sim, "p4", SELL, "10100", "0.2", PERP)  # closes 0.1 long, opens 0.1 short
    sim.set_price(PERP, D("10100"))
    usdt += (D("10100") - D("9800")) * D("0.1") - D("2.02")
    assert position(sim) == (D("-0.1"), D("10100")) and wallet(sim)["USDT"] == (usdt, 0)

    place(sim, "p5", BUY, "9900", "0.1", PERP)
    sim.set_price(PERP, D("9900"))
    usdt += (D("10100") - D("9900")) * D("0.1") - D("0.99")
    assert position(sim) == (0, 0) and wallet(sim) == {"BTC": (BTC0, 0), "USDT": (usdt, 0)}
    assert usdt == D("100064.03")
    assert position(sim, SPOT) == (0, 0)  # a spot symbol has no position


def test_spot_and_perp_follow_one_price_but_keep_separate_books(sim):
    place(sim, "s", BUY, "9900", "0.01", SPOT)
    place(sim, "p", BUY, "9900", "0.01", PERP)
    assert open_ids(sim, SPOT) == ["s"] and open_ids(sim, PERP) == ["p"]
    reports = sim.set_price(SPOT, D("9900"))
    assert sorted((r.symbol, r.status) for r in reports) == [(SPOT, FILLED), (PERP, FILLED)]
    assert sim.last_price(PERP) == sim.last_price(SPOT) == D("9900")


@pytest.mark.parametrize("held", ["0", "0.1"], ids=["flat", "long"])
def test_reduce_only_that_would_not_reduce_is_rejected(sim, held):
    if held != "0":
        place(sim, "open", BUY, "10000", held, PERP)
    before = (wallet(sim), position(sim), [o.client_id for o in sim.orders(PERP)])
    with pytest.raises(ReduceOnlyRejected):
        place(sim, "ro", BUY, "9000", "0.05", PERP, reduce_only=True)
    if held == "0":
        with pytest.raises(ReduceOnlyRejected):
            place(sim, "ro", SELL, "11000", "0.05", PERP, reduce_only=True)
    assert (wallet(sim), position(sim), [o.client_id for o in sim.orders(PERP)]) == before


def test_reduce_only_larger_than_the_position_fills_the_position_and_the_rest_expires(sim):
    place(sim, "open", BUY, "10000", "0.1", PERP)  # taker at 10000
    usdt = wallet(sim)["USDT"][0]
    assert place(sim, "ro", SELL, "10100", "0.3", PERP, reduce_only=True).status is OPEN
    assert wallet(sim)["USDT"] == (usdt, 0)  # reduce-only locks no margin
    [report] = sim.set_price(PERP, D("10100"))
    assert (report.status, report.filled_qty, report.avg_price) == (EXPIRED, D("0.1"), D("10100"))
    assert position(sim) == (0, 0)
    assert wallet(sim)["USDT"] == (usdt + D("10") - D("1.01"), 0)
    assert lookup(sim, "ro", PERP).status is EXPIRED and open_ids(sim, PERP) == []


def test_crossing_reduce_only_larger_than_the_position_takes_the_position_and_expires(sim):
    place(sim, "open", SELL, "10000", "0.1", PERP)  # short 0.1 at 10000
    report = place(sim, "ro", BUY, "10500", "0.25", PERP, reduce_only=True)
    assert (report.status, report.filled_qty, report.avg_price) == (EXPIRED, D("0.1"), D("10000"))
    [_, fill] = fills(sim, PERP)
    assert (fill.client_id, fill.qty, fill.is_maker) == ("ro", D("0.1"), False)
    assert position(sim) == (0, 0) and open_ids(sim, PERP) == []


def test_reduce_only_whose_position_was_closed_meanwhile_expires_unfilled(sim):
    place(sim, "open", BUY, "10000", "0.1", PERP)
    place(sim, "ro", SELL, "10200", "0.1", PERP, reduce_only=True)
    place(sim, "close", SELL, "10100", "0.1", PERP)
    reports = sim.set_price(PERP, D("10300"))
    assert [(r.client_id, r.status, r.filled_qty) for r in reports] == [
        ("close", FILLED, D("0.1")),
        ("ro", EXPIRED, 0),
    ]
    assert position(sim) == (0, 0)


# -- partial fills and priority ------------------------------------------------------------------
def test_partial_fill_ratio_fills_in_lot_sized_steps_on_repeated_touches(clock):
    sim = venue(clock, partial_fill_ratio=D("0.3"))
    place(sim, "b1", BUY, "9900", "0.01")
    seen = []
    for _ in range(4):
        clock.advance(1000)
        [report] = sim.set_price(SPOT, D("9900"))
        seen.append((report.status, report.filled_qty))
        assert sim.set_price(SPOT, D("10000")) == []
    assert seen == [
        (PARTIAL, D("0.003")),
        (PARTIAL, D("0.006")),
        (PARTIAL, D("0.009")),
        (FILLED, D("0.01")),
    ]
    assert [f.qty for f in fills(sim)] == [D("0.003"), D("0.003"), D("0.003"), D("0.001")]
    assert wallet(sim)["BTC"] == (BTC0 + D("0.01"), 0)
    assert wallet(sim)["USDT"] == (USDT0 - D("99") - D("0.099"), 0)


def test_partial_fill_ratio_fills_at_least_one_lot_per_touch(clock):
    sim = venue(clock, partial_fill_ratio=D("0.001"))
    place(sim, "b1", BUY, "9900", "0.001")
    [report] = sim.set_price(SPOT, D("9900"))
    assert (report.status, report.filled_qty) == (PARTIAL, D("0.00001"))


def test_partial_fill_ratio_does_not_split_a_taker_fill(clock):
    sim = venue(clock, partial_fill_ratio=D("0.3"))
    assert place(sim, "t", BUY, "10100", "0.01").status is FILLED


@pytest.mark.parametrize(
    ("orders", "touch", "expected"),
    [
        ([("a", BUY, "9900"), ("b", BUY, "9950"), ("c", BUY, "9950")], "9800", "bca"),
        ([("a", BUY, "9950"), ("b", BUY, "9950"), ("c", BUY, "9900")], "9800", "abc"),
        ([("a", SELL, "10100"), ("b", SELL, "10050"), ("c", SELL, "10050")], "10200", "bca"),
    ],
    ids=["buy-better-price-first", "buy-same-price-earlier-first", "sell-lower-price-first"],
)
def test_price_time_priority_orders_the_fills(sim, orders, touch, expected):
    for cid, side, price in orders:
        place(sim, cid, side, price, "0.01")
    reports = sim.set_price(SPOT, D(touch))
    assert "".join(r.client_id for r in reports) == expected
    trades = fills(sim)
    assert "".join(f.client_id for f in trades) == expected
    ids = [int(f.trade_id) for f in trades]
    assert ids == sorted(ids) and len(set(ids)) == 3


# -- queries ------------------------------------------------------------------------------------
def test_fetch_order_open_orders_and_fills_since(sim, clock):
    place(sim, "a", BUY, "9900", "0.01")
    place(sim, "b", BUY, "9800", "0.01")
    place(sim, "c", BUY, "9700", "0.01")
    place(sim, "p", BUY, "9700", "0.01", PERP)
    assert open_ids(sim) == ["a", "b", "c"] and open_ids(sim, PERP) == ["p"]
    clock.advance(1000)
    sim.set_price(SPOT, D("9900"))
    clock.advance(1000)
    sim.set_price(SPOT, D("9800"))
    t_b = clock.now_ms()
    assert open_ids(sim) == ["c"]
    assert lookup(sim, "a").status is FILLED and lookup(sim, "c").status is OPEN
    assert [f.client_id for f in fills(sim)] == ["a", "b"]
    assert [f.client_id for f in fills(sim, since_ms=t_b)] == ["b"]
    assert fills(sim, since_ms=t_b + 1) == [] and fills(sim, PERP) == []
    with pytest.raises(OrderNotFound):
        lookup(sim, "zzz")
    with pytest.raises(OrderNotFound):
        lookup(sim, "a", PERP)  # right id, wrong symbol


def test_cancel_of_a_finished_order_returns_its_final_report(sim):
    place(sim, "a", BUY, "9900", "0.01")
    [filled] = sim.set_price(SPOT, D("9900"))
    assert run(sim.cancel_order(SPOT, "a")) == filled
    place(sim, "b", BUY, "9800", "0.01")
    canceled = run(sim.cancel_order(SPOT, "b"))
    assert run(sim.cancel_order(SPOT, "b")) == canceled
    with pytest.raises(OrderNotFound):
        run(sim.cancel_order(SPOT, "never"))


def test_cancel_all_cancels_only_the_given_symbol(sim):
    for cid in ("a", "b"):
        place(sim, cid, BUY, "9900", "0.01")
    place(sim, "s", SELL, "10100", "0.01")
    place(sim, "p", BUY, "9900", "0.01", PERP)
    reports = run(sim.cancel_all(SPOT))
    assert sorted((r.client_id, r.status) for r in reports) == [
        ("a", CANCELED),
        ("b", CANCELED),
        ("s", CANCELED),
    ]
    assert open_ids(sim) == [] and open_ids(sim, PERP) == ["p"]
    assert wallet(sim)["BTC"] == (BTC0, 0)


def test_consistency_window_hides_new_orders_from_lookups_until_it_passes(clock):
    sim = venue(clock, consistency_window_ms=1000)
    assert place(sim, "a", BUY, "9900", "0.01").status is OPEN
    clock.advance(999)
    with pytest.raises(OrderNotFound):
        lookup(sim, "a")
    assert open_ids(sim) == []
    clock.advance(1)
    assert lookup(sim, "a").status is OPEN and open_ids(sim) == ["a"]


# -- persistence ---------------------------------------------------------------------------------
def snapshot(ex):
    return {
        "orders": {s: [o.report() for o in ex.orders(s)] for s in (SPOT, PERP)},
        "open": (open_ids(ex), open_ids(ex, PERP)),
        "wallet": wallet(ex),
        "position": position(ex),
        "fills": (fills(ex), fills(ex, PERP)),
        "last": ex.last_price(SPOT),
    }


def test_a_new_exchange_on_the_same_file_sees_the_same_venue(tmp_path, clock):
    path = tmp_path / "sim.json"
    first = venue(clock, persist_path=path, seed=3)
    for _ in range(5):
        clock.advance(1000)
        first.step()
    start = first.last_price(SPOT)
    place(first, "b1", BUY, str(start - 100), "0.01")
    place(first, "b2", BUY, str(start - 200), "0.02")
    place(first, "s1", SELL, str(start + 100), "0.01")
    place(first, "p1", BUY, str(start + 100), "0.1", PERP)  # crosses: a long position
    first.force_fill(SPOT, "b2", D("0.005"))
    run(first.cancel_order(SPOT, "s1"))
    first.set_price(SPOT, start - 100)
    before = snapshot(first)
    assert before["position"][0] == D("0.1") and len(before["fills"][0]) == 2

    second = venue(clock, persist_path=path, seed=3)
    assert snapshot(second) == before
    clock.advance(1000)
    for ex in (first, second):  # counters continue where they were
        report = place(ex, "next", BUY, str(start + 300), "0.01")  # takes at once
        assert (report.exchange_id, fills(ex)[-1].trade_id) == ("5", "4")
    clock.advance(1000)
    for ex in (first, second):  # the feed resumes at the same point
        ex.step()
    assert first.last_price(SPOT) == second.last_price(SPOT) != start - 100
    assert snapshot(first) == snapshot(second)


def test_a_forced_fill_survives_a_restart_and_the_rest_fills_later(tmp_path, clock):
    path = tmp_path / "sim.json"
    first = venue(clock, persist_path=path)
    place(first, "b1", BUY, "9900", "0.01")
    first.force_fill(SPOT, "b1", D("0.004"))
    second = venue(clock, persist_path=path)
    assert lookup(second, "b1").filled_qty == D("0.004") and open_ids(second) == ["b1"]
    [report] = second.set_price(SPOT, D("9900"))
    assert (report.status, report.filled_qty) == (FILLED, D("0.01"))
    assert wallet(second) == {
        "BTC": (BTC0 + D("0.01"), 0),
        "USDT": (USDT0 - D("99") - D("0.099"), 0),
    }
    third = venue(clock, persist_path=path)
    assert wallet(third) == wallet(second) and fills(third) == fills(second)


# -- REST faults ---------------------------------------------------------------------------------
def test_timeout_after_accept_raises_but_the_order_exists(sim):
    sim.faults.inject("place_order", "timeout_after_accept")
    with pytest.raises(RequestTimeout):
        place(sim, "a", BUY, "9900", "0.01")
    assert lookup(sim, "a").status is OPEN and open_ids(sim) == ["a"]
    with pytest.raises(DuplicateOrder):  # a blind retry is refused, not doubled
        place(sim, "a", BUY, "9900", "0.01")
    assert place(sim, "b", BUY, "9800", "0.01").status is OPEN  # the fault was used up


def test_rate_limit_raises_and_creates_nothing(sim):
    sim.faults.inject("place_order", "rate_limit")
    before = wallet(sim)
    with pytest.raises(RateLimited) as caught:
        place(sim, "a", BUY, "9900", "0.01")
    assert caught.value.retry_after_s is not None
    assert wallet(sim) == before and sim.orders(SPOT) == []
    assert place(sim, "a", BUY, "9900", "0.01").status is OPEN


def test_scripted_reject_raises_invalid_order_and_creates_nothing(sim):
    sim.faults.inject("place_order", "reject")
    with pytest.raises(InvalidOrder, match="simulated"):
        place(sim, "a", BUY, "9900", "0.01")
    assert sim.orders(SPOT) == [] and wallet(sim)["USDT"] == (USDT0, 0)
    assert place(sim, "a", BUY, "9900", "0.01").status is OPEN


def test_place_orders_reports_each_slot(sim):
    sim.faults.inject("place_order", "rate_limit")
    out = run(
        sim.place_orders(
            [
                request("a", BUY, "9900", "0.01"),
                request("b", BUY, "9900", "0.01"),
                request("c", BUY, "9900.001", "0.01"),
            ]
        )
    )
    assert isinstance(out[0], RateLimited) and isinstance(out[2], InvalidOrder)
    assert out[1].client_id == "b" and open_ids(sim) == ["b"]


def test_unknown_fault_kinds_are_refused(sim):
    with pytest.raises(ValueError, match="unknown fault"):
        sim.faults.inject("place_order", "explode")


@pytest.mark.parametrize("price", ["NaN", "Infinity"])
def test_a_non_finite_price_is_an_invalid_order(sim, price):
    with pytest.raises(InvalidOrder):
        place(sim, "nan", BUY, price, "0.01")


# -- markets and klines --------------------------------------------------------------------------
def test_load_markets(sim):
    rules = run(sim.load_markets([SPOT, PERP]))
    assert rules[SPOT].market_type is MarketType.SPOT
    assert rules[PERP].market_type is MarketType.LINEAR and rules[PERP].symbol == PERP
    assert (rules[PERP].tick_size, rules[PERP].lot_size) == (D("0.01"), D("0.00001"))
    assert (rules[SPOT].base, rules[SPOT].quote) == ("BTC", "USDT")
    with pytest.raises(ConfigError, match="NOPE"):
        run(sim.load_markets([SPOT, "NOPE"]))


def test_fetch_klines_aggregates_one_minute_candles(sim, clock):
    for offset_ms, price in [
        (0, "10000"),
        (30_000, "10100"),
        (MINUTE + 1, "9900"),
        (4 * MINUTE + 59_999, "10050"),
        (5 * MINUTE, "10200"),
        (6 * MINUTE, "10150"),
    ]:
        clock.set(T0 + offset_ms)
        sim.set_price(SPOT, D(price))
    one = run(sim.fetch_klines(PERP, "1m"))
    assert [(c.ts_ms - T0) // MINUTE for c in one] == [0, 1, 4, 5, 6]
    assert (one[0].open, one[0].high, one[0].low, one[0].close) == (
        D("10000"),
        D("10100"),
        D("10000"),
        D("10100"),
    )
    five = run(sim.fetch_klines(SPOT, "5m"))
    assert [(c.ts_ms, c.open, c.high, c.low, c.close) for c in five] == [
        (T0, D("10000"), D("10100"), D("9900"), D("10050")),
        (T0 + 5 * MINUTE, D("10200"), D("10200"), D("10150"), D("10150")),
    ]
    assert run(sim.fetch_klines(SPOT, "5m", since_ms=T0 + 1)) == five[1:]
    assert run(sim.fetch_klines(SPOT, "1m", limit=2)) == one[-2:]
    with pytest.raises(InvalidOrder):
        run(sim.fetch_klines(SPOT, "5s"))
