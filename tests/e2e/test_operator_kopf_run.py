"""The operator as it runs: ``kopf run -m trading_operator.handlers`` against kmock.

Everything is real except the Kubernetes API (there is no API server here): the kopf CLI and
engine, its login through the kubeconfig, discovery, list and watch streams, its progress
annotations, Event posting, the liveness endpoint, and the operator's own client calls. The
API is kmock's Kubernetes emulator (nolar/kmock, the mock server kopf's own examples test
with): it keeps objects, streams watch events and records every request. The test plays the
Job controller and kubelet through the same HTTP API. Every request kopf and the operator send
must be allowed by the Role the chart renders: least privilege checked on the wire, kopf's own
calls included.

kopf.testing.KopfTask (kopf's examples/09-testing-kmock) is not in a released kopf yet
(1.45.2 is the newest on PyPI), so kopf runs as the real CLI in a subprocess, which is also
what the operator image runs.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import helm_python
import kmock
import pytest
import yaml
from kmock._internal import enums, rendering
from operator_rbac import RBAC_RULES, Permission, permissions_of
from support import BIN, ROOT, free_port
from telemetry_contract import encode
from telemetry_contract.events import BenchmarkResult
from trading_operator.resource import API_VERSION, GROUP, KIND, PLURAL, VERSION

NS = "trading"
RELEASE = "demo"
Obj = dict[str, Any]
T = TypeVar("T")

BENCHMARKS = f"{GROUP}/{VERSION}/{PLURAL}"
#: Header on the requests the test makes as the cluster, so the RBAC check leaves them out.
ACTOR = "X-Test-Actor"
#: (resource, kind, verbs, subresources) the emulated API serves in discovery.
RESOURCES = [
    ("v1/namespaces", "Namespace", {"get", "list", "watch"}, set()),
    ("v1/pods", "Pod", {"get", "list", "watch", "patch"}, set()),
    ("v1/services", "Service", {"get", "list", "watch", "patch"}, set()),
    ("v1/events", "Event", {"create", "get", "list", "watch"}, set()),
    ("batch/v1/jobs", "Job", {"create", "get", "list", "watch", "patch"}, {"status"}),
    (BENCHMARKS, KIND, {"get", "list", "watch", "patch"}, {"status"}),
]
#: A result the benchmark would leave as its termination message.
RESULT = BenchmarkResult(
    run_id="lb", mode="burst", variant="client", events=1000, sent=1000, dropped=0,
    received=1000, lost=0, elapsed_s=0.5, rate=2000.0, target_rate=0.0, p50_us=1.5,
    p90_us=2.0, p99_us=4.0, p999_us=5.0, max_us=6.0, started_at=1.7e9, finished_at=1.7e9 + 1,
)  # fmt: skip


#: The ResourceQuota admission refusal the emulated API gives the Job of "quota": exactly
#: the Status a real API server returns (HTTP 403, reason Forbidden).
QUOTA_MESSAGE = (
    'jobs.batch "quota-bench" is forbidden: exceeded quota: jobs, requested: '
    "count/jobs.batch=1, used: count/jobs.batch=1, limited: count/jobs.batch=1"
)


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator, plus two API server habits kopf relies on: every write gets a new
    resourceVersion (kopf tells its own writes from others' by it; without it, it would
    handle the same creation again), and ``metadata.generateName`` gets a unique suffix
    (kopf posts its Events that way). And one namespace setting: a ResourceQuota that
    refuses the Job named in ``QUOTA_MESSAGE``, as admission does, before anything is stored."""

    _versions = itertools.count(100)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if (
            request.action == enums.action.CREATE
            and request.resource is not None
            and request.resource.plural == "jobs"
            and isinstance(request.data, dict)
            and request.data.get("metadata", {}).get("name") == "quota-bench"
        ):
            status = {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": QUOTA_MESSAGE, "reason": "Forbidden",
                "details": {"name": "quota-bench", "group": "batch", "kind": "jobs"},
                "code": 403,
            }  # fmt: skip
            return aiohttp.web.json_response(status, status=403)
        writes = (enums.action.CREATE, enums.action.UPDATE)
        if request.action in writes and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            version = next(self._versions)
            meta["resourceVersion"] = str(version)
            if request.action == enums.action.CREATE and "name" not in meta:
                meta["name"] = f"{meta.get('generateName', 'object-')}{version}"
        return await super()._handle(request)


pytestmark = [pytest.mark.asyncio, pytest.mark.kmock(cls=Emulator)]


