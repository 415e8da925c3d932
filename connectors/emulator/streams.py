"""The emulator's WebSocket side: market streams, the spot user data stream (WebSocket API)
and the USD-M listen-key stream, fed from the simulated venue's own streams.

Owns: subscriptions per socket, turning venue events into Binance stream messages, and the
stream faults tests inject (`StreamFaults`). Must not: answer REST (`binance.py` does); it is a
mixin of `BinanceEmulator` and uses its venue, keys and account views.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from connectors.emulator import wire
from mm.core.model import Candle, MarketRules, OrderReport, OrderStatus


@dataclass
class UserSocket:
    ws: WebSocket
    subscription_id: int  # -1: a listen-key socket (events are sent bare)
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)


class StreamsMixin:
    """WebSocket handlers and forwarders of `BinanceEmulator` (see its attributes)."""

    async def _ws_private(self, ws: WebSocket) -> None:
        """USD-M user data: `/private/ws?listenKey=...` pushes ORDER_TRADE_UPDATE and
        ACCOUNT_UPDATE events."""
        if ws.query_params.get("listenKey") not in self._listen_keys:
            await ws.close(1008)
            return
        await ws.accept()
        socket = UserSocket(ws, -1)
        self._futures_users.append(socket)
        sender = asyncio.create_task(send_all(ws, socket.queue))
        try:
            while True:
                await ws.receive_text()  # clients send nothing that matters here
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            with contextlib.suppress(ValueError):
                self._futures_users.remove(socket)
            sender.cancel()

    async def _ws_market(self, ws: WebSocket) -> None:
        await ws.accept()
        streams: set[str] = set()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=10_000)
        family = (
            wire.SPOT if ws.url.path.startswith("/ws") else wire.FUTURES
        )  # /market, /public: USD-M
        entry = (family, streams, queue)
        self._markets.append(entry)
        sender = asyncio.create_task(send_all(ws, queue))
        try:
            while True:
                message = json.loads(await ws.receive_text())
                method, ident = message.get("method"), message.get("id")
                if method == "SUBSCRIBE":
                    streams.update(str(p) for p in message.get("params", []))
                    await queue.put({"result": None, "id": ident})
                elif method == "UNSUBSCRIBE":
                    streams.difference_update(str(p) for p in message.get("params", []))
                    await queue.put({"result": None, "id": ident})
                else:
                    await queue.put(
                        {"error": {"code": 2, "msg": f"Invalid request {method}"}, "id": ident}
                    )
        except (WebSocketDisconnect, json.JSONDecodeError, RuntimeError):
            pass
        finally:
            with contextlib.suppress(ValueError):  # a fault may have removed it
                self._markets.remove(entry)
            sender.cancel()

    async def _forward_prices(self) -> None:
        """Every tick of the venue -> ticker/miniTicker/bookTicker/kline events subscribed."""
        async for tick in self.sim.stream_prices(list(self.sim._rules)):
            if not self._markets or self._market_faults():
                continue
            rules = self.sim._rules[tick.symbol]
            name = wire.wire(tick.symbol).lower()
            tick_family = wire.FUTURES if tick.symbol.endswith(wire.PERP) else wire.SPOT
            for family, streams, queue in list(self._markets):
                if family != tick_family:
                    continue
                for stream in streams:
                    if not stream.startswith(name + "@"):
                        continue
                    event = self._market_event(
                        stream[len(name) + 1 :], rules, tick.price, tick.ts_ms
                    )
                    if event is not None and not queue.full():
                        queue.put_nowait(event)

    def _market_faults(self) -> bool:
        """Market-data faults (`StreamFaults`); True: this tick is not sent."""
        f = self.faults
        if f.close_market_sockets:
            for entry in list(self._markets)[: f.close_market_sockets]:
                f.close_market_sockets -= 1
                self._markets.remove(entry)
                with contextlib.suppress(asyncio.QueueFull):
                    entry[2].put_nowait(None)  # its sender closes the socket
            return True  # the tick is lost with the socket
        return f.silence_markets

    def _market_event(self, kind: str, rules: MarketRules, price: Decimal, now: int):
        symbol = wire.wire(rules.symbol)
        if kind in ("ticker", "miniTicker"):
            t = self._ticker_json(rules, now, price)  # the tick's own price, not the latest
            event = {
                "e": "24hrTicker" if kind == "ticker" else "24hrMiniTicker",
                "E": now,
                "s": symbol,
                "c": t["lastPrice"],
                "o": t["openPrice"],
                "h": t["highPrice"],
                "l": t["lowPrice"],
                "v": "0",
                "q": "0",
            }
            if kind == "ticker":
                event.update(
                    {
                        "b": t["bidPrice"],
                        "B": "1",
                        "a": t["askPrice"],
                        "A": "1",
                        "p": "0",
                        "P": "0",
                        "w": t["lastPrice"],
                        "x": t["lastPrice"],
                        "Q": "0",
                        "O": t["openTime"],
                        "C": now,
                        "F": -1,
                        "L": -1,
                        "n": 0,
                    }
                )
            return event
        if kind == "bookTicker":
            return {
                "u": now,
                "s": symbol,
                "b": wire.s(price - rules.tick_size),
                "B": "1",
                "a": wire.s(price + rules.tick_size),
                "A": "1",
            }
        if kind.startswith("kline_"):
            interval = kind[len("kline_") :]
            step = wire.INTERVAL_MS.get(interval)
            if step is None:
                return None
            start = now - now % step
            candle = self._candle(rules.symbol, interval, start, price)
            return {
                "e": "kline",
                "E": now,
                "s": symbol,
                "k": {
                    "t": start,
                    "T": start + step - 1,
                    "s": symbol,
                    "i": interval,
                    "f": -1,
                    "L": -1,
                    "o": wire.s(candle.open),
                    "c": wire.s(candle.close),
                    "h": wire.s(candle.high),
                    "l": wire.s(candle.low),
                    "v": wire.s(candle.volume),
                    "n": 0,
                    "x": False,
                    "q": "0",
                    "V": "0",
                    "Q": "0",
                    "B": "0",
                },
            }
        return None

    def _candle(self, symbol: str, interval: str, start: int, price: Decimal) -> Candle:
        """The venue's own candle of `interval` opened at `start` (as `/klines` answers it), or
        one at `price` if the venue has none yet."""
        history = self.sim._klines[symbol.removesuffix(wire.PERP)]
        candles = history.candles(interval, since_ms=start, limit=1)
        if candles and candles[-1].ts_ms == start:
            return candles[-1]
        return Candle(start, price, price, price, price)

    async def _ws_api(self, ws: WebSocket) -> None:
        await ws.accept()
        socket: UserSocket | None = None
        sender: asyncio.Task[None] | None = None
        try:
            while True:
                message = json.loads(await ws.receive_text())
                ident, method = message.get("id"), message.get("method")
                params = message.get("params") or {}
                if method != "userDataStream.subscribe.signature":
                    await ws.send_json(
                        {
                            "id": ident,
                            "status": 400,
                            "error": {
                                "code": -1000,
                                "msg": f"The emulator does not implement {method}.",
                            },
                        }
                    )
                    continue
                try:
                    self._check_key(params.get("apiKey"))
                    payload = "&".join(
                        f"{k}={v}" for k, v in sorted(params.items()) if k != "signature"
                    )
                    expected = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()
                    if not hmac.compare_digest(expected, str(params.get("signature", ""))):
                        raise wire.BinanceError(
                            400, -1022, "Signature for this request is not valid."
                        )
                    self._check_timestamp({k: str(v) for k, v in params.items()})
                except wire.BinanceError as e:
                    await ws.send_json(
                        {"id": ident, "status": e.http, "error": {"code": e.code, "msg": e.msg}}
                    )
                    continue
                if socket is None:
                    socket = UserSocket(ws, 0)
                    self._users.append(socket)
                    sender = asyncio.create_task(send_all(ws, socket.queue))
                await socket.queue.put(
                    {
                        "id": ident,
                        "status": 200,
                        "result": {"subscriptionId": socket.subscription_id},
                    }
                )
        except (WebSocketDisconnect, json.JSONDecodeError, RuntimeError):
            pass
        finally:
            if socket is not None:
                with contextlib.suppress(ValueError):
                    self._users.remove(socket)
            if sender is not None:
                sender.cancel()

    async def _forward_orders(self) -> None:
        """Every order update of the venue -> executionReports (spot, on the WebSocket API) or
        ORDER_TRADE_UPDATEs (USD-M, on listen-key sockets), then the account's balances."""
        async for report in self.sim.stream_orders(list(self.sim._rules)):
            events = self._execution_reports(report)
            if not events:
                continue
            if report.symbol.endswith(wire.PERP):
                events = [wire.futures_update(e, report) for e in events]
                events.append(await self._futures_account_update(report.ts_ms))
                await self._to_users(events, self._futures_users)
            else:
                events.append(await self._account_position(report.ts_ms))
                await self._to_users(events, self._users)

    async def _to_users(self, events: list[dict[str, Any]], users: list[UserSocket]) -> None:
        f = self.faults
        if f.close_sockets:
            for socket in list(users)[: f.close_sockets]:
                f.close_sockets -= 1
                users.remove(socket)
                with contextlib.suppress(Exception):
                    await socket.ws.close(1006)
            return  # what happened meanwhile is lost with the socket
        if f.silence:
            return
        for event in events:
            if f.drop_user_events and event["e"] in ("executionReport", "ORDER_TRADE_UPDATE"):
                f.drop_user_events -= 1
                continue
            for socket in users:
                wrapped = (
                    event
                    if socket.subscription_id < 0
                    else {"subscriptionId": socket.subscription_id, "event": event}
                )
                socket.queue.put_nowait(wrapped)

    async def _futures_account_update(self, now: int) -> dict[str, Any]:
        balances = await self.sim.fetch_balances()
        positions = await self._positions()
        return {
            "e": "ACCOUNT_UPDATE",
            "E": now,
            "T": now,
            "a": {
                "m": "ORDER",
                "B": [
                    {"a": b.asset, "wb": wire.s(b.total), "cw": wire.s(b.total), "bc": "0"}
                    for b in balances.values()
                ],
                "P": [
                    {
                        "s": wire.wire(p.symbol),
                        "pa": wire.s(p.qty),
                        "ep": wire.s(p.entry_price),
                        "cr": "0",
                        "up": "0",
                        "mt": "cross",
                        "iw": "0",
                        "ps": "BOTH",
                    }
                    for p in positions
                ],
            },
        }

    def _execution_reports(self, report: OrderReport) -> list[dict[str, Any]]:
        """One executionReport per new trade of the order (or one for a status change)."""
        rules = self.sim._rules[report.symbol]
        done_qty, done_fee = self._reported.get(report.client_id, (Decimal(0), Decimal(0)))
        trades = [f for f in self.sim._fills[report.symbol] if f.client_id == report.client_id]
        new = [f for f in trades if wire.cumulative(trades, f) > done_qty]
        events = []
        filled, fee = done_qty, done_fee
        for fill in new:
            filled += fill.qty
            fee += fill.fee
            status = "FILLED" if filled >= report.qty else "PARTIALLY_FILLED"
            events.append(wire.execution(report, rules, "TRADE", status, filled, fill))
        self._reported[report.client_id] = (filled, fee)
        if not new or report.status in (
            OrderStatus.CANCELED,
            OrderStatus.EXPIRED,
            OrderStatus.REJECTED,
        ):
            kind = {
                OrderStatus.OPEN: "NEW",
                OrderStatus.CANCELED: "CANCELED",
                OrderStatus.EXPIRED: "EXPIRED",
                OrderStatus.REJECTED: "REJECTED",
            }.get(report.status)
            if kind is not None:
                events.append(
                    wire.execution(report, rules, kind, wire.STATUS[report.status], filled, None)
                )
        return events

    async def _account_position(self, now: int) -> dict[str, Any]:
        balances = await self.sim.fetch_balances()
        return {
            "e": "outboundAccountPosition",
            "E": now,
            "u": now,
            "B": [
                {"a": b.asset, "f": wire.s(b.free), "l": wire.s(b.locked)}
                for b in balances.values()
            ],
        }


async def send_all(ws: WebSocket, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
    """Sends what is queued; `None` closes the socket (an injected fault)."""
    with contextlib.suppress(Exception):
        while True:
            item = await queue.get()
            if item is None:
                await ws.close(1006)
                return
            await ws.send_text(json.dumps(item))
