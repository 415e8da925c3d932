"""The suite cannot reach another machine: the guard in tests/conftest.py, and every exchange
client the tests build pointing at 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket

import pytest

from connectors.ccxt.exchange import CcxtConfig, CcxtExchange, urls_in
from connectors.ccxt.venues import VENUES
from mm.errors import ConfigError
from tests.conftest import NonLoopbackConnection


@pytest.mark.parametrize("address", [("10.255.255.1", 9), ("93.184.216.34", 443)])
def test_a_connection_to_another_machine_fails_before_a_packet_leaves(address):
    with socket.socket() as s, pytest.raises(NonLoopbackConnection):
        s.connect(address)


def test_asyncio_connections_go_through_the_guard_too():
    async def dial() -> None:
        await asyncio.open_connection("10.255.255.1", 9)

    with pytest.raises(NonLoopbackConnection):
        asyncio.run(dial())


@pytest.mark.parametrize("venue", sorted(VENUES))
@pytest.mark.parametrize("market", ["spot", "linear"])
def test_every_url_of_every_venue_client_is_overridden(venue, market):
    async def build() -> list[str]:
        exchange = CcxtExchange(
            CcxtConfig(
                venue,
                market,
                http_base="http://127.0.0.1:9",
                ws_base="ws://127.0.0.1:9",
                loopback_only=True,
            )
        )
        try:
            return urls_in(exchange.client.urls["api"])
        finally:
            await exchange.close()

    urls = asyncio.run(build())
    assert urls and all("//127.0.0.1:9" in u for u in urls), urls


def test_a_client_left_pointing_at_the_venue_is_refused():
    async def build() -> None:
        CcxtExchange(CcxtConfig("binance", "spot", loopback_only=True))

    with pytest.raises(ConfigError, match="leave this machine"):
        asyncio.run(build())
