"""Exporter basics and the probe-only port: process_*/python_*, build info, loop health."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient
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


def test_probe_port_is_off_unless_set() -> None:
    """Off by default, so a second local sidecar needs only its own two ports; the chart
    sets the contract's probe port (tests/unit/chart)."""
    assert SidecarSettings().probe_port == 0
    loaded = sidecar_settings.load(
        {
            "TT_SIDECAR_PROBE_PORT": str(DEFAULT_SIDECAR_PROBE_PORT),
            "TT_SIDECAR_ALERT_INVALID_RATIO": "0.5",
        }
    )
    assert loaded.probe_port == DEFAULT_SIDECAR_PROBE_PORT and loaded.alert_invalid_ratio == 0.5
