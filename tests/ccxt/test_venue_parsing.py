"""Parsing and normalisation for bitget, gate, okx and bybit, on the venues' documented payloads.

Every payload under `fixtures/` follows a shape from the venue's API documentation (its
top-level `_source` names the section). Nothing here reaches a network: each `CcxtExchange` is
built on loopback URLs and its ccxt client's HTTP layer (`client.fetch`) is replaced by `Replay`,
which answers from those payloads (through ccxt's own response checks, as the real `fetch` does)
and records every request. So markets go through ccxt's own `load_markets` / `fetch_markets`
parsing and our `load_markets` / `_find` / `_rules`; orders and trades through ccxt's
`parse_order` / `parse_trade` and our `_report` / `fetch_fills` / `fetch_positions`; error
answers through ccxt's `handle_errors` and our `to_mm`; and the requests through ccxt's
`create_order` / `fetch_order` / `cancel_order`, called the way `CcxtExchange` calls them.

A mismatch between our code and a venue can be recorded in its fixture (`known_mismatch`, or a
value in gate's `terminal_finish_as` table): that case then runs as a strict xfail whose reason
says what goes wrong, and fails once fixed, asking for the record to go. None is recorded now:
every case is expected to pass.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import ccxt
import pytest

from connectors.ccxt.errors import to_mm
from connectors.ccxt.exchange import CcxtConfig, CcxtExchange, _num
from connectors.ccxt.venues import VENUES
from mm import errors
from mm.core import ids
from mm.core.model import MarketType, OrderReport, OrderRequest, OrderStatus, Role, Side

FIXTURES = Path(__file__).parent / "fixtures"
VENUE_NAMES = ("bitget", "gate", "okx", "bybit")
MARKETS = ("spot", "linear")
ORDER_CASES = ("new", "partial", "filled", "canceled", "canceled_partial")
LOOPBACK = {"http_base": "http://127.0.0.1:9", "ws_base": "ws://127.0.0.1:9", "loopback_only": True}
CREDENTIALS = {"api_key": "test-key", "api_secret": "test-secret", "passphrase": "test-pass"}
# What each venue answers for an endpoint the fixtures do not cover (ccxt's market loading also
# asks for options, delivery futures, currencies...): success with nothing in it.
NOTHING: dict[str, Any] = {
    "bitget": {"code": "00000", "msg": "success", "requestTime": 1695865300000, "data": []},
    "gate": [],
    "okx": {"code": "0", "msg": "", "data": []},
    "bybit": {
        "retCode": 0,
        "retMsg": "OK",
        "result": {"list": [], "nextPageCursor": ""},
        "retExtInfo": {},
        "time": 1695865300000,
    },
}
# the request field carrying a linear order's size (in the venue's unit: contracts on gate, okx)
WIRE_SIZE = {"bitget": "size", "gate": "size", "okx": "sz", "bybit": "qty"}


@cache
def load(name: str) -> Any:
    """A fixture file, shared: read it, copy before changing it (`fixture_of`)."""
    return json.loads((FIXTURES / name).read_text())


def fixture_of(venue: str, kind: str) -> Any:
    return copy.deepcopy(load(f"{venue}_{kind}.json"))


def xfail_unless(reason: str | None) -> list[pytest.MarkDecorator]:
    return [pytest.mark.xfail(reason=reason, strict=True)] if reason else []


def _per_venue(reasons: dict[str, str]) -> list[Any]:
    return [pytest.param(v, marks=xfail_unless(reasons.get(v)), id=v) for v in VENUE_NAMES]


def d(value: Any) -> Decimal:
    """A fixture's expected number."""
    return Decimal(str(value))


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


# -- the venue, replayed ----------------------------------------------------------------------
@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any

    def field(self, name: str) -> Any:
        """A request field wherever ccxt put it (query string or JSON body)."""
        if name in self.query:
            return self.query[name]
        body = self.body[0] if isinstance(self.body, list) and self.body else self.body
        return body.get(name) if isinstance(body, dict) else None


