"""The durable symbol registry and control state (one SQLite file, `<data_dir>/control.db`).

Owns: which symbols the market maker trades and with which grid, written *before* any actor is
spawned or stopped (DESIGN 6), so a restarted orchestrator re-reads exactly what the operator
asked for: `active` symbols are (re)spawned, `removing` ones are drained and deleted. Also keeps
small control values (the risk breaker, "initial symbols seeded"). WAL + synchronous=FULL.
Must not: start or stop anything.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from mm.store.migrations import migrate

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE symbols (
        symbol TEXT PRIMARY KEY NOT NULL, grid TEXT NOT NULL, state TEXT NOT NULL,
        keep_orders INTEGER NOT NULL DEFAULT 0, added_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    CREATE TABLE control (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
    """,
    2: "ALTER TABLE symbols ADD COLUMN paused INTEGER NOT NULL DEFAULT 0",
}
ACTIVE = "active"
REMOVING = "removing"


@dataclass(frozen=True, slots=True)
class Entry:
    symbol: str
    grid: dict[str, Any]  # GridConfig fields, JSON-safe (decimals as strings)
    state: str  # ACTIVE | REMOVING
    keep_orders: bool
    added_ms: int
    paused: bool = False  # operator pause: survives restarts of the symbol's actor


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Registry:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        self.db = Database(conn)
        migrate(self.db, MIGRATIONS)

    def close(self) -> None:
        self.db.close()

    # -- symbols -----------------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        rows = self.db.query("SELECT * FROM symbols ORDER BY added_ms, symbol")
        return [_entry(r) for r in rows]

    def get(self, symbol: str) -> Entry | None:
        rows = list(self.db.query("SELECT * FROM symbols WHERE symbol = ?", [symbol]))
        return _entry(rows[0]) if rows else None

    def add(self, symbol: str, grid: dict[str, Any]) -> bool:
        """Register `symbol` as active; False (and no change) if it is already registered."""
        now = _now_ms()
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO symbols (symbol, grid, state, keep_orders, added_ms, "
            "updated_ms) VALUES (?, ?, ?, 0, ?, ?)",
            [symbol, json.dumps(grid, sort_keys=True), ACTIVE, now, now],
        )
        return cursor.rowcount == 1

    def mark_removing(self, symbol: str, *, keep_orders: bool) -> bool:
        cursor = self.db.execute(
            "UPDATE symbols SET state = ?, keep_orders = ?, updated_ms = ? WHERE symbol = ?",
            [REMOVING, int(keep_orders), _now_ms(), symbol],
        )
        return cursor.rowcount == 1

    def set_paused(self, symbol: str, paused: bool) -> bool:
        cursor = self.db.execute(
            "UPDATE symbols SET paused = ?, updated_ms = ? WHERE symbol = ?",
            [int(paused), _now_ms(), symbol],
        )
        return cursor.rowcount == 1

    def delete(self, symbol: str) -> bool:
        return self.db.execute("DELETE FROM symbols WHERE symbol = ?", [symbol]).rowcount == 1

    # -- control values ----------------------------------------------------------------------
    def control(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM control WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def set_control(self, **values: str) -> None:
        with self.db.atomic():
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO control (key, value) VALUES (?, ?)", list(values.items())
            )

    def seed_once(self, symbols: dict[str, dict[str, Any]]) -> list[str]:
        """Register the config's initial symbols on the very first start only (so a symbol the
        operator removed does not come back on restart). Returns the symbols added."""
        if self.control("seeded") is not None:
            return []
        added = []
        with self.db.atomic():
            for symbol, grid in symbols.items():
                if self.add(symbol, grid):
                    added.append(symbol)
            self.set_control(seeded=str(_now_ms()))
        return added


def _entry(row: dict[str, Any]) -> Entry:
    return Entry(
        symbol=row["symbol"],
        grid=json.loads(row["grid"]),
        state=row["state"],
        keep_orders=bool(row["keep_orders"]),
        added_ms=int(row["added_ms"]),
        paused=bool(row["paused"]),
    )
