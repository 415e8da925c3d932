"""`mm:orchestrator`: owns the durable symbol registry and supervises every other actor.

Owns: boot (connector, risk, then every registered symbol; the config's symbols are registered
on the very first start only), `add_symbol` (validate against the exchange, write the registry,
spawn, wait until the symbol reports it is quoting), `remove_symbol` (mark `removing` in the
registry, drain, unroute, stop, forget, delete), pause/resume (kept in the registry), what each
symbol actor must be on (re)start (`desired`), status, health, shutdown, and a supervision loop
that never dies: every `SUPERVISE_S` it re-creates a missing connector or risk actor, re-adopts
or respawns symbol actors, finishes removals that were interrupted, and makes the connector's
routes match the registry. Named actors are created with `get_if_exists`, so a restarted
orchestrator adopts live actors, never twins; a symbol's journal lock keeps a late old process
from writing alongside a new one. Registry changes happen one at a time (`_lock`).
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
from mm.engine.backoff import jittered
from mm.errors import (
    ConfigError,
    OperationalError,
    RequestError,
    SymbolExists,
    UnknownSymbol,
)
from mm.ports import Exchange
from mm.settings import MarketMakerSettings, check_symbol, grid_for
from mm.store.registry import ACTIVE, REMOVING, Registry

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
        self.stopping = False
        self._lock = asyncio.Lock()  # registry changes one at a time
        loop = asyncio.get_running_loop()
        self._booted = loop.create_task(self._boot(), name="boot")
        self._supervisor = loop.create_task(self._supervise(), name="supervise")

    # -- boot and supervision ----------------------------------------------------------------
    async def _boot(self) -> None:
        """Create/adopt everything; retried with backoff until it succeeds (never half-booted)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._boot_once()
                break
            except Exception:
                log.exception("boot attempt %d failed; retrying", attempt)
                await asyncio.sleep(jittered((0.5, 10.0), attempt))
        self.boots += 1

    async def _boot_once(self) -> None:
        s = self.settings
        self._ensure_control_actors()
        await call(self.connector.info.remote(), timeout_s=START_TIMEOUT_S)
        await call(self.risk.current.remote(), timeout_s=START_TIMEOUT_S)
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
        await self._route()

    def _ensure_control_actors(self) -> None:
        res = self.settings.ray.control_resources
        self.connector = Connector.options(  # type: ignore[attr-defined]
            **options.control(options.CONNECTOR, self.ns, res)
        ).remote(self.settings, self.factory)
        self.risk = RiskActor.options(  # type: ignore[attr-defined]
            **options.control(options.RISK, self.ns, res)
        ).remote(self.settings)

    def _spawn(self, symbol: str, grid: dict[str, Any]) -> Any:
        """Create the symbol's actor, or adopt the live one with its name (never a twin)."""
        opts = options.symbol(symbol, self.ns, self.settings.ray.symbol_resources)
        handle = SymbolManager.options(**opts).remote(symbol, self.settings, grid)  # type: ignore[attr-defined]
        self.symbols[symbol] = handle
        return handle

    async def _route(self) -> None:
        entries = self.registry.entries()
        active = [e.symbol for e in entries if e.state == ACTIVE]
        draining = [e.symbol for e in entries if e.state == REMOVING]  # unrouted when removed
        await call(self.connector.ensure_routes.remote(active, draining), timeout_s=CALL_TIMEOUT_S)

    async def _supervise(self) -> None:
        await asyncio.shield(self._booted)
        while not self.stopping:
            await asyncio.sleep(SUPERVISE_S)
            try:
                await self._supervise_once()
            except Exception:
                log.exception("supervision round failed; next round in %ss", SUPERVISE_S)

    async def _supervise_once(self) -> None:
        async with self._lock:
            if self.stopping:
                return
            self._ensure_control_actors()  # adopts when alive
            entries = self.registry.entries()
            for entry in entries:
                if entry.state == ACTIVE:
                    self._spawn(entry.symbol, entry.grid)
            await self._route()
        for entry in entries:  # a removal a crash interrupted is finished now
            if entry.state == REMOVING:
                try:
                    await self._finish_removal(entry.symbol, entry.keep_orders)
                except Exception as e:
                    log.warning(
                        "finishing the removal of %s failed (%s); retrying", entry.symbol, e
                    )

    async def ready(self) -> dict[str, Any]:
        await asyncio.shield(self._booted)
        return {"boots": self.boots, "symbols": sorted(self.symbols), "pid": os.getpid()}

    async def desired(self, symbol: str) -> dict[str, Any]:
        """What a (re)starting symbol actor must be: its registry state and pause flag."""
        entry = self.registry.get(symbol)
        if entry is None:
            return {"state": "unregistered", "paused": True}
        return {"state": entry.state, "paused": entry.paused}

    # -- registry changes --------------------------------------------------------------------
    async def add_symbol(
        self, symbol: str, overrides: dict[str, Any], wait_s: float = START_TIMEOUT_S
    ) -> dict[str, Any]:
        """Register and start `symbol`; returns its status once it is quoting."""
        await asyncio.shield(self._booted)
        check_symbol(symbol)
        async with self._lock:
            self._refuse_when_stopping()
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
            self._refuse_when_stopping()
            if self.registry.get(symbol) is None:
                raise UnknownSymbol(f"{symbol} is not registered")
            self.registry.mark_removing(symbol, keep_orders=keep_orders)
        return await self._finish_removal(symbol, keep_orders)

    async def _finish_removal(self, symbol: str, keep_orders: bool) -> dict[str, Any]:
        """Idempotent: drain, unroute, stop, forget, delete — whatever is left of it."""
        handle = self._find(symbol)
        status: dict[str, Any] = {"symbol": symbol}
        if handle is not None:
            status = await call(
                handle.drain.remote(keep_orders), timeout_s=START_TIMEOUT_S, changes_state=True
            )
        async with self._lock:
            if self.registry.get(symbol) is None:
                return status  # another caller finished it
            await call(self.connector.remove_route.remote(symbol), timeout_s=CALL_TIMEOUT_S)
            if handle is not None:
                ray.kill(handle, no_restart=True)  # drained: it writes nothing any more
            await call(self.risk.forget.remote(symbol), timeout_s=CALL_TIMEOUT_S)
            self.symbols.pop(symbol, None)
            self.registry.delete(symbol)
        log.info("removed %s (orders %s)", symbol, "kept" if keep_orders else "cancelled")
        return status

    def _refuse_when_stopping(self) -> None:
        if self.stopping:
            raise RequestError("the market maker is shutting down")

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
        return await self._each(symbol, "pause", paused=True)

    async def resume(self, symbol: str | None = None) -> dict[str, str]:
        return await self._each(symbol, "resume", paused=False)

    async def _each(self, symbol: str | None, method: str, *, paused: bool) -> dict[str, str]:
        """Record the pause flag in the registry first (a restarted actor reads it), then tell
        the live actors."""
        await asyncio.shield(self._booted)
        active = [e.symbol for e in self.registry.entries() if e.state == ACTIVE]
        targets = [symbol] if symbol else active
        handles = {s: self._handle(s) for s in targets}
        for s in targets:
            self.registry.set_paused(s, paused)
        results = await asyncio.gather(
            *(
                call(getattr(h, method).remote(), timeout_s=CALL_TIMEOUT_S, changes_state=True)
                for h in handles.values()
            )
        )
        return dict(zip(handles, results, strict=True))

    async def breaker(self, action: str, reason: str = "") -> dict[str, Any]:
        await asyncio.shield(self._booted)
        if action == "trip":
            return await call(self.risk.trip.remote(reason or "operator"), changes_state=True)
        return await call(self.risk.reset.remote(), changes_state=True)

    async def status(self) -> dict[str, Any]:
        """Everything `/status` shows: per symbol, risk and connector (dead parts say so)."""
        await asyncio.shield(self._booted)
        entries = self.registry.entries()

        async def one(entry: Any) -> dict[str, Any]:
            try:
                ref = self._handle(entry.symbol).status.remote()
                out = await call(ref, timeout_s=CALL_TIMEOUT_S)
            except Exception as e:
                out = {"state": "UNREACHABLE", "error": str(e)}
            out.update(registry=entry.state, registry_paused=entry.paused)
            return out

        async def part(handle: Any, method: str) -> dict[str, Any]:
            try:
                return await call(getattr(handle, method).remote(), timeout_s=CALL_TIMEOUT_S)
            except Exception as e:
                return {"error": str(e)}

        symbols, risk, connector = await asyncio.gather(
            asyncio.gather(*(one(e) for e in entries)),
            part(self.risk, "state"),
            part(self.connector, "stats"),
        )
        return {
            "symbols": {e.symbol: s for e, s in zip(entries, symbols, strict=True)},
            "risk": risk,
            "connector": connector,
        }

    async def health(self) -> dict[str, tuple[bool, str]]:
        """(ok, detail) per component: connector, risk, and every active symbol (alive,
        reconciled, journal writable). Checked concurrently: one hung part fails alone."""
        await asyncio.shield(self._booted)

        async def check(name: str, handle: Callable[[], Any]) -> tuple[str, tuple[bool, str]]:
            try:
                ok, detail = await call(handle().health.remote(), timeout_s=CALL_TIMEOUT_S)
                return name, (bool(ok), str(detail))
            except Exception as e:
                return name, (False, f"unreachable: {e}")

        async def risk() -> tuple[str, tuple[bool, str]]:
            try:
                state = await call(self.risk.state.remote(), timeout_s=CALL_TIMEOUT_S)
            except Exception as e:
                return "risk", (False, f"unreachable: {e}")
            reasons = ", ".join(state["reasons"]) or "none"
            return "risk", (True, f"halted ({reasons})" if state["halted"] else "ok")

        checks = [check("connector", lambda: self.connector), risk()]
        for entry in self.registry.entries():
            if entry.state == ACTIVE:
                checks.append(
                    check(f"symbol:{entry.symbol}", lambda s=entry.symbol: self._handle(s))
                )
        return dict(await asyncio.gather(*checks))

    async def shutdown(self, cancel_orders: bool) -> dict[str, Any]:
        """Stop every actor (the registry is kept for the next start); with `cancel_orders`,
        every symbol first cancels its orders, all at once. Returns each symbol's drain result
        (`{"error": ...}` where it failed: those orders may still rest on the exchange)."""
        await asyncio.shield(self._booted)
        async with self._lock:  # no add/remove can start or be half done from here on
            self.stopping = True
        self._supervisor.cancel()
        handles = {e.symbol: self._find(e.symbol) for e in self.registry.entries()}
        handles = {s: h for s, h in handles.items() if h is not None}

        async def drain(handle: Any) -> dict[str, Any]:
            try:
                ref = handle.drain.remote(not cancel_orders)
                return await call(ref, timeout_s=START_TIMEOUT_S, changes_state=True)
            except Exception as e:
                return {"error": str(e)}

        results = await asyncio.gather(*(drain(h) for h in handles.values()))
        drained = dict(zip(handles, results, strict=True))
        for handle in handles.values():
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
