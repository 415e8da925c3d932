"""Gate looks a finished order up by its client id (`text`) for a while only: 1 hour on spot, 60
seconds on futures; after that only by its exchange id (the `lookup_window` source in
`fixtures/gate_orders.json`). The engine resolves uncertain sends and recovers after a restart by
client id, so a finished order must still be found: by the exchange id the connector saw, or among
gate's recent finished orders.

Gate is `Replay`ed as in `test_venue_parsing.py`: the real ccxt client, answered with the
documented payloads, every request recorded. The lookup by text answers gate's documented
ORDER_NOT_FOUND error, as it does once the window has passed.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from connectors.ccxt import lookup
from connectors.ccxt.venues import VENUES
from mm import errors
from mm.core.model import OrderRequest, OrderStatus, Side
from tests.ccxt.test_venue_parsing import (
    MARKETS,
    CcxtExchange,
    Replay,
    connect,
    d,
    envelope,
    fixture_of,
    load,
    named,
    path_of,
    run,
    symbol_of,
    wire_id,
)

[NOT_FOUND] = [
    c["body"] for c in load("gate_errors.json")["cases"] if c["case"] == "order_not_found"
]


def by_id_path(market: str, exchange_id: str) -> str:
    return fixture_of("gate", "orders")[market]["detail"]["path"].replace("{order_id}", exchange_id)


def past_the_window(replay: Replay, market: str, client_id: str) -> None:
    """Gate no longer finds `client_id` by its text: lookup and cancel answer ORDER_NOT_FOUND."""
    fixture = fixture_of("gate", "orders")[market]
    for call in (fixture["detail"], fixture["cancel"]):
        replay.routes[f"{call['method']} {path_of('gate', call['path'], client_id)}"] = NOT_FOUND


def list_route(market: str) -> str:
    finished = fixture_of("gate", "orders")[market]["finished"]
    return f"{finished['method']} {finished['path']}"


def listed(replay: Replay, market: str) -> list[dict[str, str]]:
    """The queries of the finished-order list requests sent (exactly that path, no order id)."""
    finished = fixture_of("gate", "orders")[market]["finished"]
    return [
        r.query
        for r in replay.requests
        if (r.method, r.path) == (finished["method"], finished["path"])
    ]


def others(market: str, count: int, finished_ms_shift: int = 0) -> list[dict[str, Any]]:
    """`count` finished orders of other client ids: the documented filled order, renumbered."""
    raw = fixture_of("gate", "orders")[market]["cases"]["filled"]["raw"]
    out = []
    for n in range(count):
        order = copy.deepcopy(raw)
        order["id"] = f"{order['id']}{n:03d}" if market == "spot" else int(f"{order['id']}{n:03d}")
        order["text"] = f"t-g2a1other{n:04d}"
        out.append(order)
    return out


async def gate(market: str, now_s: float | None = None) -> tuple[CcxtExchange, Replay]:
    finished = fixture_of("gate", "orders")[market]["finished"]
    return await connect("gate", market, signed=True, now_s=now_s or finished["now_s"])


def test_gate_data_gives_the_documented_windows_and_no_other_venue_has_one() -> None:
    assert VENUES["gate"].lookup_window["spot"].seconds == 3600
    assert VENUES["gate"].lookup_window["linear"].seconds == 60
    assert [v for v, venue in VENUES.items() if venue.lookup_window] == ["gate"]


@pytest.mark.parametrize("market", MARKETS)
def test_an_order_seen_before_is_found_by_its_exchange_id_past_the_window(market: str) -> None:
    """Placed (gate answers with the order, so its exchange id is known), then partly filled and
    cancelled; its text no longer resolves. The lookup asks for the exchange id straight away: one
    call, as a lookup by text would have been."""
    fixture = fixture_of("gate", "orders")[market]
    client_id, symbol, cases = fixture["client_id"], symbol_of(market), fixture["cases"]
    new, final = cases["new"], cases["canceled_partial"]
    exchange_id = new["expect"]["exchange_id"]

    async def scenario() -> None:
        exchange, replay = await gate(market)
        create = fixture["create"]
        replay.routes[f"{create['method']} {create['path']}"] = new["raw"]
        past_the_window(replay, market, client_id)
        replay.routes[f"GET {by_id_path(market, exchange_id)}"] = envelope(
            "gate", market, final["raw"]
        )
        request = OrderRequest(
            symbol,
            client_id,
            Side[new["expect"]["side"]],
            d(new["expect"]["price"]),
            d(new["expect"]["qty"]),
        )
        try:
            await exchange.place_order(request)
            report = await exchange.fetch_order(symbol, client_id)
        finally:
            await exchange.close()
        assert report.client_id == client_id and report.exchange_id == exchange_id
        assert report.status is OrderStatus[final["expect"]["status"]]
        assert report.filled_qty == d(final["expect"]["filled_qty"]) > 0
        assert len(replay.sent("GET", by_id_path(market, exchange_id))) == 1
        assert replay.sent("GET", path_of("gate", fixture["detail"]["path"], client_id)) == []
        assert listed(replay, market) == []

    run(scenario)


@pytest.mark.parametrize("market", MARKETS)
def test_an_order_never_seen_is_found_among_the_finished_orders(market: str) -> None:
    """After a restart nothing is remembered: the lookup by text says not found, so gate's list
    of finished orders is read, by the documented request, and the order matched by its text.
    Everything listed is remembered: the next lookup goes by exchange id."""
    fixture = fixture_of("gate", "orders")[market]
    client_id, symbol, finished = fixture["client_id"], symbol_of(market), fixture["finished"]
    final = fixture["cases"]["canceled_partial"]
    exchange_id = final["expect"]["exchange_id"]

    async def scenario() -> None:
        exchange, replay = await gate(market)
        past_the_window(replay, market, client_id)
        replay.routes[list_route(market)] = [*others(market, 2), final["raw"]]
        replay.routes[f"GET {by_id_path(market, exchange_id)}"] = envelope(
            "gate", market, final["raw"]
        )
        try:
            report = await exchange.fetch_order(symbol, client_id)
            [query] = listed(replay, market)
            again = await exchange.fetch_order(symbol, client_id)
        finally:
            await exchange.close()
        assert report.client_id == client_id and report.exchange_id == exchange_id
        assert report.status is OrderStatus[final["expect"]["status"]]
        assert report.filled_qty == d(final["expect"]["filled_qty"]) > 0
        [(page_param, pages)] = finished["pages"].items()
        assert query == {**query, **finished["query"], page_param: pages[0]}
        assert "from" in query or market == "linear"  # futures' list takes no time range
        [text_lookup] = replay.sent("GET", path_of("gate", fixture["detail"]["path"], client_id))
        assert named("gate", text_lookup) == wire_id("gate", client_id)
        assert again == report
        assert len(listed(replay, market)) == 1
        assert len(replay.sent("GET", by_id_path(market, exchange_id))) == 1

    run(scenario)


@pytest.mark.parametrize("market", MARKETS)
def test_an_id_gate_does_not_know_is_order_not_found_after_one_short_page(market: str) -> None:
    fixture = fixture_of("gate", "orders")[market]

    async def scenario() -> None:
        exchange, replay = await gate(market)
        past_the_window(replay, market, fixture["client_id"])
        replay.routes[list_route(market)] = others(market, 3)
        try:
            with pytest.raises(errors.OrderNotFound):
                await exchange.fetch_order(symbol_of(market), fixture["client_id"])
        finally:
            await exchange.close()
        assert len(listed(replay, market)) == 1

    run(scenario)


@pytest.mark.parametrize("market", MARKETS)
def test_the_search_reads_at_most_a_few_full_pages(market: str) -> None:
    fixture = fixture_of("gate", "orders")[market]
    [(page_param, pages)] = fixture["finished"]["pages"].items()

    async def scenario() -> None:
        exchange, replay = await gate(market)
        past_the_window(replay, market, fixture["client_id"])
        replay.routes[list_route(market)] = others(market, lookup.PAGE_SIZE)
        try:
            with pytest.raises(errors.OrderNotFound):
                await exchange.fetch_order(symbol_of(market), fixture["client_id"])
        finally:
            await exchange.close()
        assert [q[page_param] for q in listed(replay, market)] == pages
        assert len(pages) == lookup.MAX_PAGES

    run(scenario)


@pytest.mark.parametrize("market", MARKETS)
def test_the_search_stops_at_a_page_that_ended_before_the_look_back(market: str) -> None:
    """A full page of orders that all finished more than `LOOKBACK_S` ago: older pages are not
    read (gate lists the newest first)."""
    fixture = fixture_of("gate", "orders")[market]
    later = fixture["finished"]["now_s"] + lookup.LOOKBACK_S + 3600

    async def scenario() -> None:
        exchange, replay = await gate(market, now_s=later)
        past_the_window(replay, market, fixture["client_id"])
        replay.routes[list_route(market)] = others(market, lookup.PAGE_SIZE)
        try:
            with pytest.raises(errors.OrderNotFound):
                await exchange.fetch_order(symbol_of(market), fixture["client_id"])
        finally:
            await exchange.close()
        [query] = listed(replay, market)
        if market == "spot":
            assert query["from"] == str(int(later) - lookup.LOOKBACK_S)

    run(scenario)


@pytest.mark.parametrize("market", MARKETS)
def test_cancelling_an_order_finished_past_the_window_returns_its_final_report(market: str) -> None:
    """As on every venue, a cancel of a finished order answers with its final report (the cancel
    by text says not found; the lookup then finds it among the finished orders)."""
    fixture = fixture_of("gate", "orders")[market]
    client_id, symbol = fixture["client_id"], symbol_of(market)
    final = fixture["cases"]["canceled_partial"]

    async def scenario() -> None:
        exchange, replay = await gate(market)
        past_the_window(replay, market, client_id)
        replay.routes[list_route(market)] = [final["raw"]]
        try:
            report = await exchange.cancel_order(symbol, client_id)
        finally:
            await exchange.close()
        cancel = fixture["cancel"]
        assert len(replay.sent(cancel["method"], path_of("gate", cancel["path"], client_id))) == 1
        assert report.client_id == client_id
        assert report.status is OrderStatus[final["expect"]["status"]]
        assert report.filled_qty == d(final["expect"]["filled_qty"])

    run(scenario)


@pytest.mark.parametrize("market", MARKETS)
@pytest.mark.parametrize("venue", ["bitget", "okx", "bybit"])
def test_other_venues_still_look_a_seen_order_up_by_client_id(venue: str, market: str) -> None:
    """No window elsewhere: an order placed (its exchange id known) is asked for by client id."""
    fixture = fixture_of(venue, "orders")[market]
    client_id, symbol, new = fixture["client_id"], symbol_of(market), fixture["cases"]["new"]
    create, detail = fixture["create"], fixture["detail"]

    async def scenario() -> None:
        exchange, replay = await connect(venue, market, signed=True)
        answer = create["response"]
        replay.routes[f"{create['method']} {create['path']}"] = (
            new["raw"] if answer == "new" else answer
        )
        path = path_of(venue, detail["path"], client_id)
        replay.routes[f"{detail['method']} {path}"] = envelope(venue, market, new["raw"])
        request = OrderRequest(
            symbol,
            client_id,
            Side[new["expect"]["side"]],
            d(new["expect"]["price"]),
            d(new["expect"]["qty"]),
        )
        try:
            await exchange.place_order(request)
            report = await exchange.fetch_order(symbol, client_id)
        finally:
            await exchange.close()
        [sent] = replay.sent(detail["method"], path)
        assert named(venue, sent) == wire_id(venue, client_id)
        assert report.client_id == client_id and report.status is OrderStatus.OPEN

    run(scenario)


def test_the_exchange_id_memory_keeps_the_most_recent_ids() -> None:
    ids = lookup.ExchangeIds(size=2)
    for n in range(3):
        ids.note(f"t-c{n}", f"{n}")
    ids.note("t-c1", "11")  # seen again: newest, with the venue's latest word
    ids.note("t-c3", "3")
    assert (ids.get("t-c0"), ids.get("t-c2"), ids.get("t-c1"), ids.get("t-c3")) == (
        None,
        None,
        "11",
        "3",
    )
    assert len(ids) == 2
