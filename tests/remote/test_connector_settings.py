"""Configuration of `mm connector` and of `exchange: {kind: remote}` in the market maker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connectors.remote.client import RemoteExchange
from mm import config
from mm.composition import make_venue, server_config
from mm.errors import ConfigError
from mm.settings import (
    ExchangeConnectorSettings,
    ExchangeSettings,
    MarketMakerSettings,
    RemoteVenue,
)

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_the_shipped_configs_load():
    connector = config.load(ExchangeConnectorSettings, ROOT / "configs/exchange_connector.yaml")
    assert (connector.host, connector.port, connector.token) == ("127.0.0.1", 50051, None)
    mm = config.load(MarketMakerSettings, ROOT / "configs/market_maker.yaml")
    assert mm.exchange.kind == "simulated" and mm.exchange.remote.address == "127.0.0.1:50051"


def test_every_field_is_described():
    for model in (ExchangeConnectorSettings, RemoteVenue, ExchangeSettings):
        assert [n for n, f in model.model_fields.items() if not f.description] == []


def test_the_token_comes_from_the_environment_and_is_never_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("MM_CONNECTOR_TOKEN", "tok-from-env-987654")
    settings = config.load(ExchangeConnectorSettings, write(tmp_path, "host: 0.0.0.0\n"))
    assert settings.token is not None
    assert settings.token.get_secret_value() == "tok-from-env-987654"
    assert "tok-from-env" not in repr(settings) and "tok-from-env" not in str(settings)
    assert server_config(settings).token == "tok-from-env-987654"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("host: 10.0.0.5\n", "set a token"),
        ("exchange: {kind: remote}\n", "cannot serve another connector"),
        ("tls_cert: /x.crt\n", "tls_cert and tls_key go together"),
        ("port: 70000\n", "port"),
        ("preload_symbols: [btc-usdt]\n", "BTCUSDT"),
        ("stream_buffer: 1\n", "stream_buffer"),
    ],
)
def test_bad_connector_settings_are_explained(tmp_path, text, complaint):
    with pytest.raises(ConfigError, match=complaint):
        config.load(ExchangeConnectorSettings, write(tmp_path, text))


@pytest.mark.parametrize(
    ("remote", "complaint"),
    [
        ("{address: 'localhost'}", "address"),
        ("{address: '127.0.0.1:50051', ca_file: /ca.pem}", "ca_file is set but tls is false"),
        ("{call_timeout_s: 0}", "call_timeout_s"),
    ],
)
def test_bad_remote_settings_are_explained(tmp_path, remote, complaint):
    text = f"exchange: {{kind: remote, remote: {remote}}}\n"
    with pytest.raises(ConfigError, match=complaint):
        config.load(MarketMakerSettings, write(tmp_path, text))


def test_kind_remote_builds_a_remote_exchange_with_the_token(tmp_path):
    text = "exchange: {kind: remote, remote: {address: '127.0.0.1:1', token: abcdef123456}}\n"
    settings = config.load(MarketMakerSettings, write(tmp_path, text))

    async def build() -> RemoteExchange:
        exchange = make_venue(settings.exchange, tmp_path)
        assert isinstance(exchange, RemoteExchange)
        assert exchange.config.token == "abcdef123456"
        assert exchange.config.address == "127.0.0.1:1"
        await exchange.close()
        return exchange

    asyncio.run(build())
