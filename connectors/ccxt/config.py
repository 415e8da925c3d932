"""CcxtConfig and the ccxt client it describes: credentials, timeouts, the venue's options and
where every URL points.

Owns: building the ccxt.pro client for one venue and market, moving its URLs to a local base
(the emulator, a testnet) and refusing, when asked, any URL that would leave this machine.
Must not: log a credential (they are registered as secrets) or hold venue quirks (`venues.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import ccxt.pro as ccxtpro

from connectors.ccxt.venues import Venue
from mm.errors import ConfigError
from mm.netaddr import is_loopback
from mm.observability.logs import register_secret


@dataclass(frozen=True)
class CcxtConfig:
    venue: str  # a key of VENUES
    market: str = "spot"  # "spot" or "linear" (USDT perpetuals)
    api_key: str = field(default="", repr=False)
    api_secret: str = field(default="", repr=False)
    passphrase: str = field(default="", repr=False)  # OKX, Bitget
    # Send every request here instead of the venue (the emulator, a testnet): every REST URL
    # keeps its path on `http_base`, every WebSocket URL on `ws_base`.
    http_base: str | None = None
    ws_base: str | None = None
    loopback_only: bool = False  # refuse to start if any URL would leave this machine
    stale_after_s: float = 30.0  # prices/klines: no tick this long = the stream is dead
    # orders/account: a quiet account is normal, so the bound is longer; tripping it only costs
    # a resubscribe and a REST gap-fill
    order_stale_after_s: float = 120.0
    timeout_ms: int = 10_000


def new_client(config: CcxtConfig, venue: Venue) -> Any:
    """The ccxt.pro client (REST and streams) for `config`, its URLs moved as configured."""
    for secret in (config.api_key, config.api_secret, config.passphrase):
        if secret:
            register_secret(secret)
    options = dict(venue.spot_options if config.market == "spot" else venue.linear_options)
    client = getattr(ccxtpro, venue.ccxt_id)(
        {
            "apiKey": config.api_key,
            "secret": config.api_secret,
            "password": config.passphrase or None,
            "enableRateLimit": True,
            "timeout": config.timeout_ms,
            "options": options,
        }
    )
    if config.http_base or config.ws_base:
        client.urls["api"] = override_urls(client.urls["api"], config.http_base, config.ws_base)
    if config.loopback_only:
        leaving = [u for u in urls_in(client.urls["api"]) if not _loopback_url(u)]
        if leaving:
            raise ConfigError(f"URLs would leave this machine: {leaving[:3]}")
    return client


def override_urls(urls: Any, http_base: str | None, ws_base: str | None) -> Any:
    """`urls` with every http(s) URL moved to `http_base` and every ws(s) URL to `ws_base`."""
    if isinstance(urls, dict):
        return {k: override_urls(v, http_base, ws_base) for k, v in urls.items()}
    if isinstance(urls, str) and "://" in urls:
        parts = urlsplit(urls)
        base = ws_base if parts.scheme.startswith("ws") else http_base
        if base is not None:
            return base.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    return urls


def urls_in(urls: Any) -> list[str]:
    if isinstance(urls, dict):
        return [u for v in urls.values() for u in urls_in(v)]
    return [urls] if isinstance(urls, str) and "://" in urls else []


def _loopback_url(url: str) -> bool:
    return is_loopback(urlsplit(url).hostname or "")