class Replay:
    """Stands in for the venue's HTTP API and records what ccxt sent. A route is
    `"METHOD /path"` (any query) or `"METHOD /path?query"` (that query only); its answer is the
    payload the venue documents for it. Anything else gets `NOTHING`."""

    def __init__(self, exchange: CcxtExchange, venue: str) -> None:
        self.client = exchange.client
        self.venue = venue
        self.routes: dict[str, Any] = {}
        self.requests: list[Request] = []
        exchange.client.fetch = self.fetch

    async def fetch(
        self, url: str, method: str = "GET", headers: Any = None, body: Any = None
    ) -> Any:
        parts = urlsplit(url)
        request = Request(
            method,
            parts.path,
            dict(parse_qsl(parts.query)),
            json.loads(body) if body else None,
        )
        self.requests.append(request)
        route = f"{method} {parts.path}"
        payload = self.routes.get(f"{route}?{parts.query}", self.routes.get(route))
        if payload is None:
            payload = NOTHING[self.venue]
        text = json.dumps(payload)
        # what ccxt's own fetch does with an answer before returning it
        self.client.handle_errors(200, "OK", url, method, {}, text, payload, headers, body)
        self.client.handle_http_status_code(200, "OK", url, method, text)
        return copy.deepcopy(payload)

    def sent(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path)]


def quiet(exchange: CcxtExchange) -> CcxtExchange:
    """No waiting where no socket exists: ccxt paces requests client-side and lingers
    `timeout_on_exit` in close() for aiohttp to drain; with `Replay` there is neither."""
    exchange.client.enableRateLimit = False
    exchange.client.timeout_on_exit = 0
    return exchange


def symbol_of(market: str) -> str:
    return "BTCUSDT" if market == "spot" else "BTCUSDT-PERP"


async def connect(
    venue: str,
    market: str,
    *,
    signed: bool = False,
    ws_base: str | None = None,
    now_s: float | None = None,
    routes: dict[str, Any] | None = None,
) -> tuple[CcxtExchange, Replay]:
    """A `CcxtExchange` whose venue is `Replay` over the fixtures, its market loaded the real way
    (ccxt's fetch_markets on the documented instrument payloads, then our load_markets). Its
    sockets go to `ws_base` (a `tests/ccxt/ws_stub.py` server) or nowhere; its wall clock stands
    at `now_s` if given. The account is in one-way position mode (`{venue}_position_mode.json`)
    unless `routes` (answers over the fixtures') say otherwise."""
    urls = {**LOOPBACK, "ws_base": ws_base} if ws_base else LOOPBACK
    config = CcxtConfig(venue=venue, market=market, **urls, **(CREDENTIALS if signed else {}))
    clock = {} if now_s is None else {"now_s": lambda: now_s}
    exchange = quiet(CcxtExchange(config, **clock))
    replay = Replay(exchange, venue)
    replay.routes.update(fixture_of(venue, "markets")["responses"])
    replay.routes.update(fixture_of(venue, "orders").get("account", {}))
    if (FIXTURES / f"{venue}_position_mode.json").exists():
        mode = fixture_of(venue, "position_mode")
        replay.routes[mode["route"]] = mode["one_way"]
    replay.routes.update(routes or {})
    if venue == "bitget":
        # a classic account: with credentials ccxt probes GET /api/v3/account/settings and, if
        # that answers, switches every call to the v3 (unified account) API
        exchange.client.options["uta"] = False
    try:
        await exchange.load_markets([symbol_of(market)])
    except BaseException:
        await exchange.close()
        raise
    return exchange, replay


def envelope(venue: str, market: str, order: dict[str, Any]) -> Any:
    """An order as the venue's order-detail endpoint answers it."""
    if venue == "bitget":
        data = [order] if market == "spot" else order  # spot answers a list, mix an object
        return {"code": "00000", "msg": "success", "requestTime": 1695865300000, "data": data}
    if venue == "okx":
        return {"code": "0", "msg": "", "data": [order]}
    if venue == "bybit":
        category = "spot" if market == "spot" else "linear"
        result = {"category": category, "list": [order], "nextPageCursor": ""}
        return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": 0}
    return order  # gate answers the order itself


def wire_id(venue: str, client_id: str) -> str:
    """The client id as the venue stores it (gate's `text` carries a `t-` prefix)."""
    return VENUES[venue].client_id_prefix + client_id


def named(venue: str, request: Request) -> Any:
    """The client id a request identifies its order by, in the venue's documented field."""
    if venue == "gate":
        return request.field("text") if request.method == "POST" else request.path.split("/")[-1]
    field = {"bitget": "clientOid", "okx": "clOrdId", "bybit": "orderLinkId"}[venue]
    return request.field(field)


