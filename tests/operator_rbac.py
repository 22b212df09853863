"""Every API permission the operator uses, and which part of it uses it (test support).

Nothing in the operator reads this at run time, so it lives with the tests, not in the
image. The chart's Role is least privilege only if it grants exactly these; the chart test
renders the Role with Helm and compares it with :data:`RBAC_RULES`, the adapter tests check
on the wire that each :class:`~trading_operator.cluster.KubeCluster` method makes exactly
the request listed in :data:`CLUSTER_CALLS`, and the kopf run checks every request it sees
against the chart's Role.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from trading_operator.resource import GROUP, PLURAL


@dataclass(frozen=True, slots=True, order=True)
class Permission:
    group: str
    resource: str
    verb: str


def _p(group: str, resource: str, verb: str) -> Permission:
    return Permission(group, resource, verb)


#: What each method of the Cluster port costs in RBAC (see trading_operator.cluster).
CLUSTER_CALLS: Final[Mapping[str, Permission]] = {
    "read_service": _p("", "services", "get"),
    "create_job": _p("batch", "jobs", "create"),
    "read_job": _p("batch", "jobs", "get"),
    "list_pods": _p("", "pods", "list"),
    "read_benchmark": _p(GROUP, PLURAL, "get"),
    "patch_benchmark_status": _p(GROUP, f"{PLURAL}/status", "patch"),
    "post_event": _p("", "events", "create"),
}

#: What kopf itself needs for the handlers registered in trading_operator.handlers.
KOPF_NEEDS: Final[Mapping[Permission, str]] = {
    _p(GROUP, PLURAL, "list"): "kopf lists LatencyBenchmarks (on.create)",
    _p(GROUP, PLURAL, "watch"): "kopf watches LatencyBenchmarks (on.create)",
    _p(GROUP, PLURAL, "patch"): "kopf stores handler progress in annotations",
    _p("batch", "jobs", "list"): "kopf lists benchmark Jobs (on.event)",
    _p("batch", "jobs", "watch"): "kopf watches benchmark Jobs (on.event)",
    _p("", "events", "create"): "kopf posts Kubernetes Events for warnings",
}

RBAC_RULES: Final[frozenset[Permission]] = frozenset(CLUSTER_CALLS.values()) | frozenset(KOPF_NEEDS)


def permissions_of(rules: Iterable[Mapping[str, Any]]) -> frozenset[Permission]:
    """Flatten Role ``rules`` into single permissions, so two Roles compare as sets."""
    return frozenset(
        Permission(group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups") or ()
        for resource in rule.get("resources") or ()
        for verb in rule.get("verbs") or ()
    )
