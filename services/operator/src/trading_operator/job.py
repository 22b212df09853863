"""The benchmark Job a LatencyBenchmark becomes, built as a plain manifest.

Pure functions only: the handlers create what :func:`render_job` returns and look up
pods with :func:`pod_selector`, so every field of the Job is testable without a cluster
and validated against the Kubernetes schema in the tests.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from typing import Any, Final

import kopf

from trading_operator.resource import (
    API_VERSION,
    APP_NAME,
    BENCH_COMPONENT,
    COMPONENT_LABEL,
    CONTAINER,
    INSTANCE_LABEL,
    KIND,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAME_LABEL,
    TERMINATION_LOG,
)
from trading_operator.settings import OperatorSettings
from trading_operator.spec import BenchmarkSpec

JOB_SUFFIX: Final = "-bench"
#: A Job's name becomes the ``job-name`` label of its pods, and label values stop at 63.
MAX_JOB_NAME: Final = 63
#: ``run_id`` becomes a Prometheus label value (telemetry_contract.events.LABEL_VALUE_PATTERN).
MAX_RUN_ID: Final = 64
#: The benchmark's uid in every image of the project (non-root, see the Dockerfiles).
RUN_AS: Final = 10001
RESULTS_DIR: Final = "/results"
#: The benchmark is one Python thread plus ZMQ's I/O thread, so one CPU is its ceiling; the
#: memory limit leaves room for the per-event latency samples of the largest allowed runs.
RESOURCES: Final[Mapping[str, Mapping[str, str]]] = {
    "requests": {"cpu": "500m", "memory": "256Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
#: The readiness wait before it: one small Python loop.
WAIT_RESOURCES: Final[Mapping[str, Mapping[str, str]]] = {
    "requests": {"cpu": "10m", "memory": "32Mi"},
    "limits": {"cpu": "100m", "memory": "64Mi"},
}


def _shorten(name: str, limit: int, suffix: str = "") -> str:
    """``name + suffix`` within ``limit`` characters, unique per ``name``.

    Long names are cut and given a hash of the full name, so two long names that share
    a prefix still map to different Jobs, and the same name always maps to the same Job.
    """
    if len(name) + len(suffix) <= limit:
        return f"{name}{suffix}"
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    head = name[: limit - len(suffix) - len(digest) - 1].rstrip("-.")
    return f"{head}-{digest}{suffix}"


def job_name(benchmark: str) -> str:
    """Deterministic, so a retried create handler hits 409 instead of a second Job."""
    return _shorten(benchmark, MAX_JOB_NAME, JOB_SUFFIX)


def run_id(benchmark: str) -> str:
    """The benchmark's run id: the LatencyBenchmark's name, so Grafana shows that name."""
    return _shorten(benchmark, MAX_RUN_ID)


def job_labels(settings: OperatorSettings) -> dict[str, str]:
    return {
        NAME_LABEL: APP_NAME,
        INSTANCE_LABEL: settings.instance,
        COMPONENT_LABEL: BENCH_COMPONENT,
        MANAGED_BY_LABEL: MANAGED_BY,
    }


def bench_args(spec: BenchmarkSpec, benchmark: str) -> list[str]:
    """``trading-bench`` arguments (interfaces: benchmark CLI); all knobs, every mode.

    Options a mode does not use are passed anyway: the CLI accepts them for every mode,
    and the Job then records exactly what the LatencyBenchmark asked for.
    """
    return [
        spec.mode,
        "--address", spec.address,
        "--sidecar-url", spec.sidecar_url,
        "--events", str(spec.events),
        "--rate", repr(spec.rate),
        "--duration", str(spec.duration),
        "--run-id", run_id(benchmark),
        "--results-dir", RESULTS_DIR,
        "--termination-log", TERMINATION_LOG,
        "--no-progress",
        "--no-plot",
    ]  # fmt: skip


#: The init container's name: it holds the benchmark back until the target sidecar is ready.
WAIT_CONTAINER: Final = "wait-for-sidecar"
#: Its program (the bench image's Python, standard library only): poll ``<url>/readyz`` until
#: it answers 200. A LatencyBenchmark is part of the Helm release, so on a fresh install its
#: Job can start before the sidecar; the benchmark reads the sidecar's counts first and would
#: fail. The Job's activeDeadlineSeconds bounds the wait (DeadlineExceeded).
WAIT_FOR_READY: Final = """\
import sys, time, urllib.request
url = sys.argv[1].rstrip("/") + "/readyz"
while True:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            if response.status == 200:
                break
    except OSError as exc:
        print(f"waiting for {url}: {exc}", flush=True)
    time.sleep(2)
