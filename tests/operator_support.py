"""An in-memory stand-in for the cluster calls the operator makes, and sample objects.

Shared by the reconcile and handler tests, so no test module imports another.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import ApiException
from telemetry_contract import BenchmarkResult
from trading_operator.resource import API_VERSION, KIND
from trading_operator.settings import OperatorSettings

Obj = dict[str, Any]
NS = "trading"
SETTINGS = OperatorSettings(instance="demo", default_service="demo-zmq", zmq_port=5555)

RESULT = BenchmarkResult(
    run_id="lb", mode="burst", variant="client", events=1000, sent=1000, dropped=0,
    received=1000, lost=0, elapsed_s=0.01, rate=100_000.0, target_rate=0.0, p50_us=1.5,
    p90_us=2.0, p99_us=4.0, p999_us=9.0, max_us=20.0, started_at=1.76e9,
    finished_at=1.76e9 + 0.5,
)  # fmt: skip


def api_error(status: int, reason: str = "", body: str = "") -> ApiException:
    return ApiException(status=status, reason=reason or f"HTTP {status}", body=body or None)


@dataclass
class FakeCluster:
    """An API server's behaviour for the calls the operator makes, kept in dicts."""

    services: dict[str, Obj] = field(default_factory=dict)
    jobs: dict[str, Obj] = field(default_factory=dict)
    pods: list[Obj] = field(default_factory=list)
    benchmarks: dict[str, Obj] = field(default_factory=dict)
    events: list[tuple[str, str, str, str]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    #: method name → exceptions to raise on its next calls, in order.
    failures: dict[str, list[BaseException]] = field(default_factory=dict)

    def _call(self, method: str) -> None:
        self.calls.append(method)
        pending = self.failures.get(method)
        if pending:
            raise pending.pop(0)

    def read_service(self, namespace: str, name: str) -> Obj:
        self._call("read_service")
        if name not in self.services:
            raise api_error(404, "Not Found")
        return copy.deepcopy(self.services[name])

    def create_job(self, namespace: str, job: Obj) -> Obj:
        self._call("create_job")
        name = job["metadata"]["name"]
        if name in self.jobs:
            raise api_error(409, "Conflict", f'jobs.batch "{name}" already exists')
        stored = copy.deepcopy(job)
        uid = str(uuid.uuid4())
        stored["metadata"]["uid"] = uid
        stored["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        self.jobs[name] = stored
        return copy.deepcopy(stored)

    def read_job(self, namespace: str, name: str) -> Obj:
        self._call("read_job")
        if name not in self.jobs:
            raise api_error(404, "Not Found")
        return copy.deepcopy(self.jobs[name])

    def list_pods(self, namespace: str, selector: str) -> list[Obj]:
        self._call("list_pods")
        wanted = dict(part.split("=", 1) for part in selector.split(","))
        return [
            copy.deepcopy(p)
            for p in self.pods
            if wanted.items() <= p["metadata"].get("labels", {}).items()
        ]

    def read_benchmark(self, namespace: str, name: str) -> Obj:
        self._call("read_benchmark")
        if name not in self.benchmarks:
            raise api_error(404, "Not Found")
        return copy.deepcopy(self.benchmarks[name])

    def patch_benchmark_status(self, namespace: str, name: str, status: Obj) -> None:
        self._call("patch_benchmark_status")
        if name not in self.benchmarks:
            raise api_error(404, "Not Found")
        stored = self.benchmarks[name]
        stored["status"] = merge_patch(stored.get("status", {}), copy.deepcopy(status))

    def post_event(self, benchmark: Mapping[str, Any], kind: str, reason: str, text: str) -> None:
        self._call("post_event")
        self.events.append((benchmark["metadata"]["name"], kind, reason, text))

    # --- what the Job controller and the kubelet would do --------------------------------

    def finish_job(self, name: str, message: str | None, succeeded: bool = True) -> Obj:
        job = self.jobs[name]
        kind, reason = ("Complete", "") if succeeded else ("Failed", "DeadlineExceeded")
        job["status"] = {
            "startTime": "2025-11-24T16:00:00Z",
            "conditions": [
                {"type": kind, "status": "True", "reason": reason, "message": reason},
            ],
        }
        terminated: Obj = {"exitCode": 0 if succeeded else 1}
        if message is not None:
            terminated["message"] = message
        self.pods.append(
            {
                "metadata": {
                    "name": f"{name}-x1",
                    "labels": dict(job["spec"]["selector"]["matchLabels"]),
                    "creationTimestamp": "2025-11-24T16:00:01Z",
                },
                "status": {
                    "phase": "Succeeded" if succeeded else "Failed",
                    "containerStatuses": [
                        {"name": "benchmark", "state": {"terminated": terminated}}
                    ],
                },
            }
        )
        return copy.deepcopy(job)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies a dict body: objects merge
    key by key, ``None`` deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def zmq_service(name: str = "demo-zmq", port: int = 5555) -> Obj:
    return {"metadata": {"name": name}, "spec": {"ports": [{"name": "zmq", "port": port}]}}


def benchmark(name: str = "lb", uid: str = "uid-lb", **spec: Any) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": NS, "uid": uid},
        "spec": {"mode": "burst", **spec},
    }


# --- Job and pod objects as the API returns them, for status_from() -------------------


def job(*conditions: Obj, start: str | None = "2025-11-24T16:00:00Z") -> Obj:
    status: Obj = {"conditions": list(conditions)}
    if start:
        status["startTime"] = start
    return {"metadata": {"name": "nightly-bench", "namespace": "trading"}, "status": status}


def condition(kind: str, status: str = "True", reason: str = "", message: str = "") -> Obj:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2025-11-24T16:00:20Z",
    }


def pod(
    message: str | None = None,
    phase: str = "Succeeded",
    created: str = "2025-11-24T16:00:01Z",
    waiting: Obj | None = None,
    container: str = "benchmark",
    exit_code: int | None = None,
    reason: str | None = None,
) -> Obj:
    state: Obj = {}
    if waiting is not None:
        state["waiting"] = waiting
    else:
        code = exit_code if exit_code is not None else (0 if phase == "Succeeded" else 1)
        terminated: Obj = {"exitCode": code}
        if reason is not None:
            terminated["reason"] = reason
        if message is not None:
            terminated["message"] = message
        state["terminated"] = terminated
    return {
        "metadata": {"name": f"nightly-bench-{created[-3:-1]}", "creationTimestamp": created},
        "status": {"phase": phase, "containerStatuses": [{"name": container, "state": state}]},
    }


COMPLETE = condition("Complete")
