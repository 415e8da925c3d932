"""HealthManager: components register checks; results are aggregated periodically.

Owns: the registry of named checks (async callables returning `(ok, detail)` or a mapping of
sub-component name -> `(ok, detail)`), running them all every `every_s` with a timeout each, and
the last aggregate that `/health` and `/status` serve. A check that raises or times out counts
as failed with the error as its detail; the loop itself never dies.
Must not: know what the components are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Result = tuple[bool, str]
Check = Callable[[], Awaitable[Result | Mapping[str, Result]]]


@dataclass(frozen=True)
class HealthSnapshot:
    ok: bool
    checked_ms: int
    components: dict[str, Result] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checked_ms": self.checked_ms,
            "components": {n: {"ok": ok, "detail": d} for n, (ok, d) in self.components.items()},
        }


class HealthManager:
    def __init__(self, *, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self._checks: dict[str, Check] = {}
        self.snapshot = HealthSnapshot(False, 0, {"startup": (False, "not checked yet")})

    def register(self, name: str, check: Check) -> None:
        self._checks[name] = check

    def unregister(self, name: str) -> None:
        self._checks.pop(name, None)

    async def _one(self, name: str, check: Check) -> dict[str, Result]:
        try:
            result = await asyncio.wait_for(check(), self.timeout_s)
        except TimeoutError:
            return {name: (False, f"no answer within {self.timeout_s}s")}
        except Exception as e:
            return {name: (False, f"{type(e).__name__}: {e}")}
        if isinstance(result, Mapping):
            return {f"{name}.{sub}" if sub != name else name: r for sub, r in result.items()}
        return {name: result}

    async def run_once(self) -> HealthSnapshot:
        checks = list(self._checks.items())
        results = await asyncio.gather(*(self._one(n, c) for n, c in checks))
        components: dict[str, Result] = {}
        for part in results:
            components.update(part)
        ok = bool(components) and all(ok for ok, _ in components.values())
        self.snapshot = HealthSnapshot(ok, time.time_ns() // 1_000_000, components)
        return self.snapshot

    async def run(self, every_s: float = 2.0) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # pragma: no cover - run_once already contains every check
                log.exception("health round failed")
            await asyncio.sleep(every_s)
