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
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import helm_python
import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from support import (
    GRAFANA_TEST_VARIABLES,
    ROOT,
    dashboard_exprs,
    expand_grafana_variables,
    promql_metric_names,
)
from telemetry_contract import metric_names as names
from telemetry_contract.events import BENCH_MODES, LABEL_VALUE_PATTERN

CHART_DIR = ROOT / "charts" / "trading-telemetry"
DASHBOARDS_DIR = ROOT / "dashboards"
#: prometheus-operator CRDs, shared between projects; CI clones shared/ beside the repo.
SERVICEMONITOR_CRD = ROOT.parent / "shared" / "crds" / "monitoring.coreos.com_servicemonitors.yaml"
#: The newest Kubernetes version kubernetes-validate ships schemas for.
KUBE_VERSION = kubernetes_validate.utils.latest_version()
CHART_META: dict[str, str] = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
RELEASE = "demo"
NAMESPACE = "trading"

#: Every optional part switched on, with the optional benchmark arguments set too.
EVERYTHING_ON: dict[str, Any] = {
    "imagePullSecrets": [{"name": "registry-login"}],
    "serviceMonitor": {"enabled": True},
    "networkPolicy": {"enabled": True},
    "dashboards": {"enabled": True},
    "benchmark": {"enabled": True, "mode": "sustained", "rate": 2500, "duration": 4},
    "operator": {"enabled": True},
    "tests": {"enabled": True},
}
#: Every optional part switched off: the core must still render and hang together.
EVERYTHING_OFF: dict[str, Any] = {
    part: {"enabled": False}
    for part in (
        "serviceMonitor",
        "networkPolicy",
        "dashboards",
        "benchmark",
        "operator",
        "tests",
    )
}

Obj = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    """One ``helm template``: every object with the template it came from, and NOTES.txt."""

    release: str
    namespace: str
    objects: list[tuple[str, Obj]]
    notes: str

    def kinds(self, kind: str) -> list[Obj]:
        return [obj for _, obj in self.objects if obj["kind"] == kind]

    def get(self, kind: str, name: str) -> Obj:
        for _, obj in self.objects:
            if obj["kind"] == kind and obj["metadata"]["name"] == name:
                return obj
        have = sorted(f"{o['kind']}/{o['metadata']['name']}" for _, o in self.objects)
        raise AssertionError(f"no {kind}/{name} in the rendered chart; have {have}")

    def names(self) -> set[str]:
        return {f"{o['kind']}/{o['metadata']['name']}" for _, o in self.objects}


