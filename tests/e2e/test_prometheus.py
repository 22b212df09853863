"""The real Debian Prometheus against a real sidecar: config, scraping, every dashboard query.

One Prometheus and one sidecar serve the whole module (starting Prometheus is the slow
part); each test publishes its own events and compares against what the sidecar itself
reports at that moment, so the tests do not depend on their order.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import yaml
import zmq
from prometheus_local import (
    COMPOSE_CONFIG,
    COMPOSE_TARGET,
    TEMPLATE,
    render,
    start_prometheus,
    wait_ready,
    write_config,
)
from support import (
    ROOT,
    TARGET_LABELS,
    Proc,
    Samples,
    Sidecar,
    dashboard_exprs,
    expand_grafana_variables,
    free_port,
    label_target,
    new_sidecar,
    scoped_variables,
    value,
    wait_for,
)
from telemetry_contract import metric_names as names
from telemetry_contract.codec import encode_trade
from telemetry_contract.errors import Reason
from trading_publisher.client import Publisher
from trading_publisher.metrics_reader import SidecarStatus, TotalsSource

DASHBOARD = ROOT / "dashboards" / "trading-telemetry.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
JOB = "trading-sidecar"
#: Upper bound on any wait for Prometheus to catch up; a bound, not an expectation.
CATCH_UP_TIMEOUT = 30.0


#: Frames the sidecar must refuse, one per reason exercised, so the invalid panels have data.
MALFORMED: list[tuple[bytes, Reason]] = [
    (b"{not json", Reason.MALFORMED_JSON),
    (b'{"type":"trade","side":"hold","qty":1,"ts":1}', Reason.INVALID_SIDE),
    (b'{"type":"trade","side":"buy","qty":-1,"ts":1}', Reason.INVALID_QTY),
]


# --- rendering and promtool: no server needed -------------------------------------------


def test_render_swaps_only_the_target() -> None:
    template = TEMPLATE.read_text()
    rendered = render(template, "127.0.0.1:1234")
    assert rendered.count("127.0.0.1:1234") == 2  # header + targets line
    assert "127.0.0.1:8001" not in rendered
    body = rendered.split("\n", 2)[2]  # the generated header is two comment lines
    assert body.splitlines() == [
        line.replace('"127.0.0.1:8001"', '"127.0.0.1:1234"') for line in template.splitlines()
    ]
    for bad in ("127.0.0.1", 'a"]:1', "host:port", "a b:1"):
        with pytest.raises(ValueError, match="host:port"):
            render(template, bad)
    doubled = template + '      - targets: ["127.0.0.1:9"]\n'
    with pytest.raises(ValueError, match="exactly one targets line, found 2"):
        render(doubled, "127.0.0.1:1234")


def test_committed_compose_config_is_the_template_rendered(tmp_path: Path) -> None:
    """docker-compose.infra.yml mounts this file; it must not drift from the template."""
    fresh = render(TEMPLATE.read_text(), COMPOSE_TARGET)  # beside the template: rules relative
    assert COMPOSE_CONFIG.read_text() == fresh, "run: python scripts/prometheus_local.py render"
    assert "\n  - alerts.yml\n" in fresh


def test_renderings_elsewhere_read_the_one_rules_file(tmp_path: Path) -> None:
    rendered = write_config(TEMPLATE, tmp_path / "prometheus.yml", "127.0.0.1:1234").read_text()
    rules = TEMPLATE.parent.resolve() / "alerts.yml"
    assert f"\n  - {rules}\n" in rendered
    assert rendered.count("alerts.yml") == 1


@pytest.mark.prometheus
def test_promtool_accepts_the_template_and_its_renderings(tmp_path: Path) -> None:
    rendered = write_config(TEMPLATE, tmp_path / "rendered.yml", "localhost:18001")
    for config in (TEMPLATE, COMPOSE_CONFIG, rendered):
        result = subprocess.run(
            ["promtool", "check", "config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{config}:\n{result.stdout}{result.stderr}"
        assert "SUCCESS" in result.stdout + result.stderr


# --- a real Prometheus scraping a real sidecar ------------------------------------------


@dataclass
class Stack:
    sidecar: Sidecar
    prometheus: Proc
    url: str

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Result of an instant query; fails on anything but ``status: success``."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        response = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, expr: str) -> float | None:
        """The single value of ``expr``, or ``None`` while it has no data."""
        result = self.query(expr)
        if not result:
            return None
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("prometheus")
    sidecar = new_sidecar().start(workdir)
    config = write_config(TEMPLATE, workdir / "prometheus.yml", f"127.0.0.1:{sidecar.http_port}")
    label_target(config)
    port = free_port()
    log_path = workdir / "prometheus.log"
    prometheus = Proc(
        start_prometheus(config, port, workdir / "data", log_path), log_path, "prometheus"
    )
    running = Stack(sidecar, prometheus, f"http://127.0.0.1:{port}")
    try:
        try:
            wait_ready(running.url, process=prometheus.process)
            # Prometheus applies discovered targets on a 5 s tick, so the first scrape
            # comes about 5 s after it is ready: the bulk of this module's run time.
            wait_for(
                lambda: running.scalar(f'up{{job="{JOB}"}}') == 1.0,
                timeout=CATCH_UP_TIMEOUT,
                what="Prometheus scraping the sidecar",
            )
        except (AssertionError, RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\nprometheus log:\n{prometheus.log()}") from None
        yield running
    finally:
        code = prometheus.stop(15)
        sidecar_code = sidecar.stop()
    assert code == 0, f"prometheus exited {code} on SIGTERM:\n{prometheus.log()}"
    assert sidecar_code == 0, f"sidecar exited {sidecar_code} on SIGTERM"


def trades_sum(samples: Samples) -> float:
    return sum(value(samples, names.TRADES, side=side) for side in ("buy", "sell"))


def publish(sidecar: Sidecar, trades: int, tag: str) -> Samples:
    """``trades`` trades from the real client, plus a seq gap and malformed frames.

    Returns the sidecar's own metrics once it has counted all of it: the numbers that
    Prometheus must end up with.
    """
    before = sidecar.scrape()
    with Publisher(sidecar.zmq_address, source=f"prom-{tag}") as publisher:
        for i in range(trades):
            assert publisher.trade("buy" if i % 3 else "sell", 0.5 + i % 7)
    context = zmq.Context()
    raw = context.socket(zmq.PUSH)
    raw.setsockopt(zmq.LINGER, 2000)
    raw.connect(sidecar.zmq_address)
    try:
        # seq 0 then 3 from one source: the sidecar counts seq 1 and 2 as lost.
        raw.send(encode_trade("buy", 1.0, time.time(), src=f"gap-{tag}", seq=0))
        raw.send(encode_trade("sell", 2.0, time.time(), src=f"gap-{tag}", seq=3))
        for frame, _ in MALFORMED:
            raw.send(frame)
    finally:
        raw.close()
        context.term()

    invalid_before = sum(value(before, names.INVALID, reason=r.value) for _, r in MALFORMED)

    def counted() -> Samples | None:
        now = sidecar.scrape()
        invalid = sum(value(now, names.INVALID, reason=r.value) for _, r in MALFORMED)
        done = (
            trades_sum(now) == trades_sum(before) + trades + 2
            and value(now, names.LOST) == value(before, names.LOST) + 2
            and invalid == invalid_before + len(MALFORMED)
        )
        return now if done else None

    return wait_for(counted, what="the sidecar counting everything published")


def sums_by_scrape(matrix: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """``[(scrape timestamp, sum over the series)]`` from a range-vector query, in order."""
    totals: dict[float, float] = {}
    for series in matrix:
        for timestamp, sample in series["values"]:
            totals[float(timestamp)] = totals.get(float(timestamp), 0.0) + float(sample)
    return sorted(totals.items())


@pytest.mark.prometheus
def test_prometheus_has_every_trade_within_two_scrapes_of_the_sidecar(stack: Stack) -> None:
    expected = publish(stack.sidecar, trades=500, tag="count")
    total = trades_sum(expected)
    seen_at = time.time()  # the sidecar showed every trade by now

    def scrapes_since() -> list[float] | None:
        matrix = stack.query(f'{names.TRADES}{{job="{JOB}"}}[{CATCH_UP_TIMEOUT + 30:.0f}s]')
        after = [s for t, s in sums_by_scrape(matrix) if t > seen_at]
        return after if (total in after or len(after) >= 2) else None

    after = wait_for(scrapes_since, timeout=CATCH_UP_TIMEOUT, what="two scrapes after publishing")
    # Counted in scrapes, not seconds: the value may lag the sidecar by one scrape in flight.
    assert total in after[:2], f"sidecar has {total}, Prometheus scrapes after it: {after}"
    assert all(s == total for s in after[after.index(total) :]), after

    assert stack.scalar(f"sum({names.TRADES})") == total
    for side in ("buy", "sell"):
        got = stack.scalar(f'{names.TRADES}{{side="{side}"}}')
        assert got == value(expected, names.TRADES, side=side)
        got = stack.scalar(f'{names.VOLUME}{{side="{side}"}}')
        assert got == pytest.approx(value(expected, names.VOLUME, side=side))
    assert stack.scalar(f"sum({names.LOST})") == value(expected, names.LOST)
    for _, reason in MALFORMED:
        got = stack.scalar(f'{names.INVALID}{{reason="{reason.value}"}}')
        assert got == value(expected, names.INVALID, reason=reason.value)
    latency_count = stack.scalar(f"{names.E2E_LATENCY}_count")
    assert latency_count == value(expected, f"{names.E2E_LATENCY}_count") == total


@pytest.mark.prometheus
def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    expected = publish(stack.sidecar, trades=200, tag="dashboard")
    total = trades_sum(expected)
    lost = value(expected, names.LOST)
    # Prometheus has scraped all of it, so the last two scrapes in any rate() window
    # straddle the new events and every rate, quantile and "> 0" filter has something.
    wait_for(
        lambda: (
            stack.scalar(f"sum({names.TRADES})") == total
            and stack.scalar(f"sum({names.LOST})") == lost
        ),
        timeout=CATCH_UP_TIMEOUT,
        what="Prometheus catching up with the sidecar",
    )

    exprs = dashboard_exprs(json.loads(DASHBOARD.read_text()))
    assert exprs
    empty: list[str] = []
    for where, expr in exprs:
        promql = expand_grafana_variables(expr)
        result = stack.query(promql)
        values = [float(r["value"][1]) for r in result]
        if not values or all(math.isnan(v) for v in values):
            empty.append(f"{where}: {promql} -> {result}")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)


@pytest.mark.prometheus
def test_the_namespace_and_pod_variables_filter_every_query(stack: Stack) -> None:
    """Selecting the sidecar's own namespace and pod keeps its data; another hides it all."""
    publish(stack.sidecar, trades=20, tag="scope")
    wait_for(
        lambda: stack.scalar(f'sum({names.LOST}{{namespace="ns-a"}})') is not None,
        timeout=CATCH_UP_TIMEOUT,
        what="Prometheus scraping the labelled target",
    )
    exprs = dashboard_exprs(json.loads(DASHBOARD.read_text()))
    mine = scoped_variables(**TARGET_LABELS)
    other = scoped_variables(namespace="ns-b")
    shown: list[str] = []
    missing: list[str] = []
    for where, expr in exprs:
        mine_values = [
            float(r["value"][1]) for r in stack.query(expand_grafana_variables(expr, mine))
        ]
        if not mine_values or all(math.isnan(v) for v in mine_values):
            missing.append(where)
        if stack.query(expand_grafana_variables(expr, other)):
            shown.append(where)
    assert not missing, f"no data with the sidecar's own namespace/pod selected: {missing}"
    assert not shown, f"data from outside the selected namespace: {shown}"


