"""The chart's PrometheusRule: deploy/prometheus/alerts.yml with the chart's settings applied.

The template changes two things (alerts.yml's header says which): the runbook_url base, and
the opt-in trading-hours group of TradingNoTrades with its window from values. Rendered by the
real Helm engine; the rendered rules are checked by promtool, so a window the template writes
is valid PromQL, not just valid YAML.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from chart_support import ALERTS_FILE, CHART_DIR, render

TRADING_HOURS_GROUP = "trading-telemetry-trading-hours"
OPENED_AT = "trading_telemetry:trading_hours:opened_at_seconds"


@pytest.fixture(scope="module")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(CHART_DIR) as loaded:
        yield loaded


def groups(chart: helm_python.Chart, rule_values: dict[str, Any]) -> list[dict[str, Any]]:
    (rule,) = render(chart, {"prometheusRule": rule_values}).kinds("PrometheusRule")
    found: list[dict[str, Any]] = rule["spec"]["groups"]
    return found


def by_name(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {rule.get("alert") or rule["record"]: rule for group in found for rule in group["rules"]}


def words(expr: str) -> str:
    return " ".join(expr.split())


def test_no_trades_is_opt_in(chart: helm_python.Chart) -> None:
    assert "TradingNoTrades" not in by_name(groups(chart, {}))
    assert "TradingNoTrades" in by_name(groups(chart, {"noTrades": {"enabled": True}}))
    file_groups = [g["name"] for g in yaml.safe_load(ALERTS_FILE.read_text())["groups"]]
    assert TRADING_HOURS_GROUP in file_groups  # the name the template drops is the file's


def test_the_default_window_renders_exactly_as_alerts_yml_writes_it(
    chart: helm_python.Chart,
) -> None:
    """So the promtool tests of the file test what the chart ships by default."""
    rendered = by_name(groups(chart, {"noTrades": {"enabled": True}}))
    written = by_name(yaml.safe_load(ALERTS_FILE.read_text())["groups"])
    assert words(rendered[OPENED_AT]["expr"]) == words(written[OPENED_AT]["expr"])
    assert rendered["TradingNoTrades"] == written["TradingNoTrades"]


def test_the_window_comes_from_values(chart: helm_python.Chart) -> None:
    window = {"enabled": True, "days": [0, 6], "open": "08:05", "close": "16:30"}
    expr = words(by_name(groups(chart, {"noTrades": window}))[OPENED_AT]["expr"])
    assert "- 485) * 60" in expr  # 08:05 is minute 485
    assert "(day_of_week() == 0 or day_of_week() == 6)" in expr
    assert ">= 485 < 990" in expr  # 16:30 is minute 990


@pytest.mark.prometheus
def test_promtool_accepts_a_rendered_window(chart: helm_python.Chart, tmp_path: Path) -> None:
    window = {"enabled": True, "days": [2], "open": "00:00", "close": "23:59"}
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups(chart, {"noTrades": window})}))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: make system-deps (Debian package prometheus)"
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_session_that_closes_before_it_opens_fails_the_install(
    chart: helm_python.Chart,
) -> None:
    with pytest.raises(Exception, match="close must be after open"):
        render(chart, {"prometheusRule": {"noTrades": {"enabled": True, "open": "20:00",
                                                        "close": "13:30"}}})  # fmt: skip


@pytest.mark.parametrize(
    "bad",
    [
        {"noTrades": {"open": "24:00"}},
        {"noTrades": {"close": "9:30"}},
        {"noTrades": {"days": [7]}},
        {"noTrades": {"days": []}},
        {"noTrades": {"hours": "9-17"}},
        {"runbookBaseUrl": "docs/operations.md"},
    ],
)
def test_the_schema_refuses_bad_settings(chart: helm_python.Chart, bad: dict[str, Any]) -> None:
    with pytest.raises(Exception, match="(?i)schema|values"):
        render(chart, {"prometheusRule": bad})


def test_runbook_urls_point_where_the_docs_are_published(chart: helm_python.Chart) -> None:
    base = "https://docs.example.org/trading/operations.html"
    found = by_name(groups(chart, {"runbookBaseUrl": base, "noTrades": {"enabled": True}}))
    written = by_name(yaml.safe_load(ALERTS_FILE.read_text())["groups"])
    alerts = [name for name, rule in found.items() if "alert" in rule]
    assert len(alerts) >= 10
    for name in alerts:
        anchor = written[name]["annotations"]["runbook_url"].split("#", 1)[1]
        assert found[name]["annotations"]["runbook_url"] == f"{base}#{anchor}"
