"""HTTP face of the sidecar: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz``.

The receiver is opened in the Starlette lifespan and closed on the way out, so the app
owns its socket for exactly as long as it serves; tests use ``with TestClient(app)``.
The registry is passed in rather than taken from the global default, so each test (and
each embedded use) gets its own numbers.

``/metrics`` renders in a worker thread, at most ``metrics_concurrency`` at a time; a
scrape beyond that is a 503 at once. The event loop thus stays free to answer
``/healthz`` under a flood of scrapers (2,000 at once kept it from answering for over
10 s: the kubelet would have restarted a pod that was fine). With a probe port,
``app.state.probe_app`` answers ``/healthz`` and ``/readyz`` there, on a server and loop
of its own (``main``): a NetworkPolicy can admit the kubelet's probes from anywhere while
``/metrics`` stays reachable only from Prometheus.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import anyio.to_thread
import zmq
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from telemetry_contract.metric_names import COUNTS_FROM_SAVED_STATE, COUNTS_FROM_ZERO

from trading_sidecar.bench_metrics import BenchMetrics, register_bench
from trading_sidecar.curve import CurveAuthenticator, apply_curve_server, load_server_keys
from trading_sidecar.exporter import register_exporter
from trading_sidecar.metrics import TradeMetrics, register
from trading_sidecar.receiver import Receiver
from trading_sidecar.settings import SidecarSettings
from trading_sidecar.state import StateKeeper, register_state


def create_app(
    settings: SidecarSettings | None = None,
    *,
    registry: CollectorRegistry | None = None,
    metrics: TradeMetrics | None = None,
    bench: BenchMetrics | None = None,
    context: zmq.Context[zmq.Socket[bytes]] | None = None,
) -> Starlette:
    settings = settings or SidecarSettings()
    registry = registry if registry is not None else CollectorRegistry()
    metrics = metrics if metrics is not None else TradeMetrics()
    bench = bench if bench is not None else BenchMetrics(settings.bench_row_ttl_seconds)
    # The trade path sets benchmark traffic and results aside; they are counted here.
    metrics.others = bench.record
    register(metrics, registry)
    register_bench(bench, registry)
    # Read at build time, so a broken CURVE setting stops start-up instead of running open.
    curve_keys = load_server_keys(settings.curve_secret_key_file, settings.curve_clients_dir)
    context = context or zmq.Context.instance()
    authenticator = CurveAuthenticator(context, curve_keys) if curve_keys else None
    keeper = StateKeeper(Path(settings.state_dir), metrics, bench) if settings.state_dir else None
    register_state(keeper, registry)
    #: Where this process's counts started, for ``GET /`` (the UI's restart notice says it).
    counts_from = {"value": COUNTS_FROM_ZERO}
    receiver = Receiver(
        settings.zmq_bind,
        metrics,
        context=context,
        rcvhwm=settings.rcvhwm,
        configure=partial(apply_curve_server, keys=curve_keys) if curve_keys else None,
        checkpoint=keeper.checkpoint if keeper else None,
        heartbeat=settings.heartbeat,
    )
    register_exporter(
        registry,
        healthy=lambda: receiver.alive(settings.stall_seconds),
        thresholds={
            "no_trades_seconds": settings.alert_no_trades_seconds,
            "e2e_p99_seconds": settings.alert_e2e_p99_seconds,
            "invalid_ratio": settings.alert_invalid_ratio,
        },
        curve_denied=(lambda: authenticator.denied) if authenticator else (lambda: 0),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The ZAP handler must answer before the first peer can connect: without one,
        # libzmq lets any client that knows the server key in.
        if authenticator is not None:
            authenticator.start()
        try:
            # Restored before the first frame is counted, so nothing is counted twice.
            if keeper is not None:
                if keeper.restore():
                    counts_from["value"] = COUNTS_FROM_SAVED_STATE
                keeper.start()
            receiver.start()
            try:
                yield
            finally:
                receiver.stop()  # counts everything already queued ...
                if keeper is not None:
                    keeper.close()  # ... then saves it
        finally:
            if authenticator is not None:
                authenticator.stop()

    def render() -> bytes:
        body = generate_latest(registry)
        if keeper is not None:
            # Answer only once a snapshot taken after these numbers is on disk: Prometheus
            # then never sees a value a crash could take back (see state.py).
            keeper.sync()
        return body

    # Scrapes rendering now; only the event loop's thread changes it, so it needs no lock.
    rendering = 0

    async def metrics_endpoint(request: Request) -> Response:
        nonlocal rendering
        if rendering >= settings.metrics_concurrency:
            return PlainTextResponse(
                f"more than {settings.metrics_concurrency} scrapes at once; retry\n",
                status_code=503,
                headers={"Retry-After": "1"},
            )
        rendering += 1
        try:
            # Off the event loop, which keeps answering /healthz meanwhile.
            body = await anyio.to_thread.run_sync(render)
        finally:
            rendering -= 1
        return Response(body, media_type=CONTENT_TYPE_LATEST)

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
                "curve": authenticator is not None,
                "counts_from": counts_from["value"],
                "state_kept": keeper is not None,
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

    async def probe_only(request: Request) -> Response:
        return PlainTextResponse("the probe port serves only /healthz and /readyz\n", 404)

    # The probe port's app: no lifespan of its own (it reads what this app's lifespan runs).
    app.state.probe_app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/{path:path}", probe_only),
        ]
    )
    app.state.curve = authenticator
    app.state.keeper = keeper
    app.state.receiver = receiver
    app.state.metrics = metrics
    app.state.bench = bench
    app.state.registry = registry
    return app
