"""The chart's container command lines, run for real on loopback.

A rendered Deployment can be schema-valid and still start a process that listens on the
wrong address, probes a path that does not exist, or passes flags the CLI rejects. Here the
exact commands and environment the chart renders are started as real processes, with only
the cluster addresses translated: 0.0.0.0 and Service DNS names become 127.0.0.1, and the
ports come from the chart's own values (free ones, chosen per run).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import helm_python
import httpx2 as httpx
import pytest
from chart_support import CHART_DIR, RELEASE, Obj, Rendered, container, env, render
from support import (
    BIN,
    Proc,
    free_port,
    parse_metrics,
    start_process,
    value,
    wait_for,
    wait_http_ok,
)
from telemetry_contract import decode
from telemetry_contract import metric_names as names
from telemetry_contract.events import BenchmarkResult
from trading_operator.job import render_job
from trading_operator.settings import PREFIX, load
from trading_operator.spec import parse_spec
from trading_publisher.client import Publisher

LOOPBACK = "127.0.0.1"


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"zmq": free_port(), "metrics": free_port(), "probe": free_port(), "ui": free_port()}


@pytest.fixture(scope="module")
def rendered(ports: dict[str, int]) -> Rendered:
    values = {
        "sidecar": {
            "zmqPort": ports["zmq"],
            "metricsPort": ports["metrics"],
            "probePort": ports["probe"],
        },
        "publisher": {"uiPort": ports["ui"]},
        "operator": {"enabled": True},
        "benchmark": {"enabled": True, "mode": "burst", "events": 2000},
        "tests": {"enabled": True},
    }
    with helm_python.Chart.load(CHART_DIR) as chart:
        return render(chart, values)


def fullname() -> str:
    return f"{RELEASE}-trading-telemetry"


def to_loopback(address: str) -> str:
    """tcp://<service>:port or http://<service>:port/... → the same on 127.0.0.1."""
    parts = urlsplit(address)
    assert parts.hostname and parts.port, address
    return urlunsplit(parts._replace(netloc=f"{LOOPBACK}:{parts.port}"))


def only(addresses: str) -> str:
    """The one address of a one-replica list (the default sidecar.replicas: 1)."""
    (address,) = addresses.split(",")
    return address


def loopback_env(c: Obj) -> dict[str, str]:
    """The container's env with every all-interfaces bind narrowed to loopback."""
    return {key: val.replace("0.0.0.0", LOOPBACK) for key, val in env(c).items()}


def executable(command: list[str]) -> list[str]:
    """The console script from this venv, as the image's PATH (/app/.venv/bin) resolves it."""
    script = BIN / command[0]
    assert script.exists(), f"{command[0]} is not a console script of this workspace"
    return [str(script), *command[1:]]


def probe_url(c: Obj, probe: str) -> str:
    get = c[probe]["httpGet"]
    named = {p["name"]: p["containerPort"] for p in c["ports"]}
    port = named[get["port"]] if isinstance(get["port"], str) else get["port"]
    return f"http://{LOOPBACK}:{port}{get['path']}"


