import sqlite3
from decimal import Decimal as D

import pytest

from mm.core.model import OrderStatus, Role, Side
from mm.core.position import Changes, FillDelta, Slot, SlotOrder, Totals
from mm.store.journal import Journal, canonical
from mm.store.migrations import MIGRATIONS, current_version

SYMBOL = "BTCUSDT"


def order(level=-1, client_id="g2t1aaaaobhzzz1", status=OrderStatus.OPEN):
    return SlotOrder(
        client_id,
        level,
        Role.OPEN,
        Side.BUY,
        D("9900.00"),
        D("0.010"),
        status,
        D("0.004"),
        D("9900.00"),
        D("0.0396"),
        "17",
        True,
        False,
        False,
        "",
        5,
        6,
    )


def fill(client_id="g2t1aaaaobhzzz1", cum="0.004"):
    return FillDelta(
        client_id, -1, Side.BUY, D("0.004"), D("9900"), D("0.0396"), D(cum), D(0), False, 7
    )


def test_file_journal_is_wal_with_full_sync_and_migrated_once(tmp_path):
    path = tmp_path / "state" / "journal.db"
    journal = Journal(path)
    assert journal.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert current_version(journal.db) == max(MIGRATIONS)
    journal.close()
    again = Journal(path)
    rows = again.db.execute("SELECT version FROM schema_migrations").fetchall()
    assert rows == [(v,) for v in sorted(MIGRATIONS)]


def test_load_returns_exactly_what_was_committed(tmp_path):
    journal = Journal(tmp_path / "j.db")
    assert not journal.load(SYMBOL).exists
    live = order()
    slot = Slot(-1, D("0.004"), D("9900.00"), D("0.0396"), live, 41, 1, 0, 0)
    idle_order = order(-2, "g2t1aaaaobhzzz2", OrderStatus.CANCELED)
    totals = Totals(D("1.5"), D("0.2"), D("300"), 3, 1)
    changes = Changes(
        slots={-1: slot},
        orders={live.client_id: live, idle_order.client_id: idle_order},
        fills=[fill()],
    )
    journal.commit(
        SYMBOL,
        changes,
        {"anchor": "10000.00", "next_generation": "42", "totals": '["1.5", "0.2", "300", 3, 1]'},
    )
    state = Journal(tmp_path / "j.db").load(SYMBOL)
    assert state.exists and state.slots == [slot]
    assert state.next_generation == 42 and state.totals == totals
    assert state.meta["anchor"] == "10000.00"
    assert str(state.slots[0].order.qty) == "0.010"  # decimals come back exactly, exponent too


def test_a_fill_journaled_twice_is_one_row():
    journal = Journal(":memory:")
    journal.commit(SYMBOL, Changes(fills=[fill(cum="0.0040")]))
    journal.commit(SYMBOL, Changes(fills=[fill(cum="0.004")]))
    assert len(journal.fills(SYMBOL)) == 1
    assert canonical(D("0.0040")) == canonical(D("0.004")) == "0.004"
    assert canonical(D("1E+2")) == "100" and canonical(D("-0")) == "0"


def test_a_failing_commit_writes_nothing(tmp_path):
    journal = Journal(tmp_path / "j.db")
    bad = SlotOrder(None, -1, Role.OPEN, Side.BUY, D(1), D(1), OrderStatus.OPEN)  # type: ignore[arg-type]
    changes = Changes(slots={-3: Slot(-3, D("1"), D("1"))}, orders={"x": bad}, fills=[fill()])
    with pytest.raises(sqlite3.IntegrityError):
        journal.commit(SYMBOL, changes, {"anchor": "1"})
    assert journal.db.execute("SELECT COUNT(*) FROM slots").fetchone()[0] == 0
    assert journal.db.execute("SELECT COUNT(*) FROM fills").fetchone()[0] == 0
    assert journal.meta(SYMBOL) == {}


def test_idle_slots_are_deleted_and_symbols_are_separate():
    journal = Journal(":memory:")
    journal.commit(SYMBOL, Changes(slots={-1: Slot(-1, D("1"), D("1"))}), {"anchor": "1"})
    journal.commit("ETHUSDT", Changes(slots={-1: Slot(-1, D("2"), D("1"))}), {"anchor": "1"})
    journal.commit(SYMBOL, Changes(slots={-1: None}))
    assert journal.load(SYMBOL).slots == []
    assert journal.load("ETHUSDT").slots[0].inventory_qty == 2


