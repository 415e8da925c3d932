"""The perpetual account's position mode: is it hedged (dual-side)?

Owns: asking the venue once per account (or per symbol where the venue sets it per symbol), by
ccxt's `fetch_position_mode` where ccxt has it (binance, okx), else by the documented endpoint
named in `Venue.position_mode_query` (bitget, gate, bybit), and reading the answer strictly.
Must not: decide what to do about a hedged account (`CcxtExchange` refuses it), or let an answer
it cannot read pass as one-way (`OperationalError` naming the venue and field).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from connectors.ccxt.venues import PositionModeQuery, Venue
from mm.errors import OperationalError

Call = Callable[..., Awaitable[Any]]  # CcxtExchange._call(what, method, *args, **options)
ACCOUNT = ""  # the key of an account-wide answer among the symbols asked


def keys(venue: Venue, has_fetch: bool, unified: list[str]) -> list[str]:
    """What is asked for these ccxt symbols: each symbol where the mode is per symbol, else
    the first one, standing for the account (`ACCOUNT`)."""
    query = venue.position_mode_query
    if query is not None and query.per_symbol and not has_fetch:
        return unified
    return [ACCOUNT] if unified else []


async def hedged(
    call: Call, venue: Venue, name: str, has_fetch: bool, market: dict[str, Any]
) -> bool | None:
    """Whether the account (or `market`'s symbol) is in hedge mode; None: no way to ask."""
    if has_fetch:
        mode = await call(
            "position mode", "fetch_position_mode", market["symbol"], after_subscriptions=False
        )
        return bool(mode.get("hedged"))
    query = venue.position_mode_query
    if query is None:
        return None
    params = {key: value.format_map(market) for key, value in query.params.items()}
    answer = await call("position mode", query.method, params, after_subscriptions=False)
    return read(query, answer, name)


def read(query: PositionModeQuery, answer: Any, name: str) -> bool:
    """The documented answer's mode: True hedged, False one-way; anything else is refused."""
    where = ".".join(str(key) for key in (*query.path, query.field))
    record = answer
    for key in query.path:
        try:
            record = record[key]
        except (KeyError, IndexError, TypeError):
            record = None
            break
    value = record.get(query.field) if isinstance(record, dict) else None
    if _among(value, query.one_way):
        return False
    if _among(value, query.hedged):
        return True
    raise OperationalError(
        f"{name}: cannot read the account's position mode from {query.method}: {where} is "
        f"{value!r}, expected one of {[*query.one_way, *query.hedged]}; the grid needs one-way "
        f"(net) mode and will not assume it"
    )


def _among(value: Any, allowed: tuple[object, ...]) -> bool:
    """`value` is one of `allowed`, type included (True is not 1, "0" is not 0)."""
    return any(type(value) is type(a) and value == a for a in allowed)
