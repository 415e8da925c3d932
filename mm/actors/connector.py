"""`mm:connector`: the one shared exchange connection, as a Ray actor, and its client side.

Owns: a thin shell over `ConnectorService` (routes to symbol actors by name, the shared REST
budget, stream fan-out, Ray dashboard metrics), and `ConnectorExchange`, the `Exchange` port a
symbol actor's engine uses: every call goes through this actor, so every symbol shares one
connection and one rate-limit budget.
Must not: hold trading logic or decide anything for a symbol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import ray
from ray.exceptions import RayActorError
from ray.util import metrics

from mm.actors import options
from mm.actors.calls import call, lost
from mm.core.model import (
    AccountUpdate,
    Balance,
    Candle,
    Fill,
    MarketRules,
    OrderReport,
    OrderRequest,
    Position,
    PriceTick,
)
from mm.core.quiet import QuietBox
from mm.core.risk import ExposureReport, RiskState
from mm.engine.batcher import Batcher
from mm.engine.connector_service import ConnectorService
from mm.engine.local_channel import (
    ChannelClosed,
    LocalChannelServer,
    LocalLink,
    private_dir,
    sweep,
)
from mm.engine.router import Delivery
from mm.errors import MMError, RequestError
from mm.ports import Exchange, HealthReport
from mm.settings import MarketMakerSettings

log = logging.getLogger(__name__)

PORT_METHODS = frozenset(
    {
        "load_markets",
        "place_order",
        "place_orders",
        "cancel_order",
        "cancel_all",
        "fetch_order",
        "fetch_open_orders",
        "fetch_fills",
        "fetch_balances",
        "fetch_positions",
        "fetch_klines",
        "check_health",
    }
)
STATE_CHANGING = frozenset({"place_order", "place_orders", "cancel_order", "cancel_all"})
REPORT_RISK = "report_risk"  # local channel only: an exposure report relayed to the risk actor
RISK_BATCH_S = 0.25  # longest a relayed report waits for others (at most a quarter period)
RISK_CALL_TIMEOUT_S = 5.0
METRICS_EVERY_S = 1.0
DESCRIBE_TIMEOUT_S = 30.0


@ray.remote
class Connector:
    def __init__(
        self,
        settings: MarketMakerSettings,
        exchange_factory: Callable[[MarketMakerSettings], Exchange],
    ) -> None:
        self.settings = settings
        self.namespace = settings.ray.namespace
        c = settings.connector
        self.exchange = exchange_factory(settings)
        self.service = ConnectorService(
            self.exchange,
            rate_limit_per_s=c.rate_limit_per_s,
            rate_limit_burst=c.rate_limit_burst,
            max_pending_updates=c.max_pending_updates,
            hold_quiet_ticks_s=c.hold_quiet_ticks_ms / 1000,
        )
        self.service.start()
        tags = ("symbol",)
        self._routed = metrics.Counter("mm_ticks_routed", "Ticks delivered to symbols", tags)
        self._conflated = metrics.Counter("mm_ticks_conflated", "Ticks replaced by newer", tags)
        self._depth = metrics.Gauge("mm_queue_depth", "Order updates pending per symbol", tags)
        self._last: dict[str, tuple[int, int]] = {}
        loop = asyncio.get_running_loop()
        self._metrics_task = loop.create_task(self._export_metrics())
        self.node_id = ray.get_runtime_context().get_node_id()
        self.local: LocalChannelServer | None = None
        self._by_ray: set[str] = set()  # symbols with a delivery under way by actor call
        self._local_ready = loop.create_task(self._start_local()) if c.local_channel else None
        window = min(RISK_BATCH_S, settings.risk.report_every_s / 4)
        self._risk_reports: Batcher[ExposureReport, RiskState] = Batcher(self._report_risk, window)
        self._risk: Any = None  # the risk actor's handle, looked up when first needed

    async def _start_local(self) -> None:
        try:
            directory = private_dir()
            sweep(directory, "connector")  # sockets of killed predecessors
            path = directory / f"connector-{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
            server = LocalChannelServer(path, serve=self._serve_local, on_gate=self._gate)
            await server.start()
        except OSError as e:  # deliveries keep going by actor call
            log.warning("local delivery channel unavailable (%s); using Ray calls", e)
            return
        self.local = server

    async def _serve_local(self, method: str, args: tuple[Any, ...]) -> Any:
        """A call over the local channel: an exchange port method, or an exposure report that
        goes to the risk actor with the other reports of this node's symbols (one actor call
        per batch instead of one per symbol; each gets the risk state after the batch)."""
        if method == REPORT_RISK:
            if len(args) != 1 or not isinstance(args[0], ExposureReport):
                raise RequestError(f"{REPORT_RISK} takes one ExposureReport")
            return await self._risk_reports.submit(args[0])
        return await self.call(method, *args)

    async def _report_risk(self, reports: list[ExposureReport]) -> RiskState:
        try:
            if self._risk is None:  # a lookup asks Ray's registry: never on the event loop
                self._risk = await asyncio.to_thread(
                    ray.get_actor, options.RISK, namespace=self.namespace
                )
            return await call(self._risk.report_many.remote(reports), timeout_s=RISK_CALL_TIMEOUT_S)
        except Exception:
            self._risk = None  # re-created or gone: look it up again next time
            raise

    def _gate(self, symbol: str, box: QuietBox | None) -> None:
        """A symbol's quiet box (over its local channel): its mailbox holds such ticks back."""
        mailbox = self.service.router.mailbox(symbol)
        if mailbox is not None and symbol not in self._by_ray:
            mailbox.set_gate(box)

    async def local_channel(self) -> dict[str, str] | None:
        """Where symbol actors on this node connect for their deliveries (None: Ray calls)."""
        if self._local_ready is not None:
            await self._local_ready
        if self.local is None:
            return None
        return {"node_id": self.node_id, "path": str(self.local.path)}

    async def info(self) -> dict[str, Any]:
        await self.exchange.describe()
        return {
            "name": self.exchange.name,
            "consistency_window_ms": self.exchange.consistency_window_ms,
        }

    async def call(self, method: str, *args: Any) -> Any:
        """Run one `Exchange` port method under the shared budget."""
        if method not in PORT_METHODS:
            raise RequestError(f"{method!r} is not an exchange port method")
        return await self.service.call(method, *args)

    async def add_route(self, symbol: str) -> bool:
        """Deliver `symbol`'s ticks and order updates to its actor (idempotent)."""
        name = options.symbol_actor(symbol)
        current = {"handle": ray.get_actor(name, namespace=self.namespace)}

        async def sink(delivery: Delivery) -> None:
            channel = self.local.channel(symbol) if self.local is not None else None
            if channel is not None:  # the actor shares this node and is connected
                await channel.send(delivery)  # applied when it returns; raises if not sure
                return
            self._by_ray.add(symbol)  # a box pushed meanwhile predates this delivery
            try:
                await current["handle"].deliver.remote(delivery)
            except RayActorError:  # a replaced actor has the same name: look it up again
                with contextlib.suppress(ValueError):
                    current["handle"] = ray.get_actor(name, namespace=self.namespace)
                raise  # the mailbox retries (with resync)
            finally:
                self._by_ray.discard(symbol)

        return self.service.add_route(symbol, sink)

    async def remove_route(self, symbol: str) -> bool:
        return await self.service.remove_route(symbol)

    async def ensure_routes(self, symbols: list[str], keep: Sequence[str] = ()) -> list[str]:
        """Make the routes exactly `symbols` (after a restart of either side), leaving those in
        `keep` as they are (symbols being drained keep their updates until their removal
        unroutes them); returns changes."""
        changed = []
        for symbol in set(self.service.router.symbols) - set(symbols) - set(keep):
            await self.remove_route(symbol)
            changed.append(f"-{symbol}")
        for symbol in symbols:
            try:
                if await self.add_route(symbol):
                    changed.append(f"+{symbol}")
            except ValueError:  # its actor is not up yet; the next round adds it
                log.warning("no actor for %s yet", symbol)
        return changed

    async def routes(self) -> list[str]:
        return self.service.router.symbols

    async def take_round_trips(self) -> list[float]:
        return self.service.take_round_trips()

    async def stats(self) -> dict[str, Any]:
        out = self.service.stats()
        channels = self.local.channels() if self.local is not None else {}
        out["local_channel"] = {
            s: {"deliveries": c.sent, "calls": c.served} for s, c in channels.items()
        }
        batches = self._risk_reports
        out["risk_reports"] = {"relayed": batches.submitted, "calls": batches.batches}
        return out

    async def health(self) -> tuple[bool, str]:
        streams = self.service.stream_health(self.settings.connector.stale_after_s)
        if streams is not None:
            return streams
        report = await self.exchange.check_health()
        return report.ok, report.detail or f"{self.exchange.name} ok"

    async def close(self) -> None:
        self._metrics_task.cancel()
        await self.service.close()
        if self.local is not None:
            await self.local.close()  # no report comes in after this
        await self._risk_reports.close()
        await self.exchange.close()

    async def _export_metrics(self) -> None:
        """Ray dashboard metrics, updated from counters (never on the tick path)."""
        while True:
            await asyncio.sleep(METRICS_EVERY_S)
            for symbol, box in self.service.stats()["symbols"].items():  # type: ignore[union-attr]
                routed, conflated = self._last.get(symbol, (0, 0))
                tags = {"symbol": symbol}
                if box["delivered_ticks"] > routed:
                    self._routed.inc(box["delivered_ticks"] - routed, tags)
                if box["conflated"] > conflated:
                    self._conflated.inc(box["conflated"] - conflated, tags)
                self._depth.set(box["pending_updates"], tags)
                self._last[symbol] = (box["delivered_ticks"], box["conflated"])


