"""A real exchange_connector on loopback around any exchange, and RemoteExchange clients of it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from connectors.remote.client import RemoteConfig, RemoteExchange
from connectors.remote.server import ExchangeConnector, ServerConfig
from mm.ports import Exchange


@contextlib.asynccontextmanager
async def connector(exchange: Exchange, **config: Any) -> AsyncIterator[ExchangeConnector]:
    """The connector serving `exchange` on 127.0.0.1 (a free port), healthy before it yields."""
    config.setdefault("health_every_s", 0.05)
    server = ExchangeConnector(exchange, ServerConfig(port=0, **config))
    await server.start()
    try:
        await server.wait_serving()
        yield server
    finally:
        await server.stop(grace_s=1)


@contextlib.asynccontextmanager
async def client_of(server: ExchangeConnector, **config: Any) -> AsyncIterator[RemoteExchange]:
    if server.config.token and "token" not in config:
        config["token"] = server.config.token
    client = await RemoteExchange.connect(RemoteConfig(f"127.0.0.1:{server.port}", **config))
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def serve(exchange: Exchange, **config: Any) -> AsyncIterator[RemoteExchange]:
    """A RemoteExchange talking to a connector that serves `exchange`."""
    async with connector(exchange, **config) as server, client_of(server) as client:
        yield client
