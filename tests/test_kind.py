"""The kind cluster set-up and the Kubernetes Make targets, without a cluster.

The files are parsed and checked against each other and against the chart: the node label
ingress-nginx is pinned to, the host ports, the Grafana ingress host and class, the
dashboard label Grafana's sidecar watches, and the ServiceMonitor selection. The Make
targets run for real with docker, kind, helm and kubectl absent (each must stop at once,
naming what is missing) and then with stand-ins for those four cluster-side tools that only
record their arguments, so every file, release and object name a target passes can be
checked against the repository and the rendered chart.
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
from support import ROOT
from test_chart import CHART_DIR, Rendered, render

KIND_CONFIG = ROOT / "kind-config.yaml"
KPS_VALUES = ROOT / "deploy" / "kind" / "kube-prometheus-stack-values.yaml"
INGRESS_VALUES = ROOT / "deploy" / "kind" / "ingress-nginx-values.yaml"
MAKEFRAG = ROOT / "mk" / "kubernetes.mk"
CLUSTER_TOOLS = ("docker", "kind", "helm", "kubectl")
TARGETS = ("images", "kind-load", "kind-up", "kind-down", "deploy", "ui", "grafana", "bench-job")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def make_default(variable: str) -> str:
    """A ``VAR ?= value`` default from mk/kubernetes.mk."""
    match = re.search(rf"^{variable} \?= *(.*)$", MAKEFRAG.read_text(), re.MULTILINE)
    assert match, variable
    return match.group(1).strip()


def chart_values() -> Any:
    return load(CHART_DIR / "values.yaml")


def test_kind_config_has_one_ingress_ready_node_with_ports_80_and_443() -> None:
    config = load(KIND_CONFIG)
    assert (config["kind"], config["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert config["name"] == make_default("KIND_CLUSTER")
    (node,) = config["nodes"]
    assert node["role"] == "control-plane"
    assert node["labels"] == {"ingress-ready": "true"}
    mappings = {
        (m["containerPort"], m["hostPort"], m["protocol"]) for m in node["extraPortMappings"]
    }
    assert mappings == {(80, 80, "TCP"), (443, 443, "TCP")}


def test_ingress_nginx_binds_the_mapped_ports_on_the_labelled_node() -> None:
    controller = load(INGRESS_VALUES)["controller"]
    (node,) = load(KIND_CONFIG)["nodes"]
    assert controller["hostPort"]["enabled"] is True
    container_ports = {m["containerPort"] for m in node["extraPortMappings"]}
    assert set(controller["hostPort"]["ports"].values()) == container_ports
    for key, value in controller["nodeSelector"].items():
        if key != "kubernetes.io/os":
            assert node["labels"][key] == value


def test_grafana_is_reachable_through_the_ingress_the_make_target_prints() -> None:
    grafana = load(KPS_VALUES)["grafana"]
    ingress = grafana["ingress"]
    assert ingress["enabled"] is True
    assert (
        ingress["ingressClassName"]
        == load(INGRESS_VALUES)["controller"]["ingressClassResource"]["name"]
    )
    assert ingress["hosts"] == [make_default("GRAFANA_HOST")]
    assert ingress["path"] == "/"
    assert grafana["grafana.ini"]["server"]["root_url"] == f"http://{make_default('GRAFANA_HOST')}/"
    # The install notes print the same URL for those without the repository's `make grafana`.
    assert (
        chart_values()["dashboards"]["grafanaUrl"] == grafana["grafana.ini"]["server"]["root_url"]
    )


def test_grafana_sidecar_watches_the_label_the_chart_puts_on_dashboards() -> None:
    dashboards = load(KPS_VALUES)["grafana"]["sidecar"]["dashboards"]
    chart = chart_values()["dashboards"]
    assert dashboards["enabled"] is True
    assert (dashboards["label"], dashboards["labelValue"]) == (chart["label"], chart["labelValue"])
    assert dashboards["searchNamespace"] == "ALL", "the app runs outside the monitoring namespace"


def test_prometheus_selects_this_charts_servicemonitor() -> None:
    spec = load(KPS_VALUES)["prometheus"]["prometheusSpec"]
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert spec["serviceMonitorSelector"] == {} and spec["serviceMonitorNamespaceSelector"] == {}
    # And the label kube-prometheus-stack would select on by default, should that change.
    values = chart_values()
    assert values["serviceMonitor"]["additionalLabels"]["release"] == make_default(
        "MONITORING_RELEASE"
    )
    assert values["networkPolicy"]["monitoringNamespace"] == make_default("MONITORING_NAMESPACE")


# --- the Make targets, run ---


def toolbox(tmp_path: Path, stubs: bool) -> tuple[Path, Path]:
    """A PATH with the plain tools a recipe needs, plus (optionally) recording stand-ins."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sh", "make", "sed", "grep", "cat", "env", "base64", "awk", "sort", "tr"):
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
                '  "kubectl "*" get secret "*)\n'
                '    case "$STUB_SECRET" in\n'
                '      missing) echo "Error from server (NotFound): not found" >&2; exit 1 ;;\n'
                "      empty) exit 0 ;;\n"  # the secret exists without the admin keys
                "    esac\n"
                "    printf c2VjcmV0 ;;\n"  # base64 of "secret"
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


