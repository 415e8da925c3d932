"""`exchange: {kind: ccxt}`: a venue through ccxt, configured in YAML with credentials from env."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connectors.ccxt.exchange import CcxtExchange
from mm import config
from mm.composition import make_venue
from mm.errors import ConfigError
from mm.settings import MarketMakerSettings

YAML = """
exchange:
  kind: ccxt
  ccxt:
    venue: okx
    market: linear
    credentials:
      api_key: ${OKX_KEY}
      api_secret: ${OKX_SECRET}
      passphrase: ${OKX_PASS}
    http_base: http://127.0.0.1:9
    ws_base: ws://127.0.0.1:9
"""


def load(tmp_path: Path, text: str, env: dict[str, str]) -> MarketMakerSettings:
    path = tmp_path / "mm.yaml"
    path.write_text(text)
    return config.load(MarketMakerSettings, path, env=env)


def test_credentials_come_from_the_environment_and_reach_the_client(tmp_path):
    env = {"OKX_KEY": "key-123456789", "OKX_SECRET": "secret-123456789", "OKX_PASS": "pass-1234"}
    settings = load(tmp_path, YAML, env)
    assert "secret-123456789" not in repr(settings)

    async def build() -> None:
        exchange = make_venue(settings.exchange, tmp_path)
        assert isinstance(exchange, CcxtExchange)
        try:
            assert exchange.name == "okx-linear"
            client = exchange.client
            assert (client.apiKey, client.secret, client.password) == (
                "key-123456789",
                "secret-123456789",
                "pass-1234",
            )
            assert "secret-123456789" not in repr(exchange.config)
        finally:
            await exchange.close()

    asyncio.run(build())


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("exchange: {kind: ccxt}\n", "needs ccxt.credentials"),
        ("exchange: {kind: ccxt, ccxt: {venue: kraken}}\n", "venue"),
        ("exchange: {kind: ccxt, ccxt: {market: inverse}}\n", "market"),
        ("exchange: {kind: ccxt, ccxt: {http_base: 'ftp://x'}}\n", "http_base"),
    ],
)
def test_bad_ccxt_settings_are_explained(tmp_path, text, complaint):
    with pytest.raises(ConfigError, match=complaint):
        load(tmp_path, text, {})


@pytest.mark.parametrize("venue", ["okx", "bitget"])
@pytest.mark.parametrize("passphrase", [None, ""])
def test_okx_and_bitget_are_refused_without_a_passphrase(tmp_path, venue, passphrase):
    text = YAML.replace("venue: okx", f"venue: {venue}")
    text = text.replace("      passphrase: ${OKX_PASS}\n", "")
    if passphrase is not None:
        text = text.replace(
            "api_secret: ${OKX_SECRET}", "api_secret: ${OKX_SECRET}\n      passphrase: ''"
        )
    env = {"OKX_KEY": "key-123456789", "OKX_SECRET": "secret-123456789"}
    with pytest.raises(ConfigError, match=rf"ccxt\.credentials\.passphrase.*{venue}") as refused:
        load(tmp_path, text, env)
    assert "secret-123456789" not in str(refused.value)
    assert "key-123456789" not in str(refused.value)


@pytest.mark.parametrize("venue", ["binance", "gate", "bybit"])
def test_venues_without_a_passphrase_need_none(tmp_path, venue):
    text = YAML.replace("venue: okx", f"venue: {venue}").replace(
        "      passphrase: ${OKX_PASS}\n", ""
    )
    env = {"OKX_KEY": "key-123456789", "OKX_SECRET": "secret-123456789"}
    assert load(tmp_path, text, env).exchange.ccxt.venue == venue