def render(
    chart: helm_python.Chart,
    values: Mapping[str, Any] | None = None,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> Rendered:
    manifests = chart.render(
        dict(values) if values else None, name=release, namespace=namespace, is_install=True
    )
    objects: list[tuple[str, Obj]] = []
    notes = ""
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append((template, doc))
    return Rendered(release, namespace, objects, notes)


def pod_spec(obj: Obj) -> Obj | None:
    """The pod spec inside a workload (Deployment, Job, Pod), else None."""
    kind = obj["kind"]
    if kind == "Pod":
        spec: Obj = obj["spec"]
        return spec
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        spec = obj["spec"]["template"]["spec"]
        return spec
    return None


def pod_labels(obj: Obj) -> dict[str, str]:
    if obj["kind"] == "Pod":
        labels: dict[str, str] = obj["metadata"].get("labels", {})
        return labels
    labels = obj["spec"]["template"]["metadata"].get("labels", {})
    return labels


def workloads(rendered: Rendered) -> Iterator[tuple[Obj, Obj]]:
    """(object, pod spec) for everything that runs pods."""
    for _, obj in rendered.objects:
        spec = pod_spec(obj)
        if spec is not None:
            yield obj, spec


def container(obj: Obj, name: str | None = None) -> Obj:
    spec = pod_spec(obj)
    assert spec is not None, f"{obj['kind']} has no pod spec"
    containers: list[Obj] = spec["containers"]
    if name is None:
        assert len(containers) == 1, [c["name"] for c in containers]
        return containers[0]
    return next(c for c in containers if c["name"] == name)


def env(c: Obj) -> dict[str, str]:
    """Literal env values of a container (downward-API entries map to '')."""
    return {e["name"]: e.get("value", "") for e in c.get("env", [])}


def selector_matches(selector: Obj | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (matchLabels AND every matchExpression).

    An empty selector matches everything, as in a NetworkPolicy; None matches nothing.
    """
    if selector is None:
        return False
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def strict_crd_schema(schema: Any) -> Any:
    """The CRD's openAPIV3Schema with unknown fields forbidden wherever it lists fields.

    The API server prunes unknown fields of a custom resource silently, so a misspelled
    ``endpoints`` would install fine and scrape nothing; forbidding them makes it fail here.
    """
    if isinstance(schema, list):
        return [strict_crd_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict_crd_schema(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def dashboard_files() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(DASHBOARDS_DIR.glob("*.json"))}


# --- fixtures: the chart loaded once, rendered once per values set ---


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
    ({"benchmark": {"runId": "has spaces"}}, "/benchmark/runId"),
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
    ({"benchmark": {"resources": {"requests": {"cpu": "lots"}}}}, "/benchmark/resources/requests"),
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
    chart.validate_schema({"benchmark": {"rate": None, "duration": None, "runId": "nightly-7"}})
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
    assert bench["runId"]["pattern"] == f"^$|^{LABEL_VALUE_PATTERN}$"


def test_defaults_leave_the_benchmark_and_operator_off(default: Rendered) -> None:
    kinds = {o["kind"] for _, o in default.objects}
    assert not default.kinds("Job") and "ServiceAccount" not in kinds and "Role" not in kinds
    name = fullname(default)
    assert f"Deployment/{name}-operator" not in default.names()
    for expected in (
        f"Deployment/{name}-publisher",
        f"Deployment/{name}-sidecar",
        f"Service/{name}-ui",
        f"Service/{name}-zmq",
        f"Service/{name}-metrics",
        f"ServiceMonitor/{name}-sidecar",
        f"NetworkPolicy/{name}-sidecar",
        f"Pod/{name}-test-metrics",
    ):
        assert expected in default.names()


def test_everything_on_renders_every_optional_part(everything: Rendered) -> None:
    name = fullname(everything)
    for expected in (
        f"Job/{name}-bench",
        f"Deployment/{name}-operator",
        f"ServiceAccount/{name}-operator",
        f"Role/{name}-operator",
        f"RoleBinding/{name}-operator",
        f"ServiceMonitor/{name}-sidecar",
        f"NetworkPolicy/{name}-sidecar",
        f"Pod/{name}-test-metrics",
    ):
        assert expected in everything.names()


def test_switched_off_parts_render_nothing(minimal: Rendered) -> None:
    kinds = sorted(o["kind"] for _, o in minimal.objects)
    assert kinds == ["Deployment", "Deployment", "Service", "Service", "Service"]


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
            assert component in ("publisher", "sidecar", "benchmark", "operator", "test"), where


def test_fullname_follows_the_release_name(chart: helm_python.Chart) -> None:
    """A release named after the chart is not doubled: Makefile targets rely on this."""
    same = render(chart, release="trading-telemetry")
    assert "Service/trading-telemetry-ui" in same.names()
    assert "Service/trading-telemetry-trading-telemetry-ui" not in same.names()


def test_notes_tell_how_to_reach_the_ui_and_grafana(everything: Rendered) -> None:
    name = fullname(everything)
    notes = everything.notes
    assert f"port-forward service/{name}-ui 8501:8501" in notes
    assert f"--namespace {NAMESPACE}" in notes
    assert "make grafana" in notes and "make ui" in notes
    assert f"helm test {RELEASE}" in notes
    assert f"logs job/{name}-bench" in notes


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
    assert "d/" not in without and "make grafana" in without


# --- schemas: Kubernetes OpenAPI for core objects, the CRD for the ServiceMonitor ---


def test_core_objects_validate_against_the_kubernetes_openapi_schemas(rendered: Rendered) -> None:
    checked = 0
    for template, obj in rendered.objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
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
    deployment = copy.deepcopy(default.get("Deployment", f"{fullname(default)}-sidecar"))
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


# --- cross-checks: the objects agree with each other ---


def test_every_service_selects_the_pods_it_targets_and_their_ports(rendered: Rendered) -> None:
    name = fullname(rendered)
    expected_component = {
        f"{name}-ui": "publisher",
        f"{name}-zmq": "sidecar",
        f"{name}-metrics": "sidecar",
    }
    services = rendered.kinds("Service")
    assert {s["metadata"]["name"] for s in services} == set(expected_component)
    for service in services:
        selector = {"matchLabels": service["spec"]["selector"]}
        targets = [
            obj for obj, _ in workloads(rendered) if selector_matches(selector, pod_labels(obj))
        ]
        components = {pod_labels(obj)["app.kubernetes.io/component"] for obj in targets}
        assert components == {expected_component[service["metadata"]["name"]]}, service["metadata"]
        for port in service["spec"]["ports"]:
            for target in targets:
                named = {p["name"]: p["containerPort"] for p in container(target).get("ports", [])}
                assert port["targetPort"] in named, (service["metadata"]["name"], port)


def test_every_workload_selector_matches_its_own_pod_template(rendered: Rendered) -> None:
    for obj in rendered.kinds("Deployment"):
        assert selector_matches(obj["spec"]["selector"], pod_labels(obj)), obj["metadata"]["name"]
    deployments = rendered.kinds("Deployment")
    for obj in deployments:
        others = [o for o in deployments if o is not obj]
        assert not any(selector_matches(obj["spec"]["selector"], pod_labels(o)) for o in others)


def service_port(service: Obj, port_name: str) -> Obj:
    port: Obj = next(p for p in service["spec"]["ports"] if p["name"] == port_name)
    return port


def container_port(obj: Obj, port_name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in container(obj)["ports"]}
    return int(ports[port_name])


def test_the_publisher_sends_to_the_zmq_service_dns_name_and_port(rendered: Rendered) -> None:
    name = fullname(rendered)
    publisher = env(container(rendered.get("Deployment", f"{name}-publisher")))
    zmq_service = rendered.get("Service", f"{name}-zmq")
    sidecar = rendered.get("Deployment", f"{name}-sidecar")
    address = urlsplit(publisher["TT_PUBLISHER_ZMQ_CONNECT"])
    assert address.scheme == "tcp"
    assert address.hostname == zmq_service["metadata"]["name"]
    zmq_port = service_port(zmq_service, "zmq")
    assert address.port == zmq_port["port"]
    # ...and that Service port lands on the port the sidecar binds.
    bind = urlsplit(env(container(sidecar))["TT_SIDECAR_ZMQ_BIND"])
    assert bind.hostname == "0.0.0.0"
    assert bind.port == container_port(sidecar, zmq_port["targetPort"])
    # The UI's live totals come from the metrics Service, on the port the sidecar serves.
    metrics_service = rendered.get("Service", f"{name}-metrics")
    url = urlsplit(publisher["TT_PUBLISHER_SIDECAR_URL"])
    assert (url.scheme, url.hostname) == ("http", metrics_service["metadata"]["name"])
    http_port = service_port(metrics_service, "http-metrics")
    assert url.port == http_port["port"]
    sidecar_env = env(container(sidecar))
    assert sidecar_env["TT_SIDECAR_HTTP_HOST"] == "0.0.0.0"
    assert int(sidecar_env["TT_SIDECAR_HTTP_PORT"]) == container_port(
        sidecar, http_port["targetPort"]
    )
    assert publisher["TT_PUBLISHER_UI_HOST"] == "0.0.0.0"


def test_ports_and_names_follow_the_shared_interface(default: Rendered) -> None:
    """Fixed in interfaces.md: the operator and the benchmark build these from the release."""
    name = fullname(default)
    assert service_port(default.get("Service", f"{name}-zmq"), "zmq")["port"] == 5555
    assert service_port(default.get("Service", f"{name}-metrics"), "http-metrics")["port"] == 8001
    assert service_port(default.get("Service", f"{name}-ui"), "http")["port"] == 8501
    assert default.get("Service", f"{name}-zmq")["spec"]["type"] == "ClusterIP"
    publisher = env(container(default.get("Deployment", f"{name}-publisher")))
    assert publisher["TT_PUBLISHER_ZMQ_CONNECT"] == f"tcp://{name}-zmq:5555"
    assert publisher["TT_PUBLISHER_SIDECAR_URL"] == f"http://{name}-metrics:8001"


def test_servicemonitor_selects_the_metrics_service_and_an_existing_port(
    everything: Rendered,
) -> None:
    name = fullname(everything)
    (monitor,) = everything.kinds("ServiceMonitor")
    metrics = everything.get("Service", f"{name}-metrics")
    zmq = everything.get("Service", f"{name}-zmq")
    assert selector_matches(monitor["spec"]["selector"], metrics["metadata"]["labels"])
    assert not selector_matches(monitor["spec"]["selector"], zmq["metadata"]["labels"])
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    port_names = {p["name"] for p in metrics["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"
        assert endpoint["interval"] == "1s"  # the product scrapes every second
    # kube-prometheus-stack's default serviceMonitorSelector is release=<its release name>.
    assert monitor["metadata"]["labels"]["release"] == "monitoring"


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
        ns_selector = peer.get("namespaceSelector")
        pod_selector = peer.get("podSelector")
        if ns_selector is None and namespace != NAMESPACE:
            continue  # a bare podSelector only sees the policy's own namespace
        if ns_selector is not None and not selector_matches(ns_selector, namespace_labels):
            continue
        if pod_selector is None or selector_matches(pod_selector, labels):
            return True
    return False


def test_network_policy_guards_the_sidecar_ports(everything: Rendered) -> None:
    name = fullname(everything)
    (policy,) = everything.kinds("NetworkPolicy")
    sidecar = everything.get("Deployment", f"{name}-sidecar")
    assert selector_matches(policy["spec"]["podSelector"], pod_labels(sidecar))
    for obj, _ in workloads(everything):
        if obj is not sidecar:
            assert not selector_matches(policy["spec"]["podSelector"], pod_labels(obj)), obj["kind"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    sidecar_ports = {p["name"] for p in container(sidecar)["ports"]}
    assert {p["port"] for r in policy["spec"]["ingress"] for p in r["ports"]} <= sidecar_ports

    zmq = ingress_rule_for(policy, "zmq")
    bench_job = everything.get("Job", f"{name}-bench")
    publisher = everything.get("Deployment", f"{name}-publisher")
    operator_job_pod = labels_of("benchmark")  # what the operator puts on its Job pods
    for allowed in (pod_labels(publisher), pod_labels(bench_job), operator_job_pod):
        assert admits_pod(zmq, allowed, NAMESPACE), allowed
    for refused_labels, namespace in (
        (labels_of("operator"), NAMESPACE),
        (labels_of("test"), NAMESPACE),
        (labels_of("publisher", release="other"), NAMESPACE),
        (labels_of("publisher"), "monitoring"),
        ({"app": "prometheus"}, "monitoring"),
        ({"run": "curl"}, NAMESPACE),
    ):
        assert not admits_pod(zmq, refused_labels, namespace), (refused_labels, namespace)

    metrics = ingress_rule_for(policy, "http-metrics")
    for allowed_labels, namespace in (
        ({"app.kubernetes.io/name": "prometheus"}, "monitoring"),
        (pod_labels(publisher), NAMESPACE),
        (pod_labels(bench_job), NAMESPACE),
        (pod_labels(everything.get("Pod", f"{name}-test-metrics")), NAMESPACE),
    ):
        assert admits_pod(metrics, allowed_labels, namespace), allowed_labels
    for refused_labels, namespace in (
        ({"app": "anything"}, "default"),
        ({"run": "curl"}, NAMESPACE),
        (labels_of("publisher", release="other"), NAMESPACE),
    ):
        assert not admits_pod(metrics, refused_labels, namespace), (refused_labels, namespace)


def test_network_policy_monitoring_namespace_is_a_value(chart: helm_python.Chart) -> None:
    custom = render(chart, {"networkPolicy": {"monitoringNamespace": "observability"}})
    (policy,) = custom.kinds("NetworkPolicy")
    rule = ingress_rule_for(policy, "http-metrics")
    assert admits_pod(rule, {"app": "prometheus"}, "observability")
    assert not admits_pod(rule, {"app": "prometheus"}, "monitoring")


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


def test_sidecar_probes_hit_its_health_endpoints(default: Rendered) -> None:
    sidecar = container(default.get("Deployment", f"{fullname(default)}-sidecar"))
    assert sidecar["command"] == ["trading-sidecar"]
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}


def test_benchmark_job_runs_the_cli_against_the_zmq_service(everything: Rendered) -> None:
    name = fullname(everything)
    job = everything.get("Job", f"{name}-bench")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    bench = container(job)
    publisher = container(everything.get("Deployment", f"{name}-publisher"))
    assert bench["image"] == publisher["image"] == "trading-telemetry-publisher:0.1.0"
    publisher_env = env(publisher)
    assert bench["command"] == [
        "trading-bench",
        "sustained",
        "--address",
        publisher_env["TT_PUBLISHER_ZMQ_CONNECT"],
        "--sidecar-url",
        publisher_env["TT_PUBLISHER_SIDECAR_URL"],
        "--events",
        "100000",
        "--rate",
        "2500",
        "--duration",
        "4",
        "--run-id",
        f"{RELEASE}-r1",
        "--termination-log",
        "/dev/termination-log",
        "--results-dir",
        "/tmp/results",
        "--no-progress",
        "--no-plot",
    ]
    assert bench["terminationMessagePath"] == "/dev/termination-log"
    assert re.fullmatch(
        LABEL_VALUE_PATTERN, bench["command"][bench["command"].index("--run-id") + 1]
    )


def test_benchmark_job_leaves_optional_arguments_to_the_cli(chart: helm_python.Chart) -> None:
    job_only = render(chart, {"benchmark": {"enabled": True, "runId": "nightly-1", "events": 5000}})
    command = container(job_only.get("Job", f"{RELEASE}-trading-telemetry-bench"))["command"]
    assert "--rate" not in command and "--duration" not in command
    assert command[:2] == ["trading-bench", "burst"]
    assert command[command.index("--run-id") + 1] == "nightly-1"
    assert command[command.index("--events") + 1] == "5000"


def test_helm_test_pod_fetches_metrics_through_the_metrics_service(default: Rendered) -> None:
    name = fullname(default)
    pod = default.get("Pod", f"{name}-test-metrics")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    command = container(pod)["command"]
    assert command[-1] == f"http://{name}-metrics:8001/metrics"


# --- the operator, exactly as interfaces.md fixes it ---


def test_operator_deployment_and_rbac_follow_the_interface(everything: Rendered) -> None:
    name = fullname(everything)
    operator_name = f"{name}-operator"
    # The Role's rules themselves are checked against trading_operator.rbac.RBAC_RULES,
    # the one list of what the operator's code calls, in test_operator_chart.py.
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
    publisher = container(everything.get("Deployment", f"{name}-publisher"))
    assert env(operator) == {
        "POD_NAMESPACE": "",
        "TT_OPERATOR_BENCH_IMAGE": publisher["image"],
        "TT_OPERATOR_INSTANCE": RELEASE,
        "TT_OPERATOR_DEFAULT_SERVICE": f"{name}-zmq",
        "TT_OPERATOR_ZMQ_PORT": "5555",
        "TT_OPERATOR_SIDECAR_URL": f"http://{name}-metrics:8001",
        # The everything-on values set pullSecrets; benchmark Jobs pull like the publisher.
        "TT_OPERATOR_IMAGE_PULL_POLICY": "IfNotPresent",
        "TT_OPERATOR_IMAGE_PULL_SECRETS": "registry-login",
    }


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
    # Prometheus's own up, and the process collector's start time (the restarts panel).
    exported |= {"up", "process_start_time_seconds"}
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
