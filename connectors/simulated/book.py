"""Resting orders of one symbol in price-time priority, and what crosses at a price point.

Owns: order records of the simulated venue and the crossing rule (a resting buy at p fills when
the price reaches p or lower, a sell when it reaches p or higher). Must not: move money.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from decimal import Decimal

from mm.core.model import ZERO, OrderReport, OrderStatus, Side


@dataclass(slots=True)
class SimOrder:
    exchange_id: str
    client_id: str
    symbol: str
    side: Side
    price: Decimal
    ticks: int
    qty: Decimal
    post_only: bool
    reduce_only: bool
    created_ms: int
    seq: int
    lock_asset: str
    lock_per_unit: Decimal
    filled: Decimal = ZERO
    cost: Decimal = ZERO
    fee: Decimal = ZERO
    status: OrderStatus = OrderStatus.OPEN
    updated_ms: int = 0

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled

    def report(self, reason: str = "") -> OrderReport:
        return OrderReport(
            symbol=self.symbol,
            client_id=self.client_id,
            side=self.side,
            price=self.price,
            qty=self.qty,
            status=self.status,
            filled_qty=self.filled,
            avg_price=self.cost / self.filled if self.filled else ZERO,
            fee=self.fee,
            exchange_id=self.exchange_id,
            ts_ms=self.updated_ms,
            reason=reason,
            post_only=self.post_only,
            reduce_only=self.reduce_only,
        )


class Book:
    def __init__(self) -> None:
        self._bids: list[tuple[int, int, SimOrder]] = []  # (-ticks, seq, order): best first
        self._asks: list[tuple[int, int, SimOrder]] = []  # (ticks, seq, order)

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)

    def _side(self, side: Side) -> list[tuple[int, int, SimOrder]]:
        return self._bids if side is Side.BUY else self._asks

    @staticmethod
    def _key(order: SimOrder) -> tuple[int, int]:
        return (-order.ticks if order.side is Side.BUY else order.ticks, order.seq)

    def add(self, order: SimOrder) -> None:
        bisect.insort(self._side(order.side), (*self._key(order), order), key=lambda e: e[:2])

    def remove(self, order: SimOrder) -> None:
        entries = self._side(order.side)
        i = bisect.bisect_left(entries, self._key(order), key=lambda e: e[:2])
        if i < len(entries) and entries[i][2] is order:
            del entries[i]

    def orders(self) -> list[SimOrder]:
        return [e[2] for e in self._bids] + [e[2] for e in self._asks]

    @property
    def best_bid(self) -> int | None:
        return -self._bids[0][0] if self._bids else None

    @property
    def best_ask(self) -> int | None:
        return self._asks[0][0] if self._asks else None

    def crossing(self, ticks: int) -> list[SimOrder]:
        """Orders that trade when the price reaches `ticks`, in price-time priority."""
        out = []
        for neg, _, order in self._bids:
            if -neg < ticks:
                break
            out.append(order)
        for pos, _, order in self._asks:
            if pos > ticks:
                break
            out.append(order)
        return out