def path_of(venue: str, path: str, client_id: str) -> str:
    return path.replace("{order_id}", wire_id(venue, client_id))


def parsed_order(exchange: CcxtExchange, market: str, raw: dict[str, Any]) -> dict[str, Any]:
    ccxt_market = exchange._markets[symbol_of(market)]
    return exchange.client.parse_order(copy.deepcopy(raw), ccxt_market)


# -- 1. markets ---------------------------------------------------------------------------------
@pytest.mark.parametrize("market", MARKETS)
@pytest.mark.parametrize("venue", VENUE_NAMES)
def test_market_rules_come_from_the_documented_instrument(venue: str, market: str) -> None:
    symbol = symbol_of(market)
    want = fixture_of(venue, "markets")["rules"][symbol]

    async def scenario() -> None:
        exchange, _ = await connect(venue, market)
        try:
            rules = exchange._rules_of[symbol]
            ccxt_market = exchange._markets[symbol]
        finally:
            await exchange.close()
        assert (rules.symbol, rules.base, rules.quote) == (symbol, want["base"], want["quote"])
        assert rules.market_type is MarketType[want["market_type"]]
        for name in ("tick_size", "lot_size", "min_qty", "min_notional"):
            value = getattr(rules, name)
            assert isinstance(value, Decimal)
            assert value == d(want[name]), name  # exactly: float noise would not compare equal
        assert ccxt_market["spot"] is (market == "spot")
        assert bool(ccxt_market.get("swap")) is (market == "linear")
        if market == "linear":
            assert ccxt_market["linear"] is True and ccxt_market["settle"] == "USDT"
            assert _num(ccxt_market["contractSize"]) == d(want["contract_size"])

    run(scenario)


# -- 2. orders ----------------------------------------------------------------------------------
def _order_cases(check: str) -> list[Any]:
    """(venue, market, case), an xfail where the case's fixture records a mismatch for `check`."""
    out = []
    for venue in VENUE_NAMES:
        for market in MARKETS:
            cases = load(f"{venue}_orders.json")[market]["cases"]
            for case in ORDER_CASES:
                reason = cases[case].get("known_mismatch", {}).get(check)
                marks = xfail_unless(reason and f"{venue}: {reason}")
                out.append(
                    pytest.param(venue, market, case, marks=marks, id=f"{venue}-{market}-{case}")
                )
    return out


@pytest.mark.parametrize(("venue", "market", "case"), _order_cases("report"))
def test_order_payload_becomes_the_report(venue: str, market: str, case: str) -> None:
    fixture = fixture_of(venue, "orders")[market]
    raw, want = fixture["cases"][case]["raw"], fixture["cases"][case]["expect"]
    symbol = symbol_of(market)

    async def scenario() -> None:
        exchange, _ = await connect(venue, market)
        try:
            order = parsed_order(exchange, market, raw)
            report = exchange._report(order, symbol)
        finally:
            await exchange.close()
        assert report.symbol == symbol
        assert report.status is OrderStatus[want["status"]]
        assert report.side is Side[want["side"]]
        for name in ("price", "qty", "filled_qty", "avg_price"):
            value = getattr(report, name)
            assert isinstance(value, Decimal) and value == d(want[name]), name
        assert report.client_id == want["client_id"]
        assert report.exchange_id == want["exchange_id"]
        for flag in ("post_only", "reduce_only"):
            if flag in want:
                assert getattr(report, flag) is want[flag], flag
        if "order_fee" in want:  # the venue carries the order's cumulative fee (we ignore it)
            fee = order["fee"]
            assert _num(fee["cost"]) == d(want["order_fee"]["cost"])
            assert fee["currency"] == want["order_fee"]["currency"]

    run(scenario)


@pytest.mark.parametrize(("venue", "market", "case"), _order_cases("ts_ms"))
def test_report_time_is_the_last_update(venue: str, market: str, case: str) -> None:
    """A fill or a cancel is reported at the time it happened (the engine stamps fills with it)."""
    fixture = fixture_of(venue, "orders")[market]["cases"][case]

    async def scenario() -> None:
        exchange, _ = await connect(venue, market)
        try:
            order = parsed_order(exchange, market, fixture["raw"])
            report = exchange._report(order, symbol_of(market))
        finally:
            await exchange.close()
        assert report.ts_ms == fixture["expect"]["ts_ms"]

    run(scenario)