@pytest.mark.prometheus
def test_alert_rules_load_evaluate_cleanly_and_fire_on_a_real_gap(stack: Stack) -> None:
    """The rules file of `make run`, evaluated on real scrapes: no rule errors, and the
    seq gap publish() makes turns TradingEventsLost on while the sidecar-down ones stay off.
    """
    alerts = {
        rule.get("alert") or rule["record"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }
    publish(stack.sidecar, trades=20, tag="alerts")

    def evaluated() -> list[dict[str, Any]] | None:
        body = httpx.get(f"{stack.url}/api/v1/rules", timeout=10).json()
        rules = [rule for group in body["data"]["groups"] for rule in group["rules"]]
        done = all(rule.get("lastEvaluation", "").startswith("20") for rule in rules)
        return rules if rules and done else None

    rules = wait_for(evaluated, timeout=CATCH_UP_TIMEOUT, what="every rule evaluated")
    assert {rule["name"] for rule in rules} == alerts
    broken = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"]
    assert not broken, broken

    def firing() -> set[str] | None:
        active = {r["metric"]["alertname"] for r in stack.query('ALERTS{alertstate="firing"}')}
        return active if "TradingEventsLost" in active else None

    active = wait_for(firing, timeout=CATCH_UP_TIMEOUT, what="TradingEventsLost firing")
    quiet = {"TradingSidecarDown", "TradingSidecarAbsent", "TradingReceiveLoopUnhealthy"}
    assert not active & quiet, active
    pending_or_firing = {r["metric"]["alertname"] for r in stack.query("ALERTS")}
    assert not pending_or_firing & quiet, pending_or_firing


@pytest.mark.prometheus
def test_the_ui_reads_the_same_totals_from_prometheus(stack: Stack) -> None:
    """TT_PUBLISHER_PROMETHEUS_URL: totals as Prometheus sums them over every replica."""
    expected = publish(stack.sidecar, trades=50, tag="ui-source")
    total = trades_sum(expected)
    source = TotalsSource.from_settings(stack.sidecar.url, prometheus_url=stack.url)

    def caught_up() -> SidecarStatus | None:
        status = source.read(timeout=5)
        return status if status.reachable and sum(status.trades.values()) == total else None

    status = wait_for(caught_up, timeout=CATCH_UP_TIMEOUT, what="Prometheus totals catching up")
    direct = TotalsSource.from_settings(stack.sidecar.url).read(timeout=5)
    assert dict(status.trades) == dict(direct.trades)
    assert dict(status.volume) == pytest.approx(dict(direct.volume))
    assert status.lost == direct.lost and status.invalid_total == direct.invalid_total
    assert status.last_trade_ts == direct.last_trade_ts
    assert status.replicas_up == 1
