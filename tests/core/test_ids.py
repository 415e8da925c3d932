import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mm.core import ids
from mm.core.model import Role, Side

INTENTS = [
    (Role.OPEN, Side.BUY),
    (Role.OPEN, Side.SELL),
    (Role.CLOSE, Side.SELL),
    (Role.CLOSE, Side.BUY),
]
strategy_ids = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=6)
symbols = st.text(alphabet=string.ascii_uppercase + string.digits, min_size=3, max_size=20)
levels = st.integers(min_value=ids.MIN_LEVEL, max_value=ids.MAX_LEVEL)
generations = st.integers(min_value=0, max_value=ids.MAX_GENERATION)


@given(strategy_ids, symbols, levels, st.sampled_from(INTENTS), generations)
def test_round_trip_and_venue_safe(strategy_id, symbol, level, intent, generation):
    role, side = intent
    client_id = ids.encode(strategy_id, symbol, level, role, side, generation)
    assert len(client_id) <= ids.MAX_LEN == 28
    assert client_id.isalnum() and client_id == client_id.lower()
    assert ids.parse(client_id) == ids.OrderKey(
        strategy_id, ids.symbol_tag(symbol), level, role, side, generation
    )
    assert ids.is_ours(client_id, strategy_id, symbol)
    assert ids.encode(strategy_id, symbol, level, role, side, generation) == client_id


def test_known_id_is_stable():
    # The format is a promise to running bots: changing it orphans their live orders.
    client_id = ids.encode("grid1", "BTCUSDT", -3, Role.OPEN, Side.BUY, 1_700_000_000_123)
    assert client_id == "g5grid1mitfobhzzxloyw3v5n"
    assert int("hzzx", 36) == 36**4 // 2 - 3  # level -3, offset
    assert int("loyw3v5n", 36) == 1_700_000_000_123  # generation


@pytest.mark.parametrize(
    "foreign",
    [
        "",
        "abc",
        "x-123",
        "web_1700000000",
        "G5grid1abcdob00000001",
        "g9grid1xxxxob0000001",
        "g1aabcdzz00001",
        "g1aabcdob000001".upper(),
        "g1aabcdob00000"[:-1] + "00",
    ],
)
def test_foreign_ids_are_not_ours(foreign):
    assert ids.parse(foreign) is None


def test_other_strategy_or_symbol_is_not_ours():
    client_id = ids.encode("g1", "BTCUSDT", 5, Role.CLOSE, Side.SELL, 42)
    assert not ids.is_ours(client_id, "g2", "BTCUSDT")
    assert not ids.is_ours(client_id, "g1", "ETHUSDT")


@pytest.mark.parametrize(
    ("strategy_id", "level", "generation"),
    [
        ("Grid", 0, 1),
        ("toolong1", 0, 1),
        ("", 0, 1),
        ("g1", ids.MAX_LEVEL + 1, 1),
        ("g1", 0, -1),
        ("g1", 0, ids.MAX_GENERATION + 1),
    ],
)
def test_invalid_fields_are_refused(strategy_id, level, generation):
    with pytest.raises(ValueError):
        ids.encode(strategy_id, "BTCUSDT", level, Role.OPEN, Side.BUY, generation)