def _gate_finish_as() -> list[Any]:
    out = []
    for market in MARKETS:
        table = load("gate_orders.json")[market]["terminal_finish_as"]
        for finish_as, mismatch in table["values"].items():
            marks = xfail_unless(mismatch)
            out.append(pytest.param(market, finish_as, marks=marks, id=f"{market}-{finish_as}"))
    return out


@pytest.mark.parametrize(("market", "finish_as"), _gate_finish_as())
def test_gate_finished_orders_are_terminal(market: str, finish_as: str) -> None:
    """Gate says how an order finished in `finish_as` (which ccxt reads before `status`); every
    documented value is a finished order."""
    fixture = load("gate_orders.json")[market]
    raw = copy.deepcopy(fixture["cases"][fixture["terminal_finish_as"]["base"]]["raw"])
    raw["finish_as"] = finish_as

    async def scenario() -> None:
        exchange, _ = await connect("gate", market)
        try:
            report = exchange._report(parsed_order(exchange, market, raw), symbol_of(market))
        finally:
            await exchange.close()
        assert report.status.is_terminal, f"finish_as {finish_as!r} -> {report.status}"

    run(scenario)


@pytest.mark.parametrize("venue", VENUE_NAMES)
def test_linear_order_and_position_count_in_one_unit(venue: str) -> None:
    """A filled perpetual order and the position it leaves (the documented position payload for
    the same exposure) report the same quantity, in base: gate and okx count both in contracts
    (`contractSize` base each)."""
    fixture = fixture_of(venue, "orders")["linear"]

    async def scenario() -> None:
        exchange, _ = await connect(venue, "linear")
        try:
            ccxt_market = exchange._markets["BTCUSDT-PERP"]
            raw_position = fixture["position"]

            async def positions(*_: Any, **__: Any) -> list[dict[str, Any]]:
                return [exchange.client.parse_position(copy.deepcopy(raw_position), ccxt_market)]

            exchange.client.fetch_positions = positions
            position = (await exchange.fetch_positions(["BTCUSDT-PERP"]))["BTCUSDT-PERP"]
            order = parsed_order(exchange, "linear", fixture["cases"]["filled"]["raw"])
            report = exchange._report(order, "BTCUSDT-PERP")
        finally:
            await exchange.close()
        assert abs(position.qty) == d(fixture["position_qty"])  # documented, in base
        assert report.filled_qty == abs(position.qty)

    run(scenario)


def _post_only_cases() -> list[Any]:
    """(venue, market) whose fixture has a post-only order the venue cancelled for crossing."""
    return [
        pytest.param(venue, market, id=f"{venue}-{market}")
        for venue in VENUE_NAMES
        for market in MARKETS
        if "post_only_would_take" in load(f"{venue}_orders.json")[market]
    ]


@pytest.mark.parametrize(("venue", "market"), _post_only_cases())
def test_a_post_only_order_cancelled_for_crossing_is_post_only_rejected(
    venue: str, market: str
) -> None:
    """okx and bybit acknowledge a post-only order that would cross, then cancel it, saying why
    (gate spot finishes it as `poc`): REJECTED for `post_only`, as the engine counts post-only
    rejects; not a CANCELED nobody asked for."""
    case = fixture_of(venue, "orders")[market]["post_only_would_take"]

    async def scenario() -> None:
        exchange, _ = await connect(venue, market)
        try:
            report = exchange._report(
                parsed_order(exchange, market, case["raw"]), symbol_of(market)
            )
        finally:
            await exchange.close()
        assert report.status is OrderStatus[case["expect"]["status"]]
        assert report.reason == case["expect"]["reason"] == errors.PostOnlyRejected.reason
        assert report.filled_qty == d(case["expect"]["filled_qty"])

    run(scenario)


