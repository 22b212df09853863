"""What every Prometheus exporter is expected to carry, beside the trade series.

- ``process_*`` (CPU, memory, open fds, start time) and ``python_*`` (interpreter info,
  garbage collector) from prometheus_client's own collectors: restarts show up as a new
  ``process_start_time_seconds`` and leaks as a climbing ``process_resident_memory_bytes``.
- ``trading_telemetry_build_info{version=...} 1``: which release is running, from the
  installed package's metadata (never a second copy of the version string).
- ``telemetry_receiver_healthy``: 1 while the receive loop runs and checks in, the same
  check ``/healthz`` answers, so an alert can see what the kubelet sees.
- ``telemetry_alert_threshold{threshold=...}``: the alert thresholds this sidecar was
  configured with. The rules in deploy/prometheus/alerts.yml compare against these
  series, so one rules file serves every deployment and a threshold is changed where the
  sidecar is configured, not by editing (or copying) the rules.
- ``telemetry_curve_clients_denied_total``: publishers the CURVE allow-list refused
  (always 0 with CURVE off), so an intruder or a forgotten key rotation shows up.

Everything goes into the registry passed in: no hidden global, so tests and embedded
uses each see only their own process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from telemetry_contract import metric_names as names

#: The distribution whose version ``trading_telemetry_build_info`` reports.
DISTRIBUTION = "trading-sidecar"


def build_version() -> str:
    """The installed sidecar's version; ``unknown`` when run from a tree without metadata."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


class ExporterCollector(Collector):
    """Build info, receive-loop health and the configured alert thresholds."""

    def __init__(
        self,
        healthy: Callable[[], bool],
        thresholds: dict[str, float],
        build: str,
        curve_denied: Callable[[], int] = lambda: 0,
    ) -> None:
        unknown = set(thresholds) - set(names.ALERT_THRESHOLDS)
        missing = set(names.ALERT_THRESHOLDS) - set(thresholds)
        if unknown or missing:
            raise ValueError(
                f"alert thresholds: unknown {unknown or '{}'}, missing {missing or '{}'}"
            )
        self._healthy = healthy
        self._thresholds = dict(thresholds)
        self._build = build
        self._curve_denied = curve_denied

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            names.BUILD_INFO,
            "Always 1; the version label says which trading-sidecar release is running.",
            labels=["version"],
        )
        info.add_metric([self._build], 1)
        yield info
        yield GaugeMetricFamily(
            names.RECEIVER_HEALTHY,
            "1 while the ZeroMQ receive loop runs and checks in (what /healthz answers), else 0.",
            value=1 if self._healthy() else 0,
        )
        thresholds = GaugeMetricFamily(
            names.ALERT_THRESHOLD,
            "Alert thresholds this sidecar is configured with (TT_SIDECAR_ALERT_*), "
            "read by the rules in deploy/prometheus/alerts.yml.",
            labels=["threshold"],
        )
        for name in names.ALERT_THRESHOLDS:
            thresholds.add_metric([name], self._thresholds[name])
        yield thresholds
        yield CounterMetricFamily(
            names.CURVE_DENIED,
            "Publishers refused because their CURVE key is not in the allowed clients folder.",
            value=self._curve_denied(),
        )


def register_exporter(
    registry: CollectorRegistry,
    *,
    healthy: Callable[[], bool],
    thresholds: dict[str, float],
    build: str | None = None,
    curve_denied: Callable[[], int] = lambda: 0,
) -> ExporterCollector:
    """Register process_*, python_*, build info, loop health and thresholds in ``registry``.

    New instances of prometheus_client's process/platform/GC collectors, because the
    module-level ones are bound to its global default registry.
    """
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    collector = ExporterCollector(healthy, thresholds, build or build_version(), curve_denied)
    registry.register(collector)
    return collector