class ConnectorExchange:
    """The `Exchange` port over the connector actor (used by symbol actors). Streams are not
    offered: the connector pushes each symbol's events to its actor."""

    def __init__(self, handle: Any, name: str = "connector", consistency_window_ms: int = 0):
        self._handle = handle
        self.name = name
        self.consistency_window_ms = consistency_window_ms
        self.link: LocalLink | None = None  # set while the local channel is connected

    async def describe(self) -> None:
        info = await call(self._handle.info.remote(), timeout_s=DESCRIBE_TIMEOUT_S)
        self.name = info["name"]
        self.consistency_window_ms = info["consistency_window_ms"]

    async def _call(self, method: str, *args: Any) -> Any:
        """Over the local channel when connected (same node), else by actor call; either way
        the connector runs it under the shared budget and its errors come back as themselves."""
        changes_state = method in STATE_CHANGING
        link = self.link
        if link is not None and link.connected:
            try:
                return await link.call(method, *args)
            except ChannelClosed as e:
                if e.sent and changes_state:  # written, never answered: it may have run
                    raise lost(f"local channel dropped: {e}", changes_state) from None
                # not written, or a read (asking again is harmless): by actor call
            except MMError:
                raise
            except Exception as e:  # not one of ours: unknown outcome, as over Ray
                raise lost(f"the connector failed: {type(e).__name__}: {e}", changes_state) from e
        ref = self._handle.call.remote(method, *args)
        return await call(ref, changes_state=changes_state)

    async def load_markets(self, symbols: Sequence[str]) -> dict[str, MarketRules]:
        return await self._call("load_markets", list(symbols))

    async def place_order(self, request: OrderRequest) -> OrderReport:
        return await self._call("place_order", request)

    async def place_orders(self, requests: Sequence[OrderRequest]) -> list[OrderReport | Exception]:
        return await self._call("place_orders", list(requests))

    async def cancel_order(self, symbol: str, client_id: str) -> OrderReport:
        return await self._call("cancel_order", symbol, client_id)

    async def cancel_all(self, symbol: str) -> list[OrderReport]:
        return await self._call("cancel_all", symbol)

    async def fetch_order(self, symbol: str, client_id: str) -> OrderReport:
        return await self._call("fetch_order", symbol, client_id)

    async def fetch_open_orders(self, symbol: str) -> list[OrderReport]:
        return await self._call("fetch_open_orders", symbol)

    async def fetch_fills(self, symbol: str, since_ms: int) -> list[Fill]:
        return await self._call("fetch_fills", symbol, since_ms)

    async def fetch_balances(self) -> dict[str, Balance]:
        return await self._call("fetch_balances")

    async def fetch_positions(self, symbols: Sequence[str]) -> dict[str, Position]:
        return await self._call("fetch_positions", list(symbols))

    async def fetch_klines(
        self, symbol: str, interval: str, since_ms: int | None = None, limit: int = 500
    ) -> list[Candle]:
        return await self._call("fetch_klines", symbol, interval, since_ms, limit)

    async def check_health(self) -> HealthReport:
        return await self._call("check_health")

    def _no_stream(self, *_: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the connector pushes events to symbol actors; no streams here")

    def stream_prices(self, symbols: Sequence[str]) -> AsyncIterator[PriceTick]:
        return self._no_stream(symbols)

    def stream_orders(self, symbols: Sequence[str]) -> AsyncIterator[OrderReport]:
        return self._no_stream(symbols)

    def stream_klines(self, symbol: str, interval: str) -> AsyncIterator[Candle]:
        return self._no_stream(symbol, interval)

    def stream_account(self) -> AsyncIterator[AccountUpdate]:
        return self._no_stream()

    async def close(self) -> None:
        return None
