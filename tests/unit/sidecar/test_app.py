"""``app``: health and readiness follow the receive loop (Starlette's TestClient)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient
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