def test_reset_forgets_slots_and_closes_live_rows():
    journal = Journal(":memory:")
    live = order()
    journal.commit(SYMBOL, Changes(slots={-1: Slot(-1, order=live)}, orders={live.client_id: live}))
    journal.reset(SYMBOL)
    assert journal.db.execute("SELECT COUNT(*) FROM slots").fetchone()[0] == 0
    assert journal.order(live.client_id).status is OrderStatus.EXPIRED


def test_two_live_orders_on_one_level_is_refused_as_corruption():
    journal = Journal(":memory:")
    a, b = order(-1, "g2t1aaaaobhzzz1"), order(-1, "g2t1aaaaobhzzz2")
    journal.commit(
        SYMBOL,
        Changes(slots={-1: Slot(-1, order=a)}, orders={a.client_id: a, b.client_id: b}),
        {"anchor": "1"},
    )
    with pytest.raises(RuntimeError, match="two live orders on level -1"):
        journal.load(SYMBOL)


def test_a_lazy_commit_skips_the_fsync_and_a_durable_one_restores_it(tmp_path):
    journal = Journal(tmp_path / "j.db")
    live = order()
    journal.commit(SYMBOL, Changes(orders={live.client_id: live}), durable=False)
    assert journal.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    journal.commit(SYMBOL, Changes(), {"anchor": "10000"})
    assert journal.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again
    assert journal.commits == {"durable": 1, "lazy": 1}
    journal.close()
    assert Journal(tmp_path / "j.db").order(live.client_id) == live  # both are in the log


def test_wal_room_is_made_once_at_open_and_leaves_no_trace(tmp_path):
    path = tmp_path / "j.db"
    journal = Journal(path, wal_room_bytes=1_000_000)
    wal = tmp_path / "j.db-wal"
    size = wal.stat().st_size
    assert size >= 1_000_000
    live = order()
    for _ in range(20):  # later commits overwrite the room from the start of the log
        journal.commit(SYMBOL, Changes(orders={live.client_id: live}))
    assert wal.stat().st_size == size
    assert journal.db.execute("SELECT count(*) FROM meta").fetchone()[0] == 0
    assert journal.order(live.client_id) == live
    journal.close()
    assert Journal(path, wal_room_bytes=1_000_000).order(live.client_id) == live


def test_wal_room_left_by_a_start_that_died_midway_is_dropped_at_the_next_open(tmp_path):
    """A process killed between writing the row of zeros and dropping it leaves the row and a
    grown log behind; the next open sees the log already grown and must still drop the row."""
    path = tmp_path / "j.db"
    crashed = Journal(path)  # never closed: its log stays as a killed process leaves it
    with crashed.db.atomic():
        crashed.db.conn.execute(
            "INSERT OR REPLACE INTO meta (symbol, key, value) VALUES ('', 'wal_room', "
            "zeroblob(1000000))"
        )
    journal = Journal(path, wal_room_bytes=1_000_000)
    assert journal.db.execute("SELECT count(*) FROM meta").fetchone()[0] == 0


def rows_in_database_file(path, tmp_path):
    """The orders a copy of the database file alone holds (what was checkpointed into it)."""
    copy = tmp_path / "copy.db"
    copy.write_bytes(path.read_bytes())
    conn = sqlite3.connect(copy)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'orders'").fetchone():
            return set()  # not even the schema is in the file yet
        return {row[0] for row in conn.execute("SELECT client_id FROM orders")}
    finally:
        conn.close()
        copy.unlink()


def test_a_checkpoint_comes_between_events_after_enough_commits(tmp_path):
    path = tmp_path / "j.db"
    journal = Journal(path, checkpoint_every=3)
    ids = [f"g2t1aaaaobhzz{i:02d}" for i in range(4)]
    for client_id in ids[:2]:
        journal.commit(SYMBOL, Changes(orders={client_id: order(client_id=client_id)}))
        assert journal.checkpoint_if_due() is False
    assert rows_in_database_file(path, tmp_path) == set()  # both only in the log so far
    journal.commit(SYMBOL, Changes(orders={ids[2]: order(client_id=ids[2])}))
    assert journal.checkpoint_if_due() is True
    assert journal.checkpoint_if_due() is False  # counted again from zero
    assert rows_in_database_file(path, tmp_path) == set(ids[:3])
    journal.commit(SYMBOL, Changes(orders={ids[3]: order(client_id=ids[3])}))
    assert journal.checkpoints == 1 and rows_in_database_file(path, tmp_path) == set(ids[:3])


def test_no_checkpoint_between_events_when_switched_off_or_in_memory(tmp_path):
    for journal in (Journal(tmp_path / "j.db", checkpoint_every=0), Journal(":memory:")):
        for _ in range(60):
            journal.commit(SYMBOL, Changes(), {"anchor": "10000"})
        assert journal.checkpoint_if_due() is False and journal.checkpoints == 0