"""


def render_job(
    spec: BenchmarkSpec, name: str, namespace: str, settings: OperatorSettings
) -> dict[str, Any]:
    """The Job manifest for the LatencyBenchmark ``name`` (owner reference added separately).

    One attempt only (``backoffLimit: 0``): a second run would report a different
    measurement than the first under the same name. ``activeDeadlineSeconds`` is the
    benchmark's timeout, so a hung run ends as Failed/DeadlineExceeded.
    ``FallbackToLogsOnError`` makes a failed run's last log lines its termination message,
    so the failure reason in status says what went wrong.
    """
    labels = job_labels(settings)
    pod_spec: dict[str, Any] = {}
    if settings.pull_secret_names:
        pod_spec["imagePullSecrets"] = [{"name": name} for name in settings.pull_secret_names]
    container = {
        "name": CONTAINER,
        "image": settings.bench_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["trading-bench"],
        "args": bench_args(spec, name),
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "resources": {key: dict(value) for key, value in RESOURCES.items()},
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "results", "mountPath": RESULTS_DIR},
        ],
    }
    wait = {
        "name": WAIT_CONTAINER,
        "image": settings.bench_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["python", "-c", WAIT_FOR_READY, spec.sidecar_url],
        "resources": {key: dict(value) for key, value in WAIT_RESOURCES.items()},
        "securityContext": copy.deepcopy(container["securityContext"]),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(name), "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.timeout_seconds,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    **pod_spec,
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        "fsGroup": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "initContainers": [wait],
                    "containers": [container],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {}},
                        {"name": "results", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def owned_job(job: dict[str, Any], owner: kopf.Body) -> dict[str, Any]:
    """Make ``owner`` the Job's controller, so deleting the LatencyBenchmark deletes the Job.

    ``blockOwnerDeletion`` stays false: setting it true needs ``update`` on
    ``latencybenchmarks/finalizers`` wherever OwnerReferencesPermissionEnforcement is on,
    which the least-privilege Role does not grant; it only matters for foreground
    deletion, and the garbage collector removes the Job either way.
    """
    kopf.append_owner_reference(job, owner, block_owner_deletion=False)
    return job


def owner_of(job: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(name, uid)`` of the LatencyBenchmark controlling ``job``, if one does."""
    for ref in job.get("metadata", {}).get("ownerReferences") or ():
        ours = ref.get("kind") == KIND and ref.get("apiVersion") == API_VERSION
        if ours and ref.get("controller"):
            return str(ref["name"]), str(ref["uid"])
    return None


def pod_selector(job: Mapping[str, Any]) -> str:
    """Label selector for the Job's pods: the controller's own selector when it set one.

    The Job controller puts a controller-uid label on its pods and in ``spec.selector``
    (its key changed across Kubernetes versions), so reading the selector back is exact
    on every version; ``job-name`` is the fallback every version also sets.
    """
    match_labels = (job.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
    if match_labels:
        return ",".join(f"{key}={value}" for key, value in sorted(match_labels.items()))
    return f"job-name={job['metadata']['name']}"


def target_problem(service: Mapping[str, Any], port: int) -> str | None:
    """Why the benchmark cannot publish to ``service`` on ``port``, or None if it can."""
    name = service.get("metadata", {}).get("name", "?")
    ports = service.get("spec", {}).get("ports") or []
    exposed = sorted(int(entry["port"]) for entry in ports if "port" in entry)
    if port not in exposed:
        listed = ", ".join(map(str, exposed)) or "none"
        return f"Service {name} does not expose port {port} (ports: {listed})"
    return None
