"""Registry: the durable list of symbols and control values, on a real SQLite file."""

import pytest

from mm.store.registry import ACTIVE, REMOVING, Registry

BTC_GRID = {"interval": "100", "buy_levels": 3, "level_notional": "50.5"}
ETH_GRID = {"interval": "5", "buy_levels": 2, "level_qty": "0.1"}


@pytest.fixture
def path(tmp_path):
    return tmp_path / "data" / "control.db"  # the parent directory does not exist yet


def test_add_get_and_entries_in_the_order_added(path):
    registry = Registry(path)
    assert registry.add("ETHUSDT", ETH_GRID) is True
    assert registry.add("BTCUSDT", BTC_GRID) is True
    btc = registry.get("BTCUSDT")
    assert (btc.symbol, btc.grid, btc.state, btc.keep_orders) == (
        "BTCUSDT",
        BTC_GRID,
        ACTIVE,
        False,
    )
    assert registry.get("SOLUSDT") is None
    entries = registry.entries()
    assert {e.symbol for e in entries} == {"BTCUSDT", "ETHUSDT"}
    # oldest first (two added within one millisecond fall back to the symbol's name)
    assert entries == sorted(entries, key=lambda e: (e.added_ms, e.symbol))
    assert entries == [registry.get(e.symbol) for e in entries]


def test_adding_a_registered_symbol_again_changes_nothing(path):
    registry = Registry(path)
    assert registry.add("BTCUSDT", BTC_GRID) is True
    registry.mark_removing("BTCUSDT", keep_orders=True)
    assert registry.add("BTCUSDT", ETH_GRID) is False
    entry = registry.get("BTCUSDT")
    assert entry.grid == BTC_GRID and entry.state == REMOVING and entry.keep_orders is True
    assert len(registry.entries()) == 1


def test_mark_removing_then_delete(path):
    registry = Registry(path)
    registry.add("BTCUSDT", BTC_GRID)
    registry.add("ETHUSDT", ETH_GRID)
    assert registry.mark_removing("BTCUSDT", keep_orders=False) is True
    assert registry.mark_removing("SOLUSDT", keep_orders=False) is False
    states = {e.symbol: (e.state, e.keep_orders) for e in registry.entries()}
    assert states == {"BTCUSDT": (REMOVING, False), "ETHUSDT": (ACTIVE, False)}
    assert registry.delete("BTCUSDT") is True
    assert registry.delete("BTCUSDT") is False
    assert [e.symbol for e in registry.entries()] == ["ETHUSDT"]
    assert registry.get("BTCUSDT") is None


def test_control_values_are_set_replaced_and_read(path):
    registry = Registry(path)
    assert registry.control("risk") is None
    registry.set_control(risk='{"tripped": true}', mode="live")
    registry.set_control(risk='{"tripped": false}')
    assert registry.control("risk") == '{"tripped": false}'
    assert registry.control("mode") == "live"


def test_everything_survives_reopening_the_file(path):
    registry = Registry(path)
    registry.add("BTCUSDT", BTC_GRID)
    registry.add("ETHUSDT", ETH_GRID)
    registry.mark_removing("ETHUSDT", keep_orders=True)
    registry.set_control(risk="{}")
    before = registry.entries()
    registry.close()
    again = Registry(path)
    assert again.entries() == before
    assert again.get("ETHUSDT").state == REMOVING and again.get("ETHUSDT").keep_orders is True
    assert again.control("risk") == "{}"
    assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_seed_once_registers_the_initial_symbols_only_the_first_time(path):
    registry = Registry(path)
    initial = {"BTCUSDT": BTC_GRID, "ETHUSDT": ETH_GRID}
    assert registry.seed_once(initial) == ["BTCUSDT", "ETHUSDT"]
    registry.mark_removing("BTCUSDT", keep_orders=False)
    registry.delete("BTCUSDT")  # the operator removed it
    assert registry.seed_once(initial) == []
    assert [e.symbol for e in registry.entries()] == ["ETHUSDT"]
    registry.close()
    again = Registry(path)  # a restart with the same config
    assert again.seed_once(initial) == []
    assert [e.symbol for e in again.entries()] == ["ETHUSDT"]


def test_seed_once_keeps_symbols_added_before_it_and_marks_seeded(path):
    registry = Registry(path)
    registry.add("BTCUSDT", ETH_GRID)  # e.g. `mm add-symbol` before the first `mm run`
    assert registry.seed_once({"BTCUSDT": BTC_GRID, "SOLUSDT": BTC_GRID}) == ["SOLUSDT"]
    assert registry.get("BTCUSDT").grid == ETH_GRID
    assert registry.control("seeded") is not None
