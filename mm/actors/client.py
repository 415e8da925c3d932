"""Driver side of the cluster: start or join Ray, and reach the orchestrator by name.

Owns: `ray.init` for `mm run` (embedded on this host by default, or joining `--address`), the
connection of the operator commands (`mm add-symbol`, `mm status`, ...) to a running market
maker, and `Cluster`, the async facade the `mm run` process uses for status and health.
Must not: hold trading logic.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import ray

from mm.actors import options
from mm.actors.calls import call, get
from mm.actors.orchestrator import Orchestrator
from mm.errors import NotRunning
from mm.ports import Exchange
from mm.settings import MarketMakerSettings

log = logging.getLogger(__name__)

BOOT_TIMEOUT_S = 120.0


def start(settings: MarketMakerSettings, address: str | None) -> bool:
    """Start Ray embedded (no address) or join a cluster; True when embedded."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = address or settings.ray.address
    if address:
        ray.init(address=address, namespace=settings.ray.namespace, log_to_driver=False)
        return False
    ray.init(
        namespace=settings.ray.namespace,
        include_dashboard=settings.ray.dashboard,
        dashboard_host="127.0.0.1",
        dashboard_port=settings.ray.dashboard_port,
        log_to_driver=False,
    )
    return True


def launch(
    settings: MarketMakerSettings, factory: Callable[[MarketMakerSettings], Exchange]
) -> Any:
    """Create (or adopt) the orchestrator and wait until it has booted every symbol."""
    opts = options.control(
        options.ORCHESTRATOR, settings.ray.namespace, settings.ray.control_resources
    )
    handle = Orchestrator.options(**opts).remote(settings, factory)  # type: ignore[attr-defined]
    get(handle.ready.remote(), timeout_s=BOOT_TIMEOUT_S)
    return handle


def connect(address: str, namespace: str) -> Any:
    """The running orchestrator, for the operator commands; `NotRunning` if there is none."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        ray.init(address=address, namespace=namespace, log_to_driver=False, logging_level="ERROR")
    except ConnectionError as e:
        raise NotRunning(
            f"cannot reach a Ray cluster at {address!r} ({e}); is the market maker running? "
            f"start it with `mm run`, or name its cluster with --address"
        ) from e
    try:
        return ray.get_actor(options.ORCHESTRATOR, namespace=namespace)
    except ValueError as e:
        raise NotRunning(
            f"Ray is running but no market maker is (no {options.ORCHESTRATOR} actor in "
            f"namespace {namespace!r}): start it with `mm run`"
        ) from e


def stop() -> None:
    if ray.is_initialized():
        ray.shutdown()


class Cluster:
    """Async calls to the orchestrator for the `mm run` process (status, health, shutdown)."""

    def __init__(self, handle: Any, timeout_s: float = 15.0) -> None:
        self.handle = handle
        self.timeout_s = timeout_s

    async def status(self) -> dict[str, Any]:
        return await call(self.handle.status.remote(), timeout_s=self.timeout_s)

    async def health(self) -> dict[str, tuple[bool, str]]:
        return await call(self.handle.health.remote(), timeout_s=self.timeout_s)

    async def shutdown(self, cancel_orders: bool) -> dict[str, Any]:
        drained = await call(self.handle.shutdown.remote(cancel_orders), timeout_s=300.0)
        ray.kill(self.handle, no_restart=True)
        return drained