@pytest.mark.parametrize("target", ["deploy", "ui", "grafana", "bench-job", "kind-load"])
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
            {"benchmark": {"enabled": True}},
            release=make_default("RELEASE"),
            namespace=make_default("NAMESPACE"),
        )


def calls(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()]


def existing_file_arguments(call: list[str]) -> None:
    for flag, value in zip(call, call[1:], strict=False):
        if flag in ("-f", "--config"):
            assert (ROOT / value).is_file(), f"{' '.join(call)}: {value} does not exist"


def test_kind_up_creates_the_cluster_and_installs_ingress_and_monitoring(tmp_path: Path) -> None:
    bin_dir, log = toolbox(tmp_path, stubs=True)
    result = run_make("kind-up", bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    recorded = calls(log)
    for call in recorded:
        existing_file_arguments(call)
    create = next(c for c in recorded if c[:3] == ["kind", "create", "cluster"])
    assert create[create.index("--config") + 1] == "kind-config.yaml"
    installs = {c[c.index("--install") + 1]: c for c in recorded if "--install" in c}
    assert installs["ingress-nginx"][installs["ingress-nginx"].index("-f") + 1] == str(
        INGRESS_VALUES.relative_to(ROOT)
    )
    kps = installs[make_default("MONITORING_RELEASE")]
    assert "prometheus-community/kube-prometheus-stack" in kps
    assert kps[kps.index("-f") + 1] == str(KPS_VALUES.relative_to(ROOT))
    assert kps[kps.index("--namespace") + 1] == make_default("MONITORING_NAMESPACE")


def test_images_are_built_with_the_names_and_tag_the_chart_deploys(
    tmp_path: Path, release_render: Rendered
) -> None:
    bin_dir, log = toolbox(tmp_path, stubs=True)
    result = run_make("images", bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    built = {
        c[c.index("-t") + 1]: c[c.index("-f") + 1]
        for c in calls(log)
        if c[:2] == ["docker", "build"]
    }
    builds = [c for c in calls(log) if c[:2] == ["docker", "build"]]
    assert len(builds) == 3, "publisher, sidecar and operator"
    for build in builds:
        # Docker 29+ with the containerd image store: attestations break `kind load`
        # (kubernetes-sigs/kind#3795).
        assert "--provenance=false" in build and "--sbom=false" in build, build
    chart_images = {
        c["image"] for _, obj in release_render.objects if obj["kind"] in ("Deployment", "Job")
        for c in obj["spec"]["template"]["spec"]["containers"]
    }  # fmt: skip
    assert chart_images <= set(built), (chart_images, built)
    for dockerfile in built.values():
        assert (ROOT / dockerfile).is_file()


def test_deploy_ui_grafana_and_bench_job_use_the_charts_object_names(
    tmp_path: Path, release_render: Rendered
) -> None:
    bin_dir, log = toolbox(tmp_path, stubs=True)
    cluster = make_default("KIND_CLUSTER")
    for target in ("deploy", "ui", "grafana", "bench-job"):
        result = run_make(target, bin_dir, clusters=cluster)
        assert result.returncode == 0, f"{target}:\n{result.stdout}{result.stderr}"
        if target == "grafana":
            assert f"http://{make_default('GRAFANA_HOST')}/" in result.stdout
            assert "secret / secret" in result.stdout
    recorded = calls(log)
    names = release_render.names()
    namespace = make_default("NAMESPACE")
    helm = [c for c in recorded if c[0] == "helm"]
    assert all(c[c.index("--kube-context") + 1] == f"kind-{cluster}" for c in helm)
    assert all(c[c.index("--namespace") + 1] == namespace for c in helm)
    assert all(str(CHART_DIR.relative_to(ROOT)) in c for c in helm)
    forward = next(c for c in recorded if "port-forward" in c)
    service = forward[forward.index("port-forward") + 1].replace("service/", "Service/")
    assert service in names
    assert forward[-1] == "8501:8501"
    logs = next(c for c in recorded if "logs" in c)
    assert logs[logs.index("logs") + 1].replace("job/", "Job/") in names
    secret = next(c for c in recorded if "secret" in c)
    assert secret[secret.index("secret") + 1] == f"{make_default('MONITORING_RELEASE')}-grafana"


# --- pins, timeouts and error paths of the targets ---

SEMVER = r"\d+\.\d+\.\d+"


def test_chart_versions_and_the_node_image_are_pinned(tmp_path: Path) -> None:
    """An unpinned `make kind-up` installs whatever is newest that day."""
    versions = {
        "ingress-nginx/ingress-nginx": make_default("INGRESS_NGINX_CHART_VERSION"),
        "prometheus-community/kube-prometheus-stack": make_default("KPS_CHART_VERSION"),
    }
    for chart, version in versions.items():
        assert re.fullmatch(SEMVER, version), (chart, version)
    bin_dir, log = toolbox(tmp_path, stubs=True)
    result = run_make("kind-up", bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    installs = [c for c in calls(log) if "--install" in c]
    assert len(installs) == 2
    for call in installs:
        (chart,) = [word for word in call if word in versions]
        assert call[call.index("--version") + 1] == versions[chart], call
    (node,) = load(KIND_CONFIG)["nodes"]
    assert re.fullmatch(rf"kindest/node:v{SEMVER}@sha256:[0-9a-f]{{64}}", node["image"])


@pytest.mark.parametrize("secret", ["missing", "empty"])
@pytest.mark.parametrize("fragment_only", [False, True], ids=["Makefile", "fragment"])
def test_grafana_fails_clearly_when_the_secret_cannot_be_read(
    tmp_path: Path, secret: str, fragment_only: bool
) -> None:
    """kubectl's own status must count, whatever shell options the including Makefile sets."""
    bin_dir, log = toolbox(tmp_path, stubs=True)
    result = run_make(
        "grafana",
        bin_dir,
        clusters=make_default("KIND_CLUSTER"),
        stub_env={"STUB_SECRET": secret},
        fragment_only=fragment_only,
    )
    assert result.returncode != 0
    secret = f"{make_default('MONITORING_RELEASE')}-grafana"
    assert f"make grafana: cannot read secret {secret}" in result.stderr, result.stderr
    assert "login:" not in result.stdout
    assert "get secret" in log.read_text(), "the failure must come from kubectl itself"


def helm_upgrade(log: Path) -> list[str]:
    (call,) = [c for c in calls(log) if c[0] == "helm" and "upgrade" in c]
    return call


def seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


@pytest.mark.parametrize("deadline", [None, "60"], ids=["values-default", "override"])
def test_bench_job_gives_helm_more_time_than_the_jobs_deadline(
    tmp_path: Path, deadline: str | None
) -> None:
    """Helm timing out first would hide the Job's own result (and its failure reason)."""
    bin_dir, log = toolbox(tmp_path, stubs=True)
    variables = () if deadline is None else (f"BENCH_DEADLINE={deadline}",)
    result = run_make(
        "bench-job", bin_dir, clusters=make_default("KIND_CLUSTER"), variables=variables
    )
    assert result.returncode == 0, result.stdout + result.stderr
    call = helm_upgrade(log)
    expected = deadline or str(chart_values()["benchmark"]["activeDeadlineSeconds"])
    assert f"benchmark.activeDeadlineSeconds={expected}" in call, call
    assert seconds(call[call.index("--timeout") + 1]) > int(expected)


def test_deploy_waits_with_a_timeout_in_the_kind_context(tmp_path: Path) -> None:
    bin_dir, log = toolbox(tmp_path, stubs=True)
    result = run_make("deploy", bin_dir, clusters=make_default("KIND_CLUSTER"))
    assert result.returncode == 0, result.stdout + result.stderr
    call = helm_upgrade(log)
    assert call[call.index("--kube-context") + 1] == f"kind-{make_default('KIND_CLUSTER')}"
    assert "--wait" in call and seconds(call[call.index("--timeout") + 1]) > 0
