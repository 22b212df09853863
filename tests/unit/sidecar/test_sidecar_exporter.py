"""Exporter basics and the probe-only port: process_*/python_*, build info, loop health."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import httpx2 as httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient
from support import BIN, Sidecar, free_port, new_sidecar, start_process, value, wait_for
from telemetry_contract import metric_names as names
from telemetry_contract.ports import DEFAULT_SIDECAR_PROBE_PORT
from trading_sidecar import settings as sidecar_settings
from trading_sidecar.app import create_app
from trading_sidecar.exporter import ExporterCollector
from trading_sidecar.settings import SidecarSettings


def test_exporter_series_are_in_the_registry_passed_in() -> None:
    registry = CollectorRegistry()
    settings = SidecarSettings(zmq_bind="tcp://127.0.0.1:*", alert_no_trades_seconds=60.0)
    app = create_app(settings, registry=registry)
    with TestClient(app):
        assert registry.get_sample_value(names.RECEIVER_HEALTHY) == 1
        build = {"version": version("trading-sidecar")}
        assert registry.get_sample_value(names.BUILD_INFO, build) == 1
        assert registry.get_sample_value("process_start_time_seconds") is not None
        assert registry.get_sample_value("process_resident_memory_bytes") is not None
        gc = registry.get_sample_value("python_gc_collections_total", {"generation": "0"})
        assert gc is not None and gc >= 0
        threshold = names.ALERT_THRESHOLD
        assert registry.get_sample_value(threshold, {"threshold": "no_trades_seconds"}) == 60
        assert registry.get_sample_value(threshold, {"threshold": "e2e_p99_seconds"}) == 0.1
        assert registry.get_sample_value(threshold, {"threshold": "invalid_ratio"}) == 0.01
        assert registry.get_sample_value(names.CURVE_DENIED) == 0
        app.state.receiver.stop()
        assert registry.get_sample_value(names.RECEIVER_HEALTHY) == 0
    # A second app gets its own registry: nothing was registered globally.
    create_app(settings, registry=CollectorRegistry())


def test_thresholds_are_a_closed_set() -> None:
    with pytest.raises(ValueError, match="missing"):
        ExporterCollector(lambda: True, {"no_trades_seconds": 1.0}, "1")
    every = dict.fromkeys(names.ALERT_THRESHOLDS, 1.0)
    with pytest.raises(ValueError, match="unknown"):
        ExporterCollector(lambda: True, {**every, "made_up": 1.0}, "1")


def test_probe_port_setting_defaults_to_the_contract_port() -> None:
    assert SidecarSettings().probe_port == DEFAULT_SIDECAR_PROBE_PORT == 8003
    loaded = sidecar_settings.load(
        {"TT_SIDECAR_PROBE_PORT": "0", "TT_SIDECAR_ALERT_INVALID_RATIO": "0.5"}
    )
    assert loaded.probe_port == 0 and loaded.alert_invalid_ratio == 0.5


def test_process_serves_every_new_series_and_probes_on_their_own_port(sidecar: Sidecar) -> None:
    samples = sidecar.scrape()
    assert value(samples, names.RECEIVER_HEALTHY) == 1
    assert value(samples, names.BUILD_INFO, version=version("trading-sidecar")) == 1
    assert value(samples, "process_start_time_seconds") > 0
    assert any(name == "python_info" for name, _ in samples)
    probe = f"http://127.0.0.1:{sidecar.probe_port}"
    assert httpx.get(f"{probe}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{probe}/readyz", timeout=5).status_code == 200
    for path in ("/metrics", "/", "/healthz/", "/nope"):
        response = httpx.get(f"{probe}{path}", timeout=5)
        assert response.status_code == 404, path
        assert "trades_total" not in response.text
    # The main port still serves everything.
    assert httpx.get(f"{sidecar.url}/", timeout=5).status_code == 200


def test_probe_port_zero_opens_no_second_listener(tmp_path: Path) -> None:
    running = new_sidecar()
    running.probe_port = 0
    running.start(tmp_path)
    try:
        assert running.proc is not None
        log = running.proc.log().splitlines()
        listening = [line for line in log if "Uvicorn running on" in line]
        assert len(listening) == 1, log
    finally:
        assert running.stop() == 0


def test_probe_port_equal_to_http_port_is_refused(tmp_path: Path) -> None:
    port = free_port()
    proc = start_process(
        [str(BIN / "trading-sidecar")],
        tmp_path / "sidecar.log",
        {"TT_SIDECAR_HTTP_PORT": str(port), "TT_SIDECAR_PROBE_PORT": str(port),
         "TT_SIDECAR_ZMQ_BIND": f"tcp://127.0.0.1:{free_port()}"},
    )  # fmt: skip
    wait_for(lambda: proc.process.poll() is not None, timeout=30, what="sidecar to refuse")
    assert proc.process.returncode == 2
    assert "probe port must differ" in proc.log()
