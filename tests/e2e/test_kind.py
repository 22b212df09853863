"""The kind cluster set-up and the Kubernetes Make targets, without a cluster.

The files are parsed and checked against each other and against the chart: the Grafana
Ingress (served by cloud-provider-kind) and its host, the dashboard label Grafana's sidecar
watches, and the ServiceMonitor selection. The Make targets run for real with docker, kind,
helm and kubectl absent (each must stop at once, naming what is missing) and then with
stand-ins for those four cluster-side tools that only record their arguments, so every file,
release and object name a target passes can be checked against the repository and the
rendered chart. The smoke test script and the GitHub Actions workflow that runs it cannot run
here (no Docker engine): they are parsed, shellchecked, and every make target they call must
exist.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from chart_support import CHART_DIR, Rendered, render
from support import ROOT

KIND_CONFIG = ROOT / "kind-config.yaml"
KPS_VALUES = ROOT / "deploy" / "kind" / "kube-prometheus-stack-values.yaml"
MAKEFRAG = ROOT / "mk" / "kubernetes.mk"
COMMON = ROOT / "mk" / "common.mk"
SMOKE = ROOT / "deploy" / "kind" / "smoke.sh"
CHECK_TOOLS = ROOT / "deploy" / "kind" / "check-tools.sh"
WORKFLOW = ROOT / ".github" / "workflows" / "kind-smoke.yml"
CLUSTER_TOOLS = ("docker", "kind", "helm", "kubectl")
TARGETS = (
    "images",
    "kind-load",
    "kind-up",
    "kind-down",
    "deploy",
    "ui",
    "grafana",
    "grafana-forward",
    "bench-job",
    "kind-smoke",
)
#: cloud-provider-kind's IngressClass (pkg/ingress/controller.go: IngressClassName).
CLOUD_PROVIDER_KIND_CLASS = "cloud-provider-kind"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def make_default(variable: str) -> str:
    """A ``VAR ?= value`` default from mk/kubernetes.mk or mk/common.mk."""
    for path in (MAKEFRAG, COMMON):
        match = re.search(rf"^{variable} \?= *(.*)$", path.read_text(), re.MULTILINE)
        if match:
            return match.group(1).strip()
    raise AssertionError(variable)


def chart_values() -> Any:
    return load(CHART_DIR / "values.yaml")


def test_kind_config_has_one_node_and_publishes_no_host_port() -> None:
    """cloud-provider-kind serves the Ingress on the kind network: nothing binds the host."""
    config = load(KIND_CONFIG)
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert config["name"] == make_default("KIND_CLUSTER")
    (node,) = config["nodes"]
    assert node["role"] == "control-plane"
    for mapping in node.get("extraPortMappings", []):
        assert mapping.get("listenAddress") == "127.0.0.1", mapping


def test_grafana_is_reachable_through_the_cloud_provider_kind_ingress() -> None:
    """A host-less rule: http://<Ingress address>/ works with no /etc/hosts entry (and a
    *.localhost host never could: browsers resolve those to 127.0.0.1 themselves)."""
    grafana = load(KPS_VALUES)["grafana"]
    ingress = grafana["ingress"]
    assert ingress["enabled"] is True
    assert ingress["ingressClassName"] == CLOUD_PROVIDER_KIND_CLASS
    assert ingress["hosts"] == []
    assert ingress["path"] == "/"
    # No root_url naming a host the browser does not use: Grafana's default follows the request.
    assert "root_url" not in grafana.get("grafana.ini", {}).get("server", {})
    # The notes print no made-up URL; `make deploy` passes the Ingress address when known.
    assert chart_values()["dashboards"]["grafanaUrl"] == ""


def test_grafana_sidecar_watches_the_label_the_chart_puts_on_dashboards() -> None:
    dashboards = load(KPS_VALUES)["grafana"]["sidecar"]["dashboards"]
    chart = chart_values()["dashboards"]
    assert dashboards["enabled"] is True
    assert (dashboards["label"], dashboards["labelValue"]) == (chart["label"], chart["labelValue"])
    assert dashboards["searchNamespace"] == "ALL", "the app runs outside the monitoring namespace"


def test_grafanas_datasource_interval_is_the_servicemonitors_scrape_interval() -> None:
    """$__rate_interval is at least 4x timeInterval: 15 s would make every rate() 60 s wide."""
    datasources = load(KPS_VALUES)["grafana"]["sidecar"]["datasources"]
    assert (
        datasources["defaultDatasourceScrapeInterval"]
        == (chart_values()["serviceMonitor"]["interval"])
    )


def test_prometheus_selects_this_charts_servicemonitor_and_rules() -> None:
    spec = load(KPS_VALUES)["prometheus"]["prometheusSpec"]
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["serviceMonitorSelector"] == {} and spec["serviceMonitorNamespaceSelector"] == {}
    assert spec["ruleSelectorNilUsesHelmValues"] is False
    # And the label kube-prometheus-stack would select on by default, should that change.
    values = chart_values()
    release = make_default("MONITORING_RELEASE")
    assert values["serviceMonitor"]["additionalLabels"]["release"] == release
    assert values["prometheusRule"]["additionalLabels"]["release"] == release
    assert values["networkPolicy"]["monitoringNamespace"] == make_default("MONITORING_NAMESPACE")


# --- the Make targets, run ---


def toolbox(tmp_path: Path, stubs: bool) -> tuple[Path, Path]:
    """A PATH with the plain tools a recipe needs, plus (optionally) recording stand-ins."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in (
        "bash", "sh", "make", "sed", "grep", "cat", "env", "base64", "awk", "sort", "tr",
        "head", "printf", "sleep",
    ):  # fmt: skip
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    log = tmp_path / "calls.log"
    if stubs:
        for tool in CLUSTER_TOOLS:
            script = bin_dir / tool
            script.write_text(
                "#!/bin/sh\n"
                f'echo "{tool} $*" >> "{log}"\n'
                f'case "{tool} $*" in\n'
                '  "kind get clusters") echo "$STUB_KIND_CLUSTERS" ;;\n'
                '  "kind version")\n'
                '    echo "kind ${STUB_KIND_VERSION:-v0.32.0} go1.24.6 linux/amd64" ;;\n'
                '  "docker version "*) echo 28.5.1 ;;\n'
                '  "docker buildx version")\n'
                '    [ -z "$STUB_NO_BUILDX" ] || exit 1\n'
                "    echo 'github.com/docker/buildx v0.29.1 a1b2c3' ;;\n"
                '  "helm version --short") echo v3.19.0 ;;\n'
                '  "kubectl version --client") echo "Client Version: v1.34.0" ;;\n'
                '  "kubectl "*" get secret "*)\n'
                '    case "$STUB_SECRET" in\n'
                '      missing) echo "Error from server (NotFound): not found" >&2; exit 1 ;;\n'
                "      empty) exit 0 ;;\n"  # the secret exists without the admin keys
                "    esac\n"
                "    printf c2VjcmV0 ;;\n"  # base64 of "secret"
                '  "kubectl "*" get ingress "*) printf "${STUB_INGRESS-172.18.0.5}" ;;\n'
                '  "docker ps -q --filter label="*) echo "$STUB_ENVOY" ;;\n'
                '  "docker port "*) echo "0.0.0.0:42381" ;;\n'
                '  "kubectl "*" get lbench -l "*)\n'
                '    printf "${STUB_BENCH_NAME-trading-telemetry-bench-3}" ;;\n'
                '  "kubectl "*"jsonpath={.status.state}"*)\n'
                '    printf "${STUB_BENCH_STATE-Succeeded}" ;;\n'
                '  "kubectl "*"jsonpath={.status.job}"*) printf trading-telemetry-bench-3 ;;\n'
                '  "kubectl "*" logs "*) echo "bench: the last line of the log" ;;\n'
                "esac\n"
                "exit 0\n"
            )
            script.chmod(0o755)
    return bin_dir, log