async def eventually(probe: Callable[[], T | None], what: str, timeout: float = 30) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stored(api: kmock.KubernetesEmulator, plural: str, name: str) -> Obj | None:
    """A copy of the object as the emulator holds it now, or None."""
    for (resource, namespace, found), obj in api.objects.items():
        if (resource.plural, namespace, found) == (plural, NS, name) and not obj.deleted:
            raw: Obj = copy.deepcopy(obj.raw)
            return raw
    return None


def reasons(api: kmock.KubernetesEmulator, name: str) -> list[str]:
    return [
        obj.raw["reason"]
        for (resource, _, _), obj in api.objects.items()
        if resource.plural == "events" and obj.raw["involvedObject"]["name"] == name
    ]


def kubeconfig(path: Path, url: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": url.rstrip("/")}}],
        "users": [{"name": "operator", "user": {"token": "test-token"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "operator"}}],
        "current-context": "kmock",
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def chart_role() -> frozenset[Permission]:
    with helm_python.Chart.load(str(ROOT / "charts" / "trading-telemetry")) as chart:
        manifests = chart.render({"operator": {"enabled": True}}, name=RELEASE, namespace=NS)
    for template, text in manifests.items():
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc and doc["kind"] == "Role":
                return permissions_of(doc["rules"])
    raise AssertionError("the chart renders no Role")


def permission(method: str, path: str, query: dict[str, str]) -> Permission | None:
    """The RBAC permission a request needs; None for discovery (allowed to every user).

    Also cluster-scoped requests (e.g. listing namespaces) map to a permission, which the
    namespaced Role cannot grant, so kopf trying one fails the test.
    """
    parts = path.strip("/").split("/")
    core = parts[0] == "api"
    rest = parts[2 if core else 3 :]
    if not rest:
        return None  # /api, /api/v1, /apis, /apis/GROUP/VERSION
    group = "" if core else parts[1]
    if rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]  # namespaces/NS/RESOURCE[/NAME[/SUB]]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    named = len(rest) > 1
    listing = "watch" if query.get("watch") == "true" else "list"
    verbs = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}
    verb = ("get" if named else listing) if method == "GET" else verbs[method]
    return Permission(group, resource, verb)


async def as_job_controller_and_kubelet(url: str, job: Obj) -> None:
    """What a cluster does with the Job: the API server's defaulting puts the controller's
    selector on it, one pod succeeds with the result, then the Job completes. Through the
    API, so kopf sees the watch events."""
    name = job["metadata"]["name"]
    selector = {"batch.kubernetes.io/controller-uid": f"uid-{name}", "job-name": name}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "lb-bench-x1",
            "namespace": NS,
            "labels": {**job["spec"]["template"]["metadata"]["labels"], **selector},
        },
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [
                {
                    "name": "benchmark",
                    "image": "bench",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "message": encode(RESULT).decode()}},
                }
            ],
        },
    }
    status = {
        "status": {
            "startTime": "2025-11-24T16:00:00Z",
            "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True"}],
        }
    }
    headers = {"Content-Type": "application/merge-patch+json"}
    async with aiohttp.ClientSession(base_url=url, headers={ACTOR: "cluster"}) as session:
        defaulted = {"spec": {"selector": {"matchLabels": selector}}}
        path = f"/apis/batch/v1/namespaces/{NS}/jobs/{name}"
        async with session.patch(path, json=defaulted, headers=headers) as patched:
            assert patched.status < 300, await patched.text()
        async with session.post(f"/api/v1/namespaces/{NS}/pods", json=pod) as created:
            assert created.status < 300, await created.text()
        async with session.patch(f"{path}/status", json=status, headers=headers) as patched:
            assert patched.status < 300, await patched.text()