@pytest.fixture(scope="module")
def sidecar(rendered: Rendered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """trading-sidecar started from the sidecar StatefulSet's command and env."""
    spec = container(rendered.get("StatefulSet", f"{fullname()}-sidecar"))
    proc = start_process(
        executable(spec["command"]),
        tmp_path_factory.mktemp("sidecar") / "sidecar.log",
        loopback_env(spec),
        name="trading-sidecar (chart)",
    )
    try:
        ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
        wait_http_ok(proc, f"http://{LOOPBACK}:{ports['http-metrics']}/readyz")
        yield proc
    finally:
        code = proc.stop()
        assert code == 0, f"sidecar exited {code} on SIGTERM, Kubernetes expects 0:\n{proc.log()}"


def test_sidecar_answers_its_probes_on_the_charts_probe_port(
    rendered: Rendered, sidecar: Proc, ports: dict[str, int]
) -> None:
    spec = container(rendered.get("StatefulSet", f"{fullname()}-sidecar"))
    for probe in ("livenessProbe", "readinessProbe"):
        url = probe_url(spec, probe)
        assert f":{ports['probe']}/" in url
        assert httpx.get(url, timeout=5).status_code == 200, url


def test_a_trade_sent_to_the_publishers_address_is_counted(
    rendered: Rendered, sidecar: Proc
) -> None:
    publisher_env = env(container(rendered.get("Deployment", f"{fullname()}-publisher")))
    metrics_url = to_loopback(only(publisher_env["TT_PUBLISHER_SIDECAR_URL"])) + "/metrics"
    address = to_loopback(only(publisher_env["TT_PUBLISHER_ZMQ_CONNECT"]))
    with Publisher(address, source="chart") as pub:
        assert pub.trade("buy", 2.5)

    def counted() -> bool:
        samples = parse_metrics(httpx.get(metrics_url, timeout=5).text)
        return value(samples, names.TRADES, side="buy") >= 1

    wait_for(counted, what="the trade on the sidecar's /metrics")


def helm_test_command(rendered: Rendered) -> list[str]:
    pod = rendered.get("Pod", f"{fullname()}-test-metrics")
    command: list[str] = container(pod)["command"]
    assert command[0] == "python"
    return command


def test_helm_test_pod_command_passes_against_the_sidecar(
    rendered: Rendered, sidecar: Proc
) -> None:
    command = helm_test_command(rendered)
    run = subprocess.run(
        [sys.executable, *command[1:-1], to_loopback(command[-1])],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "missing series: none" in run.stdout


def test_helm_test_pod_command_fails_when_metrics_are_not_there(
    rendered: Rendered, sidecar: Proc
) -> None:
    command = helm_test_command(rendered)
    not_metrics = to_loopback(command[-1]).replace("/metrics", "/healthz")
    run = subprocess.run(
        [sys.executable, *command[1:-1], not_metrics], capture_output=True, text=True, timeout=30
    )
    assert run.returncode != 0, run.stdout
    assert "missing series: none" not in run.stdout


def test_the_charts_benchmark_runs_as_the_operators_job_and_reports(
    rendered: Rendered, sidecar: Proc, tmp_path: Path
) -> None:
    """The chart's LatencyBenchmark, turned into the Job the operator would create with the
    chart's operator env; its argv run with only the addresses and writable paths translated."""
    benchmark = rendered.get("LatencyBenchmark", f"{fullname()}-bench-1")
    operator = env(container(rendered.get("Deployment", f"{fullname()}-operator")))
    settings = load({k: v for k, v in operator.items() if k.startswith(PREFIX)}, dotenv=None)
    job = render_job(parse_spec(benchmark["spec"], settings), "chart-bench", "trading", settings)
    bench = container(job)
    command = [*bench["command"], *bench["args"]]
    for flag in ("--address", "--sidecar-url"):
        i = command.index(flag) + 1
        command[i] = to_loopback(command[i])
    termination_log = tmp_path / "termination-log"
    command[command.index(bench["terminationMessagePath"])] = str(termination_log)
    command[command.index("--results-dir") + 1] = str(tmp_path / "results")
    run = subprocess.run(
        executable(command), capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout + run.stderr
    frame = termination_log.read_bytes()
    assert len(frame) < 4096
    [result] = decode(frame).events
    assert isinstance(result, BenchmarkResult)
    assert (result.run_id, result.mode, result.events) == ("chart-bench", "burst", 2000)
    assert result.sent == 2000


def test_ui_serves_streamlits_health_path_the_probes_use(
    rendered: Rendered, tmp_path: Path
) -> None:
    spec = container(rendered.get("Deployment", f"{fullname()}-publisher"))
    assert spec["readinessProbe"]["httpGet"] == spec["livenessProbe"]["httpGet"]
    proc = start_process(
        executable(spec["command"]),
        tmp_path / "ui.log",
        {**loopback_env(spec), "HOME": str(tmp_path)},
        name="trading-ui (chart)",
    )
    try:
        wait_http_ok(proc, probe_url(spec, "readinessProbe"), timeout=60)
        assert httpx.get(probe_url(spec, "readinessProbe"), timeout=5).text == "ok"
    finally:
        proc.stop()
