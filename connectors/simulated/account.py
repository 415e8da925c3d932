"""The simulated account: spot balances with locks, linear perpetual positions, fees in quote.

Owns: money movements of executions and the funds checks at order entry. Must not: decide when
orders fill (that is `book`).

Spot: a buy locks `price * qty * (1 + taker fee)` quote, a sell locks `qty` base; fills settle and
release the lock proportionally. Linear perpetual: an order locks `notional / leverage` quote as
margin while it rests (reduce-only orders lock nothing); fills move the signed position, realize
PnL into the quote balance on reductions, and pay the fee in quote.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from mm.core.model import ZERO, Balance, MarketRules, MarketType, Position, Side
from mm.errors import InsufficientFunds, ReduceOnlyRejected


@dataclass(slots=True)
class Holding:
    free: Decimal = ZERO
    locked: Decimal = ZERO


@dataclass(slots=True)
class PerpPosition:
    qty: Decimal = ZERO
    entry_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO


class Account:
    def __init__(
        self,
        balances: dict[str, Decimal],
        *,
        maker_fee_rate: Decimal,
        taker_fee_rate: Decimal,
        leverage: Decimal,
    ) -> None:
        self.holdings = {asset: Holding(free=amount) for asset, amount in balances.items()}
        self.positions: dict[str, PerpPosition] = {}
        self.maker_fee_rate = maker_fee_rate
        self.taker_fee_rate = taker_fee_rate
        self.leverage = leverage

    def _holding(self, asset: str) -> Holding:
        return self.holdings.setdefault(asset, Holding())

    def position(self, symbol: str) -> PerpPosition:
        return self.positions.setdefault(symbol, PerpPosition())

    # -- locks ------------------------------------------------------------------------------
    def lock_per_unit(self, rules: MarketRules, side: Side, price: Decimal, reduce_only: bool):
        """(asset, amount locked per unit of qty) for an order; amount 0 locks nothing."""
        if rules.market_type is MarketType.LINEAR:
            per_unit = ZERO if reduce_only else price / self.leverage
            return rules.quote, per_unit
        if side is Side.BUY:
            return rules.quote, price * (1 + self.taker_fee_rate)
        return rules.base, Decimal(1)

    def check_reduce_only(self, rules: MarketRules, side: Side, qty: Decimal) -> None:
        held = self.position(rules.symbol).qty
        if held == 0 or (held > 0) == (side is Side.BUY):
            raise ReduceOnlyRejected(f"reduce-only {side.name} would not reduce position {held}")

    def lock(self, asset: str, amount: Decimal) -> None:
        holding = self._holding(asset)
        if holding.free < amount:
            raise InsufficientFunds(f"need {amount} {asset}, free {holding.free}")
        holding.free -= amount
        holding.locked += amount

    def unlock(self, asset: str, amount: Decimal) -> None:
        holding = self._holding(asset)
        holding.locked -= amount
        holding.free += amount

    # -- settlement -------------------------------------------------------------------------
    def fee(self, notional: Decimal, maker: bool) -> Decimal:
        return notional * (self.maker_fee_rate if maker else self.taker_fee_rate)

    def settle(
        self, rules: MarketRules, side: Side, qty: Decimal, price: Decimal, fee: Decimal
    ) -> None:
        """Move money for an execution whose lock has already been released."""
        quote = self._holding(rules.quote)
        if rules.market_type is MarketType.SPOT:
            base = self._holding(rules.base)
            if side is Side.BUY:
                quote.free -= price * qty + fee
                base.free += qty
            else:
                base.free -= qty
                quote.free += price * qty - fee
            return
        pos = self.position(rules.symbol)
        signed = qty if side is Side.BUY else -qty
        quote.free += _move_position(pos, signed, price) - fee

    def reducible(self, symbol: str, side: Side) -> Decimal:
        """How much a reduce-only order on `side` may still fill."""
        held = self.position(symbol).qty
        if held > 0 and side is Side.SELL:
            return held
        if held < 0 and side is Side.BUY:
            return -held
        return ZERO

    # -- views ------------------------------------------------------------------------------
    def balances(self) -> dict[str, Balance]:
        return {a: Balance(a, h.free, h.locked) for a, h in sorted(self.holdings.items())}

    def position_view(self, symbol: str) -> Position:
        pos = self.positions.get(symbol) or PerpPosition()
        return Position(symbol, pos.qty, pos.entry_price)


def _move_position(pos: PerpPosition, signed: Decimal, price: Decimal) -> Decimal:
    """Apply a signed fill; returns the PnL it realized."""
    if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
        new_qty = pos.qty + signed
        pos.entry_price = (abs(pos.qty) * pos.entry_price + abs(signed) * price) / abs(new_qty)
        pos.qty = new_qty
        return ZERO
    closed = min(abs(signed), abs(pos.qty))
    pnl = (price - pos.entry_price) * closed * (1 if pos.qty > 0 else -1)
    new_qty = pos.qty + signed
    if new_qty == 0:
        pos.entry_price = ZERO
    elif (new_qty > 0) != (pos.qty > 0):
        pos.entry_price = price
    pos.qty = new_qty
    pos.realized_pnl += pnl
    return pnl
