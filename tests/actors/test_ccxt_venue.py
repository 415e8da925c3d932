"""`mm run` with `exchange: {kind: ccxt}` against `mm emulator`: the whole native path under Ray.

`mm emulator` runs as its own process (Binance's spot dialect on 127.0.0.1); the market maker's
connector actor holds a CcxtExchange (the real ccxt binance client, every URL overridden). The
symbol quotes, fills produce closes, and shutdown leaves none of our orders on the venue.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.actors.conftest import live_roles
from tests.remote.rig import ROOT, free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]
KEY, SECRET = "ray-ccxt-key-0001", "ray-ccxt-secret-0001"


@contextlib.contextmanager
def emulator_process(port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mm.cli", "emulator", "--port", str(port), "--seed", "5"],
            cwd=ROOT,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "MM_EMULATOR_API_KEY": KEY,
                "MM_EMULATOR_API_SECRET": SECRET,
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_market_maker_trades_through_ccxt_and_the_emulator(market_maker, tmp_path):
    port = free_port()
    log = tmp_path / "emulator.log"
    with emulator_process(port, log):
        venue = {
            "kind": "ccxt",
            "ccxt": {
                "venue": "binance",
                "market": "spot",
                "credentials": {"api_key": KEY, "api_secret": SECRET},
                "http_base": f"http://127.0.0.1:{port}",
                "ws_base": f"ws://127.0.0.1:{port}",
                "order_stale_after_s": 30,
            },
        }
        # BTC moves ~0.1% a tick in the emulator's walk: a 40-wide grid fills within seconds
        mm = market_maker(["BTCUSDT"], exchange=venue)
        status = mm.wait_symbol(
            "BTCUSDT", lambda s: s["fills"] >= 1 and "CLOSE" in live_roles(s), timeout_s=120
        )
        assert status["state"] == "QUOTING"
        assert mm.status()["connector"]["exchange"] == "binance-spot"
        drained = mm.shutdown(cancel_orders=True)
        assert "error" not in drained["BTCUSDT"], drained
        left = [o for o in mm_open_orders(port) if o.startswith("g")]
        assert left == [], left
    assert "mm emulator: stopped" in log.read_text()


def mm_open_orders(port: int) -> list[str]:
    """Our client ids still open on the emulator (asked through ccxt, like the bot would)."""
    import asyncio

    from tests.ccxt.rig import binance_client

    async def ask() -> list[str]:
        exchange = binance_client(port, api_key=KEY, api_secret=SECRET)
        try:
            await exchange.load_markets(["BTCUSDT"])
            return [o.client_id for o in await exchange.fetch_open_orders("BTCUSDT")]
        finally:
            await exchange.close()

    return asyncio.run(ask())
