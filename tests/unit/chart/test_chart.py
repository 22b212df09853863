"""The Helm chart, rendered by the real Helm engine and checked without a cluster.

No API server runs here, so this file checks what a cluster would reject or silently get
wrong: lint errors, values the schema must refuse, objects the Kubernetes OpenAPI schemas
(or the ServiceMonitor CRD) reject, Services that select no pod or name a port no container
has, a publisher pointed at the wrong address, a NetworkPolicy that admits the wrong pods,
a container that could write its root filesystem, and a dashboard ConfigMap that drifted
from dashboards/ or queries a series the sidecar does not export.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator, Mapping
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import helm_python
import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from chart_support import (
    ALERTS_FILE,
    CHART_DIR,
    CHART_META,
    DASHBOARDS_DIR,
    EVERYTHING_OFF,
    EVERYTHING_ON,
    KUBE_VERSION,
    NAMESPACE,
    POD_EXTRAS,
    PROMETHEUSRULE_CRD,
    RELEASE,
    SERVICEMONITOR_CRD,
    Obj,
    Rendered,
    container,
    dashboard_files,
    env,
    pod_labels,
    pod_spec,
    render,
    selector_matches,
    strict_crd_schema,
    workloads,
)
from support import (
    GRAFANA_TEST_VARIABLES,
    ROOT,
    dashboard_exprs,
    expand_grafana_variables,
    promql_metric_names,
)
from telemetry_contract import metric_names as names
from telemetry_contract.events import BENCH_MODES
from telemetry_contract.ports import (
    BENCH_SERVICE_SUFFIX,
    CHART_NAME,
    DEFAULT_SIDECAR_HTTP_PORT,
    DEFAULT_SIDECAR_PROBE_PORT,
    DEFAULT_UI_PORT,
    DEFAULT_ZMQ_PORT,
)
from trading_operator import resource
from trading_operator.job import job_name
from trading_operator.settings import OperatorSettings
from trading_operator.spec import parse_spec
from trading_publisher.settings import PublisherSettings
from trading_sidecar.settings import SidecarSettings


@pytest.fixture(scope="module")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def default(chart: helm_python.Chart) -> Rendered:
    return render(chart)


@pytest.fixture(scope="module")
def everything(chart: helm_python.Chart) -> Rendered:
    return render(chart, EVERYTHING_ON)


@pytest.fixture(scope="module")
def minimal(chart: helm_python.Chart) -> Rendered:
    return render(chart, EVERYTHING_OFF)


@pytest.fixture(scope="module", params=["default", "everything", "minimal"])
def rendered(request: pytest.FixtureRequest) -> Rendered:
    """Each values set in turn, for the checks that must hold for all of them."""
    result: Rendered = request.getfixturevalue(request.param)
    return result


def fullname(rendered: Rendered) -> str:
    return f"{rendered.release}-trading-telemetry"


# --- Helm: lint, schema, what each values set renders ---


@pytest.mark.parametrize(
    "values", [None, EVERYTHING_ON, EVERYTHING_OFF], ids=["default", "on", "off"]
)
def test_helm_lint_reports_no_errors(values: dict[str, Any] | None) -> None:
    report = helm_python.lint(CHART_DIR, values, strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"sidecar": {"zmqPort": "5555"}}, "/sidecar/zmqPort"),
    ({"sidecar": {"metricsPort": 70000}}, "/sidecar/metricsPort"),
    ({"benchmark": {"mode": "fastest"}}, "/benchmark/mode"),
    ({"benchmark": {"events": 0}}, "/benchmark/events"),
    ({"benchmark": {"timeoutSeconds": 10}}, "/benchmark/timeoutSeconds"),
    ({"sidecar": {"replicas": 0}}, "/sidecar/replicas"),
    ({"sidecar": {"probePort": 0}}, "/sidecar/probePort"),
    ({"publisher": {"image": {"digest": "latest"}}}, "/publisher/image/digest"),
    ({"publisher": {"prometheusUrl": "prometheus:9090"}}, "/publisher/prometheusUrl"),
    ({"curve": {"secretName": "Not_A_Name"}}, "/curve/secretName"),
    ({"sidecar": {"podLabels": {"team": 7}}}, "/sidecar/podLabels/team"),
    ({"serviceMonitor": {"interval": "5 seconds"}}, "/serviceMonitor/interval"),
    (
        {"networkPolicy": {"monitoringNamespace": "Monitoring_NS"}},
        "/networkPolicy/monitoringNamespace",
    ),
    ({"publisher": {"image": {"pullPolicy": "Sometimes"}}}, "/publisher/image/pullPolicy"),
    ({"sidecar": {"logLevel": "verbose"}}, "/sidecar/logLevel"),
    ({"operator": {"enabeld": True}}, "enabeld"),
    # A misspelt resources key would otherwise be dropped and the container run unlimited.
    ({"publisher": {"resources": {"limit": {"cpu": "1"}}}}, "'limit' not allowed"),
    ({"sidecar": {"resources": {"limits": {"mem": "1Gi"}}}}, "'mem' not allowed"),
    ({"operator": {"resources": {"requests": {"cpu": "lots"}}}}, "/operator/resources/requests"),
    ({"dashboards": {"grafanaUrl": "grafana.localhost"}}, "/dashboards/grafanaUrl"),
    ({"replicas": 2}, "replicas"),
]


@pytest.mark.parametrize(("values", "where"), BAD_VALUES, ids=[w for _, w in BAD_VALUES])
def test_values_violating_the_schema_are_rejected_with_the_key_named(
    chart: helm_python.Chart, values: dict[str, Any], where: str
) -> None:
    """Install renders through the same schema check: the message must point at the key."""
    with pytest.raises(helm_python.HelmValuesError) as rejected:
        chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    assert where in str(rejected.value)
    report = helm_python.lint(CHART_DIR, values, namespace=NAMESPACE)
    assert any(where in error for error in report["errors"]), report


def test_schema_accepts_the_defaults_and_every_documented_switch(chart: helm_python.Chart) -> None:
    chart.validate_schema(None)
    chart.validate_schema(EVERYTHING_ON)
    chart.validate_schema(EVERYTHING_OFF)
    chart.validate_schema({"benchmark": {"rate": None, "duration": None, "timeoutSeconds": 60}})
    chart.validate_schema(
        {
            "operator": {"resources": {"limits": {"ephemeral-storage": "1Gi", "cpu": 2}}},
            "dashboards": {"grafanaUrl": "https://example.org/grafana/"},
        }
    )
    chart.validate_schema({"dashboards": {"grafanaUrl": ""}})


def test_schema_closed_sets_come_from_the_contract() -> None:
    """The benchmark mode and run-id rules the CLI and sidecar enforce, not a retyped copy."""
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    bench = schema["properties"]["benchmark"]["properties"]
    assert tuple(bench["mode"]["enum"]) == BENCH_MODES


def test_defaults_leave_the_benchmark_and_operator_off(default: Rendered) -> None:
    kinds = {o["kind"] for _, o in default.objects}
    assert not default.kinds("Job") and not default.kinds("LatencyBenchmark")
    assert "ServiceAccount" not in kinds and "Role" not in kinds
    name = fullname(default)
    assert f"Deployment/{name}-operator" not in default.names()
    for expected in (
        f"Deployment/{name}-publisher",
        f"StatefulSet/{name}-sidecar",
        f"Service/{name}-ui",
        f"Service/{name}-zmq",
        f"Service/{name}-metrics",
        f"Service/{name}-sidecar",
        f"Service/{name}-sidecar-bench",
        f"ServiceMonitor/{name}-sidecar",
        f"NetworkPolicy/{name}-default-deny",
        f"NetworkPolicy/{name}-sidecar",
        f"Pod/{name}-test-metrics",
    ):
        assert expected in default.names()


def test_everything_on_renders_every_optional_part(everything: Rendered) -> None:
    name = fullname(everything)
    for expected in (
        f"LatencyBenchmark/{name}-bench-1",
        f"Deployment/{name}-operator",
        f"ServiceAccount/{name}",
        f"ServiceAccount/{name}-operator",
        f"Role/{name}-operator",
        f"RoleBinding/{name}-operator",
        f"ServiceMonitor/{name}-sidecar",
        f"NetworkPolicy/{name}-default-deny",
        f"NetworkPolicy/{name}-sidecar",
        f"NetworkPolicy/{name}-ui",
        f"Pod/{name}-test-metrics",
    ):
        assert expected in everything.names()
    assert f"PrometheusRule/{name}-alerts" in everything.names()


def test_switched_off_parts_render_nothing(minimal: Rendered) -> None:
    kinds = sorted(o["kind"] for _, o in minimal.objects)
    assert kinds == [
        "Deployment",
        "Service",
        "Service",
        "Service",
        "Service",
        "Service",
        "StatefulSet",
    ]
    sidecar = pod_spec(minimal.get("StatefulSet", f"{fullname(minimal)}-sidecar"))
    assert sidecar is not None and [v["name"] for v in sidecar["volumes"]] == ["tmp"]
    assert "TT_SIDECAR_STATE_DIR" not in env(sidecar["containers"][0])
    assert "lifecycle" not in sidecar["containers"][0]


def test_every_object_carries_the_standard_labels(rendered: Rendered) -> None:
    for template, obj in rendered.objects:
        labels = obj["metadata"]["labels"]
        where = f"{template}: {obj['kind']}/{obj['metadata']['name']}"
        assert labels["app.kubernetes.io/name"] == "trading-telemetry", where
        assert labels["app.kubernetes.io/instance"] == rendered.release, where
        assert labels["app.kubernetes.io/managed-by"] == "Helm", where
        assert labels["helm.sh/chart"] == f"trading-telemetry-{CHART_META['version']}", where
        assert labels["app.kubernetes.io/version"] == CHART_META["appVersion"], where
        spec = pod_spec(obj)
        if spec is not None:
            component = pod_labels(obj)["app.kubernetes.io/component"]
            assert component in ("publisher", "sidecar", "operator", "test"), where


def test_fullname_follows_the_release_name(chart: helm_python.Chart) -> None:
    """A release named after the chart is not doubled: Makefile targets rely on this."""
    same = render(chart, release="trading-telemetry")
    assert "Service/trading-telemetry-ui" in same.names()
    assert "Service/trading-telemetry-trading-telemetry-ui" not in same.names()


def test_notes_tell_how_to_reach_the_ui_and_grafana(everything: Rendered) -> None:
    name = fullname(everything)
    notes = everything.notes
    assert f"port-forward service/{name}-ui {DEFAULT_UI_PORT}:{DEFAULT_UI_PORT}" in notes
    assert f"--namespace {NAMESPACE}" in notes
    assert "make grafana" in notes and "make ui" in notes
    assert f"helm test {RELEASE}" in notes
    assert f"get lbench {name}-bench-1 --watch" in notes
    assert "make grafana-forward" in notes


def test_notes_print_grafana_and_dashboard_urls_outside_the_repository(
    chart: helm_python.Chart,
) -> None:
    """Whoever installs the packaged chart has no `make grafana`: the URLs come from values."""
    url = "https://grafana.example.org/"
    notes = render(chart, {"dashboards": {"grafanaUrl": url}}).notes
    assert f"     {url}\n" in notes
    uids = [json.loads(path.read_text())["uid"] for path in sorted(DASHBOARDS_DIR.glob("*.json"))]
    assert uids
    for uid in uids:
        assert f"{url}d/{uid} " in notes, uid
    without = render(chart, {"dashboards": {"grafanaUrl": ""}}).notes
    assert "d/" not in without and "make grafana-forward" in without


def test_notes_warn_when_the_servicemonitor_cannot_be_selected(chart: helm_python.Chart) -> None:
    """kube-prometheus-stack selects release=<its release>: without it nothing scrapes us."""
    warning = 'WARNING: the ServiceMonitor has no "release" label'
    assert warning not in render(chart).notes
    # Helm merges maps with the defaults: a null removes the default release label.
    unlabelled = {"serviceMonitor": {"additionalLabels": {"release": None, "team": "a"}}}
    assert warning in render(chart, unlabelled).notes
    assert (
        "--set-string serviceMonitor.additionalLabels.release=" in render(chart, unlabelled).notes
    )
    off = {"serviceMonitor": {"enabled": False, "additionalLabels": {}}}
    assert warning not in render(chart, off).notes


# --- schemas: Kubernetes OpenAPI for core objects, the CRD for the ServiceMonitor ---


def test_core_objects_validate_against_the_kubernetes_openapi_schemas(rendered: Rendered) -> None:
    checked = 0
    for template, obj in rendered.objects:
        if obj["apiVersion"].startswith(
            ("monitoring.coreos.com/", "telemetry.trading-telemetry.io/")
        ):
            continue
        where = f"{template}: {obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            pytest.fail(
                f"{where} is invalid for Kubernetes {KUBE_VERSION}: {path}: {error.message}"
            )
        checked += 1
    assert checked >= 5


def test_the_openapi_check_rejects_a_misspelt_field(default: Rendered) -> None:
    """Strict schemas: an unknown field (silently dropped by kubectl) must fail here."""
    deployment = copy.deepcopy(default.get("StatefulSet", f"{fullname(default)}-sidecar"))
    container(deployment)["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


@pytest.fixture(scope="module")
def servicemonitor_validator() -> jsonschema.Draft7Validator:
    if not SERVICEMONITOR_CRD.is_file():
        message = (
            f"{SERVICEMONITOR_CRD} is missing: the prometheus-operator CRDs come from the "
            "shared/ folder checked out beside this repository"
        )
        if os.environ.get("CI"):
            pytest.fail(message)  # CI always has shared/: its absence is a broken checkout
        pytest.skip(message)
    crd = yaml.safe_load(SERVICEMONITOR_CRD.read_text())
    assert crd["spec"]["names"]["kind"] == "ServiceMonitor"
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = strict_crd_schema(version["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_servicemonitor_validates_against_the_crd_schema(
    everything: Rendered, servicemonitor_validator: jsonschema.Draft7Validator
) -> None:
    (monitor,) = everything.kinds("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    errors = sorted(servicemonitor_validator.iter_errors(monitor), key=str)
    assert not errors, [f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors]


def test_the_crd_check_rejects_a_broken_servicemonitor(
    default: Rendered, servicemonitor_validator: jsonschema.Draft7Validator
) -> None:
    (monitor,) = default.kinds("ServiceMonitor")
    misspelt = copy.deepcopy(monitor)
    misspelt["spec"]["endpoint"] = misspelt["spec"].pop("endpoints")
    bad_interval = copy.deepcopy(monitor)
    bad_interval["spec"]["endpoints"][0]["interval"] = "5 seconds"
    for broken in (misspelt, bad_interval):
        assert not servicemonitor_validator.is_valid(broken)


@pytest.fixture(scope="module")
def prometheusrule_validator() -> jsonschema.Draft7Validator:
    if not PROMETHEUSRULE_CRD.is_file():
        message = f"{PROMETHEUSRULE_CRD} is missing: shared/ must be checked out beside the repo"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # Go's RE2 takes a flag group after "^" ("^(?i)(abort|warn)?$"); Python's re wants global
    # flags first, so move them there: the same language, spelt for Python.
    text = PROMETHEUSRULE_CRD.read_text().replace("pattern: ^(?i)", "pattern: (?i)^")
    crd = yaml.safe_load(text)
    assert crd["spec"]["names"]["kind"] == "PrometheusRule"
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = strict_crd_schema(version["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_chart_alerts_are_a_link_to_the_one_rules_file() -> None:
    link = CHART_DIR / "alerts.yml"
    assert link.is_symlink() and link.resolve() == ALERTS_FILE.resolve()


def test_prometheusrule_carries_the_rules_file_and_validates_against_the_crd(
    everything: Rendered, prometheusrule_validator: jsonschema.Draft7Validator
) -> None:
    (rule,) = everything.kinds("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    # By default: the file's groups, less the opt-in trading-hours one (test_chart_alerts.py).
    groups = yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    assert rule["spec"]["groups"] == [
        g for g in groups if g["name"] != "trading-telemetry-trading-hours"
    ]
    # kube-prometheus-stack's default ruleSelector is release=<its release name>, as for
    # ServiceMonitors.
    assert rule["metadata"]["labels"]["release"] == "monitoring"
    errors = sorted(prometheusrule_validator.iter_errors(rule), key=str)
    assert not errors, [f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors]
    broken = copy.deepcopy(rule)
    broken["spec"]["groups"][0]["rules"][0]["expresion"] = "up == 0"
    assert not prometheusrule_validator.is_valid(broken)


def test_prometheusrule_switches_off(minimal: Rendered) -> None:
    assert not minimal.kinds("PrometheusRule")


# --- cross-checks: the objects agree with each other ---


def test_every_service_selects_the_pods_it_targets_and_their_ports(rendered: Rendered) -> None:
    name = fullname(rendered)
    expected_component = {
        f"{name}-ui": "publisher",
        f"{name}-zmq": "sidecar",
        f"{name}-metrics": "sidecar",
        f"{name}-sidecar": "sidecar",
        f"{name}-sidecar-bench": "sidecar",
    }
    services = rendered.kinds("Service")
    assert {s["metadata"]["name"] for s in services} == set(expected_component)
    for service in services:
        selector = {"matchLabels": service["spec"]["selector"]}
        # The bench Service selects replica 0 by the label the StatefulSet controller adds.
        targets = [
            obj
            for obj, _ in workloads(rendered)
            if selector_matches(
                {
                    "matchLabels": {
                        k: v
                        for k, v in selector["matchLabels"].items()
                        if k != "statefulset.kubernetes.io/pod-name"
                    }
                },
                pod_labels(obj),
            )
        ]
        components = {pod_labels(obj)["app.kubernetes.io/component"] for obj in targets}
        assert components == {expected_component[service["metadata"]["name"]]}, service["metadata"]
        for port in service["spec"]["ports"]:
            for target in targets:
                named = {p["name"]: p["containerPort"] for p in container(target).get("ports", [])}
                assert port["targetPort"] in named, (service["metadata"]["name"], port)


def test_the_bench_service_is_replica_zero_alone(everything: Rendered) -> None:
    name = fullname(everything)
    bench = everything.get("Service", f"{name}-sidecar-bench")
    assert bench["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == f"{name}-sidecar-0"
    assert {p["name"] for p in bench["spec"]["ports"]} == {"zmq", "http-metrics"}


def test_every_workload_selector_matches_its_own_pod_template(rendered: Rendered) -> None:
    deployments = rendered.kinds("Deployment") + rendered.kinds("StatefulSet")
    for obj in deployments:
        assert selector_matches(obj["spec"]["selector"], pod_labels(obj)), obj["metadata"]["name"]
    for obj in deployments:
        others = [o for o in deployments if o is not obj]
        assert not any(selector_matches(obj["spec"]["selector"], pod_labels(o)) for o in others)


def service_port(service: Obj, port_name: str) -> Obj:
    port: Obj = next(p for p in service["spec"]["ports"] if p["name"] == port_name)
    return port


def container_port(obj: Obj, port_name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container(obj)["ports"]}
    return int(ports[port_name])


def replica_hosts(rendered: Rendered) -> list[str]:
    """Each sidecar replica's DNS name as the StatefulSet and its headless Service make it."""
    sidecar = rendered.get("StatefulSet", f"{fullname(rendered)}-sidecar")
    headless = rendered.get("Service", sidecar["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    name = sidecar["metadata"]["name"]
    return [
        f"{name}-{i}.{headless['metadata']['name']}" for i in range(sidecar["spec"]["replicas"])
    ]


def test_the_publisher_sends_to_every_sidecar_replica_by_name(rendered: Rendered) -> None:
    """One address (one socket, one stream) per replica: no event can be counted twice."""
    name = fullname(rendered)
    publisher = env(container(rendered.get("Deployment", f"{name}-publisher")))
    sidecar = rendered.get("StatefulSet", f"{name}-sidecar")
    headless = rendered.get("Service", sidecar["spec"]["serviceName"])
    addresses = [urlsplit(a) for a in publisher["TT_PUBLISHER_ZMQ_CONNECT"].split(",")]
    assert [a.hostname for a in addresses] == replica_hosts(rendered)
    zmq_port = service_port(headless, "zmq")
    assert {(a.scheme, a.port) for a in addresses} == {("tcp", zmq_port["port"])}
    # ...and that port lands on the port the sidecar binds.
    bind = urlsplit(env(container(sidecar))["TT_SIDECAR_ZMQ_BIND"])
    assert bind.hostname == "0.0.0.0"
    assert bind.port == container_port(sidecar, zmq_port["targetPort"])
    # The UI's live totals: the sum over every replica's /metrics.
    urls = [urlsplit(u) for u in publisher["TT_PUBLISHER_SIDECAR_URL"].split(",")]
    assert [u.hostname for u in urls] == replica_hosts(rendered)
    http_port = service_port(headless, "http-metrics")
    assert {(u.scheme, u.port) for u in urls} == {("http", http_port["port"])}
    sidecar_env = env(container(sidecar))
    assert sidecar_env["TT_SIDECAR_HTTP_HOST"] == "0.0.0.0"
    assert int(sidecar_env["TT_SIDECAR_HTTP_PORT"]) == container_port(
        sidecar, http_port["targetPort"]
    )
    assert publisher["TT_PUBLISHER_UI_HOST"] == "0.0.0.0"


def test_three_replicas_give_three_streams_and_prometheus_totals(everything: Rendered) -> None:
    name = fullname(everything)
    sidecar = everything.get("StatefulSet", f"{name}-sidecar")
    assert sidecar["spec"]["replicas"] == 3 and len(replica_hosts(everything)) == 3
    assert sidecar["spec"]["podManagementPolicy"] == "Parallel"
    assert sidecar["spec"]["updateStrategy"] == {"type": "RollingUpdate"}
    publisher = env(container(everything.get("Deployment", f"{name}-publisher")))
    assert publisher["TT_PUBLISHER_PROMETHEUS_URL"] == "http://prometheus.monitoring:9090"
    assert len(publisher["TT_PUBLISHER_ZMQ_CONNECT"].split(",")) == 3


def test_without_a_prometheus_url_the_ui_sums_the_replicas_itself(default: Rendered) -> None:
    publisher = env(container(default.get("Deployment", f"{fullname(default)}-publisher")))
    assert "TT_PUBLISHER_PROMETHEUS_URL" not in publisher


def test_a_sigterm_drain_fits_in_the_grace_period(chart: helm_python.Chart) -> None:
    """preStop sleeps first, then SIGTERM drains: the grace period covers both."""
    values = {"sidecar": {"preStopSleepSeconds": 5, "terminationGracePeriodSeconds": 40}}
    sidecar = render(chart, values).get("StatefulSet", f"{RELEASE}-trading-telemetry-sidecar")
    spec = pod_spec(sidecar)
    assert spec is not None and spec["terminationGracePeriodSeconds"] == 45
    assert container(sidecar)["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]


def test_ports_and_names_follow_the_shared_interface(default: Rendered) -> None:
    """values.yaml's defaults are the contract's ports (telemetry_contract.ports: the chart
    cannot import them, so this is where they are compared); the operator and the benchmark
    build these names from the release."""
    name = fullname(default)
    zmq_port, http_port = DEFAULT_ZMQ_PORT, DEFAULT_SIDECAR_HTTP_PORT
    assert service_port(default.get("Service", f"{name}-zmq"), "zmq")["port"] == zmq_port
    assert service_port(default.get("Service", f"{name}-metrics"), "http-metrics")["port"] == (
        http_port
    )
    assert service_port(default.get("Service", f"{name}-ui"), "http")["port"] == DEFAULT_UI_PORT
    bench = default.get("Service", f"{name}{BENCH_SERVICE_SUFFIX}")
    assert service_port(bench, "zmq")["port"] == zmq_port
    assert default.get("Service", f"{name}-zmq")["spec"]["type"] == "ClusterIP"
    sidecar = default.get("StatefulSet", f"{name}-sidecar")
    assert container_port(sidecar, "probe") == DEFAULT_SIDECAR_PROBE_PORT
    assert env(container(sidecar))["TT_SIDECAR_PROBE_PORT"] == str(DEFAULT_SIDECAR_PROBE_PORT)
    publisher = env(container(default.get("Deployment", f"{name}-publisher")))
    replica = f"{name}-sidecar-0.{name}-sidecar"
    assert publisher["TT_PUBLISHER_ZMQ_CONNECT"] == f"tcp://{replica}:{zmq_port}"
    assert publisher["TT_PUBLISHER_SIDECAR_URL"] == f"http://{replica}:{http_port}"


def test_servicemonitor_selects_the_metrics_service_and_an_existing_port(
    everything: Rendered,
) -> None:
    name = fullname(everything)
    (monitor,) = everything.kinds("ServiceMonitor")
    metrics = everything.get("Service", f"{name}-metrics")
    zmq = everything.get("Service", f"{name}-zmq")
    assert selector_matches(monitor["spec"]["selector"], metrics["metadata"]["labels"])
    # Only the metrics Service: the others reach the same pods and would scrape them twice.
    for other in (
        zmq,
        *(everything.get("Service", f"{name}-{n}") for n in ("sidecar", "sidecar-bench")),
    ):
        assert not selector_matches(monitor["spec"]["selector"], other["metadata"]["labels"])
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    port_names = {p["name"] for p in metrics["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"
        assert endpoint["interval"] == "1s"  # the product scrapes every second
    # kube-prometheus-stack's default serviceMonitorSelector is release=<its release name>.
    assert monitor["metadata"]["labels"]["release"] == "monitoring"
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["relabelings"] == EVERYTHING_ON["serviceMonitor"]["relabelings"]
    assert endpoint["metricRelabelings"] == EVERYTHING_ON["serviceMonitor"]["metricRelabelings"]


def test_servicemonitor_interval_and_selection_label_are_values(chart: helm_python.Chart) -> None:
    custom = render(
        chart,
        {
            "serviceMonitor": {
                "interval": "30s",
                "scrapeTimeout": "10s",
                "additionalLabels": {"prometheus": "team-a"},
            }
        },
    )
    (monitor,) = custom.kinds("ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["interval"] == "30s"
    assert monitor["spec"]["endpoints"][0]["scrapeTimeout"] == "10s"
    assert monitor["metadata"]["labels"]["prometheus"] == "team-a"


@pytest.mark.parametrize(
    ("interval", "timeout"), [("500ms", "1s"), ("1m", "61s"), ("2h", "121m"), ("1s", "1001ms")]
)
def test_a_scrape_timeout_longer_than_the_interval_is_refused(
    chart: helm_python.Chart, interval: str, timeout: str
) -> None:
    """prometheus-operator would skip such a ServiceMonitor without a word: fail at install."""
    values = {"serviceMonitor": {"interval": interval, "scrapeTimeout": timeout}}
    with pytest.raises(helm_python.HelmRenderError) as rejected:
        render(chart, values)
    message = str(rejected.value)
    assert "serviceMonitor.scrapeTimeout" in message and "must not exceed" in message
    assert f"({timeout})" in message and f"({interval})" in message
    # Switched off, nothing is rendered, so nothing is refused.
    render(chart, {"serviceMonitor": {**values["serviceMonitor"], "enabled": False}})


@pytest.mark.parametrize(
    ("interval", "timeout"), [("1s", "1s"), ("1s", "999ms"), ("1m", "60s"), ("2h", "120m")]
)
def test_a_scrape_timeout_up_to_the_interval_is_rendered(
    chart: helm_python.Chart, interval: str, timeout: str
) -> None:
    values = {"serviceMonitor": {"interval": interval, "scrapeTimeout": timeout}}
    (monitor,) = render(chart, values).kinds("ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == (interval, timeout)


def labels_of(component: str, release: str = RELEASE) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "trading-telemetry",
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/component": component,
    }


def ingress_rule_for(policy: Obj, port: str) -> Obj:
    rules = [r for r in policy["spec"]["ingress"] if any(p["port"] == port for p in r["ports"])]
    assert len(rules) == 1, f"expected one ingress rule for port {port}, got {rules}"
    rule: Obj = rules[0]
    return rule


def admits_pod(rule: Obj, labels: Mapping[str, str], namespace: str) -> bool:
    """Whether a pod with ``labels`` in ``namespace`` may connect, per one ingress rule.

    Namespace labels are those Kubernetes sets itself (kubernetes.io/metadata.name).
    """
    namespace_labels = {"kubernetes.io/metadata.name": namespace}
    for peer in rule["from"]:
        if "ipBlock" in peer:
            continue  # addresses outside the cluster, not pods (see the ipBlock test)
        ns_selector = peer.get("namespaceSelector")
        pod_selector = peer.get("podSelector")
        if ns_selector is None and namespace != NAMESPACE:
            continue  # a bare podSelector only sees the policy's own namespace
        if ns_selector is not None and not selector_matches(ns_selector, namespace_labels):
            continue
        if pod_selector is None or selector_matches(pod_selector, labels):
            return True
    return False


def policies_selecting(rendered: Rendered, labels: Mapping[str, str]) -> list[Obj]:
    return [
        policy
        for policy in rendered.kinds("NetworkPolicy")
        if selector_matches(policy["spec"]["podSelector"], labels)
    ]


def admitted(
    rendered: Rendered,
    target: Mapping[str, str],
    port: str,
    peer: Mapping[str, str],
    namespace: str,
) -> bool:
    """NetworkPolicy semantics: a selected pod admits what any selecting policy admits."""
    policies = policies_selecting(rendered, target)
    assert policies, f"no NetworkPolicy selects {target}"
    for policy in policies:
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        for rule in policy["spec"].get("ingress", []):
            if not any(p["port"] == port for p in rule["ports"]):
                continue
            if "from" not in rule or admits_pod(rule, peer, namespace):
                return True
    return False


def test_every_pod_of_the_release_is_under_a_network_policy(everything: Rendered) -> None:
    name = fullname(everything)
    deny = everything.get("NetworkPolicy", f"{name}-default-deny")
    assert "ingress" not in deny["spec"] and deny["spec"]["policyTypes"] == ["Ingress"]
    pods = [pod_labels(obj) for obj, _ in workloads(everything)] + [labels_of("benchmark")]
    for labels in pods:
        assert selector_matches(deny["spec"]["podSelector"], labels), labels
    # Another release's pods are not this chart's business.
    assert not selector_matches(deny["spec"]["podSelector"], labels_of("publisher", "other"))


def test_network_policy_guards_the_sidecar_ports(everything: Rendered) -> None:
    name = fullname(everything)
    policy = everything.get("NetworkPolicy", f"{name}-sidecar")
    sidecar = everything.get("StatefulSet", f"{name}-sidecar")
    target = pod_labels(sidecar)
    assert selector_matches(policy["spec"]["podSelector"], target)
    for obj, _ in workloads(everything):
        if obj is not sidecar:
            assert not selector_matches(policy["spec"]["podSelector"], pod_labels(obj)), obj["kind"]
    sidecar_ports = {p["name"] for p in container(sidecar)["ports"]}
    assert {p["port"] for r in policy["spec"]["ingress"] for p in r["ports"]} == sidecar_ports

    publisher = everything.get("Deployment", f"{name}-publisher")
    operator_job_pod = labels_of("benchmark")  # what the operator puts on its Job pods
    for allowed in (pod_labels(publisher), operator_job_pod):
        assert admitted(everything, target, "zmq", allowed, NAMESPACE), allowed
    for refused_labels, namespace in (
        (labels_of("operator"), NAMESPACE),
        (labels_of("test"), NAMESPACE),
        (labels_of("publisher", release="other"), NAMESPACE),
        (labels_of("publisher"), "monitoring"),
        ({"app": "prometheus"}, "monitoring"),
        ({"run": "curl"}, NAMESPACE),
    ):
        assert not admitted(everything, target, "zmq", refused_labels, namespace)

    for allowed_labels, namespace in (
        ({"app.kubernetes.io/name": "prometheus"}, "monitoring"),
        (pod_labels(publisher), NAMESPACE),
        (operator_job_pod, NAMESPACE),
        (pod_labels(everything.get("Pod", f"{name}-test-metrics")), NAMESPACE),
    ):
        assert admitted(everything, target, "http-metrics", allowed_labels, namespace)
    for refused_labels, namespace in (
        ({"app": "anything"}, "default"),
        ({"run": "curl"}, NAMESPACE),
        (labels_of("publisher", release="other"), NAMESPACE),
    ):
        assert not admitted(everything, target, "http-metrics", refused_labels, namespace)

    # The probe port is open to anyone (the kubelet included, whatever the CNI makes of it).
    for anyone, namespace in (({}, "kube-system"), ({"run": "curl"}, NAMESPACE)):
        assert admitted(everything, target, "probe", anyone, namespace)


def test_the_ui_admits_only_the_configured_peers(
    chart: helm_python.Chart, everything: Rendered
) -> None:
    name = fullname(everything)
    target = pod_labels(everything.get("Deployment", f"{name}-publisher"))
    assert admitted(everything, target, "http", {}, "edge")
    for peer, namespace in (({}, NAMESPACE), (labels_of("sidecar"), NAMESPACE), ({}, "monitoring")):
        assert not admitted(everything, target, "http", peer, namespace)
    # By default nobody: only `kubectl port-forward`, which is not pod traffic.
    default = render(chart)
    assert f"NetworkPolicy/{name}-ui" not in default.names()
    assert not admitted(default, target, "http", {}, NAMESPACE)
    operator = pod_labels(everything.get("Deployment", f"{name}-operator"))
    assert not admitted(everything, operator, "health", {}, NAMESPACE)


def test_network_policy_monitoring_namespace_is_a_value(chart: helm_python.Chart) -> None:
    custom = render(chart, {"networkPolicy": {"monitoringNamespace": "observability"}})
    target = labels_of("sidecar")
    assert admitted(custom, target, "http-metrics", {"app": "prometheus"}, "observability")
    assert not admitted(custom, target, "http-metrics", {"app": "prometheus"}, "monitoring")


def test_every_container_is_locked_down(rendered: Rendered) -> None:
    for obj, spec in workloads(rendered):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        pod_context = spec["securityContext"]
        assert pod_context["runAsNonRoot"] is True, where
        assert pod_context["runAsUser"] == 10001, where
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}, where
        tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for c in spec["containers"] + spec.get("initContainers", []):
            context = c["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert c["resources"]["requests"] and c["resources"]["limits"], where
            # HOME and every writer point at /tmp: it must be a writable emptyDir.
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert mounts.get("/tmp") in tmp_volumes, where


def test_sidecar_probes_hit_its_health_endpoints_on_the_probe_port(default: Rendered) -> None:
    sidecar = container(default.get("StatefulSet", f"{fullname(default)}-sidecar"))
    assert sidecar["command"] == ["trading-sidecar"]
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probe"}
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "probe"}
    assert env(sidecar)["TT_SIDECAR_PROBE_PORT"] == str(container_port_of(sidecar, "probe"))


def container_port_of(c: Obj, port_name: str) -> int:
    return int(next(p["containerPort"] for p in c["ports"] if p["name"] == port_name))


def test_the_state_dir_is_an_emptydir_mounted_in_the_sidecar(default: Rendered) -> None:
    sidecar = default.get("StatefulSet", f"{fullname(default)}-sidecar")
    spec = pod_spec(sidecar)
    assert spec is not None
    (state,) = [v for v in spec["volumes"] if v["name"] == "state"]
    assert "emptyDir" in state
    mounts = {m["name"]: m["mountPath"] for m in container(sidecar)["volumeMounts"]}
    assert env(container(sidecar))["TT_SIDECAR_STATE_DIR"] == mounts["state"]


def test_persistent_state_is_a_claim_per_replica(chart: helm_python.Chart) -> None:
    """With persistence, a rolled or rescheduled replica finds the snapshot its drain wrote."""
    values = {
        "sidecar": {
            "replicas": 2,
            "stateDir": {"persistence": {"enabled": True, "storageClassName": "standard"}},
        }
    }
    sidecar = render(chart, values).get("StatefulSet", f"{RELEASE}-trading-telemetry-sidecar")
    kubernetes_validate.validate(sidecar, KUBE_VERSION, strict=True)
    (claim,) = sidecar["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "standard"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    spec = pod_spec(sidecar)
    assert spec is not None
    assert "state" not in {v["name"] for v in spec["volumes"]}, "the claim, not an emptyDir"
    mounts = {m["name"]: m["mountPath"] for m in container(sidecar)["volumeMounts"]}
    assert env(container(sidecar))["TT_SIDECAR_STATE_DIR"] == mounts[claim["metadata"]["name"]]
    # The claim is written by uid 10001 through the pod's fsGroup.
    assert spec["securityContext"]["fsGroup"] == 10001


def secret_files(spec: Obj, c: Obj) -> dict[str, tuple[str, str | None]]:
    """mount path of each file a container sees from a Secret → (secret, key or None=all)."""
    volumes = {v["name"]: v for v in spec["volumes"]}
    files: dict[str, tuple[str, str | None]] = {}
    for mount in c["volumeMounts"]:
        secret = volumes[mount["name"]].get("secret")
        if secret is None:
            continue
        assert mount.get("readOnly") is True, mount
        items = secret.get("items")
        if items is None:
            files[mount["mountPath"]] = (secret["secretName"], None)
        for item in items or []:
            files[f"{mount['mountPath']}/{item['path']}"] = (secret["secretName"], item["key"])
    return files


def test_curve_keys_come_from_the_secrets_and_go_where_the_env_says(everything: Rendered) -> None:
    name = fullname(everything)
    sidecar = everything.get("StatefulSet", f"{name}-sidecar")
    sidecar_spec = pod_spec(sidecar)
    assert sidecar_spec is not None
    sidecar_env = env(container(sidecar))
    files = secret_files(sidecar_spec, container(sidecar))
    assert files[sidecar_env["TT_SIDECAR_CURVE_SECRET_KEY_FILE"]] == (
        "tt-curve",
        "server.key_secret",
    )
    assert files[sidecar_env["TT_SIDECAR_CURVE_CLIENTS_DIR"]] == ("tt-curve-clients", None)
    publisher = everything.get("Deployment", f"{name}-publisher")
    publisher_spec = pod_spec(publisher)
    assert publisher_spec is not None
    publisher_env = env(container(publisher))
    files = secret_files(publisher_spec, container(publisher))
    assert files[publisher_env["TT_PUBLISHER_CURVE_SERVER_KEY_FILE"]] == ("tt-curve", "server.key")
    assert files[publisher_env["TT_PUBLISHER_CURVE_SECRET_KEY_FILE"]] == (
        "tt-curve",
        "client.key_secret",
    )
    # The publishers never see the server's secret key.
    assert ("tt-curve", "server.key_secret") not in files.values()


def test_curve_is_off_by_default_and_needs_its_secrets(
    chart: helm_python.Chart, default: Rendered
) -> None:
    for obj, _ in workloads(default):
        assert not any("CURVE" in key for key in env(container(obj))), obj["metadata"]["name"]
    with pytest.raises(helm_python.HelmRenderError, match="curve.secretName"):
        render(chart, {"curve": {"enabled": True}})


def test_escape_hatches_reach_every_pod_template(everything: Rendered) -> None:
    name = fullname(everything)
    for kind, component in (
        ("Deployment", "publisher"),
        ("StatefulSet", "sidecar"),
        ("Deployment", "operator"),
    ):
        obj = everything.get(kind, f"{name}-{component}")
        spec = pod_spec(obj)
        assert spec is not None
        template = obj["spec"]["template"]["metadata"]
        assert template["annotations"] == POD_EXTRAS["podAnnotations"], component
        assert template["labels"]["team"] == "trading", component
        assert "team" not in obj["spec"]["selector"]["matchLabels"], component
        for key in ("nodeSelector", "tolerations", "affinity"):
            assert spec[key] == POD_EXTRAS[key], (component, key)
        assert env(container(obj))["TT_EXTRA"] == "1", component
    account = everything.get("ServiceAccount", name)
    assert account["metadata"]["annotations"] == {"example.org/role": "trading"}
    for component in ("publisher", "sidecar"):
        obj = next(
            o
            for o, _ in workloads(everything)
            if pod_labels(o).get("app.kubernetes.io/component") == component
        )
        spec = pod_spec(obj)
        assert spec is not None and spec["serviceAccountName"] == name
        assert spec["automountServiceAccountToken"] is False


def test_security_contexts_are_values(chart: helm_python.Chart) -> None:
    values = {
        "podSecurityContext": {"runAsNonRoot": True, "runAsUser": 20000, "fsGroup": 20000},
        "securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True},
    }
    custom = render(chart, values)
    for obj, spec in workloads(custom):
        # Helm merges the maps into the defaults, so the defaults' other keys stay.
        assert spec["securityContext"]["runAsUser"] == 20000, obj["metadata"]["name"]
        assert spec["securityContext"]["fsGroup"] == 20000, obj["metadata"]["name"]
        for c in spec["containers"]:
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    loosened = render(chart, {"securityContext": {"readOnlyRootFilesystem": False}})
    for _, spec in workloads(loosened):
        assert all(
            c["securityContext"]["readOnlyRootFilesystem"] is False for c in spec["containers"]
        )


def test_images_take_a_registry_and_a_digest(chart: helm_python.Chart) -> None:
    digest = "sha256:" + "ab" * 32
    custom = render(
        chart,
        {
            "publisher": {"image": {"registry": "ghcr.io/acme", "digest": digest}},
            "sidecar": {"image": {"registry": "ghcr.io/acme", "tag": "1.2.3"}},
        },
    )
    name = fullname(custom)
    publisher = container(custom.get("Deployment", f"{name}-publisher"))
    sidecar = container(custom.get("StatefulSet", f"{name}-sidecar"))
    assert publisher["image"] == f"ghcr.io/acme/trading-telemetry-publisher:0.1.0@{digest}"
    assert sidecar["image"] == "ghcr.io/acme/trading-telemetry-sidecar:1.2.3"


@pytest.fixture(scope="module")
def latencybenchmark_validator() -> jsonschema.Draft4Validator:
    crd = yaml.safe_load((CHART_DIR / "crds" / "latencybenchmarks.yaml").read_text())
    (version,) = crd["spec"]["versions"]
    return jsonschema.Draft4Validator(strict_crd_schema(version["schema"]["openAPIV3Schema"]))


def test_benchmark_is_a_latencybenchmark_for_the_operator(
    everything: Rendered, latencybenchmark_validator: jsonschema.Draft4Validator
) -> None:
    """One benchmark runner: the operator renders the Job; the chart only asks for a run."""
    name = fullname(everything)
    assert not everything.kinds("Job")
    benchmark = everything.get("LatencyBenchmark", f"{name}-bench-1")
    assert benchmark["apiVersion"] == resource.API_VERSION
    assert benchmark["spec"] == {
        "mode": "sustained",
        "events": 100000,
        "rate": 2500,
        "duration": 4,
        "timeoutSeconds": 900,
    }
    errors = sorted(latencybenchmark_validator.iter_errors(benchmark), key=str)
    assert not errors, [e.message for e in errors]
    # The operator accepts it and points the Job at the release's replica-0 Service.
    operator = env(container(everything.get("Deployment", f"{name}-operator")))
    settings = OperatorSettings(
        default_service=operator["TT_OPERATOR_DEFAULT_SERVICE"],
        sidecar_url=operator["TT_OPERATOR_SIDECAR_URL"],
    )
    spec = parse_spec(benchmark["spec"], settings)
    assert spec.address == f"tcp://{name}{BENCH_SERVICE_SUFFIX}:{DEFAULT_ZMQ_PORT}"
    assert spec.sidecar_url == f"http://{name}{BENCH_SERVICE_SUFFIX}:{DEFAULT_SIDECAR_HTTP_PORT}"


def test_benchmark_leaves_optional_fields_to_the_crd_defaults(chart: helm_python.Chart) -> None:
    values = {"operator": {"enabled": True}, "benchmark": {"enabled": True, "events": 5000}}
    benchmark = render(chart, values).get(
        "LatencyBenchmark", f"{RELEASE}-trading-telemetry-bench-1"
    )
    assert benchmark["spec"] == {"mode": "burst", "events": 5000, "timeoutSeconds": 900}


def test_benchmark_without_the_operator_is_refused(chart: helm_python.Chart) -> None:
    with pytest.raises(helm_python.HelmRenderError, match="operator.enabled=true"):
        render(chart, {"benchmark": {"enabled": True}})


def test_helm_test_pod_fetches_metrics_through_the_metrics_service(default: Rendered) -> None:
    name = fullname(default)
    pod = default.get("Pod", f"{name}-test-metrics")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    command = container(pod)["command"]
    assert command[-1] == f"http://{name}-metrics:{DEFAULT_SIDECAR_HTTP_PORT}/metrics"


# --- the operator, exactly as interfaces.md fixes it ---


def test_operator_deployment_and_rbac_follow_the_interface(everything: Rendered) -> None:
    name = fullname(everything)
    operator_name = f"{name}-operator"
    # The Role's rules themselves are checked against what the operator's code calls, in
    # test_chart_operator.py.
    role = everything.get("Role", operator_name)
    account = everything.get("ServiceAccount", operator_name)
    binding = everything.get("RoleBinding", operator_name)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    deployment = everything.get("Deployment", operator_name)
    assert deployment["spec"]["replicas"] == 1
    spec = pod_spec(deployment)
    assert spec is not None and spec["serviceAccountName"] == account["metadata"]["name"]
    operator = container(deployment)
    assert operator["image"] == "trading-telemetry-operator:0.1.0"
    assert operator["command"] == [
        "kopf", "run", "--standalone", "--namespace", "$(POD_NAMESPACE)",
        "--liveness=http://0.0.0.0:8080/healthz", "-m", "trading_operator.handlers",
    ]  # fmt: skip
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    pod_namespace = next(e for e in operator["env"] if e["name"] == "POD_NAMESPACE")
    assert pod_namespace["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env(operator) == {
        "POD_NAMESPACE": "",
        "TT_OPERATOR_BENCH_IMAGE": "trading-telemetry-bench:0.1.0",
        "TT_OPERATOR_INSTANCE": RELEASE,
        # Replica 0 alone: a benchmark reads back the counts of the replica it sent to.
        "TT_OPERATOR_DEFAULT_SERVICE": f"{name}{BENCH_SERVICE_SUFFIX}",
        "TT_OPERATOR_ZMQ_PORT": str(DEFAULT_ZMQ_PORT),
        "TT_OPERATOR_SIDECAR_URL": f"http://{name}{BENCH_SERVICE_SUFFIX}:{DEFAULT_SIDECAR_HTTP_PORT}",
        "TT_EXTRA": "1",
        # The everything-on values set pullSecrets; benchmark Jobs pull like the publisher.
        "TT_OPERATOR_IMAGE_PULL_POLICY": "IfNotPresent",
        "TT_OPERATOR_IMAGE_PULL_SECRETS": "registry-login",
    }


def test_the_operator_defaults_are_what_the_chart_gives_the_default_release(
    chart: helm_python.Chart,
) -> None:
    """``make operator-dev`` against a release named like the chart needs no settings: the
    operator's built-in defaults (from telemetry_contract.ports) are the chart's values."""
    rendered = render(chart, {"operator": {"enabled": True}}, release=CHART_NAME)
    operator = env(container(rendered.get("Deployment", f"{CHART_NAME}-operator")))
    defaults = OperatorSettings()
    for field in ("instance", "default_service", "zmq_port", "sidecar_url"):
        assert operator[f"TT_OPERATOR_{field.upper()}"] == str(getattr(defaults, field)), field
    assert operator["TT_OPERATOR_BENCH_IMAGE"].split(":")[0] == defaults.bench_image.split(":")[0]


# --- dashboards: built from dashboards/, never a second copy ---


def dashboard_configmaps(rendered: Rendered) -> list[Obj]:
    return [
        cm
        for cm in rendered.kinds("ConfigMap")
        if cm["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]


def test_chart_dashboards_are_a_link_to_the_repository_dashboards() -> None:
    """A symlink Helm follows, so there is no hand-edited copy inside the chart to drift."""
    link = CHART_DIR / "dashboards"
    assert link.is_symlink()
    assert Path(link.readlink()) == Path("../../dashboards")
    assert link.resolve() == DASHBOARDS_DIR.resolve()


def test_a_packaged_chart_carries_the_dashboards(tmp_path: Path) -> None:
    """`helm package` follows the link too, so a chart pushed to a repository is complete."""
    archive = Path(helm_python.package(CHART_DIR, destination=tmp_path))
    with helm_python.Chart.load_archive(archive.read_bytes()) as packaged:
        files = {f["name"]: f["data"] for f in packaged.files}
        rendered = render(packaged)
    for name, content in dashboard_files().items():
        assert files[f"dashboards/{name}"].encode("utf-8") == content
    assert len(dashboard_configmaps(rendered)) == len(dashboard_files())


def test_dashboard_configmaps_are_byte_identical_to_dashboards_dir(default: Rendered) -> None:
    files = dashboard_files()
    assert "trading-telemetry.json" in files
    embedded: dict[str, bytes] = {}
    for cm in dashboard_configmaps(default):
        assert len(cm["data"]) == 1, cm["metadata"]["name"]
        for key, text in cm["data"].items():
            embedded[key] = text.encode("utf-8")
    assert embedded.keys() == files.keys(), "every dashboards/*.json gets a ConfigMap, nothing else"
    for key, content in files.items():
        assert embedded[key] == content, f"{key} in the ConfigMap differs from dashboards/{key}"


def test_dashboard_label_is_the_one_grafana_watches(chart: helm_python.Chart) -> None:
    relabelled = render(chart, {"dashboards": {"label": "team_dashboards", "labelValue": "yes"}})
    configmaps = relabelled.kinds("ConfigMap")
    assert configmaps and all(
        cm["metadata"]["labels"]["team_dashboards"] == "yes" for cm in configmaps
    )


LABEL_VALUES = re.compile(r"\s*label_values\(\s*(.+?)\s*,\s*\w+\s*\)\s*")


class AnyVariable(Mapping[str, str]):
    """Grafana variables for a metric-name scan: known ones as the dashboard tests set them,
    any other as a regex. Which variables a dashboard may use is test_dashboards.py's call."""

    def __getitem__(self, name: str) -> str:
        return GRAFANA_TEST_VARIABLES.get(name, ".+")

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(GRAFANA_TEST_VARIABLES)

    def __len__(self) -> int:
        return len(GRAFANA_TEST_VARIABLES)


def variable_query(variable: Obj) -> str:
    query = variable["query"]
    return str(query["query"] if isinstance(query, dict) else query)


def test_every_metric_a_dashboard_queries_is_one_the_sidecar_exports(default: Rendered) -> None:
    exported = set(names.ALL) | {f"{names.E2E_LATENCY}{s}" for s in ("_bucket", "_sum", "_count")}
    # Series Prometheus writes itself for every scrape target, and prometheus_client's process
    # collector on the sidecar (the sidecar up/restarts panel reads both).
    exported |= {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
    exported |= {"process_start_time_seconds"}
    queried: set[str] = set()
    for cm in dashboard_configmaps(default):
        for key, text in cm["data"].items():
            dashboard = json.loads(text)
            exprs = dashboard_exprs(dashboard)
            # label_values(<selector>, <label>) variables query the selector's series too.
            variables = [
                match.group(1)
                for v in dashboard.get("templating", {}).get("list", [])
                if v.get("type") == "query"
                for match in [LABEL_VALUES.fullmatch(variable_query(v))]
                if match
            ]
            assert exprs, f"{key} has no Prometheus query"
            for where, expr in exprs + [(f"variable {q}", q) for q in variables]:
                found = promql_metric_names(expand_grafana_variables(expr, AnyVariable()))
                assert found, f"{key} {where}: no metric in {expr!r}"
                assert found <= exported, f"{key} {where}: {sorted(found - exported)} not exported"
                queried |= found
    assert names.TRADES in queried


def test_every_env_var_the_chart_sets_is_one_the_service_reads(everything: Rendered) -> None:
    """Unknown TT_* variables are ignored by the settings loaders: a typo would do nothing."""
    fields = {
        "TT_SIDECAR_": set(SidecarSettings.__dataclass_fields__),
        "TT_PUBLISHER_": set(PublisherSettings.__dataclass_fields__),
    }
    checked = 0
    for obj, spec in workloads(everything):
        for c in spec["containers"]:
            for name in env(c):
                for prefix, known in fields.items():
                    if name.startswith(prefix):
                        assert name.removeprefix(prefix).lower() in known, (obj["kind"], name)
                        checked += 1
    assert checked >= 12  # zmq, http, probe, state, CURVE on both sides, URLs, UI


def test_default_job_label_is_the_one_the_alert_rules_select(default: Rendered) -> None:
    """The rules pick the sidecar by job="trading-sidecar"; kube-prometheus-stack must see it.

    A ServiceMonitor without a jobLabel names the job after the Service
    (``<fullname>-metrics``), and then TradingSidecarDown can never fire while
    TradingSidecarAbsent always does.
    """
    (monitor,) = default.kinds("ServiceMonitor")
    metrics = default.get("Service", f"{fullname(default)}-metrics")
    job = metrics["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    rules = (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    # kube-state-metrics' own job is the other one the rules name (crash loops, restarts).
    jobs = set(re.findall(r'job="([^"]+)"', rules)) - {"kube-state-metrics"}
    assert jobs == {job}, (jobs, job)
    local = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert job in {c["job_name"] for c in local["scrape_configs"]}


# --- issue 20: what a real cluster (RBAC, drains, uninstall, an Envoy outside it) needs ---


def test_no_template_looks_up_cluster_objects() -> None:
    """`lookup` of Prometheus objects cluster-wide fails the whole install (Forbidden) for a
    user with namespace rights only; the notes tell how to compare selectors instead."""
    for template in sorted((CHART_DIR / "templates").rglob("*")):
        if template.is_file():
            assert not re.search(r"\blookup\b", template.read_text()), template


def test_notes_show_how_to_compare_the_prometheus_selector(default: Rendered) -> None:
    assert "kubectl get prometheus -A" in default.notes
    assert '{"release":"monitoring"}' in default.notes


def test_notes_give_the_grafana_address_on_linux_and_the_port_mapping_way(
    default: Rendered,
) -> None:
    notes = default.notes
    assert "kubectl --namespace monitoring get ingress" in notes and "http://<address>/" in notes
    assert "--enable-lb-port-mapping" in notes and "docker port" in notes
    assert "grafana.localhost" not in notes, "browsers send *.localhost to 127.0.0.1"


def pdb_selects(rendered: Rendered, component: str) -> Obj | None:
    for pdb in rendered.kinds("PodDisruptionBudget"):
        if pdb["metadata"]["name"] == f"{fullname(rendered)}-{component}":
            return pdb
    return None


def test_replicated_workloads_get_a_disruption_budget_of_one(
    everything: Rendered, default: Rendered, minimal: Rendered
) -> None:
    name = fullname(everything)
    for component, kind, workload in (
        ("sidecar", "StatefulSet", f"{name}-sidecar"),
        ("publisher", "Deployment", f"{name}-publisher"),
    ):
        pdb = pdb_selects(everything, component)
        assert pdb is not None, component
        assert pdb["spec"] == {"maxUnavailable": 1, "selector": pdb["spec"]["selector"]}
        obj = everything.get(kind, workload)
        assert obj["spec"]["replicas"] > 1
        assert selector_matches(pdb["spec"]["selector"], pod_labels(obj))
        for other, _ in workloads(everything):
            if other is not obj:
                assert not selector_matches(pdb["spec"]["selector"], pod_labels(other))
        kubernetes_validate.validate(pdb, KUBE_VERSION, strict=True)
        # One replica: a budget would only make drains warn; switched off: none.
        assert pdb_selects(default, component) is None
        assert pdb_selects(minimal, component) is None


def test_replicas_spread_over_nodes_softly_by_default(
    default: Rendered, everything: Rendered, minimal: Rendered
) -> None:
    for rendered in (default, everything):
        for obj, spec in workloads(rendered):
            component = pod_labels(obj).get("app.kubernetes.io/component")
            if component not in ("publisher", "sidecar"):
                continue
            (spread,) = spec["topologySpreadConstraints"]
            assert spread["whenUnsatisfiable"] == "ScheduleAnyway", "kind has one node"
            assert spread["topologyKey"] == "kubernetes.io/hostname"
            assert spread["maxSkew"] == 1
            assert selector_matches(spread["labelSelector"], pod_labels(obj))
            for other, _ in workloads(rendered):
                if other is not obj:
                    assert not selector_matches(spread["labelSelector"], pod_labels(other))
    for _, spec in workloads(minimal):
        assert "topologySpreadConstraints" not in spec


def test_the_benchmark_is_a_release_object_new_per_revision(chart: helm_python.Chart) -> None:
    """A hook is not part of the release: `helm uninstall` left it and its Job behind."""
    values = {"operator": {"enabled": True}, "benchmark": {"enabled": True}}
    first = render(chart, values)
    (benchmark,) = first.kinds("LatencyBenchmark")
    assert not any(
        k.startswith("helm.sh/hook") for k in benchmark["metadata"].get("annotations", {})
    )
    assert benchmark["metadata"]["name"] == f"{fullname(first)}-bench-1"
    # An upgrade is revision 2: a new object, so a new run; Helm deletes the old one.
    (upgraded,) = render(chart, values, revision=2).kinds("LatencyBenchmark")
    assert upgraded["metadata"]["name"] == f"{fullname(first)}-bench-2"
    # The operator's Job name stays a DNS label even for a long release name.
    long_release = "r" * 53
    (long,) = render(chart, values, release=long_release, revision=1234).kinds("LatencyBenchmark")
    assert len(job_name(long["metadata"]["name"])) <= 63


def test_claims_follow_a_retention_policy_value(chart: helm_python.Chart) -> None:
    persistent: dict[str, Any] = {"sidecar": {"stateDir": {"persistence": {"enabled": True}}}}
    sidecar = render(chart, persistent).get("StatefulSet", f"{RELEASE}-trading-telemetry-sidecar")
    kubernetes_validate.validate(sidecar, KUBE_VERSION, strict=True)
    assert sidecar["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Delete",
        "whenScaled": "Retain",
    }
    keep = copy.deepcopy(persistent)
    keep["sidecar"]["stateDir"]["persistence"]["retentionPolicy"] = {"whenDeleted": "Retain"}
    kept = render(chart, keep).get("StatefulSet", f"{RELEASE}-trading-telemetry-sidecar")
    assert kept["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    with pytest.raises(helm_python.HelmValuesError, match="whenDeleted"):
        bad = copy.deepcopy(persistent)
        bad["sidecar"]["stateDir"]["persistence"]["retentionPolicy"] = {"whenDeleted": "Keep"}
        chart.render(bad, name=RELEASE, namespace=NAMESPACE, is_install=True)
    # No claims, no policy.
    plain = render(chart).get("StatefulSet", f"{RELEASE}-trading-telemetry-sidecar")
    assert "persistentVolumeClaimRetentionPolicy" not in plain["spec"]


def test_the_ui_admits_an_ip_block_such_as_cloud_provider_kinds_envoy(
    everything: Rendered,
) -> None:
    name = fullname(everything)
    policy = everything.get("NetworkPolicy", f"{name}-ui")
    kubernetes_validate.validate(policy, KUBE_VERSION, strict=True)
    (rule,) = policy["spec"]["ingress"]
    blocks = [peer["ipBlock"] for peer in rule["from"] if "ipBlock" in peer]
    assert blocks == [{"cidr": "172.18.0.0/16", "except": ["172.18.0.1/32"]}]
    envoy, gateway_of_the_network = ip_address("172.18.0.7"), ip_address("172.18.0.1")
    (block,) = blocks
    assert envoy in ip_network(block["cidr"])
    assert any(gateway_of_the_network in ip_network(e) for e in block["except"])


@pytest.mark.parametrize(
    "peer",
    [
        {"ipblock": {"cidr": "172.18.0.0/16"}},  # misspelt: would silently admit nothing
        {"ipBlock": {"cidr": "172.18.0.0"}},  # no prefix length
        {"ipBlock": {"cidr": "172.18.0.0/16"}, "podSelector": {}},  # not allowed together
        {},
    ],
    ids=["misspelt", "no-prefix", "mixed", "empty"],
)
def test_ui_peers_are_checked_as_network_policy_peers(
    chart: helm_python.Chart, peer: dict[str, Any]
) -> None:
    with pytest.raises(helm_python.HelmValuesError, match="uiFrom"):
        chart.render(
            {"networkPolicy": {"uiFrom": [peer]}},
            name=RELEASE,
            namespace=NAMESPACE,
            is_install=True,
        )
