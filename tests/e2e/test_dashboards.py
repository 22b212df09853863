"""Dashboard hygiene and the docker-compose infra wiring, without Grafana or Docker.

Neither Grafana nor a Docker engine runs here, so these tests check what would break
first when they do: a query naming a series the sidecar does not export, duplicate panel
ids, a data source hard-wired to one installation, a compose mount of a path that does
not exist, or a provisioning path that misses the mounted dashboards. Whether every query
actually returns data is checked against a real Prometheus in test_prometheus.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from support import (
    GRAFANA_TEST_VARIABLES,
    ROOT,
    dashboard_exprs,
    dashboard_panels,
    expand_grafana_variables,
    promql_metric_names,
)
from telemetry_contract import metric_names as names
from trading_sidecar.settings import SidecarSettings

DASHBOARD = ROOT / "dashboards" / "trading-telemetry.json"
COMPOSE = ROOT / "docker-compose.infra.yml"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
#: Besides the sidecar's own families: Prometheus's ``up`` for every target, and the
#: standard process collector's start time (for restarts).
EXPORTED = (
    frozenset(names.ALL)
    | {n + s for n in names.ALL for s in HISTOGRAM_SUFFIXES}
    | {"up", "process_start_time_seconds", "scrape_duration_seconds"}
)
#: The label matchers every query carries: the job, namespace and pod variables.
SCOPE = 'job=~"$job",namespace=~"$namespace",pod=~"$pod"'


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def test_dashboard_identity_and_unique_panel_ids() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "trading-telemetry"
    assert dashboard["title"]
    assert dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard_panels(dashboard)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    assert all(isinstance(i, int) for i in ids)


def test_every_query_goes_through_the_datasource_variable() -> None:
    """A hard-wired data source uid works in one Grafana and shows "not found" in others."""
    dashboard = load_dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    expected = {"type": "prometheus", "uid": "${datasource}"}
    queried = [p for p in dashboard_panels(dashboard) if p["type"] != "row"]
    assert queried
    for panel in queried:
        assert panel["datasource"] == expected, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == expected, panel["title"]
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == expected, variable["name"]


def test_every_metric_in_a_query_is_one_the_sidecar_exports() -> None:
    dashboard = load_dashboard()
    exprs = dashboard_exprs(dashboard)
    assert len(exprs) >= 8
    used: set[str] = set()
    for where, expr in exprs:
        found = promql_metric_names(expand_grafana_variables(expr))
        assert found, f"{where}: no metric found in {expr!r}"
        assert found <= EXPORTED, f"{where}: {sorted(found - EXPORTED)} not exported"
        used |= found
    # The panels the dashboard promises: one query at least for each of these series.
    for required in (
        names.TRADES, names.VOLUME, names.LAST_TRADE_TS, names.RECEIVED, names.INVALID,
        names.LOST, names.E2E_LATENCY + "_bucket",
    ):  # fmt: skip
        assert required in used, f"no panel queries {required}"
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            assert promql_metric_names(query) <= EXPORTED | {"job", "namespace", "pod"}
            assert names.TRADES in query


def test_latency_percentiles_come_from_the_histogram() -> None:
    exprs = [expr for _, expr in dashboard_exprs(load_dashboard())]
    quantiles = [e for e in exprs if "histogram_quantile" in e]
    assert any("histogram_quantile(0.5," in e for e in quantiles)
    assert any("histogram_quantile(0.99," in e for e in quantiles)
    assert all(f"{names.E2E_LATENCY}_bucket" in e and "by (le)" in e for e in quantiles)


def test_metric_name_scan_and_nested_rows() -> None:
    """The helpers the checks above rely on, on inputs whose answer is known."""
    assert promql_metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{job=~"x{y}"}[1m])))'
    ) == {"a_bucket"}
    assert promql_metric_names("sum(rate(a[5m])) / on (job) group_left b offset 1m > 0") == {
        "a",
        "b",
    }
    assert promql_metric_names("max(a > 0) * 1e3 + 2.5") == {"a"}
    nested = {
        "panels": [
            {
                "id": 1,
                "type": "row",
                "panels": [{"id": 2, "targets": [{"expr": "x", "refId": "A"}]}],
            },
            {"id": 3, "title": "t", "targets": [{"expr": "y", "refId": "B"}, {"refId": "C"}]},
        ]
    }
    assert [i["id"] for i in dashboard_panels(nested)] == [1, 2, 3]
    assert dashboard_exprs(nested) == [("2/A", "x"), ("t/B", "y")]


def test_grafana_variables_are_expanded_or_refused() -> None:
    assert expand_grafana_variables('rate(a{job=~"$job"}[$__rate_interval])') == (
        'rate(a{job=~".+"}[1m])'
    )
    assert expand_grafana_variables("a[${__interval}] [[__range]]") == "a[1m] 1m"
    with pytest.raises(KeyError, match="instance"):
        expand_grafana_variables('a{instance="$instance"}')


# --- docker-compose.infra.yml and Grafana provisioning -------------------------------


def load_yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path → repository path, for the service's ``./`` bind mounts."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            mounts[target] = ROOT / source
    return mounts


def container_file(mounts: dict[str, Path], container_path: str) -> Path:
    """The repository file a container path resolves to through the bind mounts."""
    wanted = PurePosixPath(container_path)
    for target, source in mounts.items():
        if wanted == PurePosixPath(target):
            return source
        if PurePosixPath(target) in wanted.parents:
            return source / wanted.relative_to(target)
    raise AssertionError(f"{container_path} is not under any bind mount: {sorted(mounts)}")


def test_every_bind_mount_exists_in_the_repository() -> None:
    services = load_yaml(COMPOSE)["services"]
    assert set(services) >= {"prometheus", "grafana"}
    for name, service in services.items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) is missing"


def test_compose_prometheus_scrapes_the_host_sidecar_with_the_rendered_config() -> None:
    prometheus = load_yaml(COMPOSE)["services"]["prometheus"]
    mounts = bind_mounts(prometheus)
    flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = container_file(mounts, flag.split("=", 1)[1])
    assert config_path == ROOT / "deploy" / "prometheus" / "prometheus.compose.yml"
    config = load_yaml(config_path)
    targets = [
        t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    ]
    assert len(targets) == 1
    host = targets[0].rsplit(":", 1)[0]
    assert f"{host}:host-gateway" in prometheus["extra_hosts"]


def test_grafana_provisions_the_datasource_and_the_dashboards_folder() -> None:
    services = load_yaml(COMPOSE)["services"]
    grafana = services["grafana"]
    mounts = bind_mounts(grafana)
    provisioning = container_file(mounts, "/etc/grafana/provisioning")
    assert provisioning == PROVISIONING

    datasources = [
        ds
        for path in sorted((provisioning / "datasources").glob("*.yml"))
        for ds in load_yaml(path)["datasources"]
    ]
    assert [ds["type"] for ds in datasources] == ["prometheus"]
    assert datasources[0]["isDefault"] is True
    # The URL must name the compose service and the port Prometheus listens on inside it.
    host_port = datasources[0]["url"].removeprefix("http://").rstrip("/")
    host, port = host_port.split(":")
    assert host in services
    assert any(p.endswith(f":{port}") for p in services[host]["ports"])

    providers = [
        provider
        for path in sorted((provisioning / "dashboards").glob("*.yml"))
        for provider in load_yaml(path)["providers"]
    ]
    assert providers, "no dashboard provider provisioned"
    folders = [container_file(mounts, p["options"]["path"]) for p in providers]
    assert ROOT / "dashboards" in folders, f"./dashboards is not provisioned: {folders}"
    assert DASHBOARD.parent == ROOT / "dashboards"

    home = container_file(
        mounts, grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    )
    assert home == DASHBOARD


def _panel(title: str) -> dict[str, Any]:
    return next(p for p in dashboard_panels(load_dashboard()) if p.get("title") == title)


@pytest.mark.parametrize("title", ["Trades by side", "Volume by side", "Lost events"])
def test_stat_panels_show_the_selected_range_beside_the_total(title: str) -> None:
    exprs = [t["expr"] for t in _panel(title)["targets"]]
    assert any("increase(" in e and "[$__range]" in e for e in exprs), exprs
    assert any("increase(" not in e for e in exprs), exprs
    assert all(e.startswith("sum") for e in exprs), "replicas must add up"
    assert "selected time range" in _panel(title)["description"]


def test_namespace_and_pod_are_multi_value_variables_with_all() -> None:
    """Two releases in one cluster must not be summed together: every query is scoped."""
    variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
    for name in ("namespace", "pod"):
        variable = variables[name]
        assert variable["type"] == "query" and variable["multi"] and variable["includeAll"]
        # ".*", not ".+": "All" must also match series without the label (make run).
        assert variable["allValue"] == GRAFANA_TEST_VARIABLES[name] == ".*"
        assert f", {name})" in variable["query"]["query"]
    assert "$namespace" in variables["pod"]["query"]["query"]  # pods of the chosen namespaces
    for where, expr in dashboard_exprs(load_dashboard()):
        selectors = re.findall(r"\{([^}]*)\}", expr)
        assert selectors, where
        assert all(s.startswith(SCOPE) for s in selectors), (where, expr)


def test_last_trade_survives_outages_matches_the_alert_and_shows_the_time() -> None:
    panel = _panel("Last trade")
    age, at = (t["expr"] for t in panel["targets"])
    # last_over_time over the range: stale series (sidecars down) still give the last value.
    assert f"last_over_time({names.LAST_TRADE_TS}{{" in age and "[$__range]" in age
    assert age.startswith("clamp_min(time() - max("), "a clock ahead must not go negative"
    assert at.endswith("* 1000")
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["unit"] == "s" and defaults["noValue"]
    steps = defaults["thresholds"]["steps"]
    assert [s["color"] for s in steps] == ["green", "#EAB839", "red"]
    # Red exactly where TradingNoTrades fires by default.
    assert steps[2]["value"] == SidecarSettings().alert_no_trades_seconds
    (override,) = panel["fieldConfig"]["overrides"]
    assert override["matcher"]["options"] == "last trade at"
    assert {"id": "unit", "value": "dateTimeAsIso"} in override["properties"]


def test_lost_events_colours_the_range_and_its_share_not_the_all_time_total() -> None:
    panel = _panel("Lost events")
    overrides = {
        o["matcher"]["options"]: o["properties"] for o in panel["fieldConfig"]["overrides"]
    }
    assert {"id": "color", "value": {"mode": "fixed", "fixedColor": "text"}} in overrides["total"]
    assert {"id": "unit", "value": "percentunit"} in overrides["share in range"]
    assert panel["fieldConfig"]["defaults"]["thresholds"]["steps"][-1] == {
        "color": "red",
        "value": 1,
    }


def test_sidecar_targets_up_is_a_share_red_below_all() -> None:
    panel = _panel("Sidecar targets up and restarts")
    up, restarts = (t["expr"] for t in panel["targets"])
    assert up.startswith("sum(up{") and "/ count(up{" in up
    assert "changes(process_start_time_seconds{" in restarts
    overrides = {
        o["matcher"]["options"]: o["properties"] for o in panel["fieldConfig"]["overrides"]
    }
    (steps,) = [p["value"]["steps"] for p in overrides["targets up"] if p["id"] == "thresholds"]
    assert steps == [{"color": "red", "value": None}, {"color": "green", "value": 1}]


def test_events_are_plotted_with_events_and_frames_apart() -> None:
    events = " ".join(t["expr"] for t in _panel("Events by outcome")["targets"])
    assert names.RECEIVED not in events
    assert {names.TRADES, names.BENCH_TRADES, names.INVALID} <= promql_metric_names(events)
    frames = " ".join(t["expr"] for t in _panel("Frames received")["targets"])
    assert promql_metric_names(frames) == {names.RECEIVED}


def test_alert_thresholds_are_drawn_on_the_panels_they_watch() -> None:
    rules = yaml.safe_load(RULES.read_text())
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    (bound,) = set(re.findall(r'le="([^"]+)"', exprs))
    latency = _panel("End-to-end latency")["fieldConfig"]["defaults"]
    assert latency["custom"]["thresholdsStyle"]["mode"] == "dashed"
    assert latency["thresholds"]["steps"][-1]["value"] == float(bound)
    sli = " ".join(t["expr"] for t in _panel("Trades within the latency SLO")["targets"])
    assert f'le="{bound}"' in sli
    refused = [t["expr"] for t in _panel("Refused share of events")["targets"]]
    assert any('threshold="invalid_ratio"' in e for e in refused)
    scrape = _panel("Scrape duration")["fieldConfig"]["defaults"]
    lines = [s["value"] for s in scrape["thresholds"]["steps"][1:]]
    (slow,) = re.findall(r"scrape_duration_seconds\{[^}]*\}\[5m\]\) > ([0-9.]+)", exprs)
    assert lines == [float(slow), 1.0]  # TradingScrapeSlow, then the 1 s scrapeTimeout


def test_receiver_health_curve_denials_and_build_version_have_panels() -> None:
    used = {
        name
        for _, expr in dashboard_exprs(load_dashboard())
        for name in promql_metric_names(expand_grafana_variables(expr))
    }
    assert {names.RECEIVER_HEALTHY, names.CURVE_DENIED, names.BUILD_INFO} <= used
