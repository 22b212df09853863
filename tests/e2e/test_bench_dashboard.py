"""dashboards/benchmark.json against what the sidecar really exports, and a real Prometheus.

Real BenchmarkResult rows for every mode (made by the benchmark's own row builder and
sent by its own delivery code) go to a real sidecar; then every query of the dashboard
must name only series in metric_names.ALL, every one of those must be in the sidecar's
/metrics, and, in a real Prometheus scraping that sidecar, every query must return data.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from prometheus_local import TEMPLATE, start_prometheus, wait_ready, write_config
from support import (
    GRAFANA_TEST_VARIABLES,
    ROOT,
    TARGET_LABELS,
    Proc,
    Sidecar,
    dashboard_exprs,
    dashboard_panels,
    expand_grafana_variables,
    free_port,
    label_target,
    new_sidecar,
    promql_metric_names,
    scoped_variables,
    value,
    wait_for,
)
from telemetry_contract import metric_names as names
from telemetry_contract.events import BenchMode
from trading_bench import report
from trading_bench.latency import Percentiles
from trading_bench.rows import Row, make_row

DASHBOARD = ROOT / "dashboards" / "benchmark.json"
RUN_ID = "dash-1"
VARIABLES = {**GRAFANA_TEST_VARIABLES, "run_id": ".+"}
BENCH_NAMES = {
    names.BENCH_RESULTS, names.BENCH_LATENCY, names.BENCH_RATE, names.BENCH_TARGET_RATE,
    names.BENCH_EVENTS, names.BENCH_ELAPSED, names.BENCH_FINISHED, names.BENCH_TRADES,
    names.BENCH_LOST, names.BENCH_RUN,
}  # fmt: skip


def legend(fmt: str, labels: dict[str, str]) -> str:
    """Grafana's legendFormat: ``{{label}}`` replaced by the series' label value."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)


def override_names(panel: dict[str, Any]) -> list[str]:
    return [
        o["matcher"]["options"]
        for o in panel.get("fieldConfig", {}).get("overrides", [])
        if o["matcher"]["id"] == "byName"
    ]


def thresholds_for(panel: dict[str, Any], name: str | None = None) -> list[dict[str, Any]]:
    """The threshold steps that colour series ``name`` (its override, else the default)."""
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        if o["matcher"] == {"id": "byName", "options": name}:
            for prop in o["properties"]:
                if prop["id"] == "thresholds":
                    steps: list[dict[str, Any]] = prop["value"]["steps"]
                    return steps
    default: list[dict[str, Any]] = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return default


def colour(steps: list[dict[str, Any]], number: float) -> str:
    """The colour Grafana gives ``number``: the last step whose value it reaches."""
    found = steps[0]["color"]
    for step in steps[1:]:
        if number >= step["value"]:
            found = step["color"]
    return str(found)


#: panel title → series → (a value that meets the target, one that misses it).
TARGET_COLOURS: dict[str, dict[str | None, tuple[float, float]]] = {
    "hotpath net p50 relative to prometheus_client": {
        "client": (0.25, 0.3),
        "client-unbatched": (0.7, 0.8),
    },
    "burst outcome": {"dropped": (0, 1), "lost": (0, 3)},
    "sustained: achieved / target rate": {None: (0.995, 0.95)},
    "sustained: end-to-end p99 (bucket upper bound)": {"e2e-10000": (250e-6, 500e-6)},
    "ingest relative to the sidecar": {"raw-recv": (1.9, 2.5), "naive-json-prometheus": (0.3, 0.5)},
    "Benchmark events lost": {None: (0, 1)},
}


