from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mm.core.model import MarketRules, MarketType
from mm.core.rounding import is_multiple, qty_for_notional, size_problem, snap, snap_price, snap_qty

RULES = MarketRules(
    "BTCUSDT", "BTC", "USDT", MarketType.SPOT, D("0.01"), D("0.00001"), D("0.0001"), D("5")
)
STEPS = [D("0.01"), D("0.00001"), D("0.5"), D("1"), D("25"), D("0.0001")]
values = st.decimals(min_value=D("0.00000001"), max_value=D("1000000"), places=8)


def test_snap_modes_and_exponent():
    assert snap(D("1.234"), D("0.01"), "down") == D("1.23")
    assert snap(D("1.231"), D("0.01"), "up") == D("1.24")
    assert snap(D("1.235"), D("0.01")) == D("1.24")  # ties away from zero
    assert str(snap(D("1.5"), D("0.10"))) == "1.50"  # carries the step's exponent
    assert snap(D("-1.234"), D("0.01"), "down") == D("-1.24")


def test_snap_rejects_non_positive_step():
    with pytest.raises(ValueError):
        snap(D("1"), D("0"))


def test_qty_never_rounds_up_and_notional_sizing():
    assert snap_qty(D("0.123459"), RULES) == D("0.12345")
    assert qty_for_notional(D("100"), D("65000"), RULES) == D("0.00153")
    assert snap_price(D("65000.005"), RULES) == D("65000.01")


def test_size_problems():
    assert size_problem(D("65000"), D("0.00001"), RULES) == "below_min_qty"
    assert size_problem(D("65000"), D("0.0001"), RULES) is None  # 6.5 quote >= 5
    assert size_problem(D("10000"), D("0.0004"), RULES) == "below_min_notional"
    assert size_problem(D("65000"), D("0.001"), RULES) is None
    assert size_problem(D("65000"), D("0"), RULES) == "qty_not_positive"


@given(values, st.sampled_from(STEPS), st.sampled_from(["down", "up", "nearest"]))
def test_snap_is_idempotent_and_a_multiple(value, step, mode):
    once = snap(value, step, mode)
    assert snap(once, step, mode) == once
    assert is_multiple(once, step)
    assert abs(once - value) <= step


@given(values, st.sampled_from(STEPS))
def test_snap_down_brackets_the_value(value, step):
    down = snap(value, step, "down")
    assert down <= value < down + step
