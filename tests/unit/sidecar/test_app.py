"""``app``: health and readiness follow the receive loop (Starlette's TestClient); the probe
port's app; /metrics renders off the loop, bounded."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import httpx2 as httpx
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.testclient import TestClient
from telemetry_contract.metric_names import COUNTS_FROM_SAVED_STATE, COUNTS_FROM_ZERO
from trading_sidecar.app import create_app
from trading_sidecar.metrics import TradeMetrics, register
from trading_sidecar.settings import SidecarSettings


def _registry(metrics: TradeMetrics) -> CollectorRegistry:
    registry = CollectorRegistry()
    register(metrics, registry)
    return registry


def test_health_and_readiness_follow_the_receive_loop() -> None:
    app = create_app(SidecarSettings(zmq_bind="tcp://127.0.0.1:*"), registry=CollectorRegistry())
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/").json()["zmq"].startswith("tcp://127.0.0.1:")
        assert "trades_total" in client.get("/metrics").text
        app.state.receiver.stop()
        assert client.get("/healthz").status_code == 503
        assert client.get("/readyz").status_code == 503


def test_the_index_says_where_the_counts_began(tmp_path: Path) -> None:
    """``counts_from``: what the UI's restart notice tells the trader."""
    settings = SidecarSettings(zmq_bind="tcp://127.0.0.1:*")
    with TestClient(create_app(settings, registry=CollectorRegistry())) as client:
        answer = client.get("/").json()
        assert (answer["counts_from"], answer["state_kept"]) == (COUNTS_FROM_ZERO, False)

    kept = SidecarSettings(zmq_bind="tcp://127.0.0.1:*", state_dir=str(tmp_path))
    with TestClient(create_app(kept, registry=CollectorRegistry())) as client:
        answer = client.get("/").json()
        assert (answer["counts_from"], answer["state_kept"]) == (COUNTS_FROM_ZERO, True)
    # That run saved its state on the way out: the next one starts from it.
    with TestClient(create_app(kept, registry=CollectorRegistry())) as client:
        assert client.get("/").json()["counts_from"] == COUNTS_FROM_SAVED_STATE


def test_the_probe_app_answers_only_the_probes_from_the_same_loop_state() -> None:
    app = create_app(SidecarSettings(zmq_bind="tcp://127.0.0.1:*"), registry=CollectorRegistry())
    with TestClient(app), TestClient(app.state.probe_app) as probe:
        assert probe.get("/healthz").status_code == 200
        assert probe.get("/readyz").status_code == 200
        for path in ("/metrics", "/", "/healthz/x"):
            response = probe.get(path)
            assert response.status_code == 404 and "only /healthz" in response.text, path
        app.state.receiver.stop()
        assert probe.get("/healthz").status_code == 503
        assert probe.get("/readyz").status_code == 503


class _Blocking(Collector):
    """A collector whose collect() waits until released: a scrape that stays in flight."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def collect(self) -> Iterator[Metric]:
        self.entered.release()
        self.release.wait(10)
        yield GaugeMetricFamily("blocking_demo", "held until released", value=1)


def test_scrapes_beyond_the_limit_are_503_and_health_still_answers() -> None:
    """Renders run off the event loop, at most metrics_concurrency at once: one more is a
    503 at once instead of a queue, and /healthz answers while the renders are held."""
    registry = CollectorRegistry()
    blocking = _Blocking()
    registry.register(blocking)
    settings = SidecarSettings(zmq_bind="tcp://127.0.0.1:*", metrics_concurrency=2)
    app = create_app(settings, registry=registry)

    async def scenario() -> tuple[list[int], int, int, float]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sidecar") as client:
            held = [asyncio.ensure_future(client.get("/metrics")) for _ in range(2)]
            for _ in range(2):  # both renders are inside collect() now
                await anyio.to_thread.run_sync(blocking.entered.acquire)
            start = time.monotonic()
            extra = await client.get("/metrics")
            health = await client.get("/healthz")
            waited = time.monotonic() - start
            blocking.release.set()
            statuses = [(await request).status_code for request in held]
            after = await client.get("/metrics")
            return statuses + [after.status_code], extra.status_code, health.status_code, waited

    with TestClient(app):  # runs the lifespan (the receiver /healthz reports on)
        statuses, extra, health, waited = anyio.run(scenario)
    assert statuses == [200, 200, 200]
    assert extra == 503
    assert health == 200
    assert waited < 5, "the 503 and /healthz waited for the held renders"
