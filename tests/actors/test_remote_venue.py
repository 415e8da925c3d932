"""`mm run` with `exchange: {kind: remote}`: the Ray connector actor trades through `mm connector`.

The exchange_connector runs as its own process (token required); the market maker's connector
actor holds a RemoteExchange to it. Symbols quote, fills produce closes, and shutdown leaves
none of our orders on the venue, with the journal matching the venue fill for fill.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest

from connectors.remote.client import RemoteConfig, RemoteExchange
from tests.actors.conftest import invariants, live_roles
from tests.remote.rig import connector_process, free_port, write_connector_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]
TOKEN = "remote-venue-token-0123"


def our_open_orders(address: str, symbol: str) -> list[str]:
    async def fetch() -> list[str]:
        client = await RemoteExchange.connect(RemoteConfig(address, token=TOKEN))
        try:
            return [o.client_id for o in await client.fetch_open_orders(symbol)]
        finally:
            await client.close()

    return asyncio.run(fetch())


def test_the_market_maker_trades_through_a_remote_connector(market_maker, tmp_path):
    port = free_port()
    address = f"127.0.0.1:{port}"
    venue = {
        "balances": {"USDT": "1000000"},
        "tick_interval_ms": 20,
        "volatility": 0.001,
        "seed": 3,
        "persist": True,
        "persist_every_ms": 1000,
    }
    config = write_connector_config(
        tmp_path,
        port,
        exchange={"kind": "simulated", "simulated": venue},
        preload_symbols=["BTCUSDT"],
    )
    with connector_process(config, tmp_path / "connector.log", {"MM_CONNECTOR_TOKEN": TOKEN}):
        remote = {"kind": "remote", "remote": {"address": address, "token": TOKEN}}
        mm = market_maker(["BTCUSDT"], exchange=remote)  # data in tmp_path
        status = mm.wait_symbol(
            "BTCUSDT", lambda s: s["fills"] >= 1 and "CLOSE" in live_roles(s), timeout_s=120
        )
        assert status["state"] == "QUOTING"
        assert mm.status()["connector"]["exchange"] == "simulated"  # learned from the connector
        drained = mm.shutdown(cancel_orders=True)
        assert "error" not in drained["BTCUSDT"], drained
        assert our_open_orders(address, "BTCUSDT") == []
    # the connector saved its venue on SIGTERM: the journal agrees with it
    numbers = invariants(tmp_path / "connector", "BTCUSDT", journal_dir=tmp_path / "journal")
    assert numbers["fills"] >= 1 and numbers["inventory"] >= D(0)
