"""Every `ray.remote` option of the market maker's actors, in one place (DESIGN 6).

Owns: actor names, namespace, lifetimes, restart policy and placement. All actors are detached
(an actor owned by another dies with its owner, which would make the orchestrator's restart kill
the symbols it is meant to re-adopt), restart forever, never retry a task (a retried
state-changing call could run twice; our calls are idempotent and callers retry on their own
terms, so Ray keeps its per-caller ordering), reserve no CPU (they wait on IO; 20 symbols fit on
a 2-core host) and carry readable names for the Ray dashboard.
Must not: hold behaviour.
"""

from __future__ import annotations

from typing import Any

ORCHESTRATOR = "mm:orchestrator"
CONNECTOR = "mm:connector"
RISK = "mm:risk"
SYMBOL_PREFIX = "mm:symbol:"


def symbol_actor(symbol: str) -> str:
    return f"{SYMBOL_PREFIX}{symbol}"


def _options(name: str, namespace: str, resources: dict[str, float]) -> dict[str, Any]:
    options: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "lifetime": "detached",
        "get_if_exists": True,
        "max_restarts": -1,
        "max_task_retries": 0,
        "num_cpus": 0,
        "max_concurrency": 1000,
    }
    if resources:
        options["resources"] = dict(resources)
    return options


def control(name: str, namespace: str, resources: dict[str, float]) -> dict[str, Any]:
    """Orchestrator, connector and risk actor (pinned with `ray.control_resources`)."""
    return _options(name, namespace, resources)


def symbol(symbol: str, namespace: str, resources: dict[str, float]) -> dict[str, Any]:
    """One `mm:symbol:<SYMBOL>` actor (placed with `ray.symbol_resources`)."""
    return _options(symbol_actor(symbol), namespace, resources)
