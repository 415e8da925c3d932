"""The market maker's HTTP endpoints: `/health`, `/status`, `/metrics` (starlette).

Owns: turning the latest health aggregate and status snapshot into responses — `/health` is 200
when every component is healthy and 503 otherwise (JSON body either way), `/status` is the JSON
snapshot (money as decimal strings), `/metrics` is Prometheus text. Read-only: nothing here can
place or cancel an order, and it binds 127.0.0.1 unless configured otherwise.
Must not: call actors on a request (the `mm run` process polls; requests read its snapshots).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mm.server.health import HealthManager


def build_app(
    health: HealthManager,
    status: Callable[[], dict[str, Any] | None],
    metrics: CollectorRegistry,
) -> Starlette:
    async def health_endpoint(request: Request) -> JSONResponse:
        snapshot = health.snapshot
        return JSONResponse(snapshot.to_dict(), status_code=200 if snapshot.ok else 503)

    async def status_endpoint(request: Request) -> JSONResponse:
        current = status()
        if current is None:
            return JSONResponse({"error": "no status yet"}, status_code=503)
        return JSONResponse({**current, "health": health.snapshot.to_dict()})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/health", health_endpoint),
            Route("/status", status_endpoint),
            Route("/metrics", metrics_endpoint),
        ]
    )
