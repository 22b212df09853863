"""HTTP face of the sidecar: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz``.

The receiver is opened in the Starlette lifespan and closed on the way out, so the app
owns its socket for exactly as long as it serves; tests use ``with TestClient(app)``.
The registry is passed in rather than taken from the global default, so each test (and
each embedded use) gets its own numbers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import zmq
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from trading_sidecar.metrics import TradeMetrics, register
from trading_sidecar.receiver import Receiver
from trading_sidecar.settings import SidecarSettings


def create_app(
    settings: SidecarSettings | None = None,
    *,
    registry: CollectorRegistry | None = None,
    metrics: TradeMetrics | None = None,
    context: zmq.Context[zmq.Socket[bytes]] | None = None,
) -> Starlette:
    settings = settings or SidecarSettings()
    registry = registry if registry is not None else CollectorRegistry()
    metrics = metrics or TradeMetrics()
    register(metrics, registry)
    receiver = Receiver(settings.zmq_bind, metrics, context=context, rcvhwm=settings.rcvhwm)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        receiver.start()
        try:
            yield
        finally:
            receiver.stop()

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        if receiver.alive(settings.stall_seconds):
            return PlainTextResponse("ok\n")
        return PlainTextResponse("receive loop is not running\n", status_code=503)

    async def readyz(request: Request) -> Response:
        if receiver.running:
            return PlainTextResponse("ready\n")
        return PlainTextResponse("not ready\n", status_code=503)

    async def index(request: Request) -> Response:
        return JSONResponse(
            {
                "service": "trading-sidecar",
                "zmq": receiver.bound_address or settings.zmq_bind,
                "endpoints": ["/metrics", "/healthz", "/readyz"],
            }
        )

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/metrics", metrics_endpoint),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ],
        lifespan=lifespan,
    )
    app.state.receiver = receiver
    app.state.metrics = metrics
    app.state.registry = registry
    return app