def run_make(
    target: str,
    bin_dir: Path,
    clusters: str = "",
    stub_env: dict[str, str] | None = None,
    variables: tuple[str, ...] = (),
    fragment_only: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a target through the root Makefile, or (fragment_only) mk/kubernetes.mk alone.

    Alone, make's default /bin/sh runs the recipes without the root Makefile's pipefail.
    """
    env = {
        "PATH": str(bin_dir),
        "HOME": os.environ.get("HOME", "/tmp"),
        "STUB_KIND_CLUSTERS": clusters,
        "UV": "uv",  # the root Makefile would otherwise look uv up on this bare PATH
        **(stub_env or {}),
    }
    return subprocess.run(
        [
            str(bin_dir / "make"),
            "--no-print-directory",
            "-C",
            str(ROOT),
            *(["-f", str(MAKEFRAG.relative_to(ROOT))] if fragment_only else []),
            target,
            *variables,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("target", TARGETS)
def test_each_target_stops_at_once_naming_the_missing_tools(target: str, tmp_path: Path) -> None:
    bin_dir, log = toolbox(tmp_path, stubs=False)
    result = run_make(target, bin_dir)
    assert result.returncode != 0
    assert f"make {target}: missing required tool(s):" in result.stderr, result.stderr
    named = re.search(r"missing required tool\(s\):(.*)", result.stderr)
    assert named and set(named.group(1).split()) <= set(CLUSTER_TOOLS)
    for tool in named.group(1).split():
        assert re.search(rf"^  {tool}: +https://", result.stderr, re.MULTILINE), tool
    assert not log.exists(), "nothing may run before the check"


@pytest.mark.parametrize(
    "target", ["deploy", "ui", "grafana", "grafana-forward", "bench-job", "kind-load"]
)
def test_cluster_targets_stop_when_the_cluster_does_not_exist(target: str, tmp_path: Path) -> None:
    bin_dir, log = toolbox(tmp_path, stubs=True)
    result = run_make(target, bin_dir, clusters="some-other-cluster")
    assert result.returncode != 0
    assert "run 'make kind-up' first" in result.stderr, result.stderr
    assert "helm" not in log.read_text() and "port-forward" not in log.read_text()


@pytest.fixture(scope="module")
def release_render() -> Rendered:
    """The chart as `make deploy` / `make bench-job` install it."""
    with helm_python.Chart.load(CHART_DIR) as chart:
        return render(
            chart,
            {"operator": {"enabled": True}, "benchmark": {"enabled": True}},
            release=make_default("RELEASE"),
            namespace=make_default("NAMESPACE"),
        )


def calls(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()]


def existing_file_arguments(call: list[str]) -> None:
    if call[:2] == ["docker", "rm"]:
        return  # -f is --force there
    for flag, value in zip(call, call[1:], strict=False):
        if flag in ("-f", "--config"):
            assert (ROOT / value).is_file(), f"{' '.join(call)}: {value} does not exist"


def test_kind_up_creates_the_cluster_cloud_provider_kind_and_monitoring(tmp_path: Path) -> None:
    bin_dir, log = toolbox(tmp_path, stubs=True)
    result = run_make("kind-up", bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    recorded = calls(log)
    for call in recorded:
        existing_file_arguments(call)
    create = next(c for c in recorded if c[:3] == ["kind", "create", "cluster"])
    assert create[create.index("--config") + 1] == "kind-config.yaml"
    (provider,) = [c for c in recorded if c[:2] == ["docker", "run"]]
    assert provider[provider.index("--network") + 1] == "kind"
    assert make_default("CLOUD_PROVIDER_KIND_IMAGE") in provider
    installs = {c[c.index("--install") + 1]: c for c in recorded if "--install" in c}
    assert set(installs) == {make_default("MONITORING_RELEASE")}, "no ingress controller any more"
    kps = installs[make_default("MONITORING_RELEASE")]
    assert "prometheus-community/kube-prometheus-stack" in kps
    assert kps[kps.index("-f") + 1] == str(KPS_VALUES.relative_to(ROOT))
    assert kps[kps.index("--namespace") + 1] == make_default("MONITORING_NAMESPACE")


def test_kind_up_checks_every_tool_with_one_line_each(tmp_path: Path) -> None:
    bin_dir, log = toolbox(tmp_path, stubs=True)
    result = run_make("kind-up", bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("  ok ")]
    tools = [line.split()[1] for line in lines]
    assert tools == ["docker", "buildx", "kind", "helm", "kubectl", "cloud-provider-kind"]
    assert "v0.32.0 (>= v0.32.0)" in result.stdout


@pytest.mark.parametrize(
    ("stub_env", "missing"),
    [
        ({"STUB_KIND_VERSION": "v0.31.0"}, "kind"),
        ({"STUB_NO_BUILDX": "1"}, "buildx"),
    ],
    ids=["old-kind", "no-buildx"],
)
def test_kind_up_refuses_an_old_kind_or_no_buildx_before_creating_anything(
    tmp_path: Path, stub_env: dict[str, str], missing: str
) -> None:
    bin_dir, log = toolbox(tmp_path, stubs=True)
    result = run_make("kind-up", bin_dir, stub_env=stub_env)
    assert result.returncode != 0
    assert re.search(rf"^  MISSING  {missing} ", result.stdout, re.MULTILINE), result.stdout
    assert "fix the MISSING lines above first" in result.stderr
    assert not [c for c in calls(log) if c[:2] in (["kind", "create"], ["docker", "run"])]


@pytest.mark.parametrize(
    ("ingress", "envoy", "expected", "absent"),
    [
        ("172.18.0.5", "", ["http://172.18.0.5/", "--enable-lb-port-mapping"], ["localhost:"]),
        ("172.18.0.5", "0123abcd", ["http://172.18.0.5/", "http://localhost:42381/"], []),
        ("", "", ["no address yet", "make grafana-forward"], ["http://"]),
    ],
    ids=["linux", "port-mapping", "no-address"],
)
def test_grafana_prints_the_address_that_works_here(
    tmp_path: Path, ingress: str, envoy: str, expected: list[str], absent: list[str]
) -> None:
    """Linux: the Ingress address; Docker Desktop: the host port Docker maps to the Envoy
    container cloud-provider-kind runs for the Ingress' Gateway."""
    bin_dir, log = toolbox(tmp_path, stubs=True)
    result = run_make(
        "grafana",
        bin_dir,
        clusters=make_default("KIND_CLUSTER"),
        stub_env={"STUB_INGRESS": ingress, "STUB_ENVOY": envoy},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for text in expected:
        assert text in result.stdout, result.stdout
    for text in absent:
        assert text not in result.stdout, result.stdout
    assert "secret / secret" in result.stdout
    (ps,) = [c for c in calls(log) if c[:2] == ["docker", "ps"]]
    cluster, namespace = make_default("KIND_CLUSTER"), make_default("MONITORING_NAMESPACE")
    assert (
        f"label=io.x-k8s.cloud-provider-kind.gateway.name={cluster}/{namespace}"
        "/kind-ingress-gateway" in ps
    )
    ports = [c for c in calls(log) if c[:2] == ["docker", "port"]]
    assert ports == ([["docker", "port", envoy, "80/tcp"]] if envoy else [])


@pytest.mark.parametrize("ingress", ["172.18.0.5", ""])
def test_deploy_gives_the_notes_grafanas_address_when_it_has_one(
    tmp_path: Path, ingress: str
) -> None:
    bin_dir, log = toolbox(tmp_path, stubs=True)
    result = run_make(
        "deploy", bin_dir, clusters=make_default("KIND_CLUSTER"), stub_env={"STUB_INGRESS": ingress}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    call = helm_upgrade(log)
    urls = [a for a in call if a.startswith("dashboards.grafanaUrl=")]
    assert urls == ([f"dashboards.grafanaUrl=http://{ingress}/"] if ingress else [])


def test_images_need_buildx(tmp_path: Path) -> None:
    bin_dir, log = toolbox(tmp_path, stubs=True)
    result = run_make("images", bin_dir, stub_env={"STUB_NO_BUILDX": "1"})
    assert result.returncode != 0
    assert "make images: docker buildx is missing" in result.stderr
    assert not [c for c in calls(log) if c[:2] == ["docker", "build"]]


def test_images_are_built_with_the_names_and_tag_the_chart_deploys(
    tmp_path: Path, release_render: Rendered
) -> None:
    bin_dir, log = toolbox(tmp_path, stubs=True)
    result = run_make("images", bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    builds = [c for c in calls(log) if c[:2] == ["docker", "build"]]
    built = {c[c.index("-t") + 1]: c for c in builds}
    assert len(builds) == 4, "publisher, sidecar, operator and benchmark"
    for build in builds:
        # Docker 29+ with the containerd image store: attestations break `kind load`
        # (kubernetes-sigs/kind#3795).
        assert "--provenance=false" in build and "--sbom=false" in build, build
        assert (ROOT / build[build.index("-f") + 1]).is_file()
    chart_images = {
        c["image"]
        for _, obj in release_render.objects
        if obj["kind"] in ("Deployment", "StatefulSet")
        for c in obj["spec"]["template"]["spec"]["containers"]
    }
    operator = next(
        o for o in release_render.kinds("Deployment") if o["metadata"]["name"].endswith("-operator")
    )
    (operator_container,) = operator["spec"]["template"]["spec"]["containers"]
    bench_image = next(
        e["value"] for e in operator_container["env"] if e["name"] == "TT_OPERATOR_BENCH_IMAGE"
    )
    assert chart_images | {bench_image} <= set(built), (chart_images, built)
    loaded = run_make("kind-load", bin_dir, clusters=make_default("KIND_CLUSTER"))
    assert loaded.returncode == 0, loaded.stderr
    (load_call,) = [c for c in calls(log) if c[:2] == ["kind", "load"]]
    assert set(built) <= set(load_call)


def test_deploy_ui_grafana_and_bench_job_use_the_charts_object_names(
    tmp_path: Path, release_render: Rendered
) -> None:
    bin_dir, log = toolbox(tmp_path, stubs=True)
    cluster = make_default("KIND_CLUSTER")
    for target in ("deploy", "ui", "grafana", "grafana-forward", "bench-job"):
        result = run_make(target, bin_dir, clusters=cluster)
        assert result.returncode == 0, f"{target}:\n{result.stdout}{result.stderr}"
        if target.startswith("grafana"):
            assert "secret / secret" in result.stdout
    recorded = calls(log)
    names = release_render.names()
    namespace = make_default("NAMESPACE")
    helm = [c for c in recorded if c[0] == "helm"]
    assert all(c[c.index("--kube-context") + 1] == f"kind-{cluster}" for c in helm)
    assert all(c[c.index("--namespace") + 1] == namespace for c in helm)
    assert all(str(CHART_DIR.relative_to(ROOT)) in c for c in helm)
    forwards = [c for c in recorded if "port-forward" in c]
    ui = forwards[0]
    assert ui[ui.index("port-forward") + 1].replace("service/", "Service/") in names
    assert ui[-1] == "8501:8501"
    grafana = forwards[1]
    monitoring = make_default("MONITORING_RELEASE")
    assert grafana[grafana.index("port-forward") + 1] == f"service/{monitoring}-grafana"
    assert grafana[-1] == "3000:80"
    (found,) = [c for c in recorded if c[:1] == ["kubectl"] and "-l" in c]
    selector = dict(kv.split("=") for kv in found[found.index("-l") + 1].split(","))
    (benchmark,) = release_render.kinds("LatencyBenchmark")
    assert selector.items() <= benchmark["metadata"]["labels"].items()
    secret = next(c for c in recorded if "secret" in c)
    assert secret[secret.index("secret") + 1] == f"{monitoring}-grafana"


def test_deploy_points_the_ui_at_prometheus_and_labels_for_the_stack(tmp_path: Path) -> None:
    bin_dir, log = toolbox(tmp_path, stubs=True)
    result = run_make("deploy", bin_dir, clusters=make_default("KIND_CLUSTER"))
    assert result.returncode == 0, result.stdout + result.stderr
    call = helm_upgrade(log)
    monitoring, namespace = make_default("MONITORING_RELEASE"), make_default("MONITORING_NAMESPACE")
    assert (
        f"publisher.prometheusUrl=http://{monitoring}-kube-prometheus-prometheus.{namespace}:9090"
        in call
    )
    assert f"serviceMonitor.additionalLabels.release={monitoring}" in call
    assert f"prometheusRule.additionalLabels.release={monitoring}" in call
    assert "operator.enabled=true" in call


# --- pins, timeouts and error paths of the targets ---

SEMVER = r"\d+\.\d+\.\d+"


def test_chart_versions_images_and_the_node_image_are_pinned(tmp_path: Path) -> None:
    """An unpinned `make kind-up` installs whatever is newest that day."""
    assert re.fullmatch(SEMVER, make_default("KPS_CHART_VERSION"))
    assert re.fullmatch(rf"v{SEMVER}", make_default("KIND_MIN_VERSION"))
    assert re.fullmatch(
        rf"registry\.k8s\.io/cloud-provider-kind/cloud-controller-manager:v{SEMVER}",
        make_default("CLOUD_PROVIDER_KIND_IMAGE"),
    )
    bin_dir, log = toolbox(tmp_path, stubs=True)
    result = run_make("kind-up", bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    (call,) = [c for c in calls(log) if "--install" in c]
    assert call[call.index("--version") + 1] == make_default("KPS_CHART_VERSION"), call
    (node,) = load(KIND_CONFIG)["nodes"]
    assert re.fullmatch(rf"kindest/node:v{SEMVER}@sha256:[0-9a-f]{{64}}", node["image"])
    # Kept in step: the node image is the one of the kind release the Makefile requires, and
    # the docs' table shows the pins the Makefile uses.
    assert f"kind {make_default('KIND_MIN_VERSION')}'s default image" in KIND_CONFIG.read_text()
    docs = (ROOT / "docs" / "kubernetes.md").read_text()
    pins = docs.split("## Pinned versions", 1)[1].split("\n## ", 1)[0]
    for pin in (
        make_default("KPS_CHART_VERSION"),
        make_default("KIND_MIN_VERSION"),
        make_default("CLOUD_PROVIDER_KIND_IMAGE"),
        node["image"][:30],
    ):
        assert pin in pins, pin


@pytest.mark.parametrize("target", ["grafana", "grafana-forward"])
@pytest.mark.parametrize("secret", ["missing", "empty"])
@pytest.mark.parametrize("fragment_only", [False, True], ids=["Makefile", "fragment"])
def test_grafana_fails_clearly_when_the_secret_cannot_be_read(
    tmp_path: Path, secret: str, fragment_only: bool, target: str
) -> None:
    """kubectl's own status must count, whatever shell options the including Makefile sets."""
    bin_dir, log = toolbox(tmp_path, stubs=True)
    result = run_make(
        target,
        bin_dir,
        clusters=make_default("KIND_CLUSTER"),
        stub_env={"STUB_SECRET": secret},
        fragment_only=fragment_only,
    )
    assert result.returncode != 0
    name = f"{make_default('MONITORING_RELEASE')}-grafana"
    assert f"make {target}: cannot read secret {name}" in result.stderr, result.stderr
    assert "login:" not in result.stdout
    assert "get secret" in log.read_text(), "the failure must come from kubectl itself"
    assert "port-forward" not in log.read_text()


def helm_upgrade(log: Path) -> list[str]:
    (call,) = [c for c in calls(log) if c[0] == "helm" and "upgrade" in c]
    return call


def seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


@pytest.mark.parametrize("deadline", [None, "60"], ids=["values-default", "override"])
def test_bench_job_waits_longer_than_the_benchmarks_deadline(
    tmp_path: Path, deadline: str | None
) -> None:
    """Giving up first would hide the benchmark's own result and reason."""
    bin_dir, log = toolbox(tmp_path, stubs=True)
    variables = () if deadline is None else (f"BENCH_DEADLINE={deadline}",)
    result = run_make(
        "bench-job", bin_dir, clusters=make_default("KIND_CLUSTER"), variables=variables
    )
    assert result.returncode == 0, result.stdout + result.stderr
    call = helm_upgrade(log)
    expected = deadline or str(chart_values()["benchmark"]["timeoutSeconds"])
    assert f"benchmark.timeoutSeconds={expected}" in call, call
    assert "benchmark.enabled=true" in call and "operator.enabled=true" in call
    waited = re.search(
        r"waiting up to (\d+)s for LatencyBenchmark trading-telemetry-bench-3", result.stdout
    )
    assert waited and int(waited.group(1)) > int(expected), result.stdout


@pytest.mark.parametrize("state", ["Failed", ""], ids=["failed", "never-ends"])
def test_bench_job_returns_on_failure_with_the_status_and_the_log_tail(
    tmp_path: Path, state: str
) -> None:
    """A failed run used to block until the deadline (17 minutes) and say nothing more."""
    bin_dir, log = toolbox(tmp_path, stubs=True)
    deadline = "900" if state else "2"  # a run that never ends is waited for, then given up
    result = run_make(
        "bench-job",
        bin_dir,
        clusters=make_default("KIND_CLUSTER"),
        stub_env={"STUB_BENCH_STATE": state},
        variables=(f"BENCH_DEADLINE={deadline}", "BENCH_TIMEOUT_MARGIN=0", "BENCH_POLL_SECONDS=1"),
    )
    assert result.returncode != 0
    ended = "ended Failed" if state else "ended without a state after 2s"
    assert f"make bench-job: LatencyBenchmark trading-telemetry-bench-3 {ended}" in result.stderr
    assert "last 30 log lines of job/trading-telemetry-bench-3" in result.stdout
    assert "bench: the last line of the log" in result.stdout
    recorded = calls(log)
    assert any("-o" in c and "wide" in c for c in recorded), "the status columns"
    assert any("logs" in c and "--tail=30" in c for c in recorded)
    polls = [c for c in recorded if "jsonpath={.status.state}" in c]
    assert len(polls) == (1 if state else 3), "a failed run ends the wait at once"


def test_bench_job_fails_clearly_without_a_benchmark(tmp_path: Path) -> None:
    bin_dir, _ = toolbox(tmp_path, stubs=True)
    result = run_make(
        "bench-job",
        bin_dir,
        clusters=make_default("KIND_CLUSTER"),
        stub_env={"STUB_BENCH_NAME": ""},
    )
    assert result.returncode != 0
    assert "make bench-job: no LatencyBenchmark of release" in result.stderr


def test_deploy_waits_with_a_timeout_in_the_kind_context(tmp_path: Path) -> None:
    bin_dir, log = toolbox(tmp_path, stubs=True)
    result = run_make("deploy", bin_dir, clusters=make_default("KIND_CLUSTER"))
    assert result.returncode == 0, result.stdout + result.stderr
    call = helm_upgrade(log)
    assert call[call.index("--kube-context") + 1] == f"kind-{make_default('KIND_CLUSTER')}"
    assert "--wait" in call and seconds(call[call.index("--timeout") + 1]) > 0


# --- the smoke test and its CI workflow: checked statically, never run here ---


def make_targets() -> set[str]:
    """Every target the root Makefile (with mk/*.mk) defines, from make's own database."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-pRrq", "-C", str(ROOT), ":"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "UV": "uv"},
    )
    return set(re.findall(r"^([a-zA-Z][\w-]*):(?!=)", done.stdout, re.MULTILINE))


def test_the_workflow_parses_and_calls_only_existing_targets() -> None:
    workflow = load(WORKFLOW)
    (job,) = workflow["jobs"].values()
    steps = job["steps"]
    runs = " ".join(step.get("run", "") for step in steps)
    called = set(re.findall(r"\bmake ([a-z][\w-]*)", runs))
    assert {"kind-smoke", "kind-down"} <= called
    assert called <= make_targets(), called - make_targets()
    uses = [step["uses"] for step in steps if "uses" in step]
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+(\.\d+)*", action), f"{action} is not pinned"
    kind = next(step for step in steps if step.get("uses", "").startswith("helm/kind-action@"))
    assert kind["with"]["install_only"] is True, "make kind-up creates the cluster itself"
    assert kind["with"]["version"] == make_default("KIND_MIN_VERSION")


def test_the_workflow_runs_helm_3_and_4_on_every_change_that_reaches_the_cluster() -> None:
    workflow = load(WORKFLOW)
    (job,) = workflow["jobs"].values()
    helms = job["strategy"]["matrix"]["helm"]
    majors = {h.split(".")[0] for h in helms if re.fullmatch(r"v\d+\.\d+\.\d+", h)}
    assert majors == {"v3", "v4"} and len(helms) == 2, helms
    assert job["strategy"]["fail-fast"] is False, "one Helm failing must not hide the other"
    install = next(step for step in job["steps"] if "get.helm.sh" in step.get("run", ""))
    assert install["env"]["HELM_VERSION"] == "${{ matrix.helm }}"
    assert "sha256sum -c" in install["run"]
    # Everything the images, the chart or the cluster setup are built from.
    paths = set(workflow[True]["pull_request"]["paths"])  # PyYAML reads the key `on` as True
    for path in (
        "Dockerfile", "dashboards/**", "uv.lock", "pyproject.toml", "Makefile", "charts/**",
        "services/**", "mk/**", "deploy/kind/**", "kind-config.yaml",
    ):  # fmt: skip
        assert path in paths, path
    # Where each pin was read is said in the file, and the kind pin is the Makefile's.
    text = WORKFLOW.read_text()
    assert f"Helm {helms[0]} and {helms[1]}" in text
    assert "read on" in text and "kubernetes-sigs/kind" in text and "helm/helm" in text
    assert make_default("KIND_MIN_VERSION") in text


def test_the_smoke_script_calls_only_existing_targets_and_checks_what_the_issue_asks() -> None:
    text = SMOKE.read_text()
    called = set(re.findall(r'"\$MAKE" --no-print-directory ([a-z][\w-]*)', text))
    assert called == {"kind-up", "images", "kind-load", "deploy", "kind-down"}
    assert called <= make_targets()
    for check in (
        "helm test",
        "sidecar targets up in Prometheus",
        "Grafana API returns the trading dashboard",
        "Grafana /api/health through the Ingress",
        "http://$address/api/health",
        "trade via port-forward seen by Prometheus",
        "LatencyBenchmark Succeeded with numbers",
    ):
        assert check in text, check
    # Every name the script needs comes from the Makefile's kind-smoke recipe.
    required = set(re.findall(r'"\$\{(\w+):\?\}"', text))
    recipe = MAKEFRAG.read_text().split("\nkind-smoke:", 1)[1]
    for variable in required:
        assert f"{variable}=" in recipe, variable


@pytest.mark.parametrize("script", [SMOKE, CHECK_TOOLS], ids=lambda p: p.name)
def test_the_scripts_parse_and_pass_shellcheck(script: Path) -> None:
    assert os.access(script, os.X_OK), f"{script} is not executable"
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is missing: `make system-deps` installs it")
        pytest.skip("shellcheck is not installed (`make system-deps` installs it)")
    lint = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
