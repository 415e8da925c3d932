"""Deterministic client order ids: encode the decision that made an order, parse it back.

Owns: the id format. Must not: depend on time or randomness — the same decision always yields the
same id, so a retried send is refused by the venue as a duplicate instead of doubling exposure.

Format (lowercase alphanumeric, at most 28 characters, valid on every supported venue):

    g <n> <strategy:n> <symbol tag:4> <intent:2> <level:4> <generation:1-9>

- `g`           format version.
- `<n>`         length of the strategy id (1-6), then the strategy id itself ([a-z0-9]).
- symbol tag    CRC-32 of the symbol in base 36. Symbol names are unbounded in length while venue
                ids are short; every query that returns an id is already scoped to one symbol,
                so the tag only has to prove the id belongs to that symbol.
- intent        `ob` open buy, `os` open sell, `cs` closing sell (of a long slot),
                `cb` closing buy (of a short slot). Carrying the role lets a node that lost
                its journal rebuild slots (and the anchor) from its own open orders.
- level         the slot's lattice index k, offset by 36**4 // 2, in 4 base-36 digits.
- generation    a per-journal sequence in base 36 that grows with every new order.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from mm.core.model import Role, Side

VERSION = "g"
MAX_LEN = 28
MAX_STRATEGY_LEN = 6
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_LEVEL_WIDTH = 4
_LEVEL_OFFSET = 36**_LEVEL_WIDTH // 2
MAX_LEVEL = 36**_LEVEL_WIDTH - 1 - _LEVEL_OFFSET
MIN_LEVEL = -_LEVEL_OFFSET
MAX_GENERATION = 36**9 - 1

_INTENTS = {
    (Role.OPEN, Side.BUY): "ob",
    (Role.OPEN, Side.SELL): "os",
    (Role.CLOSE, Side.SELL): "cs",
    (Role.CLOSE, Side.BUY): "cb",
}
_INTENT_OF = {code: key for key, code in _INTENTS.items()}


@dataclass(frozen=True, slots=True)
class OrderKey:
    """The fields an id carries."""

    strategy_id: str
    symbol_tag: str
    level: int
    role: Role
    side: Side
    generation: int


def _b36(n: int) -> str:
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_DIGITS[r])
    return "".join(reversed(out))


def symbol_tag(symbol: str) -> str:
    return _b36(zlib.crc32(symbol.upper().encode()) % 36**4).rjust(4, "0")


def check_strategy_id(strategy_id: str) -> None:
    ok = 1 <= len(strategy_id) <= MAX_STRATEGY_LEN and all(c in _DIGITS for c in strategy_id)
    if not ok:
        raise ValueError(
            f"strategy id {strategy_id!r} must be 1-{MAX_STRATEGY_LEN} characters of [a-z0-9]"
        )


def encode(
    strategy_id: str, symbol: str, level: int, role: Role, side: Side, generation: int
) -> str:
    check_strategy_id(strategy_id)
    if not MIN_LEVEL <= level <= MAX_LEVEL:
        raise ValueError(f"level {level} outside [{MIN_LEVEL}, {MAX_LEVEL}]")
    if not 0 <= generation <= MAX_GENERATION:
        raise ValueError(f"generation {generation} outside [0, {MAX_GENERATION}]")
    return "".join(
        (
            VERSION,
            str(len(strategy_id)),
            strategy_id,
            symbol_tag(symbol),
            _INTENTS[(role, side)],
            _b36(level + _LEVEL_OFFSET).rjust(_LEVEL_WIDTH, "0"),
            _b36(generation),
        )
    )


def parse(client_id: str) -> OrderKey | None:
    """The fields of one of our ids, or None for anything else (a foreign order)."""
    if not 14 <= len(client_id) <= MAX_LEN or client_id[0] != VERSION:
        return None
    if not all(c in _DIGITS for c in client_id[1:]) or not client_id[1].isdigit():
        return None
    n = int(client_id[1])
    if not 1 <= n <= MAX_STRATEGY_LEN:
        return None
    pos = 2 + n
    body = client_id[pos:]
    if len(body) < 4 + 2 + _LEVEL_WIDTH + 1:
        return None
    intent = _INTENT_OF.get(body[4:6])
    if intent is None:
        return None
    generation_digits = body[6 + _LEVEL_WIDTH :]
    if len(generation_digits) > 1 and generation_digits[0] == "0":
        return None  # not canonical: encode never pads the generation
    return OrderKey(
        strategy_id=client_id[2:pos],
        symbol_tag=body[:4],
        level=int(body[6 : 6 + _LEVEL_WIDTH], 36) - _LEVEL_OFFSET,
        role=intent[0],
        side=intent[1],
        generation=int(generation_digits, 36),
    )


def is_ours(client_id: str, strategy_id: str, symbol: str) -> bool:
    key = parse(client_id)
    return (
        key is not None and key.strategy_id == strategy_id and key.symbol_tag == symbol_tag(symbol)
    )
