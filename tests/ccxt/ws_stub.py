"""A loopback WebSocket stand-in for the private and public sockets of bitget, gate, okx and bybit.

It accepts a socket on any path, records every text frame a client sends, and answers only a
login the way the venue documents it (okx, bitget: `{"event": "login", ...}`; bybit:
`{"op": "auth", "success": true, ...}`), so that ccxt goes on to subscribe. It never pushes
data: tests judge what ccxt *sent* (which channel, which params), not what it parsed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from connectors.emulator.server import running

# (what a login request has, what the venue answers to it)
LOGIN: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "okx": ({"op": "login"}, {"event": "login", "code": "0", "msg": "", "connId": "stub"}),
    "bitget": ({"op": "login"}, {"event": "login", "code": 0, "msg": ""}),
    "bybit": ({"op": "auth"}, {"success": True, "ret_msg": "", "op": "auth", "conn_id": "stub"}),
}


@dataclass(frozen=True)
class Frame:
    path: str
    message: Any  # the JSON a client sent (or the raw text of a non-JSON frame, e.g. "ping")


class WsStub:
    def __init__(self, venue: str) -> None:
        self.venue = venue
        self.frames: list[Frame] = []
        self.app = Starlette(routes=[WebSocketRoute("/{path:path}", self._socket)])

    async def _socket(self, ws: WebSocket) -> None:
        await ws.accept()
        login = LOGIN.get(self.venue)
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                text = await ws.receive_text()
                try:
                    message = json.loads(text)
                except ValueError:
                    message = text
                self.frames.append(Frame(ws.url.path, message))
                if login and isinstance(message, dict) and login[0].items() <= message.items():
                    await ws.send_text(json.dumps(login[1]))

    def sent(self, **fields: Any) -> list[Frame]:
        """Frames whose JSON object has all of `fields`."""
        return [
            f
            for f in self.frames
            if isinstance(f.message, dict) and fields.items() <= f.message.items()
        ]


@contextlib.asynccontextmanager
async def ws_stub(venue: str) -> AsyncIterator[tuple[WsStub, str]]:
    """A `WsStub` served on 127.0.0.1; yields it and its `ws://` base URL."""
    stub = WsStub(venue)
    async with running(stub) as port:
        yield stub, f"ws://127.0.0.1:{port}"
