"""The chart's operator parts, rendered by the real Helm engine, against the operator's needs.

The Role must grant what the operator uses (``RBAC_RULES`` in tests/operator_rbac.py, which the
reconcile and adapter tests derive from real calls) and nothing beyond the two verbs the
interfaces fixed; the Deployment's env must configure a Job that reaches the release's own
Services; and the Job pods the operator labels must get through the sidecar's NetworkPolicy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import helm_python
import pytest
import yaml
from operator_rbac import RBAC_RULES, permissions_of
from support import ROOT
from trading_operator.job import job_labels, render_job
from trading_operator.settings import PREFIX, OperatorSettings, load
from trading_operator.spec import parse_spec

CHART_DIR = ROOT / "charts" / "trading-telemetry"
CRD_PATH = CHART_DIR / "crds" / "latencybenchmarks.yaml"
RELEASE = "demo"
NAMESPACE = "trading"

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def chart() -> Iterator[helm_python.Chart]:
    with helm_python.Chart.load(str(CHART_DIR)) as loaded:
        yield loaded


def render(chart: helm_python.Chart, values: Mapping[str, Any]) -> list[Obj]:
    manifests = chart.render(dict(values), name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [
        doc
        for template, text in sorted(manifests.items())
        if not template.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def operator_parts(objects: list[Obj]) -> dict[str, Obj]:
    return {
        obj["kind"]: obj
        for obj in objects
        if obj["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "operator"
    }


@pytest.fixture(scope="module")
def enabled(chart: helm_python.Chart) -> list[Obj]:
    return render(chart, {"operator": {"enabled": True}, "networkPolicy": {"enabled": True}})


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} × {kind} {name or ''}"
    return found[0]


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics: matchLabels and every matchExpression."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[op]
        if not ok:
            return False
    return True


def operator_env(objects: list[Obj]) -> dict[str, str]:
    deployment = operator_parts(objects)["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


# --- on / off ---------------------------------------------------------------------------


def test_operator_is_off_by_default(chart: helm_python.Chart) -> None:
    assert operator_parts(render(chart, {})) == {}


def test_operator_parts_render_when_enabled(enabled: list[Obj]) -> None:
    assert set(operator_parts(enabled)) == {"ServiceAccount", "Role", "RoleBinding", "Deployment"}


def test_crd_ships_in_the_charts_crds_directory(chart: helm_python.Chart) -> None:
    (crd,) = chart.crds
    assert crd["name"] == "crds/latencybenchmarks.yaml"
    assert yaml.safe_load(crd["data"]) == yaml.safe_load(CRD_PATH.read_text(encoding="utf-8"))


# --- RBAC -------------------------------------------------------------------------------


def test_role_grants_what_the_operator_uses_and_nothing_else(enabled: list[Obj]) -> None:
    role = operator_parts(enabled)["Role"]
    granted = permissions_of(role["rules"])
    missing = RBAC_RULES - granted
    assert not missing, f"the operator would be forbidden: {sorted(missing)}"
    surplus = granted - RBAC_RULES
    assert not surplus, f"granted but never used: {sorted(surplus)}"
    # No wildcard and no cluster scope anywhere.
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
    assert not [o for o in enabled if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_role_is_bound_to_the_operators_service_account(enabled: list[Obj]) -> None:
    parts = operator_parts(enabled)
    binding, account = parts["RoleBinding"], parts["ServiceAccount"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": parts["Role"]["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    pod = parts["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


# --- Deployment -------------------------------------------------------------------------


def test_deployment_runs_kopf_on_the_handlers_with_its_liveness_probe(enabled: list[Obj]) -> None:
    deployment = operator_parts(enabled)["Deployment"]
    assert deployment["spec"]["replicas"] == 1  # --standalone: no peering between replicas
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:2] == ["kopf", "run"]
    assert "--standalone" in command
    assert command[command.index("-m") + 1] == "trading_operator.handlers"
    assert command[command.index("--namespace") + 1] == "$(POD_NAMESPACE)"
    env_from = {e["name"]: e.get("valueFrom") for e in container["env"]}
    assert env_from["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    (liveness,) = [arg for arg in command if arg.startswith("--liveness=")]
    assert liveness == "--liveness=http://0.0.0.0:8080/healthz"
    probe = container["livenessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/healthz", 8080)


def test_env_configures_jobs_that_reach_the_releases_own_services(enabled: list[Obj]) -> None:
    env = operator_env(enabled)
    ours = {k: v for k, v in env.items() if k.startswith(PREFIX)}
    # Every variable the chart sets is one the operator reads (a typo would be ignored).
    fields = {f"{PREFIX}{name.upper()}" for name in OperatorSettings.__dataclass_fields__}
    assert set(ours) <= fields, set(ours) - fields
    settings = load(ours, dotenv=None)
    assert settings.instance == RELEASE

    zmq = one(enabled, "Service", settings.default_service)
    assert settings.zmq_port in [p["port"] for p in zmq["spec"]["ports"]]
    host, port = settings.sidecar_url.removeprefix("http://").split(":")
    metrics = one(enabled, "Service", host)
    assert int(port) in [p["port"] for p in metrics["spec"]["ports"]]

    # The benchmark image (trading-bench alone), tagged like the release's other images.
    assert settings.bench_image == "trading-telemetry-bench:0.1.0"


def test_the_operators_job_pods_pass_the_sidecars_network_policy(enabled: list[Obj]) -> None:
    settings = load({k: v for k, v in operator_env(enabled).items() if k.startswith(PREFIX)}, None)
    job = render_job(parse_spec({"mode": "burst"}, settings), "lb", NAMESPACE, settings)
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert pod_labels == job_labels(settings)
    policy = one(enabled, "NetworkPolicy", f"{RELEASE}-trading-telemetry-sidecar")
    admitted_ports = {
        port["port"]
        for rule in policy["spec"]["ingress"]
        for peer in rule.get("from", [])
        if "podSelector" in peer and "namespaceSelector" not in peer
        if selects(peer["podSelector"], pod_labels)
        for port in rule["ports"]
    }
    assert {"zmq", "http-metrics"} <= admitted_ports
    # And the same labels from another release are kept out.
    stranger = {**pod_labels, "app.kubernetes.io/instance": "someone-else"}
    assert not any(
        selects(peer["podSelector"], stranger)
        for rule in policy["spec"]["ingress"]
        for peer in rule.get("from", [])
        if "podSelector" in peer
    )


def test_job_pods_pull_with_the_releases_secrets(chart: helm_python.Chart) -> None:
    """The Job image comes from the same registry: the release's pull secrets, its policy."""
    objects = render(
        chart,
        {
            "operator": {"enabled": True},
            "imagePullSecrets": [{"name": "regcred"}, {"name": "mirror"}],
            "benchmark": {"image": {"pullPolicy": "Always"}},
        },
    )
    settings = load({k: v for k, v in operator_env(objects).items() if k.startswith(PREFIX)}, None)
    pod = render_job(parse_spec({"mode": "burst"}, settings), "lb", NAMESPACE, settings)["spec"][
        "template"
    ]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]
    assert pod["containers"][0]["imagePullPolicy"] == "Always"


