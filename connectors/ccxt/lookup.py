"""Finding the venue's order for a client id, also where the venue looks client ids up for a
while only (gate: `Venue.lookup_window`).

Owns: the bounded memory of the exchange order id behind each client id `CcxtExchange` has seen
(`ExchangeIds`), and the way an order is asked for (`OrderLookup`): by client id; on a venue with
a window, by the exchange id when it is known, else by client id and then among the venue's
recent finished orders. Must not: call ccxt other than through the caller's `call` (which maps
its errors), or decide what a missing order means.

Cost: a lookup is one call as before, by client id or by a known exchange id. Only where the
venue has a window and says "not found" by client id for an id never seen (after a restart, a
send whose answer was lost, an id never placed) come 1 to `MAX_PAGES` GETs of the finished
orders (`PAGE_SIZE` each), stopping at the first short page or one that ended before the
look-back (`LOOKBACK_S`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from connectors.ccxt.parse import updated_ms
from connectors.ccxt.venues import LookupWindow, Venue
from mm.errors import OrderNotFound

ID_MEMORY = 100_000  # client ids whose exchange id is remembered (the most recent)
LOOKBACK_S = 24 * 3600  # how far back the finished orders are searched
PAGE_SIZE = 100  # orders per page of the finished-order list: gate's default
MAX_PAGES = 3

Call = Callable[..., Awaitable[Any]]  # CcxtExchange._call(what, method, *args)


class Recent:
    """A string -> string map of the most recent `size` entries noted (bounded memory for a
    process that runs for months)."""

    def __init__(self, size: int = ID_MEMORY) -> None:
        self._ids: OrderedDict[str, str] = OrderedDict()
        self._size = size

    def note(self, key: str, value: str) -> None:
        if not key or not value:
            return
        self._ids[key] = value
        self._ids.move_to_end(key)
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)

    def get(self, key: str) -> str | None:
        return self._ids.get(key)

    def __len__(self) -> int:
        return len(self._ids)


class ExchangeIds(Recent):
    """Client id (as the venue stores it) -> exchange order id, the most recent `size` seen."""

    def note_order(self, order: dict[str, Any]) -> None:
        """A ccxt order structure (its `clientOrderId` is the id as the venue stores it)."""
        self.note(str(order.get("clientOrderId") or ""), str(order.get("id") or ""))


class OrderLookup:
    """Asks the venue for one order (ccxt order structures in and out)."""

    def __init__(
        self, venue: Venue, market_type: str, call: Call, now_s: Callable[[], float]
    ) -> None:
        self.venue = venue
        self.window = venue.lookup_window.get(market_type)  # None: no time limit on client ids
        self.ids = ExchangeIds()
        self._call = call
        self._now_s = now_s  # wall clock, unix seconds: the look-back of the search

    async def find(self, unified: str, client_id: str) -> dict[str, Any]:
        """The order with our `client_id` on market `unified`; `OrderNotFound` if none."""
        wire = self.venue.wire_id(client_id)
        exchange_id = self.ids.get(wire) if self.window is not None else None
        if exchange_id is not None:  # the venue's own id has no window; the same one call
            return await self.by_exchange_id(unified, exchange_id)
        order_id, params = self.venue.lookup(client_id)
        try:
            return await self._call(
                f"fetch_order {client_id}",
                "fetch_order",
                order_id,
                unified,
                {**params, **self.venue.fetch_params},
            )
        except OrderNotFound:
            window = self.window
            if window is None:
                raise
        found = await self._search_finished(window, unified, wire)
        if found is None:
            raise OrderNotFound(
                f"fetch_order {client_id}: not found by client id (looked up for "
                f"{window.seconds:g}s after an order ends) nor among the finished orders "
                f"of the last {LOOKBACK_S // 3600}h"
            )
        return found

    async def by_exchange_id(self, unified: str, exchange_id: str) -> dict[str, Any]:
        order = await self._call(
            f"fetch_order #{exchange_id}",
            "fetch_order",
            exchange_id,
            unified,
            dict(self.venue.fetch_params),
        )
        self.ids.note_order(order)
        return order

    async def _search_finished(
        self, window: LookupWindow, unified: str, wire_id: str
    ) -> dict[str, Any] | None:
        """The order with client id `wire_id` among the venue's orders that finished in the last
        `LOOKBACK_S` (newest first), or None. Every order listed is noted, so a later lookup of
        any of them goes by its exchange id."""
        page_param, since_param = window.page_param, window.since_param
        since_s = int(self._now_s()) - LOOKBACK_S
        for page in range(MAX_PAGES):
            params: dict[str, Any] = {
                page_param: page + 1 if page_param == "page" else page * PAGE_SIZE
            }
            if since_param:
                params[since_param] = since_s
            # no ccxt `since`: ccxt would drop an order created before it that finished after
            orders = await self._call(
                f"fetch_closed_orders {unified}",
                "fetch_closed_orders",
                unified,
                None,
                PAGE_SIZE,
                params,
            )
            for order in orders:
                self.ids.note_order(order)
            found = next((o for o in orders if o.get("clientOrderId") == wire_id), None)
            if found is not None:
                return found
            if len(orders) < PAGE_SIZE or all(updated_ms(o) < since_s * 1000 for o in orders):
                return None
        return None
