"""deploy/prometheus/alerts.yml: valid, unit-tested both ways, and about real series only.

promtool does the checking and the rule unit tests (alerts.test.yml); this module runs it
and adds what promtool cannot know: every series a rule reads is one the sidecar really
serves, every alert has a firing and a silent test case, a runbook section exists at an
absolute URL, and the latency SLO bound is a bucket bound of the histogram.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import ROOT, Sidecar, promql_metric_names
from telemetry_contract import metric_names as names

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
CHART_VALUES = ROOT / "charts" / "trading-telemetry" / "values.yaml"
#: Series Prometheus itself makes for every target, not the sidecar.
SCRAPE_SERIES = {"up", "scrape_duration_seconds"}
#: kube-state-metrics' series, which the crash-loop and restart rules join on (namespace, pod).
KUBE_STATE_METRICS = {
    "kube_pod_container_status_waiting_reason",
    "kube_pod_container_status_restarts_total",
}
#: What the issue asks for, at least, by what each alert watches.
REQUIRED = {
    "TradingSidecarDown": "up",
    "TradingReceiveLoopUnhealthy": names.RECEIVER_HEALTHY,
    "TradingEventsLost": names.LOST,
    "TradingInvalidEventsHigh": names.INVALID,
    "TradingNoTrades": names.LAST_TRADE_TS,
    "TradingE2ELatencyBudgetBurnFast": "trading_telemetry:e2e_latency_slo_errors:ratio_rate1h",
    "TradingE2ELatencyBudgetBurnSlow": "trading_telemetry:e2e_latency_slo_errors:ratio_rate6h",
    "TradingSidecarCrashLooping": "kube_pod_container_status_waiting_reason",
    "TradingStateWriteFailing": "telemetry_state_write_failures_total",
    "TradingCurveClientsDenied": names.CURVE_DENIED,
    "TradingScrapeSlow": "scrape_duration_seconds",
}


def _all_rules() -> list[dict[str, Any]]:
    """Alerting and recording rules alike."""
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _rules() -> list[dict[str, Any]]:
    """The alerting rules."""
    return [rule for rule in _all_rules() if "alert" in rule]


def _recorded() -> set[str]:
    return {rule["record"] for rule in _all_rules() if "record" in rule}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: make system-deps (Debian package prometheus)"
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, cwd=RULES.parent
    )


@pytest.mark.prometheus
def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_all_rules())} rules found" in result.stdout


@pytest.mark.prometheus
def test_promtool_rule_unit_tests_pass() -> None:
    result = _promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.prometheus
def test_a_broken_expectation_fails_promtool(tmp_path: Path) -> None:
    """The unit tests can fail: the same file with one expectation flipped must."""
    shutil.copy(RULES, tmp_path / RULES.name)
    text = RULE_TESTS.read_text()
    flipped = text.replace("summary: Sidecar s1:8001 does not answer /metrics",
                           "summary: Sidecar s9:8001 does not answer /metrics", 1)  # fmt: skip
    assert flipped != text
    (tmp_path / RULE_TESTS.name).write_text(flipped)
    result = subprocess.run(
        ["promtool", "test", "rules", RULE_TESTS.name],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0 and "FAILED" in result.stdout + result.stderr


def test_the_required_alerts_exist_and_watch_what_they_should() -> None:
    rules = {rule["alert"]: rule for rule in _rules()}
    for alert, series in REQUIRED.items():
        assert alert in rules, f"missing alert {alert}"
        assert series in promql_metric_names(rules[alert]["expr"]), (alert, rules[alert]["expr"])
    assert rules["TradingEventsLost"]["expr"].strip() == (f"increase({names.LOST}[5m]) > 0")


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired: set[str] = set()
    silent: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = {rule["alert"] for rule in _rules()}
    assert alerts - fired == set(), "alerts never tested firing"
    assert alerts - silent == set(), "alerts never tested staying silent"


def test_every_alert_has_severity_summary_and_an_absolute_runbook_url() -> None:
    """runbook_url (kubernetes-mixin's annotation) at the chart's default docs address."""
    doc = OPERATIONS.read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", doc, re.M)
    }
    base = yaml.safe_load(CHART_VALUES.read_text())["prometheusRule"]["runbookBaseUrl"]
    assert base.startswith("https://") and base.endswith("/docs/operations.md")
    for rule in _rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert "runbook" not in rule["annotations"], "relative runbook paths are gone"
        runbook = rule["annotations"]["runbook_url"]
        assert runbook.startswith(base + "#"), runbook
        assert runbook.split("#", 1)[1] in anchors, f"{rule['alert']}: no section {runbook}"


def test_summaries_name_the_pod_not_its_address() -> None:
    for rule in _rules():
        summary = rule["annotations"]["summary"]
        if "$labels.instance" in summary:
            assert "{{ with $labels.pod }}{{ $labels.namespace }}/{{ . }}{{ else }}" in summary


def test_the_latency_slo_bound_is_written_once_and_is_a_bucket_bound() -> None:
    """The burn-rate rules count trades under le=<bound>: that bucket must exist."""
    bounds = [b for rule in _all_rules() for b in re.findall(r'le="([^"]+)"', rule["expr"])]
    assert len(bounds) == 1, bounds
    assert float(bounds[0]) in names.E2E_LATENCY_BUCKETS


def test_the_job_selector_is_the_contract_job_and_the_scrape_job() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == [names.SIDECAR_JOB]
    assert config["rule_files"] == [RULES.name]
    selectors = set(re.findall(r'job="([^"]*)"', RULES.read_text()))
    assert selectors == {names.SIDECAR_JOB, "kube-state-metrics"}


def test_every_series_in_a_rule_is_on_the_sidecars_metrics(sidecar: Sidecar) -> None:
    """Read from a real sidecar's /metrics, so process_* and friends count too."""
    served = {name for name, _labels in sidecar.scrape()}
    elsewhere = SCRAPE_SERIES | KUBE_STATE_METRICS | _recorded()
    used_anywhere: set[str] = set()
    for rule in _all_rules():
        used = promql_metric_names(rule["expr"]) - elsewhere
        missing = used - served
        assert not missing, f"{rule.get('alert', rule.get('record'))}: {missing} not on /metrics"
        used_anywhere |= used
    assert len(used_anywhere) >= 10  # the scan found names, not nothing
