"""A real exchange_connector on loopback around any exchange, and RemoteExchange clients of it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import yaml

from connectors.remote.client import RemoteConfig, RemoteExchange
from connectors.remote.server import ExchangeConnector, ServerConfig
from mm.ports import Exchange

ROOT = Path(__file__).resolve().parents[2]


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


# -- `mm connector` as a separate process ---------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_connector_config(directory: Path, port: int, **overrides: Any) -> Path:
    """A connector config serving a fast, persisted simulated venue from `directory/connector`."""
    config: dict[str, Any] = {
        "data_dir": str(directory / "connector"),
        "port": port,
        "preload_symbols": ["BTCUSDT"],
        "health_every_s": 0.1,
        "exchange": {
            "kind": "simulated",
            "simulated": {
                "balances": {"USDT": "1000000"},
                "tick_interval_ms": 20,
                "volatility": 0.002,
                "seed": 11,
                "persist": True,
                "persist_every_ms": 0,  # every change is on disk: SIGKILL loses nothing
            },
        },
    }
    config.update(overrides)
    path = directory / "exchange_connector.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def connector_process(
    config: Path, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m mm.cli connector --config CONFIG`, output to `log`; SIGTERM on exit."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mm.cli", "connector", "--config", str(config)],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