def test_operator_md_states_the_defaults_the_chart_gives(enabled: list[Obj]) -> None:
    """docs/operator.md named the -zmq and -metrics Services and the publisher image."""
    settings = load({k: v for k, v in operator_env(enabled).items() if k.startswith(PREFIX)}, None)
    fullname = f"{RELEASE}-trading-telemetry"
    service_suffix = settings.default_service.removeprefix(fullname)
    url_host, url_port = settings.sidecar_url.removeprefix("http://").split(":")
    assert service_suffix != settings.default_service and url_host.startswith(fullname)
    doc = (ROOT / "docs" / "operator.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| ([^|]+) \|", doc, re.M)}
    assert f"`<fullname>{service_suffix}`" in rows["service"], rows["service"]
    expected_url = f"`http://<fullname>{url_host.removeprefix(fullname)}:{url_port}`"
    assert expected_url in rows["sidecarUrl"], rows["sidecarUrl"]
    # The example's commented defaults, for the release `make deploy` installs.
    assert f"# service: trading-telemetry{service_suffix}\n" in doc
    assert (
        f"# sidecarUrl: http://trading-telemetry{url_host.removeprefix(fullname)}:{url_port}\n"
        in doc
    )
    image = settings.bench_image.split(":")[0]
    assert f"bench image's (`{image}`" in doc
    assert "publisher image's `trading-bench" not in doc
