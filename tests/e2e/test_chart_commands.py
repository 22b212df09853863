"""The chart's container command lines, run for real on loopback.

A rendered Deployment can be schema-valid and still start a process that listens on the
wrong address, probes a path that does not exist, or passes flags the CLI rejects. Here the
exact commands and environment the chart renders are started as real processes, with only
the cluster addresses translated: 0.0.0.0 and Service DNS names become 127.0.0.1, and the
ports come from the chart's own values (free ones, chosen per run).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import helm_python
import httpx2 as httpx
import pytest
import zmq.auth
from chart_support import CHART_DIR, RELEASE, Obj, Rendered, container, env, render
from support import (
    BIN,
    ROOT,
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
from trading_publisher.client import CurveKeys, Publisher

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


# --- the CURVE Secret commands the docs give, run on what `make keys` writes ---

CURVE_DOCS = (ROOT / "docs" / "kubernetes.md", CHART_DIR / "README.md")


def documented_commands(path: Path, program: str) -> list[list[str]]:
    """Every ``program ...`` command of the file's console blocks, continuation lines joined."""
    commands: list[list[str]] = []
    for block in re.findall(r"```console\n(.*?)```", path.read_text(), re.DOTALL):
        text = re.sub(r"\\\n\s*", " ", block)
        for line in text.splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith(program + " "):
                commands.append(shlex.split(line.split("  #")[0]))
    return commands


def secret_from_files(args: list[str], cwd: Path) -> tuple[str, dict[str, bytes]]:
    """What ``kubectl create secret generic NAME --from-file=...`` puts in the Secret."""
    name = args[args.index("generic") + 1]
    data: dict[str, bytes] = {}
    for arg in args:
        if not arg.startswith("--from-file="):
            continue
        spec = arg.removeprefix("--from-file=")
        key, _, source = spec.rpartition("=") if "=" in spec else ("", "", spec)
        path = cwd / source
        assert path.exists(), f"{' '.join(args)}: {source} does not exist after `make keys`"
        if path.is_dir():
            data.update({f.name: f.read_bytes() for f in sorted(path.iterdir()) if f.is_file()})
        else:
            data[key or path.name] = path.read_bytes()
    return name, data


def mounted_keys(rendered: Rendered, secret_value: str) -> set[str]:
    """The keys of a Secret the chart's pods mount by ``items`` (a whole-Secret mount: none)."""
    keys: set[str] = set()
    for _, obj in rendered.objects:
        spec = (obj.get("spec") or {}).get("template", {}).get("spec") or {}
        for volume in spec.get("volumes", []):
            secret = volume.get("secret") or {}
            if secret.get("secretName") == secret_value:
                keys |= {item["key"] for item in secret.get("items", [])}
    return keys


@pytest.mark.parametrize("doc", CURVE_DOCS, ids=lambda p: p.name)
def test_the_documented_curve_secrets_work_verbatim_after_make_keys(
    doc: Path, tmp_path: Path
) -> None:
    make_keys = re.search(r"^keys:.*\n\t@\$\(RUN\) (.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert make_keys, "the Makefile's keys target"
    command = make_keys.group(1).replace("$(KEYS_DIR)", "keys").replace("$(KEYS_ARGS)", "")
    subprocess.run(executable(shlex.split(command)), cwd=tmp_path, check=True, timeout=60)

    creates = [c for c in documented_commands(doc, "kubectl") if "secret" in c]
    assert len(creates) == 2, creates
    for args in creates:
        assert args[args.index("--context") + 1] == "kind-trading-telemetry", args
        assert args[args.index("--namespace") + 1] == "trading", args
    secrets = dict(secret_from_files(args, tmp_path) for args in creates)
    (upgrade,) = [
        c for c in documented_commands(doc, "helm") if "curve.enabled=true" in ",".join(c)
    ]
    assert upgrade[upgrade.index("--kube-context") + 1] == "kind-trading-telemetry"
    sets = dict(
        kv.split("=", 1)
        for i, a in enumerate(upgrade)
        if a == "--set"
        for kv in upgrade[i + 1].split(",")
    )
    keys_secret, clients_secret = (
        secrets[sets["curve.secretName"]],
        secrets[sets["curve.clientsSecretName"]],
    )

    values = {
        "curve": {
            "enabled": True,
            "secretName": "tt-curve",
            "clientsSecretName": "tt-curve-clients",
        }
    }
    with helm_python.Chart.load(CHART_DIR) as chart:
        curve_render = render(chart, values)
    # Every key the chart mounts from the key Secret is in it; the clients Secret holds only
    # public certificates.
    assert mounted_keys(curve_render, "tt-curve") <= set(keys_secret), sorted(keys_secret)
    assert clients_secret and all(name.endswith(".key") for name in clients_secret)
    assert all(b"secret-key" not in content for content in clients_secret.values())
    # And they fit together: the publisher's pair is one the sidecar allows.
    (tmp_path / "mounted").mkdir()
    for key, content in keys_secret.items():
        (tmp_path / "mounted" / key).write_bytes(content)
    client = CurveKeys.from_files(
        tmp_path / "mounted/server.key", tmp_path / "mounted/client.key_secret"
    )
    allowed = tmp_path / "clients"
    allowed.mkdir()
    for key, content in clients_secret.items():
        (allowed / key).write_bytes(content)
    assert client.public in set(zmq.auth.load_certificates(str(allowed)))


def test_the_benchmark_jobs_wait_for_the_sidecar_runs_until_it_is_ready(
    rendered: Rendered, sidecar: Proc, ports: dict[str, int], tmp_path: Path
) -> None:
    """The init container's exact command: returns once /readyz answers, waits while not."""
    benchmark = rendered.get("LatencyBenchmark", f"{fullname()}-bench-1")
    operator = env(container(rendered.get("Deployment", f"{fullname()}-operator")))
    settings = load({k: v for k, v in operator.items() if k.startswith(PREFIX)}, dotenv=None)
    job = render_job(parse_spec(benchmark["spec"], settings), "chart-bench", "trading", settings)
    (wait,) = job["spec"]["template"]["spec"]["initContainers"]
    command = [sys.executable if wait["command"][0] == "python" else wait["command"][0]]
    command += wait["command"][1:]
    command[-1] = to_loopback(command[-1])
    assert urlsplit(command[-1]).port == ports["metrics"]
    ready = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert ready.returncode == 0, ready.stdout + ready.stderr
    # Nothing listening: it keeps waiting (the Job's deadline ends it), saying why.
    command[-1] = f"http://{LOOPBACK}:{free_port()}"
    with pytest.raises(subprocess.TimeoutExpired) as waited:
        subprocess.run(command, capture_output=True, text=True, timeout=3)
    assert "waiting for" in (waited.value.stdout or b"").decode()
