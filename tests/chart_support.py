"""Rendering the chart with the real Helm engine, and reading what it renders.

Shared by the chart, image, kind and chart-command tests, so no test module imports another.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import helm_python
import kubernetes_validate  # type: ignore[import-untyped]
import yaml
from support import (
    ROOT,
)

CHART_DIR = ROOT / "charts" / "trading-telemetry"
DASHBOARDS_DIR = ROOT / "dashboards"
#: The one alert rules file; the chart reaches it through the alerts.yml symlink.
ALERTS_FILE = ROOT / "deploy" / "prometheus" / "alerts.yml"
#: prometheus-operator CRDs, shared between projects; CI clones shared/ beside the repo.
CRDS_DIR = ROOT.parent / "shared" / "crds"
SERVICEMONITOR_CRD = CRDS_DIR / "monitoring.coreos.com_servicemonitors.yaml"
PROMETHEUSRULE_CRD = CRDS_DIR / "monitoring.coreos.com_prometheusrules.yaml"
#: The newest Kubernetes version kubernetes-validate ships schemas for.
KUBE_VERSION = kubernetes_validate.utils.latest_version()
CHART_META: dict[str, str] = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
RELEASE = "demo"
NAMESPACE = "trading"

#: The escape hatches every pod-running component has, each set to something visible.
POD_EXTRAS: dict[str, Any] = {
    "extraEnv": [{"name": "TT_EXTRA", "value": "1"}],
    "podAnnotations": {"example.org/note": "set"},
    "podLabels": {"team": "trading"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "trading"}],
    "affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "preference": {
                        "matchExpressions": [
                            {"key": "zone", "operator": "In", "values": ["a"]},
                        ]
                    },
                }
            ]
        }
    },
}
#: Every optional part switched on, with the optional benchmark arguments set too.
EVERYTHING_ON: dict[str, Any] = {
    "imagePullSecrets": [{"name": "registry-login"}],
    "serviceAccount": {"create": True, "annotations": {"example.org/role": "trading"}},
    "publisher": {
        "replicas": 2,
        "prometheusUrl": "http://prometheus.monitoring:9090",
        **POD_EXTRAS,
    },
    "sidecar": {"replicas": 3, **POD_EXTRAS},
    "curve": {"enabled": True, "secretName": "tt-curve", "clientsSecretName": "tt-curve-clients"},
    "serviceMonitor": {
        "enabled": True,
        "jobLabel": "app.kubernetes.io/name",
        "relabelings": [{"targetLabel": "cluster", "replacement": "kind"}],
        "metricRelabelings": [{"sourceLabels": ["__name__"], "regex": "go_.*", "action": "drop"}],
    },
    "prometheusRule": {"enabled": True},
    "networkPolicy": {
        "enabled": True,
        "uiFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}}},
            # cloud-provider-kind's Envoy: a container on the kind network, outside the cluster.
            {"ipBlock": {"cidr": "172.18.0.0/16", "except": ["172.18.0.1/32"]}},
        ],
    },
    "dashboards": {"enabled": True},
    "benchmark": {"enabled": True, "mode": "sustained", "rate": 2500, "duration": 4},
    "operator": {"enabled": True, **POD_EXTRAS},
    "tests": {"enabled": True},
}
#: Every optional part switched off: the core must still render and hang together.
EVERYTHING_OFF: dict[str, Any] = {
    part: {"enabled": False}
    for part in (
        "serviceMonitor",
        "prometheusRule",
        "networkPolicy",
        "dashboards",
        "benchmark",
        "operator",
        "tests",
    )
} | {
    "sidecar": {
        "stateDir": {"enabled": False},
        "preStopSleepSeconds": 0,
        "podDisruptionBudget": {"enabled": False},
        "topologySpread": {"enabled": False},
    },
    "publisher": {"podDisruptionBudget": {"enabled": False}, "topologySpread": {"enabled": False}},
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
    revision: int | None = None,
) -> Rendered:
    manifests = chart.render(
        dict(values) if values else None,
        name=release,
        namespace=namespace,
        revision=revision,
        is_install=revision in (None, 1),
        is_upgrade=revision not in (None, 1),
    )
    objects: list[tuple[str, Obj]] = []
    notes = ""
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            notes = text
            continue
        # libyaml's loader: the pure-Python one was most of the chart tests' time.
        for doc in yaml.load_all(text, Loader=yaml.CSafeLoader):
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
