"""Sidecar pieces in-process: collector output, drain on stop, health, settings, log throttle."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import zmq
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient
from telemetry_contract import metric_names as names
from telemetry_contract.codec import TradeEncoder
from telemetry_contract.errors import InvalidMessage, Reason
from telemetry_contract.events import TradeEvent
from trading_sidecar import settings as sidecar_settings
from trading_sidecar.app import create_app
from trading_sidecar.bench_metrics import BenchMetrics, register_bench
from trading_sidecar.exporter import register_exporter
from trading_sidecar.log_throttle import ThrottledRejectLog
from trading_sidecar.metrics import MAX_TRACKED_SOURCES, TradeMetrics, register
from trading_sidecar.receiver import Receiver
from trading_sidecar.settings import SidecarSettings


def _registry(metrics: TradeMetrics) -> CollectorRegistry:
    registry = CollectorRegistry()
    register(metrics, registry)
    return registry


def test_every_series_exists_before_the_first_event() -> None:
    reg = _registry(TradeMetrics())
    for side in ("buy", "sell"):
        assert reg.get_sample_value(names.TRADES, {"side": side}) == 0
        assert reg.get_sample_value(names.VOLUME, {"side": side}) == 0
    for reason in Reason:
        assert reg.get_sample_value(names.INVALID, {"reason": reason.value}) == 0
    assert reg.get_sample_value(names.LAST_TRADE_TS) == 0
    assert reg.get_sample_value(names.E2E_LATENCY + "_count") == 0


def test_latency_histogram_is_cumulative_and_counts_match() -> None:
    metrics = TradeMetrics()
    reg = _registry(metrics)
    for latency in (0.00001, 0.0003, 0.0003, 0.02, 50.0, -3.0):  # -3: skewed clock
        metrics.record_trade(TradeEvent("buy", 1.0, 100.0), 100.0 + latency)
    bucket = names.E2E_LATENCY + "_bucket"
    assert reg.get_sample_value(bucket, {"le": "5e-05"}) == 2  # 10 µs and the clamped skew
    assert reg.get_sample_value(bucket, {"le": "0.0005"}) == 4
    assert reg.get_sample_value(bucket, {"le": "10.0"}) == 5
    assert reg.get_sample_value(bucket, {"le": "+Inf"}) == 6
    assert reg.get_sample_value(names.E2E_LATENCY + "_count") == 6
    assert reg.get_sample_value(names.LAST_TRADE_TS) == 100.0


def test_seq_restart_is_not_loss_and_sources_are_bounded() -> None:
    metrics = TradeMetrics()
    for seq in (5, 6, 0, 1, 3):  # restart at 0 after 6; then one missing
        metrics.record_trade(TradeEvent("sell", 1.0, 1.0, "p", seq), 1.0)
    assert metrics.lost == 1
    for i in range(MAX_TRACKED_SOURCES + 10):
        metrics.record_trade(TradeEvent("buy", 1.0, 1.0, f"s{i}", 0), 1.0)
    assert len(metrics.streams.positions) == MAX_TRACKED_SOURCES


def test_no_created_series_and_help_text_on_every_family() -> None:
    from prometheus_client import generate_latest

    registry = _registry(TradeMetrics())
    register_bench(BenchMetrics(), registry)
    thresholds = dict.fromkeys(names.ALERT_THRESHOLDS, 1.0)
    register_exporter(registry, healthy=lambda: True, thresholds=thresholds)
    text = generate_latest(registry).decode()
    assert "_created" not in text
    for name in names.ALL:
        family = name.removesuffix("_total")
        assert f"# HELP {family}" in text or f"# HELP {name}" in text, name


def test_stop_counts_every_frame_already_queued() -> None:
    """SIGTERM's path: frames queued before stop() are counted, not thrown away."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    metrics = TradeMetrics()
    receiver = Receiver("inproc://drain", metrics, context=ctx, poll_ms=10_000)
    receiver.start()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 0)
    push.connect("inproc://drain")
    encode = TradeEncoder("drain")
    try:
        for seq in range(20_000):
            push.send(encode("buy", 1.0, time.time(), seq))
        receiver.stop(timeout=30)
        assert metrics.trades["buy"] == 20_000
        assert metrics.lost == 0
        assert not receiver.running
    finally:
        push.close(linger=0)
        ctx.term()


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


def test_settings_from_mapping_and_dotenv(tmp_path: Path) -> None:
    assert sidecar_settings.load({}) == SidecarSettings()
    loaded = sidecar_settings.load(
        {"TT_SIDECAR_HTTP_PORT": "9101", "TT_SIDECAR_ZMQ_BIND": "tcp://0.0.0.0:6000"}
    )
    assert loaded.http_port == 9101 and loaded.zmq_bind == "tcp://0.0.0.0:6000"
    with pytest.raises(ValueError, match="TT_SIDECAR_HTTP_PORT"):
        sidecar_settings.load({"TT_SIDECAR_HTTP_PORT": "eighty"})
    dotenv = tmp_path / ".env"
    dotenv.write_text("# local\nexport TT_SIDECAR_HTTP_PORT='9202'\nTT_SIDECAR_LOG_LEVEL=debug\n")
    monkey = pytest.MonkeyPatch()
    monkey.delenv("TT_SIDECAR_HTTP_PORT", raising=False)
    monkey.setenv("TT_SIDECAR_LOG_LEVEL", "warning")  # the environment wins over .env
    try:
        from_file = sidecar_settings.load(None, dotenv)
    finally:
        monkey.undo()
    assert from_file.http_port == 9202 and from_file.log_level == "warning"


def test_reject_log_is_throttled_per_reason(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttle = ThrottledRejectLog(logging.getLogger("t"), interval_s=10, clock=lambda: now[0])
    bad_json = InvalidMessage(Reason.MALFORMED_JSON, "x")
    with caplog.at_level(logging.WARNING):
        for _ in range(1000):
            throttle.rejected(bad_json)
        throttle.rejected(InvalidMessage(Reason.INVALID_QTY, "y"))
        now[0] = 11.0
        throttle.rejected(bad_json)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "999 more" in messages[2]


def test_reject_log_lines_stay_short_whatever_the_input(caplog: pytest.LogCaptureFixture) -> None:
    from telemetry_contract.codec import decode

    huge_side = b'{"type":"trade","side":"' + b"s" * 60_000 + b'","qty":1,"ts":1}'
    with pytest.raises(InvalidMessage) as caught:
        decode(huge_side)
    throttle = ThrottledRejectLog(logging.getLogger("t"))
    with caplog.at_level(logging.WARNING):
        throttle.rejected(caught.value)
    (record,) = caplog.records
    assert len(record.getMessage()) < 400
    assert "invalid_side" in record.getMessage()