def test_a_place_answered_as_post_only_cancelled_raises_post_only_rejected() -> None:
    """Gate answers the create itself with the finished order: the port's promise is then
    PostOnlyRejected from place_order, as for a venue that refuses the request."""
    fixture = fixture_of("gate", "orders")["spot"]
    case = fixture["post_only_would_take"]

    async def scenario() -> None:
        exchange, replay = await connect("gate", "spot", signed=True)
        replay.routes["POST /api/v4/spot/orders"] = case["raw"]
        request = OrderRequest(
            "BTCUSDT", fixture["client_id"], Side.BUY, d("60000"), d("0.001"), post_only=True
        )
        try:
            with pytest.raises(errors.PostOnlyRejected):
                await exchange.place_order(request)
        finally:
            await exchange.close()

    run(scenario)


# -- client ids on the wire ---------------------------------------------------------------------
@pytest.mark.parametrize("venue", _per_venue({}))
def test_engine_client_ids_fit_the_venue(venue: str) -> None:
    shortest = ids.encode("a", "BTCUSDT", 0, Role.OPEN, Side.BUY, 0)
    longest = ids.encode("zzzzzz", "BTCUSDT-PERP", ids.MIN_LEVEL, Role.CLOSE, Side.BUY, 36**9 - 1)
    assert len(longest) == 27
    for client_id in (shortest, longest):
        assert VENUES[venue].valid_client_id(client_id), client_id


def test_gate_sends_its_documented_longest_text() -> None:
    """Gate documents 28 characters after `t-`; ccxt's create_order checks 28 on the id it is
    handed, so it is handed the id without `t-` (and adds it)."""
    fixture = fixture_of("gate", "orders")["spot"]
    client_id = "t-" + ids.encode("zzzzzz", "BTCUSDT", 0, Role.OPEN, Side.BUY, 36**9 - 1)
    assert len(client_id) == 29 and VENUES["gate"].valid_client_id(client_id)

    async def scenario() -> None:
        exchange, replay = await connect("gate", "spot", signed=True)
        replay.routes["POST /api/v4/spot/orders"] = fixture["cases"]["new"]["raw"]
        request = OrderRequest("BTCUSDT", client_id, Side.BUY, d("60000"), d("0.001"))
        try:
            await exchange.place_order(request)
        finally:
            await exchange.close()
        [sent] = replay.sent("POST", "/api/v4/spot/orders")
        assert sent.field("text") == client_id

    run(scenario)


def test_gate_refuses_an_id_ccxt_would_send_without_its_prefix() -> None:
    """ccxt adds `t-` only to an id not starting with `t`: such an id would reach gate bare."""
    gate = VENUES["gate"]
    assert [gate.create_id(c) for c in ("g1a", "t-g1a")] == ["g1a", "g1a"]
    assert gate.valid_client_id("t-g1a")
    assert not gate.valid_client_id("tg1a") and not gate.valid_client_id("t-tg1a")


@pytest.mark.parametrize("market", MARKETS)
@pytest.mark.parametrize("venue", _per_venue({}))
def test_place_order_sends_the_client_id_the_venue_documents(venue: str, market: str) -> None:
    fixture = fixture_of(venue, "orders")[market]
    client_id, symbol = fixture["client_id"], symbol_of(market)
    new = fixture["cases"]["new"]

    async def scenario() -> None:
        exchange, replay = await connect(venue, market, signed=True)
        create = fixture["create"]
        response = create["response"]
        replay.routes[f"{create['method']} {create['path']}"] = (
            new["raw"] if response == "new" else response
        )
        request = OrderRequest(
            symbol,
            client_id,
            Side[new["expect"]["side"]],
            d(new["expect"]["price"]),
            d(new["expect"]["qty"]),
            post_only=True,
        )
        try:
            report = await exchange.place_order(request)
        finally:
            await exchange.close()
        [sent] = replay.sent(create["method"], create["path"])
        assert named(venue, sent) == wire_id(venue, client_id)
        assert report.client_id == client_id and report.status is OrderStatus.OPEN

    run(scenario)


