"""Saving and loading the simulated venue's state to one JSON file, atomically.

Owns: the file format, so a simulated exchange outlives a restart (or SIGKILL) of the bot. A save
writes a temporary file, fsyncs it and renames it over the old one: a reader sees the old state or
the new one, never half of each. Must not: decide anything about trading.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

from connectors.simulated.account import Account, Holding, PerpPosition
from connectors.simulated.book import SimOrder
from mm.core.model import Fill, OrderStatus, Side

FORMAT = 1


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (Side, OrderStatus)):
        return value.name
    return value


def _row(obj: Any) -> dict[str, Any]:
    return {k: _plain(v) for k, v in asdict(obj).items()}


def _decode(cls: type, row: dict[str, Any]) -> Any:
    kwargs = {}
    for f in fields(cls):
        value = row[f.name]
        if f.type in ("Decimal",):
            value = Decimal(value)
        elif f.type == "Side":
            value = Side[value]
        elif f.type == "OrderStatus":
            value = OrderStatus[value]
        kwargs[f.name] = value
    return cls(**kwargs)


def dump(
    path: Path,
    *,
    orders: list[SimOrder],
    fills: list[Fill],
    account: Account,
    last_ticks: dict[str, int],
    feeds: dict[str, dict[str, int]],
    counters: dict[str, int],
) -> None:
    doc = {
        "format": FORMAT,
        "counters": counters,
        "last_ticks": last_ticks,
        "feeds": feeds,
        "holdings": {a: _row(h) for a, h in account.holdings.items()},
        "positions": {s: _row(p) for s, p in account.positions.items()},
        "orders": [_row(o) for o in orders],
        "fills": [_row(f) for f in fills],
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as fh:
        json.dump(doc, fh, separators=(",", ":"))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load(path: Path, account: Account) -> dict[str, Any] | None:
    """Read a saved state into `account`; returns orders, fills, prices, feeds and counters."""
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path}: unsupported simulated exchange state format {doc.get('format')}")
    account.holdings = {a: _decode(Holding, h) for a, h in doc["holdings"].items()}
    account.positions = {s: _decode(PerpPosition, p) for s, p in doc["positions"].items()}
    return {
        "orders": [_decode(SimOrder, o) for o in doc["orders"]],
        "fills": [_decode(Fill, f) for f in doc["fills"]],
        "last_ticks": doc["last_ticks"],
        "feeds": doc["feeds"],
        "counters": doc["counters"],
    }