def test_a_missed_target_is_red_and_a_met_one_green() -> None:
    panels = {p["title"]: p for p in dashboard_panels(load())}
    for title, series in TARGET_COLOURS.items():
        panel = panels[title]
        assert panel["fieldConfig"]["defaults"]["color"] == {"mode": "thresholds"}, title
        for name, (meets, misses) in series.items():
            steps = thresholds_for(panel, name)
            assert colour(steps, meets) == "green", (title, name, meets, steps)
            assert colour(steps, misses) == "red", (title, name, misses, steps)
    # Sustained: too fast misses the 1% target as much as too slow.
    steps = thresholds_for(panels["sustained: achieved / target rate"])
    assert colour(steps, 1.05) == "red"


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def one_run() -> list[Row]:
    """A row for every mode/variant the dashboard singles out."""
    now = time.time()
    lat = Percentiles(100, 1.0, 2.0, 3.0, 4.0, 5.0)

    def row(mode: BenchMode, variant: str, target: float = 0.0, latency: Percentiles = lat) -> Row:
        return make_row(run_id=RUN_ID, mode=mode, variant=variant, events=100, sent=100,
                        received=100, lost=0, elapsed_s=0.5, target_rate=target,
                        latency=latency, started_at=now)  # fmt: skip

    # The empty timed call: cheaper than any real variant, so net values are > 0.
    empty = Percentiles(100, 0.05, 0.06, 0.1, 0.2, 1.0)
    return [
        row("hotpath", "empty", latency=empty), row("hotpath", "floor"),
        row("hotpath", "client"), row("hotpath", "client-unbatched"),
        row("hotpath", "prometheus-client"), row("burst", "client"),
        row("sustained", "client-10000", 10_000.0), row("sustained", "e2e-10000", 10_000.0),
        row("ingest", "raw-recv"), row("ingest", "sidecar"),
        row("ingest", "naive-json-prometheus"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    sidecar = new_sidecar().start(tmp_path_factory.mktemp("bench-dash"))
    try:
        rows = one_run()
        report.deliver(sidecar.zmq_address, rows)
        wait_for(
            lambda: value(sidecar.scrape(), names.BENCH_RESULTS) == len(rows),
            what="the benchmark rows counted",
        )
        yield sidecar
    finally:
        assert sidecar.stop() == 0


def test_dashboard_identity_and_variables() -> None:
    dashboard = load()
    assert dashboard["uid"] == "trading-telemetry-benchmark"
    ids = [p["id"] for p in dashboard_panels(dashboard)]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "job", "run_id"} <= variables
    for panel in dashboard_panels(dashboard):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_units_are_grafanas_own_and_unknown_counts_say_so() -> None:
    """Rates in ops, latencies in seconds (Grafana scales to µs), no custom unit like "x"."""
    panels = {p["title"]: p for p in dashboard_panels(load()) if p["type"] != "row"}
    units = {title: p["fieldConfig"]["defaults"]["unit"] for title, p in panels.items()}
    assert units["ingest rate per consumer"] == "ops"
    assert not {"x", "µs"} & set(units.values()), units
    for title, panel in panels.items():
        used: set[str] = set()
        for target in panel["targets"]:
            used |= promql_metric_names(expand_grafana_variables(target["expr"], VARIABLES))
        if names.BENCH_LATENCY in used:  # a latency in seconds, or a ratio of two
            assert units[title] == ("percentunit" if "relative" in title else "s"), title
        if names.BENCH_EVENTS in used:
            mappings = panel["fieldConfig"]["defaults"]["mappings"]
            assert {"type": "value", "options": {"-1": {"text": "unknown", "index": 0}}} in (
                mappings
            ), title


def test_every_query_is_scoped_by_job_namespace_and_pod() -> None:
    variables = {v["name"]: v for v in load()["templating"]["list"]}
    for name in ("namespace", "pod"):
        assert variables[name]["multi"] and variables[name]["includeAll"]
        assert variables[name]["allValue"] == VARIABLES[name]
    scope = 'job=~"$job",namespace=~"$namespace",pod=~"$pod"'
    for where, expr in dashboard_exprs(load()):
        selectors = re.findall(r"\{([^}]*)\}", expr)
        assert selectors and all(s.startswith(scope) for s in selectors), (where, expr)


def test_every_query_names_only_exported_series(fed: Sidecar) -> None:
    exported = set(names.ALL)
    scraped = {name for name, _ in fed.scrape()}
    used: set[str] = set()
    for where, expr in dashboard_exprs(load()):
        found = promql_metric_names(expand_grafana_variables(expr, VARIABLES))
        assert found, where
        assert found <= exported, f"{where}: {found - exported} not in metric_names.ALL"
        assert found <= scraped, f"{where}: {found - scraped} not in the sidecar's /metrics"
        used |= found
    assert BENCH_NAMES <= used, f"benchmark series no panel shows: {BENCH_NAMES - used}"


@pytest.mark.prometheus
def test_every_query_returns_data_in_prometheus(fed: Sidecar, tmp_path: Path) -> None:
    config = write_config(TEMPLATE, tmp_path / "prometheus.yml", f"127.0.0.1:{fed.http_port}")
    label_target(config)
    port = free_port()
    log = tmp_path / "prometheus.log"
    prometheus = Proc(start_prometheus(config, port, tmp_path / "data", log), log, "prometheus")
    url = f"http://127.0.0.1:{port}"

    def query(expr: str) -> list[dict[str, Any]]:
        body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    try:
        wait_ready(url, process=prometheus.process)
        wait_for(lambda: query(names.BENCH_RESULTS), timeout=30, what="a scrape of the sidecar")
        empty = []
        for where, expr in dashboard_exprs(load()):
            promql = expand_grafana_variables(expr, VARIABLES)
            values = [float(r["value"][1]) for r in query(promql)]
            if not values or all(math.isnan(v) for v in values):
                empty.append(f"{where}: {promql}")
        assert not empty, "queries without data:\n" + "\n".join(empty)

        # The namespace and pod variables filter: the sidecar's own keep every row,
        # another namespace shows nothing.
        mine = {**scoped_variables(**TARGET_LABELS), "run_id": ".+"}
        other = {**scoped_variables(namespace="ns-b"), "run_id": ".+"}
        for where, expr in dashboard_exprs(load()):
            assert query(expand_grafana_variables(expr, mine)), where
            assert not query(expand_grafana_variables(expr, other)), where

        # A threshold override must name a series the panel really draws, or a missed
        # target would stay uncoloured without anyone noticing.
        for panel in dashboard_panels(load()):
            drawn = {
                legend(target.get("legendFormat", ""), r["metric"])
                for target in panel.get("targets", [])
                for r in query(expand_grafana_variables(target["expr"], VARIABLES))
            }
            for name in override_names(panel):
                assert name in drawn, f"{panel['title']}: override {name!r}, drawn {drawn}"
    finally:
        assert prometheus.stop() == 0, prometheus.log()