@pytest.mark.parametrize("venue", VENUE_NAMES)
def test_linear_order_is_sent_in_the_venue_unit(venue: str) -> None:
    """Our qty is base; the venue is sent contracts (qty / contractSize) and the report is back
    in base."""
    fixture = fixture_of(venue, "orders")["linear"]
    size = d(fixture_of(venue, "markets")["rules"]["BTCUSDT-PERP"]["contract_size"])
    create, new = fixture["create"], fixture["cases"]["new"]
    qty = d(new["expect"]["qty"])

    async def scenario() -> None:
        exchange, replay = await connect(venue, "linear", signed=True)
        replay.routes[f"{create['method']} {create['path']}"] = (
            new["raw"] if create["response"] == "new" else create["response"]
        )
        side = Side[new["expect"]["side"]]
        request = OrderRequest(
            "BTCUSDT-PERP", fixture["client_id"], side, d(new["expect"]["price"]), qty
        )
        try:
            report = await exchange.place_order(request)
        finally:
            await exchange.close()
        [sent] = replay.sent(create["method"], create["path"])
        assert abs(d(sent.field(WIRE_SIZE[venue]))) == qty / size
        assert report.qty == qty

    run(scenario)


@pytest.mark.parametrize("market", MARKETS)
@pytest.mark.parametrize("venue", _per_venue({}))
def test_fetch_order_by_client_id(venue: str, market: str) -> None:
    """The engine resolves an uncertain send by looking the order up by its client id."""
    fixture = fixture_of(venue, "orders")[market]
    client_id, symbol = fixture["client_id"], symbol_of(market)
    detail = fixture["detail"]
    path = path_of(venue, detail["path"], client_id)

    async def scenario() -> None:
        exchange, replay = await connect(venue, market, signed=True)
        replay.routes[f"{detail['method']} {path}"] = envelope(
            venue, market, fixture["cases"]["new"]["raw"]
        )
        try:
            report = await exchange.fetch_order(symbol, client_id)
        finally:
            await exchange.close()
        [sent] = replay.sent(detail["method"], path)
        assert named(venue, sent) == wire_id(venue, client_id)
        assert report.client_id == client_id and report.status is OrderStatus.OPEN

    run(scenario)


@pytest.mark.parametrize("market", MARKETS)
@pytest.mark.parametrize("venue", _per_venue({}))
def test_cancel_order_names_the_order_by_its_client_id(venue: str, market: str) -> None:
    fixture = fixture_of(venue, "orders")[market]
    client_id, symbol = fixture["client_id"], symbol_of(market)
    cancel, detail = fixture["cancel"], fixture["detail"]
    canceled = fixture["cases"]["canceled"]["raw"]

    async def scenario() -> None:
        exchange, replay = await connect(venue, market, signed=True)
        cancel_path = path_of(venue, cancel["path"], client_id)
        response = cancel["response"]
        replay.routes[f"{cancel['method']} {cancel_path}"] = (
            canceled if response == "canceled" else response
        )
        replay.routes[f"{detail['method']} {path_of(venue, detail['path'], client_id)}"] = envelope(
            venue, market, canceled
        )
        report: OrderReport | None = None
        try:
            report = await exchange.cancel_order(symbol, client_id)
        except errors.MMError:
            pass  # judged by what was sent
        finally:
            await exchange.close()
        prefix = cancel["path"].split("{")[0]
        [sent] = replay.sent(cancel["method"], prefix)
        assert named(venue, sent) == wire_id(venue, client_id), sent
        assert report is not None and report.status is OrderStatus.CANCELED

    run(scenario)


def test_bitget_unknown_client_id_is_order_not_found() -> None:
    """For a client id it does not know, orderInfo answers an empty data list; ccxt's fetch_order
    names its `id` argument in the OrderNotFound it raises (id=None would be a TypeError, read
    as an outage): the lookup settles 'never placed'."""
    fixture = fixture_of("bitget", "orders")["spot"]

    async def scenario() -> None:
        exchange, replay = await connect("bitget", "spot", signed=True)
        replay.routes[f"GET {fixture['detail']['path']}"] = fixture["not_found"]["response"]
        try:
            with pytest.raises(errors.OrderNotFound):
                await exchange.fetch_order("BTCUSDT", fixture["client_id"])
        finally:
            await exchange.close()
        [sent] = replay.sent("GET", fixture["detail"]["path"])
        assert (sent.field("clientOid"), sent.field("orderId")) == (fixture["client_id"], None)

    run(scenario)


