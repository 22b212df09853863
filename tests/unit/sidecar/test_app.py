"""``app``: health and readiness follow the receive loop (Starlette's TestClient)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry
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
