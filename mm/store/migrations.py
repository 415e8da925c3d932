"""Numbered schema migrations. Each runs once, in order, in its own transaction.

Owns: the schema. Must not: ever edit a released migration — add a new number instead.
"""

from __future__ import annotations

import time

from sqlite_utils import Database

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meta (
        symbol TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
        PRIMARY KEY (symbol, key)
    );
    CREATE TABLE slots (
        symbol TEXT NOT NULL, level INTEGER NOT NULL,
        inventory_qty TEXT NOT NULL, entry_price TEXT NOT NULL, open_fees TEXT NOT NULL,
        generation INTEGER NOT NULL, post_only_rejects INTEGER NOT NULL,
        rejects INTEGER NOT NULL, retry_after_ms INTEGER NOT NULL,
        PRIMARY KEY (symbol, level)
    );
    CREATE TABLE orders (
        client_id TEXT PRIMARY KEY NOT NULL, symbol TEXT NOT NULL, level INTEGER NOT NULL,
        role TEXT NOT NULL, side TEXT NOT NULL, price TEXT NOT NULL, qty TEXT NOT NULL,
        status TEXT NOT NULL, filled_qty TEXT NOT NULL, avg_price TEXT NOT NULL,
        fee TEXT NOT NULL, exchange_id TEXT NOT NULL, post_only INTEGER NOT NULL,
        reduce_only INTEGER NOT NULL, cancel_requested INTEGER NOT NULL, reason TEXT NOT NULL,
        created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL
    );
    CREATE INDEX orders_by_status ON orders (symbol, status);
    CREATE TABLE fills (
        client_id TEXT NOT NULL, cum_filled_qty TEXT NOT NULL, symbol TEXT NOT NULL,
        level INTEGER NOT NULL, side TEXT NOT NULL, qty TEXT NOT NULL, price TEXT NOT NULL,
        fee TEXT NOT NULL, realized_pnl TEXT NOT NULL, closed_round_trip INTEGER NOT NULL,
        ts_ms INTEGER NOT NULL,
        PRIMARY KEY (client_id, cum_filled_qty)
    );
    CREATE INDEX fills_by_symbol ON fills (symbol, ts_ms);
    """,
}


def current_version(db: Database) -> int:
    if "schema_migrations" not in db.table_names():
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate(db: Database, migrations: dict[int, str] = MIGRATIONS) -> int:
    """Apply every migration newer than the database; returns the resulting version."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)"
    )
    version = current_version(db)
    for number in sorted(n for n in migrations if n > version):
        with db.atomic():
            for statement in migrations[number].split(";"):
                if statement.strip():
                    db.conn.execute(statement)
            db.conn.execute(
                "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?, ?)",
                (number, time.time_ns() // 1_000_000),
            )
        version = number
    return version