# -- 3. trades ----------------------------------------------------------------------------------
@pytest.mark.parametrize("market", MARKETS)
@pytest.mark.parametrize("venue", VENUE_NAMES)
def test_trade_payload_becomes_the_fill(venue: str, market: str) -> None:
    fixture = fixture_of(venue, "trades")[market]
    want, symbol = fixture["expect"], symbol_of(market)
    new_order = fixture_of(venue, "orders")[market]["cases"]["new"]["raw"]

    async def scenario() -> None:
        exchange, _ = await connect(venue, market)
        try:
            ccxt_market = exchange._markets[symbol]
            trade = exchange.client.parse_trade(copy.deepcopy(fixture["raw"]), ccxt_market)
            # the order was seen first (placed or streamed), so its client id is known
            known = exchange._report(parsed_order(exchange, market, new_order), symbol)

            async def my_trades(*_: Any, **__: Any) -> list[dict[str, Any]]:
                return [copy.deepcopy(trade)]

            exchange.client.fetch_my_trades = my_trades
            [fill] = await exchange.fetch_fills(symbol, 0)
        finally:
            await exchange.close()
        assert (trade["id"], trade["order"], trade["side"]) == (
            want["id"],
            want["order"],
            want["side"],
        )
        assert _num(trade["price"]) == d(want["price"])
        assert _num(trade["amount"]) == d(want["amount"])
        assert _num(trade["fee"]["cost"]) == d(want["fee_cost"])
        assert trade["fee"]["currency"] == want["fee_currency"]
        assert trade["takerOrMaker"] == ("maker" if want["maker"] else "taker")
        assert trade["timestamp"] == want["ts_ms"]
        assert (fill.trade_id, fill.exchange_id) == (want["id"], want["order"])
        assert fill.client_id == known.client_id
        assert fill.side is Side[want["side"].upper()] and fill.is_maker is want["maker"]
        for name, key in (("price", "price"), ("qty", "fill_qty"), ("fee", "fill_fee")):
            value = getattr(fill, name)
            assert isinstance(value, Decimal) and value == d(want[key]), name
        assert fill.ts_ms == want["ts_ms"]

    run(scenario)


@pytest.mark.parametrize("market", MARKETS)
@pytest.mark.parametrize("venue", VENUE_NAMES)
def test_a_trade_of_an_order_not_seen_yet_gets_its_client_id_from_the_venue(
    venue: str, market: str
) -> None:
    """A trade names its order by the venue's id only: fetch_fills asks the venue for that order
    (with the venue's own lookup params: bybit wants `acknowledged`) to learn its client id."""
    fixture = fixture_of(venue, "trades")[market]
    orders = fixture_of(venue, "orders")[market]
    order_id, detail = fixture["expect"]["order"], orders["detail"]
    filled = dict(orders["cases"]["filled"]["raw"])

    async def scenario() -> None:
        exchange, replay = await connect(venue, market, signed=True)
        path = detail["path"].replace("{order_id}", order_id)
        replay.routes[f"{detail['method']} {path}"] = envelope(venue, market, filled)
        trade = exchange.client.parse_trade(
            copy.deepcopy(fixture["raw"]), exchange._markets[symbol_of(market)]
        )

        async def my_trades(*_: Any, **__: Any) -> list[dict[str, Any]]:
            return [copy.deepcopy(trade)]

        exchange.client.fetch_my_trades = my_trades
        try:
            [fill] = await exchange.fetch_fills(symbol_of(market), 0)
        finally:
            await exchange.close()
        assert fill.client_id == orders["cases"]["filled"]["expect"]["client_id"]
        assert replay.sent(detail["method"], path)

    run(scenario)


@pytest.mark.parametrize("venue", VENUE_NAMES)
def test_spot_buy_fee_is_reported_in_quote(venue: str) -> None:
    """Every venue charges a spot buy's fee in the base asset (BTC); OrderReport.fee is the
    cumulative fee in quote: the BTC fee at the trade's price."""
    trades = fixture_of(venue, "trades")["spot"]
    partial = fixture_of(venue, "orders")["spot"]["cases"]["partial"]["raw"]

    async def scenario() -> None:
        exchange, _ = await connect(venue, "spot")
        try:
            ccxt_market = exchange._markets["BTCUSDT"]
            order = parsed_order(exchange, "spot", partial)
            exchange._report(order, "BTCUSDT")
            trade = exchange.client.parse_trade(copy.deepcopy(trades["raw"]), ccxt_market)
            exchange._note_fee(trade, "BTCUSDT")
            report = exchange._report(parsed_order(exchange, "spot", partial), "BTCUSDT")
        finally:
            await exchange.close()
        assert trades["expect"]["fee_currency"] == "BTC"
        expect = d(trades["expect"]["fee_cost"]) * d(trades["expect"]["price"])
        assert report.fee == expect

    run(scenario)


