"""`mm:orchestrator`: owns the durable symbol registry and supervises every other actor.

Owns: boot (connector, risk, then every registered symbol; the config's symbols are registered on
the very first start only), `add_symbol` (validate against the exchange, write the registry,
spawn, wait until the symbol reports it is quoting), `remove_symbol` (mark `removing` in the
registry, drain, unroute, stop, delete — a restart in the middle finishes the job), pause/resume,
status, shutdown, and a supervision loop that never dies: every `SUPERVISE_S` it re-adopts or
respawns missing symbol actors and makes the connector's routes match the registry. Named actors
are created with `get_if_exists`, so a restarted orchestrator adopts live actors, never twins.
Must not: trade.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

import ray

from mm.actors import options
from mm.actors.calls import call
from mm.actors.connector import Connector
from mm.actors.risk import RiskActor
from mm.actors.symbol_manager import SymbolManager
from mm.core.rounding import is_multiple
from mm.errors import ConfigError, OperationalError, SymbolExists, UnknownSymbol
from mm.ports import Exchange
from mm.settings import MarketMakerSettings, check_symbol, grid_for
from mm.store.registry import ACTIVE, Registry

log = logging.getLogger(__name__)

SUPERVISE_S = 2.0
CALL_TIMEOUT_S = 10.0
START_TIMEOUT_S = 60.0


@ray.remote
class Orchestrator:
    def __init__(
        self,
        settings: MarketMakerSettings,
        exchange_factory: Callable[[MarketMakerSettings], Exchange],
    ) -> None:
        self.settings = settings
        self.ns = settings.ray.namespace
        self.factory = exchange_factory
        self.registry = Registry(settings.data_dir / "control.db")
        self.connector: Any = None
        self.risk: Any = None
        self.symbols: dict[str, Any] = {}
        self.boots = 0
        self._lock = asyncio.Lock()  # registry changes one at a time
        loop = asyncio.get_running_loop()
        self._booted = loop.create_task(self._boot(), name="boot")
        self._supervisor = loop.create_task(self._supervise(), name="supervise")

    # -- boot and supervision ----------------------------------------------------------------
    async def _boot(self) -> None:
        s, res = self.settings, self.settings.ray.control_resources
        self.connector = Connector.options(
            **options.control(options.CONNECTOR, self.ns, res)
        ).remote(  # type: ignore[attr-defined]
            s, self.factory
        )
        await call(self.connector.info.remote(), timeout_s=START_TIMEOUT_S)
        self.risk = RiskActor.options(**options.control(options.RISK, self.ns, res)).remote(s)  # type: ignore[attr-defined]
        await call(self.risk.state.remote(), timeout_s=START_TIMEOUT_S)
        grids = {
            symbol: _plain(grid_for(s.grid_defaults, overrides, where=f"symbols.{symbol}"))
            for symbol, overrides in s.symbols.items()
        }
        seeded = self.registry.seed_once(grids)
        if seeded:
            log.info("first start: registered %s", ", ".join(seeded))
        for entry in self.registry.entries():
            if entry.state == ACTIVE:
                self._spawn(entry.symbol, entry.grid)
            else:  # a removal the previous orchestrator did not finish
                asyncio.get_running_loop().create_task(
                    self._finish_removal(entry.symbol, entry.keep_orders)
                )
        await self._route()
        self.boots += 1

    def _spawn(self, symbol: str, grid: dict[str, Any]) -> Any:
        """Create the symbol's actor, or adopt the live one with its name (never a twin)."""
        opts = options.symbol(symbol, self.ns, self.settings.ray.symbol_resources)
        handle = SymbolManager.options(**opts).remote(symbol, self.settings, grid)  # type: ignore[attr-defined]
        self.symbols[symbol] = handle
        return handle

    async def _route(self) -> None:
        active = [e.symbol for e in self.registry.entries() if e.state == ACTIVE]
        await call(self.connector.ensure_routes.remote(active), timeout_s=CALL_TIMEOUT_S)

    async def _supervise(self) -> None:
        await asyncio.shield(self._booted)
        while True:
            await asyncio.sleep(SUPERVISE_S)
            try:
                async with self._lock:
                    for entry in self.registry.entries():
                        if entry.state == ACTIVE:
                            self._spawn(entry.symbol, entry.grid)  # adopts when alive
                    await self._route()
            except Exception:
                log.exception("supervision round failed; next round in %ss", SUPERVISE_S)

    async def ready(self) -> dict[str, Any]:
        await asyncio.shield(self._booted)
        return {"boots": self.boots, "symbols": sorted(self.symbols), "pid": os.getpid()}

    # -- registry changes --------------------------------------------------------------------
    async def add_symbol(
        self, symbol: str, overrides: dict[str, Any], wait_s: float = START_TIMEOUT_S
    ) -> dict[str, Any]:
        """Register and start `symbol`; returns its status once it is quoting."""
        await asyncio.shield(self._booted)
        check_symbol(symbol)
        async with self._lock:
            if self.registry.get(symbol) is not None:
                raise SymbolExists(f"{symbol} is already registered (remove it first)")
            grid = grid_for(self.settings.grid_defaults, overrides, where=symbol)
            ref = self.connector.call.remote("load_markets", [symbol])
            rules = (await call(ref, timeout_s=CALL_TIMEOUT_S))[symbol]
            if not is_multiple(grid.interval, rules.tick_size):
                raise ConfigError(
                    f"{symbol}.interval = {grid.interval}: must be a multiple of the tick size "
                    f"{rules.tick_size}"
                )
            self.registry.add(symbol, _plain(grid))  # durable first, then act
            handle = self._spawn(symbol, _plain(grid))
            await self._route()
        state = await call(handle.ready.remote(), timeout_s=wait_s)
        status = await call(handle.status.remote(), timeout_s=CALL_TIMEOUT_S)
        if state == "HALTED":
            raise OperationalError(f"{symbol} started halted: {status['halt_reason']}")
        return status

    async def remove_symbol(self, symbol: str, keep_orders: bool = False) -> dict[str, Any]:
        """Drain (cancel our orders unless `keep_orders`), stop and unregister `symbol`. The
        journal stays on disk: adding the symbol again resumes its inventory."""
        await asyncio.shield(self._booted)
        async with self._lock:
            if self.registry.get(symbol) is None:
                raise UnknownSymbol(f"{symbol} is not registered")
            self.registry.mark_removing(symbol, keep_orders=keep_orders)
        return await self._finish_removal(symbol, keep_orders)

    async def _finish_removal(self, symbol: str, keep_orders: bool) -> dict[str, Any]:
        handle = self._find(symbol)
        status: dict[str, Any] = {"symbol": symbol}
        if handle is not None:
            status = await call(handle.drain.remote(keep_orders), timeout_s=START_TIMEOUT_S)
        async with self._lock:
            await call(self.connector.remove_route.remote(symbol), timeout_s=CALL_TIMEOUT_S)
            await call(self.risk.forget.remote(symbol), timeout_s=CALL_TIMEOUT_S)
            if handle is not None:
                ray.kill(handle, no_restart=True)
            self.symbols.pop(symbol, None)
            self.registry.delete(symbol)
        log.info("removed %s (orders %s)", symbol, "kept" if keep_orders else "cancelled")
        return status

    def _find(self, symbol: str) -> Any:
        try:
            return ray.get_actor(options.symbol_actor(symbol), namespace=self.ns)
        except ValueError:
            return None

    def _handle(self, symbol: str) -> Any:
        if self.registry.get(symbol) is None:
            raise UnknownSymbol(f"{symbol} is not registered")
        handle = self.symbols.get(symbol) or self._find(symbol)
        if handle is None:
            raise OperationalError(f"{symbol}: its actor is not running (respawn pending)")
        return handle

    # -- operator commands -------------------------------------------------------------------
    async def pause(self, symbol: str | None = None) -> dict[str, str]:
        return await self._each(symbol, "pause")

    async def resume(self, symbol: str | None = None) -> dict[str, str]:
        return await self._each(symbol, "resume")

    async def _each(self, symbol: str | None, method: str) -> dict[str, str]:
        await asyncio.shield(self._booted)
        targets = [symbol] if symbol else [e.symbol for e in self.registry.entries()]
        handles = {s: self._handle(s) for s in targets}
        out = {}
        for s, handle in handles.items():
            out[s] = await call(getattr(handle, method).remote(), timeout_s=CALL_TIMEOUT_S)
        return out

    async def breaker(self, action: str, reason: str = "") -> dict[str, Any]:
        await asyncio.shield(self._booted)
        if action == "trip":
            return await call(self.risk.trip.remote(reason or "operator"))
        return await call(self.risk.reset.remote())

    async def status(self) -> dict[str, Any]:
        """Everything `/status` shows: per symbol, risk and connector (dead parts say so)."""
        await asyncio.shield(self._booted)
        symbols: dict[str, Any] = {}
        for entry in self.registry.entries():
            try:
                ref = self._handle(entry.symbol).status.remote()
                symbols[entry.symbol] = await call(ref, timeout_s=CALL_TIMEOUT_S)
            except Exception as e:
                symbols[entry.symbol] = {"state": "UNREACHABLE", "error": str(e)}
            symbols[entry.symbol]["registry"] = entry.state
        out: dict[str, Any] = {"symbols": symbols}
        for name, handle, method in (
            ("risk", self.risk, "state"),
            ("connector", self.connector, "stats"),
        ):
            try:
                out[name] = await call(getattr(handle, method).remote(), timeout_s=CALL_TIMEOUT_S)
            except Exception as e:
                out[name] = {"error": str(e)}
        return out

    async def health(self) -> dict[str, tuple[bool, str]]:
        """(ok, detail) per component: connector, risk, and every symbol (alive, reconciled,
        journal writable)."""
        await asyncio.shield(self._booted)
        out: dict[str, tuple[bool, str]] = {}
        targets = {"connector": lambda: self.connector}
        for entry in self.registry.entries():
            if entry.state == ACTIVE:
                targets[f"symbol:{entry.symbol}"] = lambda s=entry.symbol: self._handle(s)
        for name, handle in targets.items():
            try:
                ok, detail = await call(handle().health.remote(), timeout_s=CALL_TIMEOUT_S)
                out[name] = (bool(ok), str(detail))
            except Exception as e:
                out[name] = (False, f"unreachable: {e}")
        try:
            risk = await call(self.risk.state.remote(), timeout_s=CALL_TIMEOUT_S)
            reasons = ", ".join(risk["reasons"]) or "none"
            out["risk"] = (True, f"halted ({reasons})" if risk["halted"] else "ok")
        except Exception as e:
            out["risk"] = (False, f"unreachable: {e}")
        return out

    async def shutdown(self, cancel_orders: bool) -> dict[str, Any]:
        """Stop every actor (the registry is kept for the next start); with `cancel_orders`,
        each symbol first cancels its orders. Returns what each drain reported."""
        await asyncio.shield(self._booted)
        self._supervisor.cancel()
        drained: dict[str, Any] = {}
        for entry in self.registry.entries():
            handle = self._find(entry.symbol)
            if handle is None:
                continue
            try:
                drained[entry.symbol] = await call(
                    handle.drain.remote(not cancel_orders), timeout_s=START_TIMEOUT_S
                )
            except Exception as e:
                drained[entry.symbol] = {"error": str(e)}
            ray.kill(handle, no_restart=True)
        try:
            await call(self.connector.close.remote(), timeout_s=CALL_TIMEOUT_S)
        except Exception:
            log.exception("closing the exchange connection failed")
        for handle in (self.risk, self.connector):
            ray.kill(handle, no_restart=True)
        return drained


def _plain(grid: Any) -> dict[str, Any]:
    return grid.model_dump(mode="json")