async def stop(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    if proc.returncode is None:
        proc.terminate()
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    return proc.returncode or 0, out.decode(errors="replace")


async def test_kopf_run_takes_a_benchmark_from_create_to_succeeded(
    kmock: Emulator, tmp_path: Path
) -> None:
    for resource, kind, verbs, subresources in RESOURCES:
        kmock.resources[resource] = {
            "namespaced": resource != "v1/namespaces",
            "kind": kind,
            "singular": kind.lower(),
            "verbs": verbs,
            "shortnames": set(),
            "categories": set(),
            "subresources": subresources,
        }
    kmock.objects["v1/services", NS, "demo-zmq"] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "demo-zmq", "namespace": NS, "resourceVersion": "1"},
        "spec": {"ports": [{"name": "zmq", "port": 5555}]},
    }
    benchmark: Obj = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "lb", "namespace": NS, "uid": "uid-lb", "resourceVersion": "2"},
        "spec": {"mode": "burst", "events": 1000},
    }
    # A second one that passes the schema but cannot run: it must end Failed, not loop.
    stray = copy.deepcopy(benchmark)
    stray["metadata"].update(name="stray", uid="uid-stray", resourceVersion="3")
    stray["spec"]["service"] = "no-such-service"
    # A third one whose Job the namespace's ResourceQuota refuses (403): JobRejected at once,
    # not retried as if the API were down (which ended as ApiError after ~15 minutes).
    quota = copy.deepcopy(benchmark)
    quota["metadata"].update(name="quota", uid="uid-quota", resourceVersion="4")
    kmock.objects[BENCHMARKS, NS, "lb"] = benchmark
    kmock.objects[BENCHMARKS, NS, "stray"] = stray
    kmock.objects[BENCHMARKS, NS, "quota"] = quota

    live = free_port()
    url = str(kmock.url)
    env = {
        "KUBECONFIG": str(kubeconfig(tmp_path / "kubeconfig", url)),
        "HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",
        "TT_OPERATOR_DEFAULT_SERVICE": "demo-zmq",
        "TT_OPERATOR_INSTANCE": RELEASE,
    }
    liveness = f"--liveness=http://127.0.0.1:{live}/healthz"
    proc = await asyncio.create_subprocess_exec(
        *[str(BIN / "kopf"), "run", "--standalone", "--namespace", NS, liveness],
        *["-m", "trading_operator.handlers"],
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        job = await eventually(lambda: stored(kmock, "jobs", "lb-bench"), "the Job")
        assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-lb"
        assert (
            job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
        )
        status = await eventually(
            lambda: (stored(kmock, PLURAL, "lb") or {}).get("status"), "Running"
        )
        assert status["state"] == "Running"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{live}/healthz") as health:
                assert health.status == 200

        await as_job_controller_and_kubelet(url, job)

        def succeeded() -> Obj | None:
            current = (stored(kmock, PLURAL, "lb") or {}).get("status") or {}
            return current if current.get("state") == "Succeeded" else None

        final = await eventually(succeeded, "state Succeeded")
        assert (final["p50Us"], final["p99Us"], final["lost"]) == (1.5, 4.0, 0)
        await eventually(lambda: len(reasons(kmock, "lb")) >= 2, "Events on lb")
        assert reasons(kmock, "lb") == ["JobCreated", "BenchmarkSucceeded"]
        # kopf's progress lives in annotations under the project's prefix, not in status.
        annotations = (stored(kmock, PLURAL, "lb") or {})["metadata"].get("annotations", {})
        assert f"{GROUP}/last-handled-configuration" in annotations
        assert "kopf" not in final

        failed = await eventually(
            lambda: (stored(kmock, PLURAL, "stray") or {}).get("status"), "stray"
        )
        assert (failed["state"], failed["reason"]) == ("Failed", "ServiceNotFound")
        assert stored(kmock, "jobs", "stray-bench") is None
        await eventually(lambda: reasons(kmock, "stray"), "Event on stray")
        assert reasons(kmock, "stray") == ["BenchmarkFailed"]

        def ended(name: str) -> Obj | None:
            current = (stored(kmock, PLURAL, name) or {}).get("status") or {}
            return current if current.get("state") == "Failed" else None

        refused = await eventually(lambda: ended("quota"), "quota Failed")
        assert refused["reason"] == "JobRejected"
        assert refused["message"] == f"the API refused the Job: {QUOTA_MESSAGE}"
        assert stored(kmock, "jobs", "quota-bench") is None
        await eventually(lambda: reasons(kmock, "quota"), "Event on quota")
        assert reasons(kmock, "quota") == ["BenchmarkFailed"]
    except AssertionError as exc:
        _, log = await stop(proc)
        raise AssertionError(f"{exc}\n--- kopf log ---\n{log}") from None
    code, log = await stop(proc)
    assert "Traceback" not in log, log
    assert code == 0, log

    # Least privilege on the wire: every request was one the chart's Role allows.
    role = chart_role()
    operators = [r for r in kmock if ACTOR not in r.headers]
    assert len(operators) < len(list(kmock)), "the test's own requests must be told apart"
    needed = {
        p
        for p in (
            permission(str(r.method).split(".")[-1].upper(), r.url.path, dict(r.url.query))
            for r in operators
        )
        if p is not None
    }
    assert needed <= role, sorted(needed - role)
    # ... and the operator's declared needs are what it used (a 409 never happened here).
    assert needed == RBAC_RULES - {Permission("batch", "jobs", "get")}, sorted(needed)
    jobs = [key for key, obj in kmock.objects.items() if key[0].plural == "jobs"]
    assert len(jobs) == 1
    # One handler run per benchmark: neither the stray nor the refused one was retried.
    assert log.count("Handler 'create_benchmark' succeeded") == 3, log
    assert "Handler 'create_benchmark' failed" not in log