# The personal-trades request a filled order's fee is learned from, and the field that names the
# order there, as each venue documents it (None: that endpoint has no such filter: gate's
# futures `my_trades_timerange`, which ccxt calls, takes contract and time range only).
TRADES_BY_ORDER: dict[tuple[str, str], tuple[str, str | None]] = {
    ("bitget", "spot"): ("/api/v2/spot/trade/fills", "orderId"),
    ("bitget", "linear"): ("/api/v2/mix/order/fills", "orderId"),
    ("gate", "spot"): ("/api/v4/spot/my_trades", "order_id"),
    ("gate", "linear"): ("/api/v4/futures/usdt/my_trades_timerange", None),
    ("okx", "spot"): ("/api/v5/trade/fills-history", "ordId"),
    ("okx", "linear"): ("/api/v5/trade/fills-history", "ordId"),
    ("bybit", "spot"): ("/v5/execution/list", "orderId"),
    ("bybit", "linear"): ("/v5/execution/list", "orderId"),
}
ORDER_FILTERS = {"orderId", "ordId", "order_id", "order"}


@pytest.mark.parametrize("market", MARKETS)
@pytest.mark.parametrize("venue", VENUE_NAMES)
def test_a_filled_orders_fee_is_asked_for_by_the_venues_own_order_filter(
    venue: str, market: str
) -> None:
    """A venue's order query carries no fee: fetch_order asks for the order's trades, naming
    the order the way that venue's trades endpoint does (never another venue's field name)."""
    fixture = fixture_of(venue, "orders")[market]
    client_id, symbol, detail = fixture["client_id"], symbol_of(market), fixture["detail"]
    path, field = TRADES_BY_ORDER[(venue, market)]

    async def scenario() -> None:
        exchange, replay = await connect(venue, market, signed=True)
        replay.routes[f"{detail['method']} {path_of(venue, detail['path'], client_id)}"] = envelope(
            venue, market, fixture["cases"]["filled"]["raw"]
        )
        try:
            report = await exchange.fetch_order(symbol, client_id)
        finally:
            await exchange.close()
        assert report.status is OrderStatus.FILLED and report.exchange_id
        [sent] = replay.sent("GET", path)
        if field is not None:
            assert sent.field(field) == report.exchange_id
        assert [f for f in ORDER_FILTERS - {field} if sent.field(f) is not None] == []

    run(scenario)


# -- 4. errors ----------------------------------------------------------------------------------
def _error_cases() -> list[Any]:
    out = []
    for venue in VENUE_NAMES:
        for case in load(f"{venue}_errors.json")["cases"]:
            marks = xfail_unless(case.get("known_mismatch"))
            out.append(pytest.param(venue, case["case"], marks=marks, id=f"{venue}-{case['case']}"))
    return out


def venue_error(exchange: CcxtExchange, status: int, body: Any) -> Exception:
    """The ccxt exception a venue's error answer raises (ccxt's own handling, as in `fetch`)."""
    text = json.dumps(body)
    url = "http://127.0.0.1:9/order"
    try:
        exchange.client.handle_errors(status, "", url, "POST", {}, text, body, {}, "{}")
        exchange.client.handle_http_status_code(status, "", url, "POST", text)
    except ccxt.BaseError as e:
        return e
    raise AssertionError(f"ccxt raised nothing for {status} {text}")


@pytest.mark.parametrize(("venue", "case"), _error_cases())
def test_documented_error_maps_to_the_right_mm_error(venue: str, case: str) -> None:
    [spec] = [c for c in load(f"{venue}_errors.json")["cases"] if c["case"] == case]
    exchange = quiet(CcxtExchange(CcxtConfig(venue=venue, **LOOPBACK)))
    try:
        error = venue_error(exchange, spec["http_status"], spec["body"])
    finally:
        run(exchange.close)
    mapped = to_mm(
        error, VENUES[venue], call=f"{spec['call']} test", changes_state=spec["call"] != "fetch"
    )
    assert type(mapped) is getattr(errors, spec["expect"]), f"{type(error).__name__}: {error}"
