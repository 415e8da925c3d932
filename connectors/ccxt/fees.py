"""FeeBook: each order's cumulative fee in its market's quote, kept per trade.

Owns: turning one trade's fee (cost, currency, the trade's price) into quote, and remembering it
by (client id, trade id), so a trade seen twice (streamed, then fetched) counts once. Must not:
call the venue, or price an asset it has no trade price for.

- Charged in quote (or in no named currency, as a linear trade's settlement fee may be): as is.
- Charged in base (every venue's spot buy): cost x the trade's price, exact in Decimal.
- Charged in any other asset (BNB, a platform token): there is no price for it here, so it stays
  out of the quote sum rather than being added in the wrong unit or at a guessed price. It is
  tallied per asset (`elsewhere`) and logged once per asset (docs/decisions.md).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from mm.core.model import ZERO, MarketRules

log = logging.getLogger(__name__)


def in_quote(
    cost: Decimal, currency: str | None, price: Decimal, rules: MarketRules
) -> Decimal | None:
    """A trade's fee in the market's quote, or None when it was charged in another asset."""
    if not currency or currency == rules.quote:
        return cost
    if currency == rules.base:
        return cost * price
    return None


class FeeBook:
    def __init__(self) -> None:
        self._quote: dict[str, dict[str, Decimal]] = {}  # client id -> trade id -> fee in quote
        # (client id, trade id) -> (asset, fee) of fees charged in neither base nor quote
        self._elsewhere: dict[tuple[str, str], tuple[str, Decimal]] = {}
        self._warned: set[str] = set()

    def note(
        self,
        client_id: str,
        trade_id: str,
        cost: Decimal,
        currency: str | None,
        price: Decimal,
        rules: MarketRules,
    ) -> Decimal | None:
        """Records one trade's fee (again: the same value); returns it in quote, None when it
        was charged in another asset (then it is in `elsewhere`, not in `total`)."""
        fee = in_quote(cost, currency, price, rules)
        if fee is not None:
            self._quote.setdefault(client_id, {})[trade_id] = fee
            return fee
        assert currency is not None
        self._elsewhere[(client_id, trade_id)] = (currency, cost)
        if currency not in self._warned:
            self._warned.add(currency)
            log.warning(
                "%s: fees charged in %s are not in the reported fee (in %s); see fees_elsewhere",
                rules.symbol,
                currency,
                rules.quote,
            )
        return None

    def total(self, client_id: str) -> Decimal:
        """The order's cumulative fee in quote over the trades seen so far."""
        return sum(self._quote.get(client_id, {}).values(), ZERO)

    def elsewhere(self) -> dict[str, Decimal]:
        """Fees charged in an asset other than a market's base or quote, summed per asset."""
        out: dict[str, Decimal] = {}
        for asset, cost in self._elsewhere.values():
            out[asset] = out.get(asset, ZERO) + cost
        return out
